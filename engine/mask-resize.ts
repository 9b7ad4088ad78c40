/**
 * Mask upsampling (sam3-model.md section 7): bilinear with half-pixel centres
 * (align_corners=False, negative source coordinates clamped to 0, no antialias) straight from
 * the 288x288 logit plane to the image size, then cut at logit > 0.
 *
 * The cut is all that leaves this module, which allows two shortcuts that keep the result equal to
 * the per-pixel formula (`resizeMaskReference`; the tests compare them):
 * - only the image of the source box holding logits above -1e-9 is computed; outside it every
 *   output pixel blends clearly negative values and is 0;
 * - between two source columns the interpolated value is linear in x, so a run of output columns
 *   whose four corner values share a clear sign has that sign throughout, for every output row
 *   between the same two source rows: each source-row pair is classified once into a template row,
 *   and output rows copy it, evaluating pixel by pixel only the runs where the sign may change.
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
  /** Work buffers reused by every mask of this size (resizing is synchronous, one mask at a time). */
  readonly work: { readonly signs: Int8Array; readonly template: Uint8Array; readonly mixed: Int32Array };
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
  return {
    width,
    height,
    inSize,
    x,
    y,
    runs: Int32Array.from(runs),
    work: { signs: new Int8Array(inSize * inSize), template: new Uint8Array(width), mixed: new Int32Array(runs.length) },
  };
}

/** Below this magnitude the run test defers to per-pixel evaluation (logits are O(10); rounding is O(1e-14)). */
const CLEAR_SIGN = 1e-9;

/**
 * Writes the binary mask (0 or 255) of one logit plane into `out` (row-major, `rowStride` bytes
 * per row starting at `offset`, so a PNG scanline buffer can be filled in place).
 */
export function resizeMaskInto(logits: ArrayLike<number>, plan: ResizePlan, out: Uint8Array, offset: number, rowStride: number): void {
  const { width, height, inSize, x, y, runs } = plan;
  const { i0: xi0, i1: xi1, w1: xw1 } = x;
  const { i0: yi0, i1: yi1, w1: yw1 } = y;

  const { signs, template, mixed } = plan.work;

  // Source box holding every logit above -CLEAR_SIGN. An output pixel whose four sources all lie
  // outside it is a blend of clearly negative values, so 0: only the box's image needs work.
  // The same scan records each logit's clear sign (1, -1, or 0 when near zero).
  let r0 = inSize;
  let r1 = -1;
  let c0 = inSize;
  let c1 = -1;
  for (let r = 0; r < inSize; r++) {
    const row = r * inSize;
    let first = -1;
    let last = -1;
    for (let c = 0; c < inSize; c++) {
      const v = logits[row + c]!;
      if (v > -CLEAR_SIGN) {
        signs[row + c] = v > CLEAR_SIGN ? 1 : 0;
        if (first < 0) first = c;
        last = c;
      } else {
        signs[row + c] = -1;
      }
    }
    if (first < 0) continue;
    if (r < r0) r0 = r;
    r1 = r;
    if (first < c0) c0 = first;
    if (last > c1) c1 = last;
  }
  const [ox0, ox1] = touching(x, c0, c1);
  const [oy0, oy1] = touching(y, r0, r1);

  for (let oy = 0; oy < height; oy++) {
    const rowStart = offset + oy * rowStride;
    if (oy < oy0 || oy >= oy1) {
      out.fill(0, rowStart, rowStart + width);
      continue;
    }
    if (ox0 > 0) out.fill(0, rowStart, rowStart + ox0);
    if (ox1 < width) out.fill(0, rowStart + ox1, rowStart + width);
  }
  if (oy0 >= oy1 || ox0 >= ox1) return;

  // Runs of output columns inside the box; all columns of a run read the same two source columns.
  const boxRuns: number[] = [];
  for (let k = 0; k < runs.length; k += 2) {
    const s = Math.max(runs[k]!, ox0);
    const e = Math.min(runs[k + 1]!, ox1);
    if (s < e) boxRuns.push(s, e);
  }

  // Output rows reading the same source rows (a, b) differ only in their weight ly, and a run whose
  // four source logits (two rows, two columns) share a clear sign has that sign for every ly and
  // every column (the output is a convex blend of the four). So each source-row pair is classified
  // once into a template row; its output rows copy the template and evaluate, pixel by pixel and in
  // the reference's order of operations, only the runs where the sign may change.
  let mixedCount = 0;
  let pairA = -1;
  let pairB = -1;
  for (let oy = oy0; oy < oy1; oy++) {
    const a = yi0[oy]! * inSize;
    const b = yi1[oy]! * inSize;
    if (a !== pairA || b !== pairB) {
      pairA = a;
      pairB = b;
      mixedCount = 0;
      // Consecutive runs of one class are written with a single fill.
      let spanValue = -1;
      let spanStart = 0;
      for (let k = 0; k < boxRuns.length; k += 2) {
        const s = boxRuns[k]!;
        const x0 = xi0[s]!;
        const x1 = xi1[s]!;
        const sum = signs[a + x0]! + signs[a + x1]! + signs[b + x0]! + signs[b + x1]!;
        const value = sum === 4 ? 255 : sum === -4 ? 0 : -1;
        if (value !== spanValue) {
          if (spanValue >= 0) template.fill(spanValue, spanStart, s);
          spanValue = value;
          spanStart = s;
        }
        if (value < 0) {
          mixed[mixedCount++] = s;
          mixed[mixedCount++] = boxRuns[k + 1]!;
        }
      }
      if (spanValue >= 0) template.fill(spanValue, spanStart, ox1);
    }
    const rowStart = offset + oy * rowStride;
    out.set(template.subarray(ox0, ox1), rowStart + ox0);
    const ly = yw1[oy]!;
    const ky = 1 - ly;
    for (let k = 0; k < mixedCount; k += 2) {
      const s = mixed[k]!;
      const e = mixed[k + 1]!;
      const x0 = xi0[s]!;
      const x1 = xi1[s]!;
      const a0 = logits[a + x0]!;
      const a1 = logits[a + x1]!;
      const b0 = logits[b + x0]!;
      const b1 = logits[b + x1]!;
      for (let o = s; o < e; o++) {
        const lx = xw1[o]!;
        const v = ky * ((1 - lx) * a0 + lx * a1) + ly * ((1 - lx) * b0 + lx * b1);
        out[rowStart + o] = v > 0 ? 255 : 0;
      }
    }
  }
}

/** The output range [from, to) whose source taps reach into [lo, hi]; empty when hi < lo. */
function touching(table: AxisTable, lo: number, hi: number): [number, number] {
  if (hi < lo) return [0, 0];
  let from = 0;
  while (from < table.size && table.i1[from]! < lo) from++;
  let to = table.size;
  while (to > from && table.i0[to - 1]! > hi) to--;
  return [from, to];
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
