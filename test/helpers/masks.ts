import sharp from "sharp";

export interface DecodedMask {
  readonly width: number;
  readonly height: number;
  readonly channels: number;
  readonly depth: string;
  readonly pixels: Uint8Array;
}

/** Decodes a base64 PNG mask with sharp, reporting what the file itself declares. */
export async function decodeMask(base64: string): Promise<DecodedMask> {
  const png = Buffer.from(base64, "base64");
  const meta = await sharp(png).metadata();
  const { data } = await sharp(png).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  return { width: meta.width!, height: meta.height!, channels: meta.channels!, depth: meta.depth!, pixels: new Uint8Array(data) };
}

export type Rect = readonly [x0: number, y0: number, x1: number, y1: number];

/** A binary region of width x height from a predicate over pixel centres. */
export function region(width: number, height: number, inside: (x: number, y: number) => boolean): Uint8Array {
  const out = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) if (inside(x + 0.5, y + 0.5)) out[y * width + x] = 255;
  return out;
}

export const inRect = (r: Rect) => (x: number, y: number) => x >= r[0] && x < r[2] && y >= r[1] && y < r[3];

export function iou(a: Uint8Array, b: Uint8Array): number {
  let inter = 0;
  let union = 0;
  for (let i = 0; i < a.length; i++) {
    const p = a[i]! > 0;
    const q = b[i]! > 0;
    if (p && q) inter++;
    if (p || q) union++;
  }
  return union === 0 ? 1 : inter / union;
}
