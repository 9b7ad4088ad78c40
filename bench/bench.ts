/**
 * Stage-by-stage benchmark of the engine (no network): `npm run bench -- [options]`.
 *
 *   --model-dir DIR     model directory (default: SAM3_MODEL_DIR, else models/sam3 if present, else models/tiny)
 *   --image PATH        image file (default test/fixtures/room.jpg); --size WxH generates a photo-like JPEG instead
 *   --concepts a,b,c    (default wall,door,window)   --threshold T (default 0.5)   --max-instances N
 *   --runs N (default 10)   --warmup N (default 2)   --device cpu|cuda|auto (default cpu)
 *   --decoder-batching per-concept|batched   --image-cache N (default 0: every run encodes the image)
 *   --mask-concurrency N   --spin (let ONNX Runtime threads spin-wait between runs)   --format png|rle   --overlay
 *   --synthetic         post-processing alone: random decoder outputs, --kept N queries at --size WxH,
 *                       encoded as --format png|rle
 *   --json              one JSON object: {"stages": {"<name>": {"p50", "p95"}}, "masks", "runs", "rss_mb", ...}
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import sharp from "sharp";
import { MASK_SIZE, NUM_QUERIES } from "../models/contract.js";
import { findProjectRoot, isMainModule } from "../engine/module-paths.js";
import { MaskEncoder } from "../engine/masks.js";
import type { MaskFormat } from "../engine/masks.js";
import { selectInstances } from "../engine/postprocess.js";
import { DEFAULT_ENGINE_SETTINGS, STAGES, Sam3Engine } from "../engine/segmenter.js";
import type { Stage } from "../engine/segmenter.js";
import { loadConfig } from "../handler/config.js";
import { summarize } from "./stats.js";
import type { Summary } from "./stats.js";

export interface BenchReport {
  mode: "engine" | "synthetic";
  stages: Record<string, Summary>;
  masks: number;
  runs: number;
  /** Peak resident set size of the process. */
  rss_mb: number;
  /** Resident set size after loading, before the first run. */
  idle_rss_mb: number;
  image: string;
  image_size: [number, number];
  device?: string;
}

const rssMb = () => Math.round(process.memoryUsage.rss() / 1048576);
const peakRssMb = () => Math.round(process.resourceUsage().maxRSS / 1024);

/** A photo-like JPEG of the given size: gradients, a few objects in the tiny model's colours, noise. */
export async function syntheticPhoto(width: number, height: number): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
    <defs><linearGradient id="g" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="rgb(225,205,160)"/><stop offset="1" stop-color="rgb(205,185,150)"/></linearGradient></defs>
    <rect width="100%" height="75%" fill="url(#g)"/><rect y="75%" width="100%" height="25%" fill="rgb(40,40,110)"/>
    <rect x="8%" y="26%" width="11%" height="47%" fill="rgb(120,55,25)"/>
    <rect x="55%" y="24%" width="15%" height="25%" fill="rgb(110,185,245)"/><rect x="80%" y="24%" width="15%" height="25%" fill="rgb(110,185,245)"/></svg>`;
  return sharp(Buffer.from(svg)).jpeg({ quality: 90 }).toBuffer();
}

/** Smooth random logit planes: a few blobs each, so masks have real edges. */
function randomPlanes(count: number, seed = 1): Float32Array[] {
  let a = seed;
  const next = () => ((a = (a * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  return Array.from({ length: count }, () => {
    const plane = new Float32Array(MASK_SIZE * MASK_SIZE);
    const blobs = Array.from({ length: 3 }, () => [next() * 288, next() * 288, 15 + next() * 50]);
    for (let y = 0; y < MASK_SIZE; y++) {
      for (let x = 0; x < MASK_SIZE; x++) {
        let v = -4;
        for (const [cx, cy, r] of blobs) v += 8 * Math.exp(-((x - cx!) ** 2 + (y - cy!) ** 2) / (r! * r!));
        plane[y * MASK_SIZE + x] = v;
      }
    }
    return plane;
  });
}

async function benchSynthetic(width: number, height: number, kept: number, runs: number, warmup: number, maskConcurrency: number, format: MaskFormat): Promise<BenchReport> {
  const planes = randomPlanes(Math.min(kept, 16));
  const logits = new Float32Array(NUM_QUERIES).fill(-8);
  for (let q = 0; q < kept; q++) logits[q] = 2 - q / NUM_QUERIES;
  const samples: Record<"postprocess" | "encode" | "total" | "per_mask", number[]> = { postprocess: [], encode: [], total: [], per_mask: [] };
  const idle = rssMb();
  for (let run = 0; run < warmup + runs; run++) {
    const t0 = performance.now();
    const encoder = new MaskEncoder(width, height, maskConcurrency);
    const instances = selectInstances(logits, 10, 0.5);
    const timings = { resizeMs: 0, totalMs: 0 };
    const t1 = performance.now();
    await encoder.encode(instances.map((k) => () => planes[k.query % planes.length]!), format, timings);
    const total = performance.now() - t0;
    if (run < warmup) continue;
    samples.postprocess.push(t1 - t0 + timings.resizeMs);
    samples.encode.push(timings.totalMs - timings.resizeMs);
    samples.total.push(total);
    samples.per_mask.push(total / Math.max(1, instances.length));
  }
  return {
    mode: "synthetic",
    stages: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summarize(v)])),
    masks: kept,
    runs,
    rss_mb: peakRssMb(),
    idle_rss_mb: idle,
    image: `synthetic ${width}x${height}`,
    image_size: [width, height],
  };
}

interface EngineBenchOptions {
  modelDir: string;
  image: Buffer;
  imageName: string;
  concepts: string[];
  threshold: number;
  maxInstances?: number;
  runs: number;
  warmup: number;
  device: "cpu" | "cuda" | "auto";
  decoderBatching: "per-concept" | "batched";
  imageCacheSize: number;
  maskConcurrency: number;
  allowSpinning: boolean;
  format: MaskFormat;
  overlay: boolean;
}

async function benchEngine(o: EngineBenchOptions): Promise<BenchReport> {
  const engine = await Sam3Engine.create({
    ...DEFAULT_ENGINE_SETTINGS,
    modelDir: o.modelDir,
    device: o.device,
    decoderBatching: o.decoderBatching,
    imageCacheSize: o.imageCacheSize,
    maskConcurrency: o.maskConcurrency,
    allowSpinning: o.allowSpinning,
    warmUp: true,
    warn: (m) => process.stderr.write(`warning: ${m}\n`),
  });
  const idle = rssMb();
  const samples = Object.fromEntries([...STAGES, "outside_onnx"].map((s) => [s, [] as number[]])) as Record<Stage | "outside_onnx", number[]>;
  let masks = 0;
  let size: [number, number] = [0, 0];
  try {
    for (let run = 0; run < o.warmup + o.runs; run++) {
      const result = await engine.segment({
        image: o.image,
        concepts: o.concepts,
        threshold: o.threshold,
        ...(o.maxInstances !== undefined ? { maxInstances: o.maxInstances } : {}),
        maskFormat: o.format,
        overlay: o.overlay,
      });
      if (run < o.warmup) continue;
      for (const s of STAGES) samples[s].push(result.timings[s]);
      const t = result.timings;
      samples.outside_onnx.push(t.total - t.vision - t.text - t.decoder);
      masks = Object.values(result.results).reduce((n, r) => n + r.instance_count, 0);
      size = result.image_size;
    }
    return {
      mode: "engine",
      stages: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summarize(v)])),
      masks,
      runs: o.runs,
      rss_mb: peakRssMb(),
      idle_rss_mb: idle,
      image: o.imageName,
      image_size: size,
      device: engine.device,
    };
  } finally {
    await engine.dispose();
  }
}

function parseSize(text: string): [number, number] {
  const m = /^(\d+)x(\d+)$/.exec(text);
  if (!m) throw new Error(`--size must look like 800x533 (got "${text}")`);
  return [Number(m[1]), Number(m[2])];
}

function printTable(report: BenchReport): void {
  const out = process.stdout;
  out.write(`${report.mode} bench: ${report.image} (${report.image_size.join("x")})${report.device ? ` on ${report.device}` : ""}, ${report.runs} runs\n`);
  out.write(`${"stage".padEnd(14)}${"p50 ms".padStart(10)}${"p95 ms".padStart(10)}\n`);
  for (const [stage, s] of Object.entries(report.stages)) out.write(`${stage.padEnd(14)}${s.p50.toFixed(2).padStart(10)}${s.p95.toFixed(2).padStart(10)}\n`);
  out.write(`masks: ${report.masks}   peak RSS: ${report.rss_mb} MB   RSS after load: ${report.idle_rss_mb} MB\n`);
}

export async function main(argv: readonly string[]): Promise<BenchReport> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      "model-dir": { type: "string" },
      image: { type: "string" },
      size: { type: "string" },
      concepts: { type: "string", default: "wall,door,window" },
      threshold: { type: "string", default: "0.5" },
      "max-instances": { type: "string" },
      runs: { type: "string", default: "10" },
      warmup: { type: "string", default: "2" },
      device: { type: "string", default: "cpu" },
      "decoder-batching": { type: "string", default: "per-concept" },
      "image-cache": { type: "string", default: "0" },
      "mask-concurrency": { type: "string", default: String(DEFAULT_ENGINE_SETTINGS.maskConcurrency) },
      synthetic: { type: "boolean", default: false },
      spin: { type: "boolean", default: false },
      overlay: { type: "boolean", default: false },
      kept: { type: "string", default: "20" },
      format: { type: "string", default: "png" },
      json: { type: "boolean", default: false },
    },
  });
  const runs = Number(values.runs);
  const warmup = Number(values.warmup);
  const maskConcurrency = Number(values["mask-concurrency"]);
  let report: BenchReport;
  if (values.synthetic) {
    const [w, h] = parseSize(values.size ?? "800x533");
    report = await benchSynthetic(w, h, Number(values.kept), runs, warmup, maskConcurrency, values.format === "rle" ? "rle" : "png");
  } else {
    const root = findProjectRoot();
    const modelDir = values["model-dir"] ?? loadConfig({ ...process.env, RUNPOD_WEBHOOK_GET_JOB: "" }, root).modelDir;
    const imagePath = values.image ?? join(root, "test/fixtures/room.jpg");
    const image = values.size ? await syntheticPhoto(...parseSize(values.size)) : readFileSync(imagePath);
    report = await benchEngine({
      modelDir,
      image,
      imageName: values.size ? `generated ${values.size} JPEG` : imagePath,
      concepts: values.concepts!.split(",").map((c) => c.trim()).filter(Boolean),
      threshold: Number(values.threshold),
      ...(values["max-instances"] ? { maxInstances: Number(values["max-instances"]) } : {}),
      runs,
      warmup,
      device: values.device as "cpu" | "cuda" | "auto",
      decoderBatching: values["decoder-batching"] as "per-concept" | "batched",
      imageCacheSize: Number(values["image-cache"]),
      maskConcurrency,
      allowSpinning: values.spin ?? false,
      format: values.format === "rle" ? "rle" : "png",
      overlay: values.overlay ?? false,
    });
  }
  if (values.json) process.stdout.write(JSON.stringify(report) + "\n");
  else printTable(report);
  return report;
}

if (isMainModule(import.meta.url)) {
  await main(process.argv.slice(2));
  process.exit(0);
}
