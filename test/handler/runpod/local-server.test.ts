/**
 * The local Runpod-compatible API server (`--rp_serve_api`; runpod-worker.md sections 13-15),
 * driven by the real `runpod-sdk` client end to end on the tiny model, plus the error replies and
 * runpod-python's bare dev routes. The engine runs in its thread, as `--rp_serve_api` runs it; a
 * gate in front of it holds jobs where a test needs one running or queued.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import runpodSdk from "runpod-sdk";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { loadConfig } from "../../../handler/config.js";
import type { EngineClient } from "../../../handler/engine-client.js";
import { threadEngine } from "../../../handler/engine-thread-client.js";
import type { ThreadEngineClient } from "../../../handler/engine-thread-client.js";
import { createLogger } from "../../../handler/logger.js";
import { LocalApiServer } from "../../../handler/runpod/local-server.js";
import { FIXTURES, TINY_DIR, tinySettings } from "../../helpers/engine.js";

const room64 = readFileSync(join(FIXTURES, "room.jpg")).toString("base64");
const roomInput = { image_base64: room64, concepts: ["wall", "door", "window"] };
const API_KEY = "rpa_LOCALKEY_0123456789";

type Payload = { image_size: number[]; results: Record<string, { instance_count: number; masks_base64: string[]; scores: number[] }> };

let thread: ThreadEngineClient;
/** Engine calls, and a gate that holds them until opened (or their job is cancelled). */
const calls: string[] = [];
let gate: Promise<void> = Promise.resolve();
let reportProgressAtGate = false;
let openGate: () => void = () => undefined;
function holdJobs(): void {
  gate = new Promise((resolve) => (openGate = resolve));
}
function releaseJobs(): void {
  openGate();
  gate = Promise.resolve();
}

const engine: EngineClient = {
  get ready() {
    return thread.ready;
  },
  async segment(req) {
    calls.push(req.concepts.join(","));
    // A job held at the gate reports its first concept done, as the engine would have.
    if (reportProgressAtGate) req.onConceptDone?.(1, req.concepts.length);
    await new Promise<void>((resolve, reject) => {
      void gate.then(resolve);
      req.signal?.addEventListener("abort", () => reject(req.signal!.reason as Error), { once: true });
    });
    return thread.segment(req);
  },
  close: async () => undefined,
};

const lines: string[] = [];
const log = createLogger({
  level: "info",
  runpodFormat: false,
  secrets: [API_KEY],
  destination: new Writable({ write: (chunk, _e, cb) => (lines.push(String(chunk)), cb()) }),
});

const servers: LocalApiServer[] = [];
async function serve(options: { concurrency?: number; queueLimit?: number; retainSyncMs?: number; retainAsyncMs?: number } = {}): Promise<{ origin: string; sdk: NonNullable<ReturnType<ReturnType<typeof runpodSdk>["endpoint"]>> }> {
  const config = loadConfig({ SAM3_MODEL_DIR: TINY_DIR, SAM3_DEVICE: "cpu", SAM3_CONCURRENCY: String(options.concurrency ?? 1) });
  const { concurrency: _, ...rest } = options;
  const server = new LocalApiServer({ host: "127.0.0.1", port: 0, config, engine, log, ...rest });
  servers.push(server);
  const port = await server.start();
  const origin = `http://127.0.0.1:${port}`;
  const sdk = runpodSdk(API_KEY, { baseUrl: `${origin}/v2` }).endpoint("local");
  if (!sdk) throw new Error("no endpoint");
  return { origin, sdk };
}

async function http(url: string, init: RequestInit = {}): Promise<{ status: number; contentType: string; json: Record<string, unknown> }> {
  const res = await fetch(url, init);
  const text = await res.text();
  return { status: res.status, contentType: res.headers.get("content-type") ?? "", json: JSON.parse(text) as Record<string, unknown> };
}
const post = (url: string, body: unknown) => http(url, { method: "POST", headers: { "content-type": "application/json" }, body: typeof body === "string" ? body : JSON.stringify(body) });

beforeAll(async () => {
  thread = threadEngine(tinySettings());
  await thread.ready;
  // runpod-sdk prints each status-sync poll with console.log; keep test output quiet.
  vi.spyOn(console, "log").mockImplementation(() => undefined);
});
afterEach(async () => {
  reportProgressAtGate = false;
  releaseJobs();
  for (const s of servers.splice(0)) await s.close();
  calls.length = 0;
});
afterAll(async () => {
  await thread.close();
  vi.restoreAllMocks();
});

function expectRoomOutput(output: unknown): void {
  const payload = (output as { output: Payload }).output;
  expect(Object.keys(output as object)).toEqual(["output"]);
  expect(payload.image_size).toEqual([800, 533]);
  expect(Object.keys(payload.results)).toEqual(["wall", "door", "window"]);
  expect(payload.results.wall!.instance_count).toBe(7);
  expect(payload.results.door!.instance_count).toBe(1);
  expect(payload.results.window!.instance_count).toBe(2);
  expect(payload.results.door!.masks_base64[0]!.startsWith("iVBORw0KGgo")).toBe(true);
}

describe("extensions through the engine thread", () => {
  it("mask_format, max_instances and return_overlay reach the engine and shape the output", async () => {
    const { origin } = await serve();
    const res = await post(`${origin}/v2/local/runsync`, { input: { ...roomInput, mask_format: "rle", max_instances: 2, return_overlay: true } });
    const payload = (res.json.output as { output: { results: Record<string, Record<string, unknown>>; overlay_base64: string } }).output;
    expect(Object.keys(payload.results.wall!)).toEqual(["instance_count", "masks_rle", "scores", "boxes"]);
    expect(payload.results.wall!.instance_count).toBe(2);
    expect((payload.results.wall!.masks_rle as { size: number[] }[])[0]!.size).toEqual([533, 800]);
    expect(Buffer.from(payload.overlay_base64, "base64").subarray(0, 3)).toEqual(Buffer.from([0xff, 0xd8, 0xff]));
  });
});

describe("progress", () => {
  it("shows a /run job's progress through /status while it runs, and the final output after", async () => {
    const { origin, sdk } = await serve();
    reportProgressAtGate = true;
    holdJobs();
    const { id } = (await sdk.run({ input: roomInput })) as { id: string };
    const during = await http(`${origin}/v2/local/status/${id}`);
    expect(during.json).toMatchObject({ id, status: "IN_PROGRESS", output: { done: 1, total: 3 } });
    releaseJobs();
    const done = await http(`${origin}/v2/local/status-sync/${id}?wait=20000`);
    expect(done.json.status).toBe("COMPLETED");
    expectRoomOutput(done.json.output);
  });

  it("shows no progress for /runsync jobs", async () => {
    const { origin } = await serve();
    reportProgressAtGate = true;
    holdJobs();
    const sync = await post(`${origin}/v2/local/runsync?wait=1000`, { input: roomInput });
    expect(sync.json.status).toBe("IN_PROGRESS");
    expect(sync.json).not.toHaveProperty("output");
    releaseJobs();
  });
});

describe("runpod-sdk against the local server", () => {
  it("runSync returns the completed job with nested output, delayTime and executionTime", async () => {
    const { sdk } = await serve();
    const res = (await sdk.runSync({ input: roomInput }, 30_000)) as unknown as Record<string, unknown>;
    expect(res.status).toBe("COMPLETED");
    expect(res.succeeded).toBe(true);
    expect(res.completed).toBe(true);
    expect(String(res.id)).toMatch(/^sync-[0-9a-f-]{36}$/);
    expect(typeof res.delayTime).toBe("number");
    expect(typeof res.executionTime).toBe("number");
    expect(res.delayTime as number).toBeGreaterThanOrEqual(0);
    expect(res.executionTime as number).toBeGreaterThan(0);
    expectRoomOutput(res.output);
  });

  it("run then status: polls from IN_QUEUE/IN_PROGRESS to COMPLETED", async () => {
    const { sdk } = await serve();
    holdJobs();
    const queued = (await sdk.run({ input: roomInput })) as unknown as Record<string, unknown>;
    expect(Object.keys(queued)).toEqual(expect.arrayContaining(["id", "status"]));
    expect(["IN_QUEUE", "IN_PROGRESS"]).toContain(queued.status);
    const id = String(queued.id);
    expect(id).not.toMatch(/^sync-/);
    const pending = (await sdk.status(id)) as unknown as Record<string, unknown>;
    expect(pending.status).toBe("IN_PROGRESS");
    expect(pending.completed).toBe(false);
    expect(pending.output).toBeUndefined();
    releaseJobs();
    let res: Record<string, unknown> = pending;
    for (let i = 0; i < 200 && res.status !== "COMPLETED"; i++) {
      await new Promise((r) => setTimeout(r, 50));
      res = (await sdk.status(id)) as unknown as Record<string, unknown>;
    }
    expect(res.status).toBe("COMPLETED");
    expect(res.id).toBe(id);
    expect(res.succeeded).toBe(true);
    expect(typeof res.delayTime).toBe("number");
    expect(res.executionTime as number).toBeGreaterThan(0);
    expectRoomOutput(res.output);
    // A job error is COMPLETED too, with output.error (api-contract.md section 2).
    const bad = (await sdk.runSync({ input: { image_base64: room64 } }, 10_000)) as unknown as Record<string, unknown>;
    expect(bad.status).toBe("COMPLETED");
    expect(bad.output).toEqual({ error: expect.stringMatching(/^Invalid input: .*concepts/) });
  });

  it("cancel: a queued job is CANCELLED and never runs; a running one is aborted", async () => {
    const { sdk } = await serve({ concurrency: 1 });
    holdJobs();
    const first = await sdk.run({ input: { ...roomInput, concepts: ["first"] } });
    const second = await sdk.run({ input: { ...roomInput, concepts: ["second"] } });
    expect((await sdk.status(second.id)).status).toBe("IN_QUEUE");
    const cancelled = await sdk.cancel(second.id);
    expect(cancelled).toMatchObject({ id: second.id, status: "CANCELLED" });
    expect((await sdk.status(second.id)).status).toBe("CANCELLED");
    // Cancelling again is harmless.
    expect((await sdk.cancel(second.id)).status).toBe("CANCELLED");

    const third = await sdk.run({ input: { ...roomInput, concepts: ["third"] } });
    const running = await sdk.cancel(first.id);
    expect(running.status).toBe("CANCELLED");
    // The third job starts in the freed slot and completes once released.
    releaseJobs();
    await vi.waitFor(async () => expect((await sdk.status(third.id)).status).toBe("COMPLETED"), { timeout: 10_000, interval: 50 });
    const firstView = (await sdk.status(first.id)) as unknown as Record<string, unknown>;
    expect(firstView.status).toBe("CANCELLED");
    expect(firstView.output).toBeUndefined();
    expect(calls).toEqual(["first", "third"]);
  });

  it("health counts queued, running, completed and failed jobs and workers", async () => {
    const { sdk } = await serve({ concurrency: 1 });
    expect(await sdk.health()).toEqual({
      jobs: { completed: 0, failed: 0, inProgress: 0, inQueue: 0, retried: 0 },
      workers: { idle: 1, running: 0 },
    });
    holdJobs();
    const a = await sdk.run({ input: roomInput });
    await sdk.run({ input: roomInput });
    expect(await sdk.health()).toEqual({
      jobs: { completed: 0, failed: 0, inProgress: 1, inQueue: 1, retried: 0 },
      workers: { idle: 0, running: 1 },
    });
    releaseJobs();
    await vi.waitFor(async () => expect((await sdk.health()).jobs.completed).toBe(2), { timeout: 10_000, interval: 50 });
    expect((await sdk.status(a.id)).status).toBe("COMPLETED");
    expect((await sdk.health()).workers).toEqual({ idle: 1, running: 0 });
  });
});

describe("local server replies", () => {
  it("unknown ids get 404 with a JSON error, on every id route", async () => {
    const { origin, sdk } = await serve();
    for (const [method, path] of [
      ["GET", "/v2/local/status/nope"],
      ["GET", "/v2/local/status-sync/nope?wait=1000"],
      ["POST", "/v2/local/cancel/nope"],
      ["GET", "/v2/local/stream/nope"],
      ["GET", "/status/nope"],
      ["POST", "/status/nope"],
    ] as const) {
      const res = await http(`${origin}${path}`, { method });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.contentType).toBe("application/json");
      expect(res.json).toEqual({ error: expect.stringContaining("nope") });
    }
    await expect(sdk.status("nope")).rejects.toThrow();
    const route = await http(`${origin}/v2/local/nothing-here`);
    expect(route.status).toBe(404);
    expect(route.json.error).toEqual(expect.any(String));
  });

  it("finished jobs expire: runsync ones sooner than run ones, then 404", async () => {
    const { origin, sdk } = await serve({ retainSyncMs: 100, retainAsyncMs: 600 });
    const sync = await sdk.runSync({ input: roomInput }, 10_000);
    const run = await sdk.run({ input: roomInput });
    await vi.waitFor(async () => expect((await sdk.status(run.id)).status).toBe("COMPLETED"), { timeout: 10_000, interval: 20 });
    await vi.waitFor(async () => expect((await http(`${origin}/v2/local/status/${sync.id}`)).status).toBe(404), { timeout: 5_000, interval: 20 });
    expect((await http(`${origin}/v2/local/status/${run.id}`)).status).toBe(200);
    await vi.waitFor(async () => expect((await http(`${origin}/v2/local/status/${run.id}`)).status).toBe(404), { timeout: 5_000, interval: 20 });
  });

  it("a body without an input object gets 400 with a JSON error", async () => {
    const { origin, sdk } = await serve();
    for (const body of [{}, { input: "text" }, { input: null }, [], "not json", ""]) {
      for (const route of ["/v2/local/run", "/v2/local/runsync", "/run", "/runsync"]) {
        const res = await post(`${origin}${route}`, body);
        expect(res.status, `${route} ${JSON.stringify(body)}`).toBe(400);
        expect(res.json.error).toEqual(expect.any(String));
      }
    }
    await expect(sdk.run({} as never)).rejects.toThrow();
    expect(calls).toHaveLength(0);
  });

  it("a full queue gets 429", async () => {
    const { origin, sdk } = await serve({ concurrency: 1, queueLimit: 1 });
    holdJobs();
    const running = await post(`${origin}/v2/local/run`, { input: roomInput });
    const queued = await post(`${origin}/v2/local/run`, { input: roomInput });
    expect([running.status, queued.status]).toEqual([200, 200]);
    const full = await post(`${origin}/v2/local/run`, { input: roomInput });
    expect(full.status).toBe(429);
    expect(full.json.error).toMatch(/queue is full/);
    const fullSync = await post(`${origin}/v2/local/runsync?wait=1000`, { input: roomInput });
    expect(fullSync.status).toBe(429);
    await expect(sdk.run({ input: roomInput })).rejects.toThrow();
    releaseJobs();
    await vi.waitFor(async () => expect((await sdk.status(String(queued.json.id))).status).toBe("COMPLETED"), { timeout: 10_000, interval: 50 });
    expect((await post(`${origin}/v2/local/run`, { input: roomInput })).status).toBe(200);
  });

  it("runsync really waits, and returns a non-terminal status when the job is slower than the wait", async () => {
    const { origin } = await serve();
    holdJobs();
    let started = Date.now();
    // wait=10 is clamped to the 1000 ms minimum.
    const slow = await post(`${origin}/v2/local/runsync?wait=10`, { input: roomInput });
    const waited = Date.now() - started;
    expect(slow.status).toBe(200);
    expect(waited).toBeGreaterThanOrEqual(900);
    expect(waited).toBeLessThan(5_000);
    expect(slow.json).toMatchObject({ id: expect.stringMatching(/^sync-/), status: "IN_PROGRESS" });
    expect(slow.json.output).toBeUndefined();
    const id = String(slow.json.id);
    // status-sync waits too, and returns as soon as the job ends.
    started = Date.now();
    setTimeout(releaseJobs, 300);
    const done = await http(`${origin}/v2/local/status-sync/${id}?wait=20000`);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(done.json).toMatchObject({ id, status: "COMPLETED" });
    expectRoomOutput(done.json.output);
    // A finished job answers status-sync at once.
    started = Date.now();
    expect((await http(`${origin}/v2/local/status-sync/${id}?wait=20000`)).json.status).toBe("COMPLETED");
    expect(Date.now() - started).toBeLessThan(900);
  });

  it("serves runpod-python's bare dev routes: POST /run, POST /runsync, GET and POST /status/<id>", async () => {
    const { origin } = await serve();
    const sync = await post(`${origin}/runsync`, { input: roomInput });
    expect(sync.status).toBe(200);
    expect(sync.json).toMatchObject({ status: "COMPLETED", id: expect.any(String) });
    expectRoomOutput(sync.json.output);

    const run = await post(`${origin}/run`, { input: roomInput });
    expect(run.status).toBe(200);
    const id = String(run.json.id);
    await vi.waitFor(async () => expect((await http(`${origin}/status/${id}`)).json.status).toBe("COMPLETED"), { timeout: 10_000, interval: 50 });
    const viaGet = await http(`${origin}/status/${id}`);
    const viaPost = await http(`${origin}/status/${id}`, { method: "POST" });
    expect(viaPost.json).toEqual(viaGet.json);
    expect(viaGet.json).toMatchObject({ id, status: "COMPLETED", delayTime: expect.any(Number), executionTime: expect.any(Number) });
    expectRoomOutput(viaGet.json.output);
    expect(lines.join("")).not.toContain(API_KEY);
  });
});
