import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { bilinearTaps, normalizeToPlanar, resizeRgb, resizeToPlanar } from "../../engine/resample.js";

/** The integer pattern of scripts/reference/pil_resize_hashes.py: edges, gradients and texture. */
function pattern(width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) {
        const checker = (Math.floor(x / 37) + Math.floor(y / 29)) % 2 === 0 ? 90 : 0;
        out[(y * width + x) * 3 + c] = (x * 7 + y * 13 + c * 50 + ((x * y) % 17) * 5 + checker) % 256;
      }
    }
  }
  return out;
}

/** sha256 of Pillow's `Image.resize((1008, 1008), BILINEAR)` output for each pattern (Pillow 12.3). */
const PILLOW_DIGESTS: Record<string, string> = {
  "800x533": "ad42aa14d5d59a007bf1a5180b4a5dbc9d159ade3cd29d5e0f26f2f261a12a7e",
  "4000x3000": "b9aac6b159e604c937f5bb749492bb151206bde525b47b210715a04eb4b6cc23",
  "1200x900": "11c88c87b1ccac0b1fe9268135e4969ca6c9c8453295cc7e48d01925306d1135",
  "2016x2016": "51bcb92bb558e0391bbee159898176423cfcdc3f484b1666008180155211ac25",
  "1008x700": "1ab7a153867c6aebb1185121ca78f98b68e5a562e20a262369476fd95bb47279",
  "37x1500": "faf0fee3c63f96807c75b9fda594b890c371da7aaae544bc319db59a7986f38d",
  "1008x1008": "a7a366460ad49475dd5145eb98a633de7f90efb1da0021b478623acb95dd2473",
};

describe("resizeRgb (Pillow's bilinear, fixed point)", () => {
  it.each(Object.entries(PILLOW_DIGESTS))("equals Pillow byte for byte at %s -> 1008x1008", (size, digest) => {
    const [w, h] = size.split("x").map(Number) as [number, number];
    const out = resizeRgb(pattern(w, h), w, h, 1008, 1008);
    expect(createHash("sha256").update(out).digest("hex")).toBe(digest);
  });

  it("matches hand-computed values when enlarging 2 -> 4 and shrinking 4 -> 2", () => {
    const grey = (values: number[]) => Uint8Array.from(values.flatMap((v) => [v, v, v]));
    const every3 = (a: Uint8Array) => Array.from(a.filter((_, i) => i % 3 === 0));
    // Enlarging: centres at 0.25, 0.75, 1.25, 1.75 blend [0, 100] as 0, 25, 75, 100.
    expect(every3(resizeRgb(grey([0, 100]), 2, 1, 4, 1))).toEqual([0, 25, 75, 100]);
    // Shrinking by 2 widens the triangle to 2 pixels: (40*.75 + 80*.25) / 1.75 = 28.6 and (40*.25 + 80*.75 + 120*.75) / 1.75 = 91.4.
    expect(every3(resizeRgb(grey([0, 40, 80, 120]), 4, 1, 2, 1))).toEqual([29, 91]);
  });

  it("builds normalised 22-bit taps that cover the input", () => {
    const taps = bilinearTaps(4000, 1008);
    for (let o = 0; o < 1008; o++) {
      let sum = 0;
      for (let j = 0; j < taps.count[o]!; j++) sum += taps.k[o * taps.stride + j]!;
      expect(Math.abs(sum - (1 << 22))).toBeLessThanOrEqual(taps.count[o]!);
    }
    expect(taps.start[0]).toBe(0);
    expect(taps.start[1007]! + taps.count[1007]!).toBe(4000);
  });
});

describe("resizeToPlanar (the model input in one pass)", () => {
  it.each([
    [800, 533],
    [1200, 900],
    [4000, 3000],
    [1008, 700],
    [1008, 1008],
  ])("equals normalizeToPlanar(resizeRgb(...)) exactly at %ix%i", (w, h) => {
    const src = pattern(w, h);
    const fused = resizeToPlanar(src, w, h, 1008, 1008);
    const twoStep = normalizeToPlanar(resizeRgb(src, w, h, 1008, 1008), 1008 * 1008);
    expect(Buffer.compare(Buffer.from(fused.buffer), Buffer.from(twoStep.buffer))).toBe(0);
  });
});

describe("normalizeToPlanar", () => {
  it("maps 0..255 to -1..1 as u8 / 127.5 - 1, in R, G, B planes", () => {
    const out = normalizeToPlanar(Uint8Array.from([0, 255, 51, 255, 0, 204]), 2);
    expect(Array.from(out)).toEqual([-1, 1, 1, -1, 51 / 127.5 - 1, 204 / 127.5 - 1].map(Math.fround));
  });
});
