/**
 * COCO run-length encoding, as pycocotools writes it (maskApi.c rleEncode / rleToString):
 * runs are counted in column-major order (down each column, then the next column), starting with
 * a run of background (0 when the first pixel is foreground); the compressed string stores each
 * count in 5-bit groups, little end first, as characters 48..111, with counts after the third one
 * stored as the difference to the count two places before.
 */

export interface CocoRle {
  /** [height, width], as pycocotools orders it. */
  size: [number, number];
  counts: string;
}

/** Positions in [start, end) where a 0/255 row changes value, reading 0 before the row starts. */
function rowToggles(mask: Uint8Array, start: number, end: number): number[] {
  const toggles: number[] = [];
  let at = start;
  let looking = 255;
  for (;;) {
    // Native byte searches: a mask row is a few long runs.
    const next = mask.indexOf(looking, at);
    if (next < 0 || next >= end) return toggles;
    toggles.push(next - start);
    at = next;
    looking = looking === 255 ? 0 : 255;
  }
}

/**
 * Column-major run lengths of a 0/255 mask held row-major, `stride` bytes per row from `offset`.
 * Works row by row: a row equal to the one above costs one memory compare; otherwise the columns
 * that flip are found from the rows' value changes (found with native byte searches), so the cost
 * follows the mask's edges, not its area.
 */
export function maskRunLengths(mask: Uint8Array, width: number, height: number, offset = 0, stride = width): number[] {
  if (width === 0 || height === 0) return [0];
  // Per column: the value of its top pixel and the rows where its value flips.
  const top = new Uint8Array(width);
  const flips: number[][] = Array.from({ length: width }, () => []);
  for (let x = 0; x < width; x++) top[x] = mask[offset + x] === 255 ? 1 : 0;
  const bytes = Buffer.from(mask.buffer, mask.byteOffset, mask.byteLength);
  let above = rowToggles(mask, offset, offset + width);
  for (let y = 1; y < height; y++) {
    const row = offset + y * stride;
    if (bytes.compare(bytes, row - stride, row - stride + width, row, row + width) === 0) continue;
    const current = rowToggles(mask, row, row + width);
    // The two rows differ exactly between consecutive points of the symmetric difference of their toggles.
    const diff: number[] = [];
    let i = 0;
    let j = 0;
    while (i < above.length || j < current.length) {
      const a = i < above.length ? above[i]! : Infinity;
      const c = j < current.length ? current[j]! : Infinity;
      if (a === c) {
        i++;
        j++;
      } else if (a < c) {
        diff.push(a);
        i++;
      } else {
        diff.push(c);
        j++;
      }
    }
    for (let k = 0; k < diff.length; k += 2) {
      const end = k + 1 < diff.length ? diff[k + 1]! : width;
      for (let x = diff[k]!; x < end; x++) flips[x]!.push(y);
    }
    above = current;
  }
  const counts: number[] = [];
  let value = 0;
  let run = 0;
  const extend = (v: number, length: number) => {
    if (length === 0) return;
    if (v === value) run += length;
    else {
      counts.push(run);
      value = v;
      run = length;
    }
  };
  for (let x = 0; x < width; x++) {
    let v = top[x]!;
    let from = 0;
    for (const y of flips[x]!) {
      extend(v, y - from);
      from = y;
      v ^= 1;
    }
    extend(v, height - from);
  }
  counts.push(run);
  return counts;
}

/** pycocotools' rleToString. */
export function countsToString(counts: readonly number[]): string {
  let out = "";
  for (let i = 0; i < counts.length; i++) {
    let x = counts[i]!;
    if (i > 2) x -= counts[i - 2]!;
    let more = true;
    while (more) {
      let c = x & 0x1f;
      x >>= 5;
      more = c & 0x10 ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      out += String.fromCharCode(c + 48);
    }
  }
  return out;
}

/** pycocotools' rleFrString. */
export function stringToCounts(text: string): number[] {
  const counts: number[] = [];
  let p = 0;
  while (p < text.length) {
    let x = 0;
    let k = 0;
    let more = true;
    while (more) {
      const c = text.charCodeAt(p) - 48;
      x |= (c & 0x1f) << (5 * k);
      more = (c & 0x20) !== 0;
      p++;
      k++;
      if (!more && c & 0x10) x |= -1 << (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2]!;
    counts.push(x);
  }
  return counts;
}

export function encodeRle(mask: Uint8Array, width: number, height: number, offset = 0, stride = width): CocoRle {
  return { size: [height, width], counts: countsToString(maskRunLengths(mask, width, height, offset, stride)) };
}

/** Back to a row-major 0/255 mask (for tests and tools). */
export function decodeRle(rle: CocoRle): Uint8Array {
  const [height, width] = rle.size;
  const out = new Uint8Array(width * height);
  let index = 0;
  let value = 0;
  for (const count of stringToCounts(rle.counts)) {
    if (value) for (let i = index; i < index + count; i++) out[(i % height) * width + Math.floor(i / height)] = 255;
    index += count;
    value ^= 1;
  }
  if (index !== width * height) throw new Error(`RLE covers ${index} pixels, expected ${width * height}`);
  return out;
}
