import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { encodeGrayPng, encodeGrayPngSync, scanlinesOf } from "../../engine/png.js";


describe("grayscale PNG writer", () => {
  it("writes an 8-bit, 1-channel PNG that decodes to the same pixels", async () => {
    const width = 37;
    const height = 23;
    const mask = new Uint8Array(width * height);
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) mask[y * width + x] = (x > 5 && x < 20 && y > 3) || y === 0 ? 255 : 0;
    for (const png of [encodeGrayPngSync(scanlinesOf(mask, width, height), width, height), await encodeGrayPng(scanlinesOf(mask, width, height), width, height)]) {
      const meta = await sharp(png).metadata();
      expect([meta.format, meta.width, meta.height, meta.channels, meta.depth, meta.space]).toEqual(["png", width, height, 1, "uchar", "b-w"]);
      const { data } = await sharp(png).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
      expect(Buffer.compare(data, Buffer.from(mask))).toBe(0);
    }
  });

  it("stores repeated rows compactly", async () => {
    const width = 2000;
    const height = 1500;
    const mask = new Uint8Array(width * height);
    for (let y = 300; y < 1200; y++) mask.fill(255, y * width + 500, y * width + 1500);
    const png = await encodeGrayPng(scanlinesOf(mask, width, height), width, height);
    expect(png.length).toBeLessThan(10_000);
    const { data } = await sharp(png).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
    expect(Buffer.compare(data, Buffer.from(mask))).toBe(0);
  });
});
