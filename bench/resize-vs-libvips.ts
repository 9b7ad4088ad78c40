/**
 * How far sharp/libvips' linear resize to 1008x1008 is from the reference filter (Pillow's
 * bilinear, engine/resample.ts, byte-exact with Pillow): why the engine does not use it.
 *   npm run build && node dist/bench/resize-vs-libvips.js
 */
import sharp from "sharp";
import { isMainModule } from "../engine/module-paths.js";
import { resizeRgb } from "../engine/resample.js";

function pattern(width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const inside = x > width * 0.37 && x < width * 0.61 && y > height * 0.2;
      for (let c = 0; c < 3; c++) out[(y * width + x) * 3 + c] = (inside ? 210 : 40) + ((x * 7 + y * 13) % 16) + c * 20;
    }
  }
  return out;
}

async function main(): Promise<void> {
  process.stdout.write("size -> 1008x1008: max and mean |sharp linear - Pillow bilinear| in grey levels\n");
  for (const [w, h] of [[800, 533], [1009, 1009], [1100, 1100], [1500, 1200], [2016, 2016], [3000, 2000], [4000, 3000], [1200, 900]] as const) {
    const src = pattern(w, h);
    const reference = resizeRgb(src, w, h, 1008, 1008);
    const vips = await sharp(src, { raw: { width: w, height: h, channels: 3 } }).resize(1008, 1008, { fit: "fill", kernel: "linear" }).raw().toBuffer();
    let max = 0;
    let sum = 0;
    for (let i = 0; i < reference.length; i++) {
      const d = Math.abs(reference[i]! - vips[i]!);
      max = Math.max(max, d);
      sum += d;
    }
    process.stdout.write(`${`${w}x${h}`.padEnd(10)} max ${String(max).padStart(3)}   mean ${(sum / reference.length).toFixed(3)}\n`);
  }
}

if (isMainModule(import.meta.url)) await main();
