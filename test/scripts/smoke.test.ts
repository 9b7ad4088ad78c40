/**
 * scripts/smoke.ts and the shipping files around it (Dockerfile, .dockerignore, .runpod/*.json,
 * .github/workflows/gpu-smoke.yml). Docker cannot run here, so the image is checked by what can
 * be checked without it: every file it copies exists and reaches the build context, every script
 * it runs exists, and the model and runtime stages are rebuilt as plain directories from the
 * Dockerfile's own COPY lines and their commands run for real (on the tiny model, on CPU).
 */
import { spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { Writable } from "node:stream";
import { crc32, deflateSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../handler/config.js";
import { inProcessEngine } from "../../handler/engine-client.js";
import type { EngineClient } from "../../handler/engine-client.js";
import { InvalidInputError, parseInput } from "../../handler/input.js";
import { createLogger } from "../../handler/logger.js";
import { parseCli } from "../../handler/main.js";
import { LocalApiServer } from "../../handler/runpod/local-server.js";
import { allocScanlines, encodeGrayPngSync, filterScanlines } from "../../engine/png.js";
import { loadManifest } from "../../models/fetch-model.js";
import {
  PRIVATE_IMAGE_URL,
  UNRESOLVABLE_IMAGE_URL,
  buildEvents,
  displayedSize,
  formatReport,
  inspectPng,
  main,
  readTestEvent,
  validateSegmentationResponse,
} from "../../scripts/smoke.js";
import type { Expectation, SmokeIo } from "../../scripts/smoke.js";
import { ROOT, TINY_DIR, tinySettings } from "../helpers/engine.js";

const read = (path: string) => readFileSync(join(ROOT, path), "utf8");
const silentLog = createLogger({ level: "silent", runpodFormat: false, secrets: [], destination: new Writable({ write: (_c, _e, cb) => cb() }) });

// ---------------------------------------------------------------- PNG and payload builders

interface PngOptions {
  bitDepth?: number;
  colourType?: number;
  interlace?: number;
}

const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 4: 2, 6: 4 };

function chunk(type: string, data: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
  const out = Buffer.alloc(body.length + 8);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(crc32(body), body.length + 4);
  return out;
}

/** A PNG written by hand, so that any header can be produced. `pixel(x, y)` gives each sample. */
function makePng(width: number, height: number, pixel: (x: number, y: number) => number, opts: PngOptions = {}): Buffer {
  const bitDepth = opts.bitDepth ?? 8;
  const colourType = opts.colourType ?? 0;
  const samples = CHANNELS[colourType]!;
  const bytesPerSample = bitDepth / 8;
  const stride = 1 + width * samples * bytesPerSample;
  const raw = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let s = 0; s < samples; s++) {
        const at = y * stride + 1 + (x * samples + s) * bytesPerSample;
        if (bytesPerSample === 2) raw.writeUInt16BE(pixel(x, y) * 257, at);
        else raw[at] = pixel(x, y);
      }
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = bitDepth;
  ihdr[9] = colourType;
  ihdr[12] = opts.interlace ?? 0;
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, chunk("IHDR", ihdr), chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

type Rect = readonly [number, number, number, number];
const inside = (r: Rect) => (x: number, y: number) => (x >= r[0] && x < r[2] && y >= r[1] && y < r[3] ? 255 : 0);

/** A mask written by the worker's own PNG encoder (engine/png.ts). */
function engineMask(width: number, height: number, r: Rect): string {
  const scanlines = allocScanlines(width, height);
  const f = inside(r);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) scanlines[y * (width + 1) + 1 + x] = f(x, y);
  filterScanlines(scanlines, width, height);
  return encodeGrayPngSync(scanlines, width, height).toString("base64");
}

const W = 40;
const H = 30;
type Json = any;

function goodResponse(): Json {
  const wall: Rect[] = [
    [0, 0, 40, 10],
    [0, 10, 20, 30],
  ];
  const window: Rect = [25, 12, 35, 20];
  return {
    id: "sync-1",
    status: "COMPLETED",
    delayTime: 12,
    executionTime: 345,
    workerId: "worker-1",
    started: true,
    completed: true,
    succeeded: true,
    output: {
      output: {
        image_size: [W, H],
        results: {
          wall: { instance_count: 2, masks_base64: wall.map((r) => engineMask(W, H, r)), scores: [0.9, 0.7], boxes: wall },
          door: { instance_count: 0, masks_base64: [], scores: [], boxes: [] },
          window: { instance_count: 1, masks_base64: [makePng(W, H, inside(window)).toString("base64")], scores: [0.6], boxes: [window] },
        },
      },
    },
  };
}

const SEGMENTATION: Expectation = { kind: "segmentation", concepts: ["wall", "door", "window"], threshold: 0.5, imageSize: [W, H] };

function mutated(change: (r: Json) => void): Json {
  const r = goodResponse();
  change(r);
  return r;
}

const results = (r: Json) => r.output.output.results;

// ---------------------------------------------------------------- the validator

describe("validateSegmentationResponse", () => {
  it("passes a response that keeps the contract, and counts its instances", async () => {
    const result = await validateSegmentationResponse(goodResponse(), SEGMENTATION);
    expect(result.problems).toEqual([]);
    expect(result).toMatchObject({ ok: true, instances: 3 });
  });

  it("accepts boxes being absent, duplicate concepts answered once, and numeric keys in any order", async () => {
    const noBoxes = mutated((r) => {
      for (const c of Object.values(results(r)) as Json[]) delete c.boxes;
    });
    expect((await validateSegmentationResponse(noBoxes, SEGMENTATION)).problems).toEqual([]);
    const duplicates: Expectation = { kind: "segmentation", concepts: ["wall", "door", "wall", "window"], threshold: 0.5 };
    expect((await validateSegmentationResponse(goodResponse(), duplicates)).problems).toEqual([]);
    // JSON objects put array-index keys first whatever the order sent.
    const numeric = mutated((r) => {
      const { wall } = results(r);
      r.output.output.results = { "7": results(r).door, wall };
    });
    const asked: Expectation = { kind: "segmentation", concepts: ["wall", "7"], threshold: 0.5 };
    expect((await validateSegmentationResponse(numeric, asked)).problems).toEqual([]);
  });

  const violations: [string, (r: Json) => void, string | RegExp][] = [
    ["status other than COMPLETED", (r) => ((r.status = "FAILED"), (r.error = "boom")), 'status is "FAILED", expected "COMPLETED": boom'],
    ["a top-level error on a COMPLETED job", (r) => (r.error = "oops"), "top-level error"],
    ["executionTime missing", (r) => delete r.executionTime, "executionTime must be a number"],
    ["delayTime not a number", (r) => (r.delayTime = "12"), "delayTime must be a number"],
    ["output missing", (r) => delete r.output, "output must be an object"],
    ["an output.error instead of a result", (r) => (r.output = { error: "Segmentation failed: CUDA out of memory" }), "output.error: Segmentation failed: CUDA out of memory"],
    ["output.output missing", (r) => (r.output = {}), "output.output must be an object"],
    ["image_size not [w, h]", (r) => (r.output.output.image_size = [40]), "image_size must be [width, height]"],
    ["image_size with a fraction", (r) => (r.output.output.image_size = [40.5, 30]), "image_size must be [width, height]"],
    ["image_size not the image's", (r) => (r.output.output.image_size = [30, 40]), "expected [40,30]"],
    ["results missing", (r) => delete r.output.output.results, "results must be an object"],
    ["a requested concept missing", (r) => delete results(r).door, 'results lacks requested concept(s) "door"'],
    ["an extra concept", (r) => (results(r).floor = { instance_count: 0, masks_base64: [], scores: [] }), 'nobody asked for: "floor"'],
    [
      "concepts out of order",
      (r) => {
        const { wall, door, window } = results(r);
        r.output.output.results = { door, wall, window };
      },
      "expected the order sent",
    ],
    ["instance_count not a count", (r) => (results(r).wall.instance_count = -1), "instance_count must be a whole number"],
    ["instance_count != masks", (r) => (results(r).wall.instance_count = 3), "instance_count is 3 but masks_base64 2, scores 2, boxes 2"],
    ["scores shorter than masks", (r) => results(r).wall.scores.pop(), "instance_count is 2 but masks_base64 2, scores 1"],
    ["boxes shorter than masks", (r) => results(r).wall.boxes.pop(), "boxes 1"],
    ["masks_base64 not an array", (r) => (results(r).wall.masks_base64 = "abc"), "masks_base64 must be an array"],
    ["scores not sorted", (r) => (results(r).wall.scores = [0.7, 0.9]), "scores are not sorted highest first"],
    ["a score at the threshold", (r) => (results(r).window.scores = [0.5]), "is not above confidence_threshold 0.5"],
    ["a score above 1", (r) => (results(r).window.scores = [1.5]), "must be a number <= 1"],
    ["a score that is not a number", (r) => (results(r).window.scores = ["0.9"]), "must be a number <= 1"],
    ["a box outside the image", (r) => (results(r).window.boxes = [[25, 12, 45, 20]]), "lies outside the 40x30 image"],
    ["a box with x1 > x2", (r) => (results(r).window.boxes = [[35, 12, 25, 20]]), "has x1 > x2"],
    ["a box that is not 4 numbers", (r) => (results(r).window.boxes = [[1, 2, 3]]), "must be [x1, y1, x2, y2]"],
    ["a mask that is not base64", (r) => (results(r).window.masks_base64 = ["not base64!"]), "masks_base64[0]: is not valid base64"],
    ["a mask that is not a string", (r) => (results(r).window.masks_base64 = [42]), "must be a base64 string"],
    ["a JPEG mask", (r) => (results(r).window.masks_base64 = [Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0, 0, 0]).toString("base64")]), "not a PNG (bad signature)"],
    ["an RGB mask", (r) => (results(r).window.masks_base64 = [makePng(W, H, inside([0, 0, 5, 5]), { colourType: 2 }).toString("base64")]), "got colour type 2, bit depth 8"],
    ["a gray+alpha mask", (r) => (results(r).window.masks_base64 = [makePng(W, H, inside([0, 0, 5, 5]), { colourType: 4 }).toString("base64")]), "got colour type 4"],
    ["a 16-bit mask", (r) => (results(r).window.masks_base64 = [makePng(W, H, inside([0, 0, 5, 5]), { bitDepth: 16 }).toString("base64")]), "bit depth 16"],
    ["an interlaced mask", (r) => (results(r).window.masks_base64 = [makePng(W, H, inside([0, 0, 5, 5]), { interlace: 1 }).toString("base64")]), "must not be interlaced"],
    ["a mask of the wrong size", (r) => (results(r).window.masks_base64 = [makePng(20, H, inside([0, 0, 5, 5])).toString("base64")]), "is 20x30, expected image_size 40x30"],
    ["a mask with a gray value", (r) => (results(r).window.masks_base64 = [makePng(W, H, (x, y) => (x === 3 && y === 2 ? 128 : 0)).toString("base64")]), "pixel (3, 2) is 128"],
    [
      "a mask with a bad CRC",
      (r) => {
        const png = makePng(W, H, inside([0, 0, 5, 5]));
        png[png.length - 20] = png[png.length - 20]! ^ 0xff; // inside the IDAT data
        results(r).window.masks_base64 = [png.toString("base64")];
      },
      /bad CRC/,
    ],
    ["a truncated mask", (r) => (results(r).window.masks_base64 = [makePng(W, H, inside([0, 0, 5, 5])).subarray(0, 60).toString("base64")]), /runs past the end|truncated/],
    ["a mask without IEND", (r) => (results(r).window.masks_base64 = [makePng(W, H, inside([0, 0, 5, 5])).subarray(0, -12).toString("base64")]), "no IEND chunk"],
  ];

  it.each(violations)("reports %s", async (_name, change, message) => {
    const result = await validateSegmentationResponse(mutated(change), SEGMENTATION);
    expect(result.ok).toBe(false);
    const joined = result.problems.join("\n");
    if (typeof message === "string") expect(joined).toContain(message);
    else expect(joined).toMatch(message);
  });

  it("names the concept and the mask index of a bad mask", async () => {
    const r = mutated((x) => (results(x).wall.masks_base64[1] = makePng(W, H, () => 7).toString("base64")));
    const { problems } = await validateSegmentationResponse(r, SEGMENTATION);
    expect(problems).toEqual(['results["wall"].masks_base64[1]: pixel (0, 0) is 7; masks hold only 0 and 255']);
  });

  it("reports a response that is not an object", async () => {
    for (const bad of [null, "COMPLETED", [1, 2]]) {
      expect((await validateSegmentationResponse(bad, SEGMENTATION)).problems[0]).toContain("not a JSON object");
    }
  });

  describe("error expectations", () => {
    const errorResponse = (message: unknown): Json => ({ id: "sync-2", status: "COMPLETED", delayTime: 1, executionTime: 2, output: { error: message } });
    const invalid: Expectation = { kind: "error", prefix: "Invalid input" };

    it("passes an output.error with the expected prefix and a cause", async () => {
      const result = await validateSegmentationResponse(errorResponse("Invalid input: concepts must have 1 to 32 items (got 0)"), invalid);
      expect(result).toEqual({ ok: true, problems: [], instances: 0 });
    });

    it("reports a wrong prefix, a bare prefix, a missing error, a result instead, and a FAILED job", async () => {
      const problems = async (r: unknown) => (await validateSegmentationResponse(r, invalid)).problems.join("\n");
      expect(await problems(errorResponse("Failed to download image: HTTP 404"))).toContain('does not start with "Invalid input"');
      expect(await problems(errorResponse("Invalid input"))).toContain("names no cause");
      expect(await problems(errorResponse(undefined))).toContain("output.error must be a message");
      expect(await problems(goodResponse())).toContain("(got a segmentation result)");
      expect(await problems({ id: "x", status: "FAILED", error: "handler crashed" })).toContain('status is "FAILED"');
      expect(await problems({ ...errorResponse("Invalid input: x"), output: { error: "Invalid input: x", output: {} } })).toContain("output.output must be absent");
    });
  });

  it("inspectPng reads the header of the worker's own masks", () => {
    const png = Buffer.from(engineMask(W, H, [1, 1, 9, 9]), "base64");
    expect(inspectPng(png)).toEqual({ width: W, height: H, bitDepth: 8, colourType: 0, interlace: 0 });
  });
});

// ---------------------------------------------------------------- events and report

describe("events", () => {
  const testInput = readTestEvent(join(ROOT, "test_input.json"));

  it("derive the expectations from test_input.json, with the image's displayed size", async () => {
    const size = await displayedSize(testInput);
    expect(size).toEqual([800, 533]);
    const events = buildEvents(testInput, size);
    expect(events.map((e) => [e.name, e.modes])).toEqual([
      ["test_input", ["runsync", "run+status"]],
      ["invalid_concepts", ["runsync"]],
      ["unresolvable_url", ["runsync"]],
      ["private_url", ["runsync"]],
    ]);
    expect(events[0]!.expect).toEqual({ kind: "segmentation", concepts: testInput.concepts, threshold: testInput.confidence_threshold, imageSize: [800, 533] });
  });

  it("are valid or invalid job inputs exactly as their expectations say", () => {
    const config = loadConfig({});
    const limits = { maxConcepts: config.maxConcepts, maxImageBytes: config.download.maxBytes };
    for (const event of buildEvents(testInput)) {
      if (event.expect.kind === "error" && event.expect.prefix === "Invalid input") {
        expect(() => parseInput(event.input, limits), event.name).toThrow(InvalidInputError);
      } else {
        expect(() => parseInput(event.input, limits), event.name).not.toThrow();
      }
    }
    expect(new URL(UNRESOLVABLE_IMAGE_URL).hostname.endsWith(".invalid")).toBe(true);
    expect(new URL(PRIVATE_IMAGE_URL).hostname).toBe("127.0.0.1");
  });

  it("report a table with executionTime and delayTime, and every problem", () => {
    const text = formatReport([
      { event: "test_input", mode: "runsync", id: "sync-1", status: "COMPLETED", delayTime: 3, executionTime: 456, wallMs: 470, instances: 10, problems: [] },
      { event: "invalid_concepts", mode: "runsync", id: "sync-2", status: "COMPLETED", delayTime: 0, executionTime: 1, wallMs: 5, problems: ["output.error missing"] },
    ]);
    expect(text).toMatch(/event\s+mode\s+status\s+delayTime ms\s+executionTime ms\s+wall ms\s+instances\s+result/);
    expect(text).toMatch(/test_input\s+runsync\s+COMPLETED\s+3\s+456\s+470\s+10\s+ok/);
    expect(text).toContain("invalid_concepts (runsync, job sync-2):\n  - output.error missing");
    expect(text).toContain("smoke: 1 of 2 checks FAILED");
  });
});

// ---------------------------------------------------------------- end to end against servers

function captureIo(env: Record<string, string | undefined> = {}): SmokeIo & { out: () => string; err: () => string } {
  const out: string[] = [];
  const err: string[] = [];
  return { env, stdout: (t) => void out.push(t), stderr: (t) => void err.push(t), out: () => out.join(""), err: () => err.join("") };
}

/** The workflow's `npm run smoke -- <args>`, as an argument list. */
function workflowSmokeArgs(): string[] {
  const m = /npm run smoke -- (.+)$/m.exec(read(".github/workflows/gpu-smoke.yml"));
  if (!m) throw new Error("the workflow does not run npm run smoke");
  return m[1]!.trim().split(/\s+/);
}

describe("smoke against the local API server (tiny model, CPU)", () => {
  let engine: EngineClient;
  let server: LocalApiServer;
  let baseUrl: string;

  beforeAll(async () => {
    const config = loadConfig({ SAM3_MODEL_DIR: TINY_DIR, SAM3_DEVICE: "cpu" });
    engine = inProcessEngine(tinySettings());
    server = new LocalApiServer({ host: "127.0.0.1", port: 0, config, engine, log: silentLog });
    baseUrl = `http://127.0.0.1:${await server.start()}/v2`;
  });

  afterAll(async () => {
    await server.close();
    await engine.close();
  });

  it("passes with the workflow's arguments, through /runsync and /run + /status, and prints the table", async () => {
    const args = workflowSmokeArgs().map((a) => a.replace("http://127.0.0.1:8000/v2", baseUrl));
    expect(args).toContain(baseUrl);
    const io = captureIo();
    const code = await main(args, io);
    expect(io.out()).toContain("smoke: all 6 checks passed");
    expect(code).toBe(0);
    const table = io.out();
    expect(table).toMatch(/endpoint\s+health\s+/);
    expect(table).toMatch(/test_input\s+runsync\s+COMPLETED\s+\d+\s+\d+\s+\d+\s+10\s+ok/);
    expect(table).toMatch(/test_input\s+run\+status\s+COMPLETED\s+\d+\s+\d+\s+\d+\s+10\s+ok/);
    for (const name of ["invalid_concepts", "unresolvable_url", "private_url"]) expect(table).toMatch(new RegExp(`${name}\\s+runsync\\s+COMPLETED.*ok`));
  });

  it("passes --require-instances, with an explicit endpoint id and key", async () => {
    const io = captureIo({ RUNPOD_API_KEY: "test-key" });
    const code = await main(["--base-url", `${baseUrl}/`, "--endpoint", "sam3-test", "--require-instances", "--poll-interval", "50"], io);
    expect(io.out()).toMatch(/all\s+instances\s+.*20\s+ok/);
    expect(code).toBe(0);
  });

  it("answers the health URL the workflow waits for", async () => {
    expect(read(".github/workflows/gpu-smoke.yml")).toContain("http://127.0.0.1:8000/v2/local/health");
    const res = await fetch(`${baseUrl}/local/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ jobs: expect.any(Object), workers: expect.any(Object) });
  });
});

describe("smoke against a server that breaks the contract", () => {
  let server: Server;
  let origin: string;
  const broken = {
    status: "COMPLETED",
    delayTime: 1,
    executionTime: 2,
    output: {
      output: {
        image_size: [800, 533],
        results: {
          wall: { instance_count: 2, masks_base64: [makePng(800, 533, () => 255, { colourType: 2 }).toString("base64"), makePng(800, 533, () => 0).toString("base64")], scores: [0.6, 0.9] },
          door: { instance_count: 0, masks_base64: [], scores: [] },
        },
      },
    },
  };

  beforeAll(async () => {
    server = createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        const [, endpoint, route] = new URL(req.url ?? "/", "http://x").pathname.split("/").filter(Boolean);
        const send = (status: number, body: unknown) => res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
        if (endpoint === "http500" && route !== "health") return send(500, { error: "internal" });
        if (route === "health") return send(200, { jobs: { completed: 0, failed: 0, inProgress: 0, inQueue: 0, retried: 0 }, workers: { idle: 1, running: 0 } });
        if (route === "run") return send(200, { id: "job-1", status: "IN_QUEUE" });
        if (route === "runsync" || route === "status" || route === "status-sync") return send(200, { id: "job-1", ...broken });
        send(404, { error: "no route" });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it("exits 1 and names each violation", async () => {
    const io = captureIo();
    const code = await main(["--base-url", `${origin}/v2`, "--poll-interval", "10"], io);
    expect(code).toBe(1);
    const text = io.out();
    expect(text).toContain('results lacks requested concept(s) "window"');
    expect(text).toContain("scores are not sorted highest first");
    expect(text).toContain("got colour type 2, bit depth 8");
    expect(text).toContain('output.error must be a message starting with "Invalid input" (got a segmentation result)');
    expect(text).toContain('output.error must be a message starting with "Failed to download image"');
    expect(text).toContain("smoke: 5 of 6 checks FAILED");
  });

  it("exits 1 when the API answers with HTTP errors", async () => {
    const io = captureIo();
    const code = await main(["--base-url", `${origin}/v2`, "--endpoint", "http500", "--poll-interval", "10"], io);
    expect(code).toBe(1);
    expect(io.out()).toContain("request failed with HTTP 500");
  });

  it("exits 2 on usage errors", async () => {
    expect(await main([], captureIo())).toBe(2);
    const noKey = captureIo({});
    expect(await main(["--endpoint", "abc123"], noKey)).toBe(2);
    expect(noKey.err()).toContain("RUNPOD_API_KEY must be set");
    expect(await main(["--base-url", "ftp://x"], captureIo())).toBe(2);
    expect(await main(["--base-url", `${origin}/v2`, "--timeout", "soon"], captureIo())).toBe(2);
    expect(await main(["--bogus"], captureIo())).toBe(2);
  });
});

// ---------------------------------------------------------------- Dockerfile

interface Instruction {
  readonly stage: string;
  readonly keyword: string;
  readonly args: string;
}

/** Instructions with continuation lines joined and comments dropped, each tagged with its stage. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = "(global)";
  let pending = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("#") || (line === "" && pending === "")) continue;
    pending += (pending ? " " : "") + line.replace(/\\$/, "").trim();
    if (line.endsWith("\\")) continue;
    const [keyword = "", ...rest] = pending.split(/\s+/);
    const args = rest.join(" ");
    if (keyword.toUpperCase() === "FROM") stage = /\bAS\s+(\S+)/i.exec(args)?.[1] ?? args;
    out.push({ stage, keyword: keyword.toUpperCase(), args });
    pending = "";
  }
  return out;
}

/** ARG defaults, global and per stage (later ones win), for ${NAME} substitution. */
function argDefaults(instructions: readonly Instruction[]): Record<string, string> {
  const defaults: Record<string, string> = {};
  for (const i of instructions) {
    const m = i.keyword === "ARG" ? /^(\w+)=(\S+)$/.exec(i.args) : null;
    if (m) defaults[m[1]!] = m[2]!;
  }
  return defaults;
}

const substitute = (text: string, args: Record<string, string>) => text.replace(/\$\{(\w+)\}/g, (_m, name: string) => args[name] ?? `\${${name}}`);

interface Copy {
  readonly stage: string;
  readonly from?: string;
  readonly sources: string[];
  readonly dest: string;
}

function copies(instructions: readonly Instruction[], keyword = "COPY"): Copy[] {
  return instructions
    .filter((i) => i.keyword === keyword)
    .map((i) => {
      const tokens = i.args.split(/\s+/);
      const from = tokens.find((t) => t.startsWith("--from="))?.slice("--from=".length);
      const paths = tokens.filter((t) => !t.startsWith("--"));
      return { stage: i.stage, ...(from ? { from } : {}), sources: paths.slice(0, -1), dest: paths[paths.length - 1]! };
    });
}

/** A .dockerignore matcher: Go filepath.Match globs plus `**`, `!` exceptions, last match wins, directories cover their contents. */
function dockerignore(text: string): (path: string) => boolean {
  const toRegex = (pattern: string) => {
    let re = "";
    for (let i = 0; i < pattern.length; i++) {
      const c = pattern[i]!;
      if (c === "*" && pattern[i + 1] === "*") {
        i++;
        if (pattern[i + 1] === "/") {
          i++;
          re += "(?:.*/)?";
        } else re += ".*";
      } else if (c === "*") re += "[^/]*";
      else if (c === "?") re += "[^/]";
      else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
    }
    return new RegExp(`^${re}$`);
  };
  const rules = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => {
      const negate = l.startsWith("!");
      return { negate, re: toRegex((negate ? l.slice(1) : l).trim().replace(/^\/+|\/+$/g, "")) };
    });
  return (path) => {
    const parts = path.replace(/^\.\//, "").split("/");
    let ignored = false;
    for (const rule of rules) {
      for (let n = 1; n <= parts.length; n++) {
        if (rule.re.test(parts.slice(0, n).join("/"))) {
          ignored = !rule.negate;
          break;
        }
      }
    }
    return ignored;
  };
}

const dockerfile = parseDockerfile(read("Dockerfile"));
const args = argDefaults(dockerfile);
const stages = dockerfile.filter((i) => i.keyword === "FROM").map((i) => i.stage);
const inStage = (stage: string) => dockerfile.filter((i) => i.stage === stage);
const ignored = dockerignore(read(".dockerignore"));
const buildInclude: string[] = JSON.parse(read("tsconfig.build.json")).include;
const pkg = JSON.parse(read("package.json")) as { scripts: Record<string, string>; dependencies: Record<string, string> };

/** dist/<path>.js -> the TypeScript source that the build compiles into it. */
function sourceOf(distPath: string): string {
  const rel = distPath.replace(/^\/app\//, "").replace(/^dist\//, "").replace(/\.js$/, ".ts");
  return rel;
}

describe("Dockerfile", () => {
  it("has the build, deps, model and runtime stages, and --from names only earlier stages", () => {
    expect(stages).toEqual(["build", "deps", "model", "runtime"]);
    for (const c of copies(dockerfile)) {
      if (c.from) expect(stages.indexOf(c.from), `COPY --from=${c.from} in ${c.stage}`).toBeLessThan(stages.indexOf(c.stage));
    }
  });

  it("copies from the build context only files that exist and that .dockerignore lets through", () => {
    const fromContext = copies(dockerfile).filter((c) => !c.from);
    expect(fromContext.length).toBeGreaterThan(0);
    for (const c of fromContext) {
      for (const src of c.sources) {
        expect(existsSync(join(ROOT, src)), `COPY ${src}`).toBe(true);
        if (src !== ".") expect(ignored(src), `${src} is excluded by .dockerignore`).toBe(false);
      }
    }
  });

  it("sends the sources through .dockerignore and keeps built, fetched and secret files out", () => {
    for (const needed of ["package.json", "package-lock.json", ".npmrc", "tsconfig.json", "tsconfig.build.json", "models/manifest.json", "test_input.json"]) {
      expect(ignored(needed), needed).toBe(false);
    }
    for (const dir of buildInclude) expect(ignored(`${dir}/x.ts`), dir).toBe(false);
    for (const source of ["handler/main.ts", "models/fetch-model.ts", "models/contract.ts", "engine/module-paths.ts", "scripts/smoke.ts"]) {
      expect(existsSync(join(ROOT, source)), source).toBe(true);
      expect(ignored(source), source).toBe(false);
    }
    for (const out of ["node_modules/sharp/package.json", "dist/handler/main.js", ".git/HEAD", "models/sam3/vision-encoder.onnx", "models/tiny/text-encoder.onnx", "scratch/x.mjs", ".env", "x.whl", "models/sam3/a.onnx.partial", "test/fixtures/room.jpg"]) {
      expect(ignored(out), out).toBe(true);
    }
  });

  it("copies from earlier stages only what they produce", () => {
    for (const c of copies(dockerfile).filter((x) => x.from === "build")) {
      for (const src of c.sources) {
        if (src === "/usr/local/bin/node") continue; // from the node image itself
        if (src.startsWith("/app/node_modules/")) {
          const name = src.slice("/app/node_modules/".length);
          expect(pkg.dependencies[name], `${name} must be a production dependency`).toBeDefined();
          expect(existsSync(join(ROOT, "node_modules", name, "package.json"))).toBe(true);
          continue;
        }
        expect(src.startsWith("/app/dist"), src).toBe(true);
        if (src === "/app/dist") continue;
        const source = sourceOf(src);
        expect(existsSync(join(ROOT, source)), `${src} is compiled from ${source}`).toBe(true);
        expect(buildInclude).toContain(source.split("/")[0]);
      }
    }
    // The weights land where the runtime looks for them.
    const fetch = inStage("model").find((i) => i.keyword === "RUN" && i.args.includes("fetch-model.js"));
    const dir = /--dir (\S+)/.exec(fetch?.args ?? "")?.[1];
    expect(dir).toBe("/models/sam3");
    expect(copies(dockerfile).some((c) => c.from === "model" && c.sources[0] === dir && c.dest === dir)).toBe(true);
    expect(inStage("runtime").some((i) => i.keyword === "ENV" && i.args.includes(`SAM3_MODEL_DIR=${dir}`))).toBe(true);
  });

  it("runs only npm scripts and compiled files that exist", () => {
    for (const run of dockerfile.filter((i) => i.keyword === "RUN")) {
      for (const [, script] of run.args.matchAll(/npm run ([\w:-]+)/g)) expect(pkg.scripts[script!], `npm run ${script}`).toBeDefined();
      for (const [, file] of run.args.matchAll(/node (dist\/\S+\.js)/g)) expect(existsSync(join(ROOT, sourceOf(file!))), file).toBe(true);
    }
  });

  it("bakes in a variant of models/manifest.json, fp16 by default, and names every variant", () => {
    const variants = Object.keys(loadManifest().variants);
    expect(args.SAM3_MODEL_VARIANT).toBe("fp16");
    expect(variants).toContain(args.SAM3_MODEL_VARIANT);
    const text = read("Dockerfile");
    for (const v of variants) expect(text, v).toMatch(new RegExp(`\\b${v}\\b`));
    expect(inStage("model").find((i) => i.keyword === "RUN" && i.args.includes("fetch-model.js"))?.args).toContain('--variant "${SAM3_MODEL_VARIANT}"');
  });

  it("installs production dependencies with the CUDA 12 provider, which onnxruntime-node's installer really reads", () => {
    const install = inStage("deps").find((i) => i.keyword === "RUN" && i.args.includes("npm ci"))!.args;
    expect(install).toContain("ONNXRUNTIME_NODE_INSTALL=cuda12");
    expect(install).toContain("--omit=dev");
    expect(read(".npmrc")).toMatch(/^onnxruntime-node-install=skip$/m);
    // The environment variable is read before the npm config (.npmrc), and cuda12 is a manifest for linux/x64.
    const utils = readFileSync(join(ROOT, "node_modules/onnxruntime-node/script/install-utils.js"), "utf8");
    expect(utils).toMatch(/process\.env\.ONNXRUNTIME_NODE_INSTALL \|\| process\.env\.npm_config_onnxruntime_node_install/);
    const metadata = readFileSync(join(ROOT, "node_modules/onnxruntime-node/script/install-metadata.js"), "utf8");
    expect(metadata).toMatch(/'linux\/x64': \['cuda12'\]/);
    expect(install).toContain("bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so");
  });

  it("runs on an NVIDIA CUDA 12 + cuDNN runtime image of Ubuntu, as a non-root user, with an exec-form CMD", () => {
    const from = inStage("runtime").find((i) => i.keyword === "FROM")!;
    expect(substitute(from.args, args)).toMatch(/^nvidia\/cuda:12\.\d+\.\d+-cudnn-runtime-ubuntu\d\d\.04 AS runtime$/);
    const user = inStage("runtime").filter((i) => i.keyword === "USER").pop()?.args;
    expect(user).toBeDefined();
    expect(["root", "0"]).not.toContain(user);
    expect(inStage("runtime").find((i) => i.keyword === "RUN")?.args).toContain(`useradd`);
    expect(dockerfile.some((i) => i.keyword === "HEALTHCHECK")).toBe(false);
    expect(dockerfile.some((i) => i.keyword === "ENTRYPOINT")).toBe(false);
    const cmd = dockerfile.filter((i) => i.keyword === "CMD");
    expect(cmd).toHaveLength(1);
    const argv: unknown = JSON.parse(cmd[0]!.args);
    expect(Array.isArray(argv) && argv.every((a) => typeof a === "string")).toBe(true);
    const [exe, script, ...rest] = argv as string[];
    expect(exe).toBe("node");
    expect(rest).toEqual([]);
    const workdir = inStage("runtime").filter((i) => i.keyword === "WORKDIR").pop()?.args;
    expect(workdir).toBe("/app");
    expect(script).toBe("/app/dist/handler/main.js");
    expect(existsSync(join(ROOT, sourceOf(script!)))).toBe(true);
    // package.json (ES modules) and the local test event sit in the working directory.
    const runtimeCopies = copies(dockerfile).filter((c) => c.stage === "runtime" && !c.from);
    expect(runtimeCopies.flatMap((c) => c.sources)).toEqual(expect.arrayContaining(["package.json", "test_input.json"]));
  });

  it("ships the SAM License next to the weights, pinned to a commit and checked by hash", () => {
    const add = copies(dockerfile, "ADD").filter((c) => c.stage === "model");
    expect(add).toHaveLength(1);
    expect(substitute(add[0]!.sources[0]!, args)).toMatch(/^https:\/\/raw\.githubusercontent\.com\/facebookresearch\/sam3\/[0-9a-f]{40}\/LICENSE$/);
    expect(add[0]!.dest).toBe("/models/sam3/LICENSE");
    expect(args.SAM_LICENSE_SHA256).toMatch(/^[0-9a-f]{64}$/);
    expect(inStage("model").some((i) => i.keyword === "RUN" && i.args.includes("sha256sum -c"))).toBe(true);
  });

  it("model stage: its files and its fetch command work as a plain directory (loopback release, fp16)", async () => {
    const root = mkdtempSync(join(tmpdir(), "sam3-model-stage-"));
    const served: string[] = [];
    const release = createServer((req, res) => {
      const name = basename(new URL(req.url ?? "/", "http://x").pathname);
      served.push(name);
      const body = Buffer.from(`fake ${name}`);
      res.writeHead(200, { "content-length": body.length }).end(body);
    });
    await new Promise<void>((resolve) => release.listen(0, "127.0.0.1", resolve));
    try {
      const stage = inStage("model");
      const workdir = stage.find((i) => i.keyword === "WORKDIR")!.args;
      const at = (p: string) => join(root, p.startsWith("/") ? p : join(workdir, p));
      mkdirSync(at("."), { recursive: true });
      const pkgJson = /echo '(.+)' > package\.json/.exec(stage.find((i) => i.args.includes("> package.json"))!.args)![1]!;
      writeFileSync(at("package.json"), pkgJson);
      expect(JSON.parse(pkgJson).type).toBe("module");
      for (const c of copies(stage)) {
        for (const src of c.sources) {
          const local = c.from === "build" ? join(ROOT, src.replace(/^\/app\//, "")) : join(ROOT, src);
          const target = c.dest.endsWith("/") ? join(at(c.dest), basename(src)) : at(c.dest);
          mkdirSync(join(target, ".."), { recursive: true });
          cpSync(local, target, { recursive: true });
        }
      }
      const command = stage.find((i) => i.keyword === "RUN" && i.args.includes("fetch-model.js"))!.args;
      const modelDir = join(root, "models/sam3");
      const line = substitute(command, { SAM3_MODEL_VARIANT: "fp16" }).replace("/models/sam3", modelDir);
      const env: Record<string, string> = { PATH: process.env.PATH ?? "", SAM3_MODEL_BASE_URL: `http://127.0.0.1:${(release.address() as AddressInfo).port}/sam3/` };
      // Asynchronous (not spawnSync), so that this process can answer the fetch's requests.
      const result = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
        const child = spawn("sh", ["-c", line.replace(/^node /, `"${process.execPath}" `)], { cwd: at("."), env });
        let stderr = "";
        child.stderr.on("data", (d: Buffer) => (stderr += d));
        child.on("close", (status) => resolve({ status, stderr }));
      });
      expect(result.stderr).toContain("UNVERIFIED");
      expect(result.status).toBe(0);
      const local = JSON.parse(readFileSync(join(modelDir, "model-manifest.json"), "utf8"));
      expect(local).toMatchObject({ variant: "fp16", complete: true, verified: false });
      for (const file of ["vision-encoder.onnx", "text-encoder.onnx", "geo-encoder-mask-decoder.onnx", "tokenizer.json"]) {
        expect(existsSync(join(modelDir, file)), file).toBe(true);
      }
      expect(served).toEqual(expect.arrayContaining(["vision-encoder-fp16.onnx", "tokenizer.json"]));
    } finally {
      await new Promise<void>((resolve) => release.close(() => resolve()));
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("runtime stage: CMD in the working directory runs test_input.json, and the workflow's jq check accepts it", () => {
    const root = mkdtempSync(join(tmpdir(), "sam3-runtime-stage-"));
    try {
      const workdir = inStage("runtime").filter((i) => i.keyword === "WORKDIR").pop()!.args;
      const app = join(root, workdir);
      mkdirSync(app, { recursive: true });
      for (const c of copies(dockerfile).filter((x) => x.stage === "runtime")) {
        if (c.from === "model") continue; // the weights: the tiny model stands in, through SAM3_MODEL_DIR
        for (const src of c.sources) {
          if (src === "/usr/local/bin/node") continue; // this process's node stands in
          const local = c.from ? join(ROOT, src.replace(/^\/app\//, "")) : join(ROOT, src);
          const target = c.dest.startsWith("/") ? join(root, c.dest) : join(app, c.dest.endsWith("/") ? basename(src) : c.dest);
          if (src.endsWith("node_modules")) symlinkSync(local, target, "dir");
          else cpSync(local, target, { recursive: true });
        }
      }
      const argv = JSON.parse(dockerfile.find((i) => i.keyword === "CMD")!.args) as string[];
      const script = join(root, argv[1]!);
      const run = spawnSync(process.execPath, [script], {
        cwd: app,
        env: { PATH: process.env.PATH ?? "", NODE_ENV: "production", SAM3_MODEL_DIR: TINY_DIR, SAM3_DEVICE: "cpu" },
        encoding: "utf8",
        timeout: 60_000,
      });
      expect(run.status, run.stderr).toBe(0);
      const lines = run.stdout.trim().split("\n");
      expect(lines).toHaveLength(1);
      const doc = JSON.parse(lines[0]!);
      expect(doc).toMatchObject({ id: "local_test", status: "COMPLETED" });
      expect(doc.output.error).toBeUndefined();
      expect(doc.output.output.image_size).toEqual([800, 533]);

      const jq = spawnSync("jq", ["--version"], { encoding: "utf8" });
      if (jq.error) return; // jq is not installed here; the GPU runner has it
      const filter = /jq -e '([^']+)' oneshot\.json/.exec(read(".github/workflows/gpu-smoke.yml"))![1]!;
      const check = (input: string) => spawnSync("jq", ["-e", filter], { input, encoding: "utf8" }).status;
      expect(check(run.stdout)).toBe(0);
      expect(check(JSON.stringify({ id: "local_test", status: "COMPLETED", output: { error: "Segmentation failed: SAM3_DEVICE=cuda but ..." }, executionTime: 3 }))).not.toBe(0);
      expect(check(JSON.stringify({ id: "local_test", status: "COMPLETED", output: {}, executionTime: 3 }))).not.toBe(0);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------- Runpod files

describe("test_input.json and .runpod/tests.json", () => {
  const config = loadConfig({});
  const limits = { maxConcepts: config.maxConcepts, maxImageBytes: config.download.maxBytes };
  const testInput = readTestEvent(join(ROOT, "test_input.json"));
  const tests = JSON.parse(read(".runpod/tests.json")) as {
    tests: { name: string; input: unknown; timeout?: number }[];
    config: Record<string, unknown> & { env?: { key: string; value: string }[] };
  };

  it("test_input.json is one job whose input parses and whose image decodes", async () => {
    expect(Object.keys(JSON.parse(read("test_input.json")))).toEqual(["input"]);
    const request = parseInput(testInput, limits);
    expect(request.image.kind).toBe("base64");
    expect(request.concepts).toEqual(["wall", "door", "window"]);
    expect(await displayedSize(testInput)).toEqual([800, 533]);
  });

  it("tests are raw job inputs: the bundled event first, then error events named invalid_*", () => {
    expect(tests.tests.length).toBeGreaterThanOrEqual(2);
    expect(tests.tests[0]!.input).toEqual(testInput);
    for (const t of tests.tests) {
      expect(Object.keys(t).every((k) => ["name", "input", "timeout"].includes(k)), t.name).toBe(true);
      expect(t.name).toMatch(/^[a-z0-9_]+$/);
      expect(t.input).not.toHaveProperty("input"); // not wrapped
      expect(Number.isInteger(t.timeout) && t.timeout! >= 1_000, `${t.name} timeout in ms`).toBe(true);
      if (t.name.startsWith("invalid")) expect(() => parseInput(t.input, limits), t.name).toThrow(InvalidInputError);
      else expect(() => parseInput(t.input, limits), t.name).not.toThrow();
      // Self-contained: no outside URL the harness would need.
      expect(JSON.stringify(t.input)).not.toMatch(/https?:\/\//);
    }
    expect(tests.tests.some((t) => t.name.startsWith("invalid"))).toBe(true);
  });

  it("config: one GPU of a known type, CUDA 12 hosts, env the worker reads", () => {
    expect(tests.config).toMatchObject({ gpuTypeId: "NVIDIA GeForce RTX 4090", gpuCount: 1 });
    expect(tests.config.allowedCudaVersions).toEqual(expect.arrayContaining(["12.8"]));
    for (const v of tests.config.allowedCudaVersions as string[]) expect(v).toMatch(/^12\.\d$/);
    const configSource = read("handler/config.ts");
    for (const { key, value } of tests.config.env ?? []) {
      expect(configSource, key).toContain(`"${key}"`);
      expect(() => loadConfig({ [key]: value }), key).not.toThrow();
    }
    expect(Object.keys(tests.config).every((k) => ["gpuTypeId", "gpuCount", "cpuFlavor", "env", "allowedCudaVersions"].includes(k))).toBe(true);
  });
});

describe(".runpod/hub.json", () => {
  const hub = JSON.parse(read(".runpod/hub.json")) as Json;

  it("has the required metadata and a GPU config", () => {
    expect(hub).toMatchObject({ type: "serverless", category: "image", config: { runsOn: "GPU", gpuCount: 1 } });
    expect(typeof hub.title).toBe("string");
    expect(typeof hub.description).toBe("string");
    expect(Number.isInteger(hub.config.containerDiskInGb) && hub.config.containerDiskInGb >= 10).toBe(true);
    expect(hub.config.gpuIds).toMatch(/^-?[A-Za-z0-9_ ]+(,-?[A-Za-z0-9_ ]+)*$/);
    for (const v of hub.config.allowedCudaVersions) expect(v).toMatch(/^12\.\d$/);
  });

  it("offers only variables the worker reads, with defaults it accepts", () => {
    const configSource = read("handler/config.ts");
    for (const item of hub.config.env as Json[]) {
      expect(configSource, item.key).toContain(`"${item.key}"`);
      const value = item.value ?? item.input.default;
      expect(value, item.key).toBeDefined();
      expect(() => loadConfig({ [item.key]: String(value) }), item.key).not.toThrow();
      if (item.input) {
        expect(["string", "number", "boolean"]).toContain(item.input.type);
        expect(typeof item.input.name).toBe("string");
        expect(typeof item.input.description).toBe("string");
        if (item.input.options) {
          const values = item.input.options.map((o: Json) => o.value);
          expect(values).toContain(item.input.default);
          for (const v of values) expect(() => loadConfig({ [item.key]: v }), `${item.key}=${v}`).not.toThrow();
        }
        if (item.input.type === "number") {
          expect(item.input.default).toBeGreaterThanOrEqual(item.input.min);
          expect(item.input.default).toBeLessThanOrEqual(item.input.max);
          expect(() => loadConfig({ [item.key]: String(item.input.min) })).not.toThrow();
          expect(() => loadConfig({ [item.key]: String(item.input.max) })).not.toThrow();
        }
      }
    }
  });
});

// ---------------------------------------------------------------- GPU workflow

describe(".github/workflows/gpu-smoke.yml", () => {
  const workflow = read(".github/workflows/gpu-smoke.yml");

  it("runs on a self-hosted GPU runner and builds the image with the variant as a build argument", () => {
    expect(workflow).toMatch(/runs-on: \[self-hosted, gpu\]/);
    expect(workflow).toMatch(/docker build .*--build-arg SAM3_MODEL_VARIANT="\$VARIANT"/);
    const options = /options: \[([^\]]+)\]/.exec(workflow)![1]!.split(",").map((s) => s.trim());
    expect(options.sort()).toEqual(Object.keys(loadManifest().variants).sort());
  });

  it("references only npm scripts and compiled files that exist", () => {
    for (const [, script] of workflow.matchAll(/npm run ([\w:-]+)/g)) expect(pkg.scripts[script!], `npm run ${script}`).toBeDefined();
    for (const [, file] of workflow.matchAll(/node (dist\/\S+\.js)/g)) expect(existsSync(join(ROOT, sourceOf(file!))), file).toBe(true);
    expect(pkg.scripts.smoke).toContain("node dist/scripts/smoke.js");
  });

  it("starts the server with arguments the worker accepts, on the port it then probes", () => {
    const m = /node dist\/handler\/main\.js (--rp_serve_api[^\n]*)/.exec(workflow);
    const cli = parseCli(m![1]!.trim().split(/\s+/));
    expect(cli).toMatchObject({ serveApi: true, apiHost: "0.0.0.0", apiPort: 8000 });
    expect(workflow).toContain("-p 127.0.0.1:8000:8000");
    expect(workflow).toContain("--gpus all");
  });

  it("checks the GPU from a log line the worker really writes", () => {
    const line = /grep -F "([^"]+)"/.exec(workflow)![1]!;
    expect(line).toBe("engine ready on cuda");
    expect(read("handler/main.ts")).toContain("`engine ready on ${device}`");
  });

  it("always dumps the container's logs and removes it", () => {
    expect(workflow).toMatch(/- name: Container logs\n\s+if: always\(\)\n\s+run: docker logs "\$CONTAINER"/);
    expect(workflow).toMatch(/- name: Stop the container\n\s+if: always\(\)\n\s+run: docker rm -f "\$CONTAINER"/);
  });
});
