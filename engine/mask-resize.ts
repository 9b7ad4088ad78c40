/**
 * Mask upsampling (sam3-model.md section 7): bilinear with half-pixel centres
 * (align_corners=False, negative source coordinates clamped to 0, no antialias) straight from
 * the 288x288 logit plane to the image size, then cut at logit > 0.
 *
 * The cut is all that leaves this module, so the vertical pass works per source interval: between
 * two source columns the interpolated value is linear in x, so where it has the same clear sign at
 * both ends of the interval the whole run is filled at once, and only intervals where the sign
 * may change are evaluated pixel by pixel. The result equals the per-pixel formula exactly (see
 * `resizeMaskReference` and the tests); at 4000x3000 it touches ~300 values per row instead of 4000.
 */

/** Index and weight tables of one axis: output o reads sources i0[o], i1[o] with weight w1[o] on i1. */
export interface AxisTable {
  readonly size: number;
  readonly i0: Int32Array;
  readonly i1: Int32Array;
  readonly w1: Float64Array;
}

export function axisTable(outSize: number, inSize: number): AxisTable {
  const i0 = new Int32Array(outSize);
  const i1 = new Int32Array(outSize);
  const w1 = new Float64Array(outSize);
  const scale = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    let s = (o + 0.5) * scale - 0.5;
    if (s < 0) s = 0;
    const a = Math.min(Math.floor(s), inSize - 1);
    i0[o] = a;
    i1[o] = Math.min(a + 1, inSize - 1);
    w1[o] = s - a;
  }
  return { size: outSize, i0, i1, w1 };
}

/** Tables for one output size, reused for every mask of an image. */
export interface ResizePlan {
  readonly width: number;
  readonly height: number;
  readonly inSize: number;
  readonly x: AxisTable;
  readonly y: AxisTable;
  /** Runs of output columns sharing one source interval: [start, end) pairs. */
  readonly runs: Int32Array;
}

export function resizePlan(width: number, height: number, inSize: number): ResizePlan {
  const x = axisTable(width, inSize);
  const y = axisTable(height, inSize);
  const runs: number[] = [];
  let start = 0;
  for (let o = 1; o <= width; o++) {
    if (o === width || x.i0[o] !== x.i0[start] || x.i1[o] !== x.i1[start]) {
      runs.push(start, o);
      start = o;
    }
  }
  return { width, height, inSize, x, y, runs: Int32Array.from(runs) };
}

/** Below this magnitude the run test defers to per-pixel evaluation (logits are O(10); rounding is O(1e-14)). */
const CLEAR_SIGN = 1e-9;

/**
 * Writes the binary mask (0 or 255) of one logit plane into `out` (row-major, `rowStride` bytes
 * per row starting at `offset`, so a PNG scanline buffer can be filled in place).
 * `scratch` must hold at least inSize * width doubles; it is reused across calls.
 */
export function resizeMaskInto(
  logits: ArrayLike<number>,
  plan: ResizePlan,
  out: Uint8Array,
  offset: number,
  rowStride: number,
  scratch: Float64Array,
): void {
  const { width, height, inSize, x, y, runs } = plan;
  const { i0: xi0, i1: xi1, w1: xw1 } = x;
  const { i0: yi0, i1: yi1, w1: yw1 } = y;
  // Horizontal pass, once per source row that some output row reads.
  const ensureRow = (r: number) => {
    const base = r * width;
    const src = r * inSize;
    for (let o = 0; o < width; o++) {
      const l = xw1[o]!;
      scratch[base + o] = (1 - l) * logits[src + xi0[o]!]! + l * logits[src + xi1[o]!]!;
    }
  };
  const done = new Uint8Array(inSize);
  for (let oy = 0; oy < height; oy++) {
    const r0 = yi0[oy]!;
    const r1 = yi1[oy]!;
    if (!done[r0]) {
      ensureRow(r0);
      done[r0] = 1;
    }
    if (!done[r1]) {
      ensureRow(r1);
      done[r1] = 1;
    }
    const ly = yw1[oy]!;
    const ky = 1 - ly;
    const a = r0 * width;
    const b = r1 * width;
    const rowStart = offset + oy * rowStride;
    for (let k = 0; k < runs.length; k += 2) {
      const s = runs[k]!;
      const e = runs[k + 1]!;
      const vs = ky * scratch[a + s]! + ly * scratch[b + s]!;
      const ve = ky * scratch[a + e - 1]! + ly * scratch[b + e - 1]!;
      if (vs > CLEAR_SIGN && ve > CLEAR_SIGN) {
        out.fill(255, rowStart + s, rowStart + e);
      } else if (vs < -CLEAR_SIGN && ve < -CLEAR_SIGN) {
        out.fill(0, rowStart + s, rowStart + e);
      } else {
        for (let o = s; o < e; o++) out[rowStart + o] = ky * scratch[a + o]! + ly * scratch[b + o]! > 0 ? 255 : 0;
      }
    }
  }
}

/** The formula of sam3-model.md section 7, pixel by pixel: the reference the fast path must equal. */
export function resizeMaskReference(logits: ArrayLike<number>, inSize: number, width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height);
  const src = (n: number, size: number) => {
    let s = (n + 0.5) * (inSize / size) - 0.5;
    if (s < 0) s = 0;
    const i0 = Math.min(Math.floor(s), inSize - 1);
    return [i0, Math.min(i0 + 1, inSize - 1), s - i0] as const;
  };
  for (let y = 0; y < height; y++) {
    const [y0, y1, ly] = src(y, height);
    for (let x = 0; x < width; x++) {
      const [x0, x1, lx] = src(x, width);
      const L = (r: number, c: number) => logits[r * inSize + c]!;
      const v = (1 - ly) * ((1 - lx) * L(y0, x0) + lx * L(y0, x1)) + ly * ((1 - lx) * L(y1, x0) + lx * L(y1, x1));
      out[y * width + x] = v > 0 ? 255 : 0;
    }
  }
  return out;
}
