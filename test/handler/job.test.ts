import { cpSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { deflateSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pngFile } from "../../engine/png.js";
import { inProcessEngine } from "../../handler/engine-client.js";
import type { EngineClient } from "../../handler/engine-client.js";
import { DEFAULT_DOWNLOAD_LIMITS } from "../../handler/fetch-image.js";
import { JobCancelledError, runSegmentationJob } from "../../handler/job.js";
import type { JobContext } from "../../handler/job.js";
import { createLogger } from "../../handler/logger.js";
import { FIXTURES, TINY_DIR, tinySettings } from "../helpers/engine.js";
import { startServer } from "../helpers/http-server.js";
import type { TestServer } from "../helpers/http-server.js";

const room = readFileSync(join(FIXTURES, "room.jpg"));
const lines: string[] = [];
const log = createLogger({
  level: "debug",
  runpodFormat: false,
  secrets: [],
  destination: new Writable({ write: (chunk, _e, cb) => (lines.push(String(chunk)), cb()) }),
});

let engine: EngineClient;
let server: TestServer;
const context = (overrides: Partial<JobContext> = {}): JobContext => ({
  engine,
  limits: { maxConcepts: 32, maxImageBytes: 1_000_000, download: { ...DEFAULT_DOWNLOAD_LIMITS, allowPrivate: true, headersTimeoutMs: 500 } },
  log,
  ...overrides,
});

beforeAll(async () => {
  engine = inProcessEngine(tinySettings());
  server = await startServer({
    "/room.jpg": (_req, res) => res.writeHead(200, { "content-type": "image/jpeg" }).end(room),
    "/page.html": (_req, res) => res.writeHead(200, { "content-type": "text/html" }).end("<html><body>hello</body></html>"),
    "/missing.jpg": (_req, res) => res.writeHead(404).end(),
    "/hang": () => undefined,
  });
});
afterAll(async () => {
  await server.close();
  await engine.close();
});

describe("runSegmentationJob", () => {
  it("returns the contract payload for a URL", async () => {
    const outcome = await runSegmentationJob({ image_url: server.url("/room.jpg?X-Amz-Signature=topsecret").href, concepts: ["door", "sofa"] }, context());
    expect("output" in outcome).toBe(true);
    if (!("output" in outcome)) return;
    expect(outcome.output.image_size).toEqual([800, 533]);
    expect(Object.keys(outcome.output)).toEqual(["image_size", "results"]);
    expect(Object.keys(outcome.output.results.door!)).toEqual(["instance_count", "masks_base64", "scores", "boxes"]);
    expect(outcome.output.results.door!.instance_count).toBe(1);
    expect(outcome.output.results.sofa).toEqual({ instance_count: 0, masks_base64: [], scores: [], boxes: [] });
    expect(lines.join("")).not.toContain("topsecret");
  });

  it("returns the same payload for image_base64", async () => {
    const outcome = await runSegmentationJob({ image_base64: room.toString("base64"), concepts: ["window"], confidence_threshold: 0.7 }, context());
    expect(outcome).toMatchObject({ output: { image_size: [800, 533], results: { window: { instance_count: 1 } } } });
  });

  it.each([
    [{ concepts: ["wall"] }, "Invalid input: image_url or image_base64 is required (got neither)"],
    [undefined, "Invalid input: input must be an object (got nothing)"],
  ])("returns {error} for invalid input instead of throwing: %j", async (input, error) => {
    expect(await runSegmentationJob(input, context())).toEqual({ error });
  });

  it("returns download failures with the contract's prefix", async () => {
    expect(await runSegmentationJob({ image_url: server.url("/missing.jpg").href, concepts: ["wall"] }, context())).toEqual({
      error: "Failed to download image: HTTP 404",
    });
    const guarded = context({ limits: { ...context().limits, download: { ...DEFAULT_DOWNLOAD_LIMITS, allowPrivate: false } } });
    const refused = await runSegmentationJob({ image_url: server.url("/room.jpg").href, concepts: ["wall"] }, guarded);
    expect(refused).toEqual({ error: expect.stringMatching(/^Failed to download image: .*127\.0\.0\.1.*loopback/) });
    const hang = await runSegmentationJob({ image_url: server.url("/hang").href, concepts: ["wall"] }, context());
    expect(hang).toEqual({ error: expect.stringMatching(/^Failed to download image: .*timed out/) });
  });

  it("returns undecodable bytes (an HTML page) as Segmentation failed", async () => {
    expect(await runSegmentationJob({ image_url: server.url("/page.html").href, concepts: ["wall"] }, context())).toEqual({
      error: "Segmentation failed: image could not be decoded: input contains unsupported image format",
    });
    const bomb = pngHeader(60000, 60000);
    expect(await runSegmentationJob({ image_base64: bomb.toString("base64"), concepts: ["wall"] }, context())).toEqual({
      error: "Segmentation failed: image is 60000x60000 (3600000000 pixels), over the limit of 40000000 pixels (SAM3_MAX_IMAGE_PIXELS)",
    });
  });

  it("returns a missing model file as the contract's Model file not found", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sam3-job-"));
    cpSync(TINY_DIR, dir, { recursive: true });
    rmSync(join(dir, "vision-encoder.onnx"));
    const broken = inProcessEngine(tinySettings({ modelDir: dir }));
    try {
      for (let i = 0; i < 2; i++) {
        expect(await runSegmentationJob({ image_base64: room.toString("base64"), concepts: ["wall"] }, context({ engine: broken }))).toEqual({
          error: "Model file not found: vision-encoder.onnx",
        });
      }
    } finally {
      await broken.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("throws JobCancelledError, and only that, when the job's signal fires", async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(runSegmentationJob({ image_base64: room.toString("base64"), concepts: ["wall"] }, context({ signal: controller.signal }))).rejects.toBeInstanceOf(
      JobCancelledError,
    );
  });
});

/** A complete, tiny PNG that declares width x height: a decompression bomb's shape. */
function pngHeader(width: number, height: number): Buffer {
  return pngFile(width, height, deflateSync(Buffer.alloc(1024)));
}
