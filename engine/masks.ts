/**
 * Turns kept queries into encoded masks for one image size: each 288x288 logit plane is resized
 * and cut straight into a PNG scanline buffer, then compressed on the libuv thread pool while the
 * next mask is resized. At most `concurrency` full-size masks exist at once, whatever the count.
 */
import { MASK_SIZE } from "../models/contract.js";
import { throwIfAborted } from "./errors.js";
import { resizeMaskInto, resizePlan } from "./mask-resize.js";
import type { ResizePlan } from "./mask-resize.js";
import { allocScanlines, encodeGrayPng } from "./png.js";

export interface MaskTimings {
  /** Resize and cut, on this thread. */
  resizeMs: number;
  /** Wall time of the whole mask phase (resize + PNG + base64). */
  totalMs: number;
}

export class MaskEncoder {
  private readonly plan: ResizePlan;
  private readonly scratch: Float64Array;
  private readonly free: Buffer[] = [];

  constructor(
    readonly width: number,
    readonly height: number,
    private readonly concurrency = 2,
  ) {
    this.plan = resizePlan(width, height, MASK_SIZE);
    this.scratch = new Float64Array(MASK_SIZE * width);
  }

  /** Resizes one plane into a fresh scanline buffer (filter bytes left for the PNG step). */
  rasterize(plane: ArrayLike<number>, into: Buffer = allocScanlines(this.width, this.height)): Buffer {
    resizeMaskInto(plane, this.plan, into, 1, this.width + 1, this.scratch);
    return into;
  }

  /** Base64 PNGs of the given planes, in order. */
  async encodePngs(planes: readonly (() => ArrayLike<number>)[], timings: MaskTimings, signal?: AbortSignal): Promise<string[]> {
    const started = performance.now();
    const out = new Array<string>(planes.length);
    const inFlight = new Set<Promise<void>>();
    try {
      for (let i = 0; i < planes.length; i++) {
        throwIfAborted(signal);
        while (inFlight.size >= this.concurrency) await Promise.race(inFlight);
        const buffer = this.free.pop() ?? allocScanlines(this.width, this.height);
        const t0 = performance.now();
        this.rasterize(planes[i]!(), buffer);
        timings.resizeMs += performance.now() - t0;
        const task = encodeGrayPng(buffer, this.width, this.height).then((png) => {
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
    return out;
  }
}
