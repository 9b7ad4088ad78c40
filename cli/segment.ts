#!/usr/bin/env node
/**
 * sam3-segment: segment one image from the command line with the worker's own engine and limits.
 *
 *   npx sam3-segment <image path or URL> --concepts wall,door [--threshold 0.4] [--out dir]
 *                    [--format png|rle] [--max-instances N] [--no-overlay]
 *
 * Writes one PNG per mask (<concept>-<n>.png), overlay.jpg and results.json (scores, boxes, file
 * names, and the COCO RLE of each mask with --format rle) into --out (default ./sam3-out).
 * Progress goes to stderr. The model directory and limits come from the same environment
 * variables as the worker (SAM3_MODEL_DIR, SAM3_DEVICE, SAM3_MAX_IMAGE_BYTES, ...).
 */
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { isMainModule } from "../engine/module-paths.js";
import { decodeRle } from "../engine/rle.js";
import type { CocoRle } from "../engine/rle.js";
import { encodeGrayPngSync, scanlinesOf } from "../engine/png.js";
import { jobLimits, loadConfig } from "../handler/config.js";
import type { WorkerConfig } from "../handler/config.js";
import { inProcessEngine } from "../handler/engine-client.js";
import { engineSettings } from "../handler/engine-settings.js";
import { downloadImage } from "../handler/fetch-image.js";
import { InvalidInputError, engineRequest, parseImageUrl, parseOptions } from "../handler/input.js";
import { contractMessage } from "../handler/job.js";
import { redactUrl } from "../handler/logger.js";

const USAGE = "usage: sam3-segment <image path or URL> --concepts wall,door [--threshold 0.4] [--out dir] [--format png|rle] [--max-instances N] [--no-overlay]";

export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
}

const defaultIo: CliIo = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  env: process.env,
  cwd: process.cwd(),
};

/** A file-name-safe form of a concept ("sliding door" -> "sliding-door"; non-ASCII kept). */
export function slug(concept: string): string {
  const s = concept
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, "-")
    .replace(/^-+|-+$/g, "");
  return s || "concept";
}

function pngFromRle(rle: CocoRle): Buffer {
  const [height, width] = rle.size;
  return encodeGrayPngSync(scanlinesOf(decodeRle(rle), width, height), width, height);
}

export async function runCli(argv: readonly string[], io: CliIo = defaultIo): Promise<number> {
  let values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        concepts: { type: "string" },
        threshold: { type: "string" },
        out: { type: "string", default: "sam3-out" },
        format: { type: "string", default: "png" },
        "max-instances": { type: "string" },
        "no-overlay": { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
    }));
  } catch (err) {
    io.stderr(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    io.stdout(`${USAGE}\n`);
    return 0;
  }
  if (positionals.length !== 1 || !values.concepts) {
    io.stderr(`${USAGE}\n`);
    return 2;
  }
  let config: WorkerConfig;
  try {
    config = loadConfig(io.env);
  } catch (err) {
    io.stderr(`${(err as Error).message}\n`);
    return 2;
  }
  const source = positionals[0]!;
  const isUrl = /^https?:\/\//i.test(source);
  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  // The worker's own validation and limits, on the fields a job would carry, before any model loads.
  let request: ReturnType<typeof parseOptions>;
  let url: URL | undefined;
  try {
    request = parseOptions(
      {
        concepts: values.concepts.split(",").map((c) => c.trim()),
        ...(values.threshold !== undefined ? { confidence_threshold: num(values.threshold) } : {}),
        mask_format: values.format,
        ...(values["max-instances"] !== undefined ? { max_instances: num(values["max-instances"]) } : {}),
        return_overlay: !values["no-overlay"],
      },
      jobLimits(config),
    );
    if (isUrl) url = parseImageUrl(source);
  } catch (err) {
    io.stderr(`${contractMessage(err)}\n`);
    return 1;
  }
  const engine = inProcessEngine(engineSettings(config, (m) => io.stderr(`warning: ${m}\n`), false));
  try {
    let bytes: Uint8Array;
    if (url) {
      io.stderr(`downloading ${redactUrl(url)}\n`);
      bytes = await downloadImage(url, config.download);
    } else {
      const path = resolve(io.cwd, source);
      const size = await stat(path).then(
        (st) => st.size,
        (err: NodeJS.ErrnoException) => {
          throw new InvalidInputError(`image file ${source} cannot be read (${err.code ?? err.message})`);
        },
      );
      if (size > config.download.maxBytes) throw new InvalidInputError(`image file is ${size} bytes, over the limit of ${config.download.maxBytes} bytes (SAM3_MAX_IMAGE_BYTES)`);
      bytes = await readFile(path);
    }
    io.stderr(`segmenting ${request.concepts.length} concept(s) with the model in ${config.modelDir}\n`);
    const started = performance.now();
    const result = await engine.segment({
      ...engineRequest(request, bytes),
      onConceptDone: (done, total) => io.stderr(`  ${done}/${total} concepts done\n`),
    });
    const outDir = resolve(io.cwd, values.out!);
    await mkdir(outDir, { recursive: true });
    const summary: Record<string, unknown> = {};
    const used = new Set<string>();
    for (const [concept, r] of Object.entries(result.results)) {
      const files: string[] = [];
      const pngs = r.masks_base64 ? r.masks_base64.map((b) => Buffer.from(b, "base64")) : r.masks_rle!.map(pngFromRle);
      // "Door" and "door" must not write over each other's files.
      let base = slug(concept);
      for (let n = 2; used.has(base); n++) base = `${slug(concept)}_${n}`;
      used.add(base);
      for (let i = 0; i < pngs.length; i++) {
        const name = `${base}-${i + 1}.png`;
        await writeFile(join(outDir, name), pngs[i]!);
        files.push(name);
      }
      summary[concept] = { instance_count: r.instance_count, scores: r.scores, boxes: r.boxes, files, ...(r.masks_rle ? { masks_rle: r.masks_rle } : {}) };
    }
    if (result.overlay_base64) await writeFile(join(outDir, "overlay.jpg"), Buffer.from(result.overlay_base64, "base64"));
    const json = {
      image: isUrl ? redactUrl(source) : source,
      image_size: result.image_size,
      results: summary,
      ...(result.overlay_base64 ? { overlay: "overlay.jpg" } : {}),
    };
    await writeFile(join(outDir, "results.json"), JSON.stringify(json, null, 2) + "\n");
    const counts = Object.entries(result.results).map(([c, r]) => `${c}: ${r.instance_count}`).join(", ");
    io.stderr(`done in ${Math.round(performance.now() - started)} ms (${counts}); wrote ${outDir}\n`);
    io.stdout(`${join(outDir, "results.json")}\n`);
    return 0;
  } catch (err) {
    io.stderr(`${contractMessage(err)}\n`);
    return 1;
  } finally {
    await engine.close();
  }
}

if (isMainModule(import.meta.url)) process.exit(await runCli(process.argv.slice(2)));
