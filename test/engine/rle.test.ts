import { describe, expect, it } from "vitest";
import { countsToString, decodeRle, encodeRle, maskRunLengths, stringToCounts } from "../../engine/rle.js";

/** A row-major 0/255 mask from rows of "0"/"1". */
const mask = (...rows: string[]) => Uint8Array.from(rows.join("").split(""), (c) => (c === "1" ? 255 : 0));

describe("COCO RLE (pycocotools' column-major counts and string form)", () => {
  it("all zeros: one background run", () => {
    expect(maskRunLengths(mask("00", "00"), 2, 2)).toEqual([4]);
    expect(encodeRle(mask("00", "00"), 2, 2)).toEqual({ size: [2, 2], counts: "4" });
    // 100 = 3 * 32 + 4: low group 4 with the continuation bit (4 + 32 + 48 = "T"), then 3 ("3").
    expect(encodeRle(new Uint8Array(100), 10, 10)).toEqual({ size: [10, 10], counts: "T3" });
  });

  it("all ones: an empty background run first", () => {
    expect(maskRunLengths(mask("11", "11"), 2, 2)).toEqual([0, 4]);
    expect(encodeRle(mask("11", "11"), 2, 2).counts).toBe("04");
  });

  it("a single pixel, counted down the columns", () => {
    expect(encodeRle(mask("100", "000", "000"), 3, 3).counts).toBe("018");
    // Row 1, column 2 is column-major index 2 * 3 + 1 = 7.
    expect(maskRunLengths(mask("000", "001", "000"), 3, 3)).toEqual([7, 1, 1]);
    expect(encodeRle(mask("000", "001", "000"), 3, 3).counts).toBe("711");
  });

  it("a horizontal stripe: differences to the count two before, a negative one included", () => {
    const stripe = mask("0000", "1111", "0000");
    expect(maskRunLengths(stripe, 4, 3)).toEqual([1, 1, 2, 1, 2, 1, 2, 1, 1]);
    // Counts after the third are stored as differences: 0, 0, 0, 0, 0, then 1 - 2 = -1 ("O").
    expect(encodeRle(stripe, 4, 3).counts).toBe("11200000O");
  });

  it("a vertical stripe", () => {
    expect(maskRunLengths(mask("0100", "0100", "0100"), 4, 3)).toEqual([3, 3, 6]);
  });

  it("equals a plain column-major count on random masks of many shapes", () => {
    let seed = 7;
    const next = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    for (let t = 0; t < 30; t++) {
      const width = 1 + Math.floor(next() * 60);
      const height = 1 + Math.floor(next() * 60);
      const m = new Uint8Array(width * height);
      const density = next();
      for (let i = 0; i < m.length; i++) m[i] = next() < density ? 255 : 0;
      // Some rows repeat the one above, as most rows of real masks do.
      for (let y = 1; y < height; y++) if (next() < 0.5) m.copyWithin(y * width, (y - 1) * width, y * width);
      const plain: number[] = [];
      let value = 0;
      let run = 0;
      for (let x = 0; x < width; x++) {
        for (let y = 0; y < height; y++) {
          const v = m[y * width + x] ? 1 : 0;
          if (v === value) run++;
          else {
            plain.push(run);
            value = v;
            run = 1;
          }
        }
      }
      plain.push(run);
      expect(maskRunLengths(m, width, height), `${width}x${height}`).toEqual(plain);
    }
  });

  it("decodes what it encodes, for large counts and a strided scanline buffer", () => {
    const width = 300;
    const height = 200;
    const stride = width + 1;
    const buffer = new Uint8Array(height * stride).fill(9); // filter bytes must be ignored
    const plain = new Uint8Array(width * height);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const inside = (x - 150) ** 2 / 90 ** 2 + (y - 90) ** 2 / 60 ** 2 < 1 || (x > 250 && y > 150);
        buffer[y * stride + 1 + x] = inside ? 255 : 0;
        plain[y * width + x] = inside ? 255 : 0;
      }
    }
    const rle = encodeRle(buffer, width, height, 1, stride);
    expect(rle.size).toEqual([height, width]);
    expect(Buffer.compare(Buffer.from(decodeRle(rle)), Buffer.from(plain))).toBe(0);
    expect(stringToCounts(countsToString([5, 70000, 3, 123456, 0, 1]))).toEqual([5, 70000, 3, 123456, 0, 1]);
  });
});
