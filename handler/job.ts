/**
 * One job: input -> image bytes -> engine -> the contract payload. The only place where errors
 * become the contract's messages (api-contract.md section 2), through one table of codes.
 * A job never throws, except when its signal was aborted: a cancelled job gets no result.
 */
import type { ConceptResult, SegmentResult } from "../engine/segmenter.js";
import { EngineError } from "../engine/errors.js";
import type { EngineClient } from "./engine-client.js";
import { DownloadError, downloadImage } from "./fetch-image.js";
import type { DownloadLimits } from "./fetch-image.js";
import { InvalidInputError, engineRequest, parseInput } from "./input.js";
import type { InputLimits } from "./input.js";
import type { Logger } from "./logger.js";
import { redactUrl } from "./logger.js";

export interface SegmentationPayload {
  image_size: [number, number];
  results: Record<string, ConceptResult>;
  /** Only when the request set return_overlay. */
  overlay_base64?: string;
}

export type JobOutcome = { readonly output: SegmentationPayload } | { readonly error: string };

/** Thrown (never posted) when the job's signal fired: the platform closed the job itself. */
export class JobCancelledError extends Error {
  override readonly name = "JobCancelledError";
}

export interface JobContext {
  readonly engine: EngineClient;
  readonly limits: InputLimits & { readonly download: DownloadLimits };
  readonly log: Logger;
  readonly signal?: AbortSignal;
  /** Called after each concept's masks are done. */
  readonly onProgress?: (done: number, total: number) => void;
  /** The downloader; tests may pass one with a stand-in dispatcher. */
  readonly download?: typeof downloadImage;
}

/**
 * The contract's message for any failure: input errors and download errors carry their prefix's
 * detail, "Model file not found: <file>" stands as it is, everything else is "Segmentation failed".
 */
export function contractMessage(err: unknown): string {
  if (err instanceof InvalidInputError) return err.message;
  if (err instanceof DownloadError) return `Failed to download image: ${err.message}`;
  if (err instanceof EngineError && err.code === "MODEL_FILE_NOT_FOUND") return err.message;
  return `Segmentation failed: ${(err as Error)?.message ?? String(err)}`;
}

function toPayload(result: SegmentResult): SegmentationPayload {
  return {
    image_size: result.image_size,
    results: result.results,
    ...(result.overlay_base64 !== undefined ? { overlay_base64: result.overlay_base64 } : {}),
  };
}

export async function runSegmentationJob(input: unknown, ctx: JobContext): Promise<JobOutcome> {
  const { log, signal } = ctx;
  const cancelled = () => signal?.aborted === true;
  try {
    const request = parseInput(input, { maxConcepts: ctx.limits.maxConcepts, maxImageBytes: ctx.limits.maxImageBytes });
    let bytes: Uint8Array;
    if (request.image.kind === "url") {
      log.info({ url: redactUrl(request.image.url) }, "downloading image");
      const download = ctx.download ?? downloadImage;
      bytes = await download(request.image.url, ctx.limits.download, { log, ...(signal ? { signal } : {}) });
    } else {
      bytes = request.image.bytes;
    }
    log.info({ bytes: bytes.length, concepts: request.concepts.length, threshold: request.threshold }, "segmenting");
    const result = await ctx.engine.segment({
      ...engineRequest(request, bytes),
      ...(signal ? { signal } : {}),
      ...(ctx.onProgress ? { onConceptDone: ctx.onProgress } : {}),
    });
    const timings = Object.fromEntries(Object.entries(result.timings).map(([k, v]) => [k, Math.round(v * 10) / 10]));
    const instances = Object.values(result.results).reduce((n, r) => n + r.instance_count, 0);
    log.info({ imageSize: result.image_size, instances, imageCacheHit: result.imageCacheHit, timingsMs: timings }, "segmented");
    return { output: toPayload(result) };
  } catch (err) {
    if (cancelled()) throw new JobCancelledError("job was cancelled", { cause: err });
    const message = contractMessage(err);
    const expected = err instanceof InvalidInputError || err instanceof DownloadError || err instanceof EngineError;
    if (expected) log.warn({ code: (err as { code?: string }).code }, message);
    else log.error({ err }, message);
    return { error: message };
  }
}
