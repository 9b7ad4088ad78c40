/**
 * PNG encoders compared on one binary mask (a filled rectangle), as recorded in jh.md:
 *   npm run build && node dist/bench/png-options.js [--size 4000x3000] [--runs 10]
 */
import { constants, deflateSync } from "node:zlib";
import { parseArgs } from "node:util";
import sharp from "sharp";
import { isMainModule } from "../engine/module-paths.js";
import { filterScanlines, scanlinesOf } from "../engine/png.js";

function mask(width: number, height: number): Buffer {
  const raw = Buffer.alloc(width * height);
  for (let y = Math.floor(height * 0.2); y < height * 0.7; y++) raw.fill(255, y * width + Math.floor(width * 0.3), y * width + Math.floor(width * 0.6));
  return raw;
}

function scanlines(raw: Buffer, width: number, height: number, upForRepeats: boolean): Buffer {
  const s = scanlinesOf(raw, width, height);
  if (upForRepeats) filterScanlines(s, width, height);
  return s;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { size: { type: "string", default: "4000x3000" }, runs: { type: "string", default: "10" } } });
  const [width, height] = values.size!.split("x").map(Number) as [number, number];
  const runs = Number(values.runs);
  const raw = mask(width, height);
  const candidates: [string, () => Promise<number> | number][] = [
    ["zlib level 1, filter None", () => deflateSync(scanlines(raw, width, height, false), { level: 1 }).length],
    ["zlib level 1, Up for repeated rows", () => deflateSync(scanlines(raw, width, height, true), { level: 1 }).length],
    ["zlib Z_RLE, Up for repeated rows (kept)", () => deflateSync(scanlines(raw, width, height, true), { level: 6, strategy: constants.Z_RLE }).length],
    ["zlib level 6, Up for repeated rows", () => deflateSync(scanlines(raw, width, height, true), { level: 6 }).length],
    ["sharp/libspng level 1", async () => (await sharp(raw, { raw: { width, height, channels: 1 } }).png({ compressionLevel: 1 }).toBuffer()).length],
    ["sharp/libspng level 6", async () => (await sharp(raw, { raw: { width, height, channels: 1 } }).png({ compressionLevel: 6 }).toBuffer()).length],
    ["sharp/libspng level 6, adaptive filtering", async () => (await sharp(raw, { raw: { width, height, channels: 1 } }).png({ compressionLevel: 6, adaptiveFiltering: true }).toBuffer()).length],
  ];
  process.stdout.write(`${width}x${height} mask, ${runs} runs each (IDAT bytes for zlib rows, whole PNG for sharp)\n`);
  for (const [name, run] of candidates) {
    let bytes = await run();
    const t0 = performance.now();
    for (let i = 0; i < runs; i++) bytes = await run();
    process.stdout.write(`${name.padEnd(44)}${((performance.now() - t0) / runs).toFixed(2).padStart(8)} ms${String(bytes).padStart(10)} bytes\n`);
  }
}

if (isMainModule(import.meta.url)) await main();
