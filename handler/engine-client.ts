/**
 * How the handler reaches the engine. The local one-shot, the CLI and the tests run it in this
 * thread; the worker loop and the local API server run it in a worker thread (engine-thread.ts)
 * so that heartbeats, stop polling and HTTP keep answering while a model runs.
 * A failed start-up (a missing model file, say) is kept and given to every job: the worker stays
 * up and answers each job with that error, as the contract asks.
 */
import { Sam3Engine } from "../engine/segmenter.js";
import type { EngineSettings, SegmentRequest, SegmentResult } from "../engine/segmenter.js";
import type { Device } from "../engine/sessions.js";

export interface EngineClient {
  /** Resolves with the device once loaded; rejects with the load error. */
  readonly ready: Promise<Device>;
  segment(request: SegmentRequest): Promise<SegmentResult>;
  close(): Promise<void>;
}

export function inProcessEngine(settings: EngineSettings): EngineClient {
  const engine = Sam3Engine.create(settings);
  const ready = engine.then((e) => e.device);
  // The error is given to each job (and to whoever awaits `ready`), never raised unhandled.
  engine.catch(() => undefined);
  ready.catch(() => undefined);
  return {
    ready,
    segment: async (request) => (await engine).segment(request),
    close: async () => {
      const e = await engine.catch(() => undefined);
      await e?.dispose();
    },
  };
}
