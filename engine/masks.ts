/**
 * Turns kept queries into encoded masks for one image size: each 288x288 logit plane is resized
 * and cut straight into a PNG scanline buffer, then either compressed as PNG on the libuv thread
 * pool while the next mask is resized, or run-length encoded (COCO RLE) at once. At most
 * `concurrency` full-size masks exist at once, whatever the count.
 */
import { MASK_SIZE } from "../models/contract.js";
import { throwIfAborted } from "./errors.js";
import { resizeMaskInto, resizePlan } from "./mask-resize.js";
import type { ResizePlan } from "./mask-resize.js";
import { allocScanlines, encodeGrayPng } from "./png.js";
import { encodeRle } from "./rle.js";
import type { CocoRle } from "./rle.js";

export type MaskFormat = "png" | "rle";

export interface MaskTimings {
  /** Resize and cut, on this thread. */
  resizeMs: number;
  /** Wall time of the whole mask phase (resize + encoding). */
  totalMs: number;
}

/** Sees each binary mask (row-major, `stride` bytes per row from `offset`) before it is encoded. */
export type MaskVisitor = (index: number, mask: Uint8Array, offset: number, stride: number) => void;

export class MaskEncoder {
  private readonly plan: ResizePlan;
  private readonly free: Buffer[] = [];

  constructor(
    readonly width: number,
    readonly height: number,
    private readonly concurrency = 2,
  ) {
    this.plan = resizePlan(width, height, MASK_SIZE);
  }

  /** Resizes one plane into a scanline buffer (filter bytes are left for the PNG step). */
  rasterize(plane: ArrayLike<number>, into: Buffer): Buffer {
    resizeMaskInto(plane, this.plan, into, 1, this.width + 1);
    return into;
  }

  /** Base64 PNGs (format "png") or COCO RLE objects ("rle") of the given planes, in order. */
  async encode(
    planes: readonly (() => ArrayLike<number>)[],
    format: MaskFormat,
    timings: MaskTimings,
    options: { signal?: AbortSignal; visit?: MaskVisitor } = {},
  ): Promise<string[] | CocoRle[]> {
    const started = performance.now();
    const { width, height } = this;
    const stride = width + 1;
    const out = new Array<string | CocoRle>(planes.length);
    const inFlight = new Set<Promise<void>>();
    try {
      for (let i = 0; i < planes.length; i++) {
        throwIfAborted(options.signal);
        while (inFlight.size >= this.concurrency) await Promise.race(inFlight);
        const buffer = this.free.pop() ?? allocScanlines(width, height);
        const t0 = performance.now();
        this.rasterize(planes[i]!(), buffer);
        timings.resizeMs += performance.now() - t0;
        options.visit?.(i, buffer, 1, stride);
        if (format === "rle") {
          out[i] = encodeRle(buffer, width, height, 1, stride);
          this.free.push(buffer);
          continue;
        }
        const task = encodeGrayPng(buffer, width, height).then((png) => {
          out[i] = png.toString("base64");
          this.free.push(buffer);
          inFlight.delete(task);
        });
        inFlight.add(task);
      }
      await Promise.all(inFlight);
    } catch (err) {
      // Let compressions still running finish before their buffers can be reused or dropped.
      await Promise.allSettled(inFlight);
      throw err;
    }
    timings.totalMs += performance.now() - started;
    return out as string[] | CocoRle[];
  }
}
