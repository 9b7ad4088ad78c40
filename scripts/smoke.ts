/**
 * Smoke test of a running worker through the public Runpod API shape, with the `runpod-sdk` client:
 *
 *   npm run smoke -- --endpoint <endpoint id>                 (a deployed endpoint; key from RUNPOD_API_KEY)
 *   npm run smoke -- --base-url http://127.0.0.1:8000/v2      (the local server: main.js --rp_serve_api)
 *
 * It sends the bundled test event (./test_input.json) through /runsync and through /run + /status
 * polling, and a few error events through /runsync, then checks every answer strictly against the
 * contract (api-contract.md section 2): status COMPLETED, image_size [w, h], one result per
 * requested concept in order, instance_count = masks = scores (= boxes), each mask an 8-bit
 * grayscale PNG of exactly image_size holding only 0 and 255, scores sorted descending and above
 * the threshold; error events must answer `output.error` with the contract's prefix.
 * It prints one table row per request (delayTime, executionTime, wall time) and exits 0 when every
 * check passed, 1 when any failed, 2 on a usage error.
 *
 * The checks are `validateSegmentationResponse`, exported without I/O so that tests can feed it
 * good and broken payloads.
 */
import { readFileSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { crc32 } from "node:zlib";
import runpodSdk from "runpod-sdk";
import sharp from "sharp";
import { findProjectRoot, isMainModule } from "../engine/module-paths.js";

// ---------------------------------------------------------------- expectations and validation

/** What a response must be: a segmentation of these concepts, or an error with this prefix. */
export type Expectation =
  | {
      readonly kind: "segmentation";
      /** As sent, duplicates included (the worker answers each distinct string once). */
      readonly concepts: readonly string[];
      readonly threshold: number;
      /** [width, height] the image has after EXIF orientation, when the caller knows it. */
      readonly imageSize?: readonly [number, number];
    }
  | { readonly kind: "error"; readonly prefix: ContractErrorPrefix };

/** The message prefixes of api-contract.md section 2. */
export type ContractErrorPrefix = "Invalid input" | "Failed to download image" | "Model file not found" | "Segmentation failed";

export interface ValidationResult {
  readonly ok: boolean;
  /** One line per contract violation, naming the field. */
  readonly problems: readonly string[];
  /** Instances over all concepts (0 for errors). */
  readonly instances: number;
}

const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"]);
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
/** Keys that JSON objects order numerically before all others, so their order says nothing. */
const ARRAY_INDEX = /^(?:0|[1-9]\d{0,9})$/;
/** Boxes are rounded pixel coordinates; allow this much outside the image. */
const BOX_SLACK = 0.5;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const clip = (text: string, max = 160) => (text.length > max ? `${text.slice(0, max)}... (${text.length} characters)` : text);
const show = (v: unknown) => (v === undefined ? "nothing" : clip(JSON.stringify(v) ?? String(v), 80));

/**
 * Checks one job answer (the object /runsync or /status returns) against the contract. Extra keys
 * are tolerated (the SDK adds `started`, `completed`, `succeeded`; the platform adds `workerId`).
 * No I/O: the masks are decoded in memory.
 */
export async function validateSegmentationResponse(response: unknown, expected: Expectation): Promise<ValidationResult> {
  const problems: string[] = [];
  const done = (instances = 0): ValidationResult => ({ ok: problems.length === 0, problems, instances });

  if (!isObject(response)) {
    problems.push(`the response is not a JSON object (got ${show(response)})`);
    return done();
  }
  if (response.status !== "COMPLETED") {
    const why = typeof response.error === "string" ? `: ${clip(response.error)}` : "";
    problems.push(`status is ${show(response.status)}, expected "COMPLETED"${why}`);
  } else {
    if (response.error !== undefined) problems.push(`top-level error ${show(response.error)} on a COMPLETED job (errors belong in output.error)`);
    for (const key of ["delayTime", "executionTime"] as const) {
      const v = response[key];
      if (!(typeof v === "number" && Number.isFinite(v) && v >= 0)) problems.push(`${key} must be a number of milliseconds (got ${show(v)})`);
    }
  }
  const output = response.output;
  if (!isObject(output)) {
    if (response.status === "COMPLETED") problems.push(`output must be an object (got ${show(output)})`);
    return done();
  }

  if (expected.kind === "error") {
    if (typeof output.error !== "string") {
      problems.push(`output.error must be a message starting with "${expected.prefix}" (got ${isObject(output.output) ? "a segmentation result" : show(output.error)})`);
    } else if (!output.error.startsWith(expected.prefix)) {
      problems.push(`output.error ${JSON.stringify(clip(output.error))} does not start with "${expected.prefix}"`);
    } else if (output.error.trim() === expected.prefix) {
      problems.push(`output.error ${JSON.stringify(output.error)} names no cause`);
    }
    if (output.output !== undefined) problems.push("output.output must be absent when output.error is set");
    return done();
  }

  if (output.error !== undefined) {
    problems.push(`output.error: ${typeof output.error === "string" ? clip(output.error) : show(output.error)}`);
    return done();
  }
  const payload = output.output;
  if (!isObject(payload)) {
    problems.push(`output.output must be an object (got ${show(payload)})`);
    return done();
  }

  const size = payload.image_size;
  const sizeOk = Array.isArray(size) && size.length === 2 && size.every((n) => Number.isSafeInteger(n) && (n as number) > 0);
  if (!sizeOk) problems.push(`output.output.image_size must be [width, height] in whole pixels (got ${show(size)})`);
  else if (expected.imageSize && (size[0] !== expected.imageSize[0] || size[1] !== expected.imageSize[1])) {
    problems.push(`output.output.image_size is ${show(size)}, expected ${show(expected.imageSize)} (the image after EXIF orientation)`);
  }
  const imageSize = sizeOk ? (size as [number, number]) : undefined;

  const results = payload.results;
  if (!isObject(results)) {
    problems.push(`output.output.results must be an object keyed by concept (got ${show(results)})`);
    return done();
  }
  const wanted = [...new Set(expected.concepts)];
  const got = Object.keys(results);
  const missing = wanted.filter((c) => !Object.hasOwn(results, c));
  const extra = got.filter((k) => !wanted.includes(k));
  if (missing.length > 0) problems.push(`results lacks requested concept(s) ${missing.map((c) => JSON.stringify(c)).join(", ")}`);
  if (extra.length > 0) problems.push(`results has concept(s) nobody asked for: ${extra.map((c) => JSON.stringify(c)).join(", ")}`);
  if (missing.length === 0 && extra.length === 0) {
    const a = wanted.filter((k) => !ARRAY_INDEX.test(k));
    const b = got.filter((k) => !ARRAY_INDEX.test(k));
    if (a.some((k, i) => b[i] !== k)) problems.push(`results are in the order ${show(b)}, expected the order sent ${show(a)}`);
  }

  let instances = 0;
  for (const concept of wanted) {
    if (!Object.hasOwn(results, concept)) continue;
    instances += await checkConcept(`results[${JSON.stringify(concept)}]`, results[concept], imageSize, expected.threshold, problems);
  }
  return done(instances);
}

/** Checks one concept's entry; returns its instance count (0 when unusable). */
async function checkConcept(at: string, entry: unknown, size: [number, number] | undefined, threshold: number, problems: string[]): Promise<number> {
  if (!isObject(entry)) {
    problems.push(`${at} must be an object (got ${show(entry)})`);
    return 0;
  }
  const { instance_count: count, masks_base64: masks, scores, boxes } = entry;
  const countOk = Number.isSafeInteger(count) && (count as number) >= 0;
  if (!countOk) problems.push(`${at}.instance_count must be a whole number >= 0 (got ${show(count)})`);
  if (!Array.isArray(masks)) problems.push(`${at}.masks_base64 must be an array (got ${show(masks)})`);
  if (!Array.isArray(scores)) problems.push(`${at}.scores must be an array (got ${show(scores)})`);
  if (boxes !== undefined && !Array.isArray(boxes)) problems.push(`${at}.boxes must be an array when present (got ${show(boxes)})`);
  if (!countOk || !Array.isArray(masks) || !Array.isArray(scores)) return 0;
  const n = count as number;

  const lengths = [`masks_base64 ${masks.length}`, `scores ${scores.length}`, ...(Array.isArray(boxes) ? [`boxes ${boxes.length}`] : [])];
  if (masks.length !== n || scores.length !== n || (Array.isArray(boxes) && boxes.length !== n)) {
    problems.push(`${at}: instance_count is ${n} but ${lengths.join(", ")}`);
  }

  scores.forEach((s, i) => {
    if (typeof s !== "number" || !Number.isFinite(s) || s > 1) problems.push(`${at}.scores[${i}] must be a number <= 1 (got ${show(s)})`);
    else if (!(s > threshold)) problems.push(`${at}.scores[${i}] = ${s} is not above confidence_threshold ${threshold}`);
    const prev = scores[i - 1];
    if (i > 0 && typeof s === "number" && typeof prev === "number" && s > prev) {
      problems.push(`${at}.scores are not sorted highest first: [${i - 1}] = ${prev} < [${i}] = ${s}`);
    }
  });

  if (Array.isArray(boxes)) {
    boxes.forEach((box, i) => {
      const where = `${at}.boxes[${i}]`;
      if (!Array.isArray(box) || box.length !== 4 || !box.every((v) => typeof v === "number" && Number.isFinite(v))) {
        problems.push(`${where} must be [x1, y1, x2, y2] in pixels (got ${show(box)})`);
        return;
      }
      const [x1, y1, x2, y2] = box as [number, number, number, number];
      if (x1 > x2 || y1 > y2) problems.push(`${where} = ${show(box)} has x1 > x2 or y1 > y2`);
      if (size && (x1 < -BOX_SLACK || y1 < -BOX_SLACK || x2 > size[0] + BOX_SLACK || y2 > size[1] + BOX_SLACK)) {
        problems.push(`${where} = ${show(box)} lies outside the ${size[0]}x${size[1]} image`);
      }
    });
  }

  for (const [i, mask] of masks.entries()) {
    const problem = await checkMask(mask, size);
    if (problem) problems.push(`${at}.masks_base64[${i}]: ${problem}`);
  }
  return n;
}

export interface PngHeader {
  readonly width: number;
  readonly height: number;
  readonly bitDepth: number;
  /** 0 gray, 2 RGB, 3 palette, 4 gray + alpha, 6 RGBA. */
  readonly colourType: number;
  readonly interlace: number;
}

/**
 * Reads a PNG's header and walks its chunks: signature, IHDR first (13 bytes), every chunk's CRC,
 * at least one IDAT, IEND last with nothing after it. Throws an Error saying what is wrong.
 */
export function inspectPng(png: Buffer): PngHeader {
  if (png.length < 8 || !png.subarray(0, 8).equals(PNG_SIGNATURE)) throw new Error("not a PNG (bad signature)");
  let offset = 8;
  let header: PngHeader | undefined;
  let idat = 0;
  let ended = false;
  while (offset < png.length) {
    if (ended) throw new Error(`${png.length - offset} bytes after IEND`);
    if (offset + 12 > png.length) throw new Error(`truncated chunk at byte ${offset}`);
    const length = png.readUInt32BE(offset);
    const type = png.toString("latin1", offset + 4, offset + 8);
    const end = offset + 12 + length;
    if (end > png.length) throw new Error(`chunk ${type} at byte ${offset} runs past the end of the file`);
    const crc = png.readUInt32BE(offset + 8 + length);
    if (crc32(png.subarray(offset + 4, offset + 8 + length)) !== crc) throw new Error(`chunk ${type} at byte ${offset} has a bad CRC`);
    if (header === undefined) {
      if (type !== "IHDR" || length !== 13) throw new Error(`the first chunk is ${type} (${length} bytes), expected IHDR (13 bytes)`);
      const d = offset + 8;
      header = { width: png.readUInt32BE(d), height: png.readUInt32BE(d + 4), bitDepth: png[d + 8]!, colourType: png[d + 9]!, interlace: png[d + 12]! };
    } else if (type === "IDAT") {
      idat++;
    } else if (type === "IEND") {
      ended = true;
    }
    offset = end;
  }
  if (!header) throw new Error("no IHDR chunk");
  if (idat === 0) throw new Error("no IDAT chunk");
  if (!ended) throw new Error("no IEND chunk (truncated file?)");
  return header;
}

/** Returns what is wrong with one mask, or null. */
async function checkMask(mask: unknown, size: [number, number] | undefined): Promise<string | null> {
  if (typeof mask !== "string") return `must be a base64 string (got ${show(mask)})`;
  if (mask.length === 0 || mask.length % 4 !== 0 || !BASE64.test(mask)) return "is not valid base64";
  const png = Buffer.from(mask, "base64");
  let header: PngHeader;
  try {
    header = inspectPng(png);
  } catch (err) {
    return (err as Error).message;
  }
  if (header.bitDepth !== 8 || header.colourType !== 0) {
    return `must be an 8-bit grayscale PNG (colour type 0, bit depth 8); got colour type ${header.colourType}, bit depth ${header.bitDepth}`;
  }
  if (header.interlace !== 0) return "must not be interlaced";
  if (size && (header.width !== size[0] || header.height !== size[1])) {
    return `is ${header.width}x${header.height}, expected image_size ${size[0]}x${size[1]}`;
  }
  let data: Buffer;
  try {
    const decoded = await sharp(png).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
    if (decoded.info.width !== header.width || decoded.info.height !== header.height || decoded.info.channels !== 1) {
      return `decodes to ${decoded.info.width}x${decoded.info.height}x${decoded.info.channels}, but its header says ${header.width}x${header.height}x1`;
    }
    data = decoded.data;
  } catch (err) {
    return `does not decode: ${(err as Error).message}`;
  }
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v !== 0 && v !== 255) return `pixel (${i % header.width}, ${Math.floor(i / header.width)}) is ${v}; masks hold only 0 and 255`;
  }
  return null;
}

// ---------------------------------------------------------------- events

export type Mode = "runsync" | "run+status";

export interface SmokeEvent {
  readonly name: string;
  /** The raw job input, sent as {"input": ...}. */
  readonly input: Record<string, unknown>;
  readonly expect: Expectation;
  readonly modes: readonly Mode[];
}

/** An image URL that can never resolve (RFC 6761 reserves .invalid). */
export const UNRESOLVABLE_IMAGE_URL = "https://sam3-smoke.invalid/room.jpg";
/** Loopback: refused by the worker's address guard, or by the connection where private URLs are allowed. */
export const PRIVATE_IMAGE_URL = "http://127.0.0.1:9/room.jpg";

/** Reads a test event file ({"input": {...}}), as the worker's one-shot mode does. */
export function readTestEvent(path: string): Record<string, unknown> {
  const event: unknown = JSON.parse(readFileSync(path, "utf8"));
  if (!isObject(event) || !isObject(event.input)) throw new Error(`${path}: expected {"input": {...}}`);
  return event.input;
}

/** The [width, height] of an image_base64 input after EXIF orientation, or undefined. */
export async function displayedSize(input: Record<string, unknown>): Promise<[number, number] | undefined> {
  if (typeof input.image_base64 !== "string") return undefined;
  const text = input.image_base64.replace(/^data:[^,]*,/, "");
  try {
    const meta = await sharp(Buffer.from(text, "base64")).metadata();
    if (!meta.width || !meta.height) return undefined;
    return (meta.orientation ?? 1) >= 5 ? [meta.height, meta.width] : [meta.width, meta.height];
  } catch {
    return undefined;
  }
}

/**
 * The smoke events: the test event through both routes, then error events through /runsync.
 * Error events reuse the test event's image so that only the field under test is wrong.
 */
export function buildEvents(testInput: Record<string, unknown>, imageSize?: readonly [number, number]): SmokeEvent[] {
  const concepts = Array.isArray(testInput.concepts) ? (testInput.concepts as string[]) : [];
  const threshold = typeof testInput.confidence_threshold === "number" ? testInput.confidence_threshold : 0.5;
  return [
    {
      name: "test_input",
      input: testInput,
      expect: { kind: "segmentation", concepts, threshold, ...(imageSize ? { imageSize } : {}) },
      modes: ["runsync", "run+status"],
    },
    { name: "invalid_concepts", input: { ...testInput, concepts: [] }, expect: { kind: "error", prefix: "Invalid input" }, modes: ["runsync"] },
    {
      name: "unresolvable_url",
      input: { image_url: UNRESOLVABLE_IMAGE_URL, concepts: ["wall"] },
      expect: { kind: "error", prefix: "Failed to download image" },
      modes: ["runsync"],
    },
    {
      name: "private_url",
      input: { image_url: PRIVATE_IMAGE_URL, concepts: ["wall"] },
      expect: { kind: "error", prefix: "Failed to download image" },
      modes: ["runsync"],
    },
  ];
}

// ---------------------------------------------------------------- running

export interface SmokeOptions {
  /** API base, e.g. https://api.runpod.ai/v2 or http://127.0.0.1:8000/v2. */
  readonly baseUrl: string;
  readonly endpointId: string;
  readonly apiKey: string;
  readonly events: readonly SmokeEvent[];
  /** Per request: how long /runsync (with its status-sync follow-ups) or /run + polling may take. */
  readonly timeoutMs: number;
  readonly pollIntervalMs: number;
  /** Fail when the segmentation events found no instance at all. */
  readonly requireInstances?: boolean;
  readonly log?: (line: string) => void;
}

export interface SmokeRow {
  readonly event: string;
  readonly mode: Mode | "health" | "instances";
  readonly id?: string;
  readonly status?: string;
  readonly delayTime?: number;
  readonly executionTime?: number;
  readonly wallMs: number;
  readonly instances?: number;
  readonly problems: readonly string[];
}

export const DEFAULT_BASE_URL = "https://api.runpod.ai/v2";

/** Describes a failed request: xior errors carry the HTTP status and body. */
function requestError(err: unknown): string {
  const e = err as { message?: string; response?: { status?: number; data?: unknown } };
  const status = e?.response?.status;
  const body = e?.response?.data;
  const detail = body === undefined ? "" : `: ${clip(typeof body === "string" ? body : JSON.stringify(body))}`;
  return status ? `request failed with HTTP ${status}${detail}` : `request failed: ${e?.message ?? String(err)}`;
}

const numberOrUndefined = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

export async function runSmoke(options: SmokeOptions): Promise<SmokeRow[]> {
  const log = options.log ?? (() => undefined);
  const endpoint = runpodSdk(options.apiKey, { baseUrl: options.baseUrl.replace(/\/+$/, "") }).endpoint(options.endpointId);
  if (!endpoint) throw new Error("no endpoint id");
  const rows: SmokeRow[] = [];

  {
    const started = Date.now();
    try {
      const health = await endpoint.health(30_000);
      const ok = isObject(health) && isObject(health.jobs) && isObject(health.workers);
      rows.push({ event: "endpoint", mode: "health", wallMs: Date.now() - started, problems: ok ? [] : [`/health answered ${show(health)}`] });
      if (ok) log(`health: workers ${JSON.stringify(health.workers)}, jobs ${JSON.stringify(health.jobs)}`);
    } catch (err) {
      rows.push({ event: "endpoint", mode: "health", wallMs: Date.now() - started, problems: [requestError(err)] });
    }
  }

  for (const event of options.events) {
    for (const mode of event.modes) {
      log(`${event.name} via ${mode} ...`);
      const started = Date.now();
      let response: unknown;
      const problems: string[] = [];
      try {
        response = mode === "runsync" ? await endpoint.runSync({ input: event.input }, options.timeoutMs) : await runAndPoll(endpoint, event, options, problems);
      } catch (err) {
        problems.push(requestError(err));
      }
      const wallMs = Date.now() - started;
      let instances: number | undefined;
      if (response !== undefined) {
        const result = await validateSegmentationResponse(response, event.expect);
        problems.push(...result.problems);
        if (event.expect.kind === "segmentation") instances = result.instances;
      }
      const r = isObject(response) ? response : {};
      rows.push({
        event: event.name,
        mode,
        ...(typeof r.id === "string" ? { id: r.id } : {}),
        ...(typeof r.status === "string" ? { status: r.status } : {}),
        ...(numberOrUndefined(r.delayTime) !== undefined ? { delayTime: r.delayTime as number } : {}),
        ...(numberOrUndefined(r.executionTime) !== undefined ? { executionTime: r.executionTime as number } : {}),
        wallMs,
        ...(instances !== undefined ? { instances } : {}),
        problems,
      });
    }
  }

  if (options.requireInstances) {
    const found = rows.reduce((n, r) => n + (r.instances ?? 0), 0);
    rows.push({ event: "all", mode: "instances", wallMs: 0, instances: found, problems: found > 0 ? [] : ["no instance was found for any concept (--require-instances)"] });
  }
  return rows;
}

type Endpoint = NonNullable<ReturnType<ReturnType<typeof runpodSdk>["endpoint"]>>;

/** POST /run, then GET /status until the job ends or the timeout passes; returns the last status answer. */
async function runAndPoll(endpoint: Endpoint, event: SmokeEvent, options: SmokeOptions, problems: string[]): Promise<unknown> {
  const deadline = Date.now() + options.timeoutMs;
  const queued: unknown = await endpoint.run({ input: event.input }, 30_000);
  if (!isObject(queued) || typeof queued.id !== "string" || queued.id === "") {
    problems.push(`/run answered without a job id: ${show(queued)}`);
    return undefined;
  }
  if (typeof queued.status !== "string") problems.push(`/run answered without a status: ${show(queued)}`);
  const id = queued.id;
  for (;;) {
    const status: unknown = await endpoint.status(id, 30_000);
    if (isObject(status) && status.id !== undefined && status.id !== id) problems.push(`/status/${id} answered for job ${show(status.id)}`);
    if (isObject(status) && typeof status.status === "string" && TERMINAL.has(status.status)) return status;
    if (Date.now() >= deadline) {
      problems.push(`job ${id} still ${isObject(status) ? show(status.status) : "unknown"} after ${options.timeoutMs} ms`);
      return status;
    }
    await sleep(options.pollIntervalMs);
  }
}

// ---------------------------------------------------------------- report

const fmt = (v: number | undefined) => (v === undefined ? "-" : String(Math.round(v)));

/** The summary table (one line per request) followed by every problem. */
export function formatReport(rows: readonly SmokeRow[]): string {
  const header = ["event", "mode", "status", "delayTime ms", "executionTime ms", "wall ms", "instances", "result"];
  const body = rows.map((r) => [
    r.event,
    r.mode,
    r.status ?? "-",
    fmt(r.delayTime),
    fmt(r.executionTime),
    fmt(r.wallMs),
    fmt(r.instances),
    r.problems.length === 0 ? "ok" : `FAIL (${r.problems.length})`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  const out = [line(header), line(widths.map((w) => "-".repeat(w))), ...body.map(line)];
  const failed = rows.filter((r) => r.problems.length > 0);
  for (const r of failed) {
    out.push("", `${r.event} (${r.mode}${r.id ? `, job ${r.id}` : ""}):`);
    const shown = r.problems.slice(0, 20);
    out.push(...shown.map((p) => `  - ${p}`));
    if (r.problems.length > shown.length) out.push(`  ... and ${r.problems.length - shown.length} more`);
  }
  out.push("", failed.length === 0 ? `smoke: all ${rows.length} checks passed` : `smoke: ${failed.length} of ${rows.length} checks FAILED`);
  return out.join("\n") + "\n";
}

// ---------------------------------------------------------------- CLI

const USAGE = `usage: smoke (--endpoint <id> | --base-url <url>) [options]
  --endpoint ID         Runpod endpoint id; the API key comes from RUNPOD_API_KEY
  --base-url URL        API base (default ${DEFAULT_BASE_URL}), e.g. http://127.0.0.1:8000/v2 for
                        the local server (main.js --rp_serve_api); endpoint id defaults to "local"
  --test-input PATH     test event {"input": {...}} (default: <project>/test_input.json)
  --timeout MS          per request (default 300000: the first job waits for the model to load)
  --poll-interval MS    /status polling period (default 1000)
  --require-instances   fail when the test event finds no instance of any concept
`;

export interface SmokeIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

const processIo: SmokeIo = {
  env: process.env,
  stdout: (t) => void process.stdout.write(t),
  stderr: (t) => void process.stderr.write(t),
};

function positiveInteger(raw: string | undefined, name: string, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${name} must be a whole number of milliseconds > 0 (got "${raw}")`);
  return n;
}

/** Runs the command line; resolves to the exit code (0 passed, 1 failed, 2 usage). */
export async function main(argv: readonly string[], io: SmokeIo = processIo): Promise<number> {
  let options: SmokeOptions;
  try {
    const { values } = parseArgs({
      args: [...argv],
      options: {
        endpoint: { type: "string" },
        "base-url": { type: "string" },
        "test-input": { type: "string" },
        timeout: { type: "string" },
        "poll-interval": { type: "string" },
        "require-instances": { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
      strict: true,
      allowPositionals: false,
    });
    if (values.help) {
      io.stdout(USAGE);
      return 0;
    }
    const baseUrl = values["base-url"] ?? DEFAULT_BASE_URL;
    if (!/^https?:\/\//.test(baseUrl)) throw new Error(`--base-url must be an http(s) URL (got "${baseUrl}")`);
    const endpointId = values.endpoint ?? (values["base-url"] ? "local" : undefined);
    if (!endpointId) throw new Error("give --endpoint <id> (a deployed endpoint) or --base-url <url> (a local server)");
    const apiKey = io.env.RUNPOD_API_KEY || (values["base-url"] ? "local" : undefined);
    if (!apiKey) throw new Error("RUNPOD_API_KEY must be set to call the Runpod API");
    const path = values["test-input"] ?? join(findProjectRoot(), "test_input.json");
    const testInput = readTestEvent(isAbsolute(path) ? path : resolve(path));
    options = {
      baseUrl,
      endpointId,
      apiKey,
      events: buildEvents(testInput, await displayedSize(testInput)),
      timeoutMs: positiveInteger(values.timeout, "--timeout", 300_000),
      pollIntervalMs: positiveInteger(values["poll-interval"], "--poll-interval", 1_000),
      requireInstances: values["require-instances"],
      log: (line) => io.stderr(`${line}\n`),
    };
  } catch (err) {
    io.stderr(`smoke: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  io.stderr(`smoke: ${options.baseUrl.replace(/\/+$/, "")}/${options.endpointId} (${options.events.length} events)\n`);
  const rows = await runSmoke(options);
  io.stdout(formatReport(rows));
  return rows.every((r) => r.problems.length === 0) ? 0 : 1;
}

if (isMainModule(import.meta.url)) {
  const code = await main(process.argv.slice(2));
  // Keep-alive sockets of the HTTP client must not hold a finished run open.
  process.exit(code);
}
