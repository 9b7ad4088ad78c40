/**
 * An EngineClient backed by engine-thread.ts in a worker thread. Image bytes are transferred,
 * not copied; cancellation and progress cross as messages. If the thread dies, every pending and
 * later job fails with a FATAL error, and `onFatal` tells the worker to stop taking jobs.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
// sharp must be loaded by the main thread before any worker thread uses it (glibc Linux; sharp docs).
import "sharp";
import { EngineError } from "../engine/errors.js";
import type { EngineErrorCode } from "../engine/errors.js";
import { findProjectRoot } from "../engine/module-paths.js";
import type { EngineSettings, SegmentRequest, SegmentResult } from "../engine/segmenter.js";
import type { Device } from "../engine/sessions.js";
import type { EngineClient } from "./engine-client.js";
import type { EngineThreadData, FromEngine, SerializedError, ToEngine } from "./engine-thread.js";

/** The compiled thread script: next to this file in dist/, or dist/handler/ when running from sources (tests). */
function threadScript(): string {
  const here = fileURLToPath(new URL("./engine-thread.js", import.meta.url));
  if (existsSync(here)) return here;
  const built = join(findProjectRoot(), "dist", "handler", "engine-thread.js");
  if (!existsSync(built)) throw new Error(`engine thread script not found: run "npm run build" first (looked for ${built})`);
  return built;
}

function toError(e: SerializedError): Error {
  return e.code ? new EngineError(e.code as EngineErrorCode, e.message) : new Error(e.message);
}

interface Pending {
  readonly resolve: (r: SegmentResult) => void;
  readonly reject: (e: Error) => void;
  readonly onProgress?: (done: number, total: number) => void;
}

export type ThreadEngineClient = EngineClient;

export function threadEngine(settings: EngineSettings, onFatal?: (err: Error) => void): ThreadEngineClient {
  const { warn, ...data } = settings;
  const worker = new Worker(threadScript(), { workerData: data satisfies EngineThreadData });
  const pending = new Map<number, Pending>();
  let nextId = 1;
  let fatal: Error | undefined;
  let closing = false;
  let settleReady!: { resolve: (d: Device) => void; reject: (e: Error) => void };
  const ready = new Promise<Device>((resolve, reject) => (settleReady = { resolve, reject }));
  ready.catch(() => undefined);

  worker.on("message", (m: FromEngine) => {
    switch (m.type) {
      case "warn":
        return warn(m.message);
      case "ready":
        return settleReady.resolve(m.device);
      case "failed":
        return settleReady.reject(toError(m.error));
      case "progress":
        return pending.get(m.id)?.onProgress?.(m.done, m.total);
      case "result":
        pending.get(m.id)?.resolve(m.result);
        return pending.delete(m.id);
      case "error":
        pending.get(m.id)?.reject(toError(m.error));
        return pending.delete(m.id);
    }
  });
  const die = (err: Error) => {
    if (closing || fatal) return;
    fatal = new EngineError("INFERENCE", `the engine thread stopped: ${err.message}`);
    settleReady.reject(fatal);
    for (const p of pending.values()) p.reject(fatal);
    pending.clear();
    onFatal?.(fatal);
  };
  worker.on("error", die);
  worker.on("exit", (code) => die(new Error(`exit code ${code}`)));

  return {
    ready,
    async segment(request: SegmentRequest): Promise<SegmentResult> {
      await ready;
      if (fatal) throw fatal;
      request.signal?.throwIfAborted();
      const id = nextId++;
      // A private copy whose buffer can be transferred (the caller's may be a slice of a pool).
      const image = new Uint8Array(request.image);
      const { signal, onConceptDone, ...fields } = request;
      const message: ToEngine = { type: "segment", id, ...fields, image };
      return new Promise<SegmentResult>((resolve, reject) => {
        pending.set(id, { resolve, reject, ...(onConceptDone ? { onProgress: onConceptDone } : {}) });
        signal?.addEventListener("abort", () => worker.postMessage({ type: "abort", id } satisfies ToEngine), { once: true });
        worker.postMessage(message, [image.buffer]);
      });
    },
    async close(): Promise<void> {
      closing = true;
      await worker.terminate();
    },
  };
}
