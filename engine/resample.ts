/**
 * The model's input resize (sam3-model.md section 3): a stretch to 1008x1008, bilinear,
 * antialiased when shrinking, done exactly as Pillow's ImagingResample does it (usls feeds PIL
 * `resize(BILINEAR)`): separable, all rows horizontally then columns vertically, 22-bit
 * fixed-point coefficients, rounding to 8 bits after each pass. Meta and Hugging Face resize
 * with torchvision's antialiased bilinear, which agrees within a grey level.
 *
 * libvips (sharp) is not used here: measured against this filter it differs by up to 138 grey
 * levels where it enlarges and up to 9 where it shrinks (bench/resize-vs-libvips.ts, jh.md).
 */

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);

/** Taps of one axis: output o reads `count[o]` inputs from `start[o]` with weights `k[o * stride ..]`. */
export interface Taps {
  readonly start: Int32Array;
  readonly count: Int32Array;
  readonly stride: number;
  readonly k: Int32Array;
}

export function bilinearTaps(inSize: number, outSize: number): Taps {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // the triangle filter's support is 1
  const stride = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const k = new Int32Array(outSize * stride);
  const w = new Float64Array(stride);
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const hi = Math.min(Math.trunc(center + support + 0.5), inSize);
    let sum = 0;
    for (let j = lo; j < hi; j++) {
      const v = Math.max(0, 1 - Math.abs((j - center + 0.5) / filterScale));
      w[j - lo] = v;
      sum += v;
    }
    for (let j = 0; j < hi - lo; j++) {
      const v = sum === 0 ? 0 : (w[j]! / sum) * ONE;
      k[o * stride + j] = v < 0 ? Math.trunc(v - 0.5) : Math.trunc(v + 0.5);
    }
    start[o] = lo;
    count[o] = hi - lo;
  }
  return { start, count, stride, k };
}

/** Resizes interleaved 8-bit RGB (`width` x `height`) to `outW` x `outH`, Pillow-exact. */
export function resizeRgb(src: Uint8Array, width: number, height: number, outW: number, outH: number): Uint8Array {
  // Pillow skips a pass whose axis keeps its size; the identity taps would give the same bytes, at a cost.
  const horizontal = width === outW ? src : horizontalPass(src, width, height, outW);
  return height === outH ? horizontal : verticalPass(horizontal, outW, height, outH);
}

function horizontalPass(src: Uint8Array, width: number, height: number, outW: number): Uint8Array {
  const { start, count, stride, k } = bilinearTaps(width, outW);
  const out = new Uint8Array(outW * height * 3);
  for (let y = 0; y < height; y++) {
    const row = y * width * 3;
    let q = y * outW * 3;
    for (let o = 0; o < outW; o++, q += 3) {
      let p = row + start[o]! * 3;
      const kb = o * stride;
      const n = count[o]!;
      let r: number;
      let g: number;
      let b: number;
      if (n === 2) {
        // Enlarging: two taps, unrolled.
        const c0 = k[kb]!;
        const c1 = k[kb + 1]!;
        r = (HALF + src[p]! * c0 + src[p + 3]! * c1) >> PRECISION_BITS;
        g = (HALF + src[p + 1]! * c0 + src[p + 4]! * c1) >> PRECISION_BITS;
        b = (HALF + src[p + 2]! * c0 + src[p + 5]! * c1) >> PRECISION_BITS;
      } else {
        r = HALF;
        g = HALF;
        b = HALF;
        for (let j = kb, end = kb + n; j < end; j++, p += 3) {
          const c = k[j]!;
          r = (r + src[p]! * c) | 0;
          g = (g + src[p + 1]! * c) | 0;
          b = (b + src[p + 2]! * c) | 0;
        }
        r >>= PRECISION_BITS;
        g >>= PRECISION_BITS;
        b >>= PRECISION_BITS;
      }
      out[q] = r < 0 ? 0 : r > 255 ? 255 : r;
      out[q + 1] = g < 0 ? 0 : g > 255 ? 255 : g;
      out[q + 2] = b < 0 ? 0 : b > 255 ? 255 : b;
    }
  }
  return out;
}

function verticalPass(src: Uint8Array, width: number, height: number, outH: number): Uint8Array {
  const { start, count, stride, k } = bilinearTaps(height, outH);
  const rowLen = width * 3;
  const out = new Uint8Array(rowLen * outH);
  const acc = new Int32Array(rowLen);
  for (let o = 0; o < outH; o++) {
    const kBase = o * stride;
    const n = count[o]!;
    const a = start[o]! * rowLen;
    const outRow = o * rowLen;
    if (n === 2) {
      // The common case when enlarging: two rows, no accumulator.
      const c0 = k[kBase]!;
      const c1 = k[kBase + 1]!;
      const b = a + rowLen;
      for (let i = 0; i < rowLen; i++) {
        const v = (HALF + src[a + i]! * c0 + src[b + i]! * c1) >> PRECISION_BITS;
        out[outRow + i] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
      continue;
    }
    acc.fill(HALF);
    for (let j = 0; j < n; j++) {
      const c = k[kBase + j]!;
      const row = a + j * rowLen;
      for (let i = 0; i < rowLen; i++) acc[i] = acc[i]! + src[row + i]! * c;
    }
    for (let i = 0; i < rowLen; i++) {
      const v = acc[i]! >> PRECISION_BITS;
      out[outRow + i] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return out;
}

/**
 * The model input in one go: Pillow-exact resize to outW x outH, then v = u8 / 127.5 - 1 in R, G, B
 * planes. The vertical pass writes the normalised planes directly (no second pass over the pixels);
 * its bytes are those of `resizeRgb` (the tests compare the two). It repeats verticalPass's
 * arithmetic on purpose: sharing it through a per-row callback measured 19-20 ms instead of
 * 13-14 ms at 800x533 -> 1008 (jh.md), a sixth of the engine's CPU budget per job.
 */
export function resizeToPlanar(src: Uint8Array, width: number, height: number, outW: number, outH: number): Float32Array {
  const horizontal = width === outW ? src : horizontalPass(src, width, height, outW);
  const pixels = outW * outH;
  const out = new Float32Array(pixels * 3);
  if (height === outH) return normalizeToPlanar(horizontal, pixels, out);
  const { start, count, stride, k } = bilinearTaps(height, outH);
  const rowLen = outW * 3;
  const acc = new Int32Array(rowLen);
  const r = NORMALIZED;
  for (let o = 0; o < outH; o++) {
    const kBase = o * stride;
    const n = count[o]!;
    const a = start[o]! * rowLen;
    let p = o * outW;
    if (n === 2) {
      // Enlarging: two source rows per output row, written straight to the planes.
      const c0 = k[kBase]!;
      const c1 = k[kBase + 1]!;
      const b = a + rowLen;
      for (let i = 0; i < rowLen; i += 3, p++) {
        out[p] = r[clamp8((HALF + horizontal[a + i]! * c0 + horizontal[b + i]! * c1) >> PRECISION_BITS)]!;
        out[pixels + p] = r[clamp8((HALF + horizontal[a + i + 1]! * c0 + horizontal[b + i + 1]! * c1) >> PRECISION_BITS)]!;
        out[2 * pixels + p] = r[clamp8((HALF + horizontal[a + i + 2]! * c0 + horizontal[b + i + 2]! * c1) >> PRECISION_BITS)]!;
      }
      continue;
    }
    acc.fill(HALF);
    for (let j = 0; j < n; j++) {
      const c = k[kBase + j]!;
      const row = a + j * rowLen;
      for (let i = 0; i < rowLen; i++) acc[i] = acc[i]! + horizontal[row + i]! * c;
    }
    for (let i = 0; i < rowLen; i += 3, p++) {
      out[p] = NORMALIZED[clamp8(acc[i]! >> PRECISION_BITS)]!;
      out[pixels + p] = NORMALIZED[clamp8(acc[i + 1]! >> PRECISION_BITS)]!;
      out[2 * pixels + p] = NORMALIZED[clamp8(acc[i + 2]! >> PRECISION_BITS)]!;
    }
  }
  return out;
}

const clamp8 = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v);

/** u8 / 127.5 - 1 for every byte value. */
const NORMALIZED = new Float32Array(256).map((_, u) => u / 127.5 - 1);

/** Interleaved 8-bit RGB to planar float32 [3, h, w] with v = u8 / 127.5 - 1 (mean = std = 0.5, not ImageNet). */
export function normalizeToPlanar(rgb: Uint8Array, pixels: number, out: Float32Array = new Float32Array(pixels * 3)): Float32Array {
  for (let i = 0, p = 0; i < pixels; i++, p += 3) {
    out[i] = NORMALIZED[rgb[p]!]!;
    out[pixels + i] = NORMALIZED[rgb[p + 1]!]!;
    out[2 * pixels + i] = NORMALIZED[rgb[p + 2]!]!;
  }
  return out;
}
