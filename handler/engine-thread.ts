/**
 * The engine's own thread. The worker loop and the local API server run the model here, so the
 * main thread (heartbeat, job-stop polling, downloads, HTTP) is never blocked by inference.
 * Messages: in  {type: "segment", id, request} | {type: "abort", id}
 *           out {type: "warn", message} | {type: "ready", device} | {type: "failed", error}
 *               | {type: "progress", id, done, total} | {type: "result", id, result} | {type: "error", id, error}
 */
import { parentPort, workerData } from "node:worker_threads";
import { EngineError } from "../engine/errors.js";
import { Sam3Engine } from "../engine/segmenter.js";
import type { EngineSettings, SegmentRequest, SegmentResult } from "../engine/segmenter.js";

/** A segment request as it crosses to the thread: everything but the signal and the callback. */
export type SegmentMessage = { readonly type: "segment"; readonly id: number } & Omit<SegmentRequest, "signal" | "onConceptDone">;

export type ToEngine = SegmentMessage | { readonly type: "abort"; readonly id: number };

export interface SerializedError {
  readonly code?: string;
  readonly message: string;
}

export type FromEngine =
  | { readonly type: "warn"; readonly message: string }
  | { readonly type: "ready"; readonly device: "cpu" | "cuda" }
  | { readonly type: "failed"; readonly error: SerializedError }
  | { readonly type: "progress"; readonly id: number; readonly done: number; readonly total: number }
  | { readonly type: "result"; readonly id: number; readonly result: SegmentResult }
  | { readonly type: "error"; readonly id: number; readonly error: SerializedError };

export type EngineThreadData = Omit<EngineSettings, "warn">;

function serialize(err: unknown): SerializedError {
  return err instanceof EngineError ? { code: err.code, message: err.message } : { message: (err as Error)?.message ?? String(err) };
}

async function serve(): Promise<void> {
  const port = parentPort!;
  const send = (message: FromEngine) => port.postMessage(message);
  const settings: EngineSettings = { ...(workerData as EngineThreadData), warn: (message) => send({ type: "warn", message }) };
  let engine: Sam3Engine;
  try {
    engine = await Sam3Engine.create(settings);
  } catch (err) {
    // The thread stays up and answers every job with the start-up error (a missing model file, say):
    // the worker keeps running and each job gets that message, as the contract asks. A thread that
    // exits means the engine died.
    const error = serialize(err);
    send({ type: "failed", error });
    port.on("message", (message: ToEngine) => {
      if (message.type === "segment") send({ type: "error", id: message.id, error });
    });
    return;
  }
  const running = new Map<number, AbortController>();
  port.on("message", (message: ToEngine) => {
    if (message.type === "abort") {
      running.get(message.id)?.abort();
      return;
    }
    const controller = new AbortController();
    running.set(message.id, controller);
    const { type: _type, id: _id, ...request } = message;
    engine
      .segment({
        ...request,
        signal: controller.signal,
        onConceptDone: (done, total) => send({ type: "progress", id: message.id, done, total }),
      })
      .then(
        (result) => send({ type: "result", id: message.id, result }),
        (err: unknown) => send({ type: "error", id: message.id, error: serialize(err) }),
      )
      .finally(() => running.delete(message.id));
  });
  send({ type: "ready", device: engine.device });
}

if (parentPort) await serve();
