/**
 * RunpodWorker against a fake Runpod platform (a real HTTP server on 127.0.0.1): taking jobs,
 * posting results with runpod-python's headers, backoff, heartbeat, the job-stop channel,
 * concurrency, drain and engine failure (runpod-worker.md sections 4-10). Jobs run on the tiny
 * model in the engine thread, as in production.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { Writable } from "node:stream";
import sharp from "sharp";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { loadConfig } from "../../../handler/config.js";
import type { EngineClient } from "../../../handler/engine-client.js";
import { threadEngine } from "../../../handler/engine-thread-client.js";
import type { ThreadEngineClient } from "../../../handler/engine-thread-client.js";
import { createLogger } from "../../../handler/logger.js";
import { RUNPOD_PROTOCOL_VERSION } from "../../../handler/runpod/platform-http.js";
import { RunpodWorker } from "../../../handler/runpod/worker.js";
import type { WorkerOptions } from "../../../handler/runpod/worker.js";
import { EngineError } from "../../../engine/errors.js";
import type { SegmentRequest, SegmentResult } from "../../../engine/segmenter.js";
import { FIXTURES, TINY_DIR, tinySettings } from "../../helpers/engine.js";
import { DEFAULT_API_KEY, DEFAULT_POD_ID, FakeRunpod, delay, isProgress } from "../../helpers/fake-runpod.js";
import type { FakeRunpodOptions, RecordedRequest } from "../../helpers/fake-runpod.js";

const room64 = readFileSync(join(FIXTURES, "room.jpg")).toString("base64");
/** A big plain image: with threshold 0 every query is kept, so the engine thread encodes 3 x 200 full-size masks (seconds of CPU). */
let heavy64 = "";
let shared: ThreadEngineClient;

const roomJob = (id: string) => ({ id, input: { image_base64: room64, concepts: ["wall", "door", "window"] } });
const heavyJob = (id: string) => ({ id, input: { image_base64: heavy64, concepts: ["wall", "door", "window"], confidence_threshold: 0 } });

/** Counts engine calls running at once. */
const load = { active: 0, max: 0, calls: 0 };

/** The shared engine thread behind a client whose close() is a no-op (each worker closes its engine on exit). */
function engineWith(opts: { delayMs?: number; segment?: (req: SegmentRequest) => Promise<SegmentResult> } = {}): EngineClient {
  return {
    ready: shared.ready,
    async segment(req) {
      load.calls++;
      load.active++;
      load.max = Math.max(load.max, load.active);
      try {
        if (opts.segment) return await opts.segment(req);
        if (opts.delayMs) await abortableDelay(opts.delayMs, req.signal);
        return await shared.segment(req);
      } finally {
        load.active--;
      }
    },
    close: async () => undefined,
  };
}

function abortableDelay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => (clearTimeout(timer), reject(new EngineError("ABORTED", "job was cancelled"))), { once: true });
  });
}

interface Harness {
  readonly worker: RunpodWorker;
  readonly run: Promise<number>;
  readonly lines: string[];
  readonly forceExit: ReturnType<typeof vi.fn>;
  /** Log records, parsed. */
  records(): Record<string, unknown>[];
  /** Messages of the log records. */
  messages(): string[];
  settled(): boolean;
  stop(): Promise<number>;
}

const harnesses: Harness[] = [];
const fakes: FakeRunpod[] = [];
const cleanups: (() => void)[] = [];

async function fake(options: FakeRunpodOptions = {}): Promise<FakeRunpod> {
  const f = await FakeRunpod.start(options);
  fakes.push(f);
  return f;
}

function startWorker(platform: FakeRunpod | undefined, env: Record<string, string> = {}, options: Partial<WorkerOptions> = {}): Harness {
  const config = loadConfig({
    ...(platform ? platform.env() : {}),
    SAM3_MODEL_DIR: TINY_DIR,
    SAM3_DEVICE: "cpu",
    SAM3_CONCURRENCY: "1",
    SAM3_DRAIN_TIMEOUT_MS: "20000",
    ...env,
  });
  const lines: string[] = [];
  const log = createLogger({
    level: "debug",
    runpodFormat: config.runpod.endpointId !== undefined,
    secrets: config.runpod.apiKey ? [config.runpod.apiKey] : [],
    destination: new Writable({ write: (chunk, _e, cb) => (lines.push(...String(chunk).split("\n").filter(Boolean)), cb()) }),
  });
  const forceExit = vi.fn();
  const worker = new RunpodWorker({
    config,
    engine: engineWith(),
    log,
    takeBackoff: { baseMs: 50, capMs: 200 },
    postBackoff: { baseMs: 20, capMs: 80 },
    forceExit,
    ...options,
  });
  let done = false;
  const run = worker.run();
  void run.then(
    () => (done = true),
    () => (done = true),
  );
  const records = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  const h: Harness = {
    worker,
    run,
    lines,
    forceExit,
    records,
    messages: () => records().map((r) => String(r.msg ?? r.message)),
    settled: () => done,
    stop: () => {
      if (!done) worker.shutdown("test over");
      return run;
    },
  };
  harnesses.push(h);
  return h;
}

beforeAll(async () => {
  shared = threadEngine(tinySettings());
  const heavy = await sharp({ create: { width: 4000, height: 3000, channels: 3, background: { r: 120, g: 130, b: 140 } } }).jpeg().toBuffer();
  heavy64 = heavy.toString("base64");
  await shared.ready;
});

afterEach(async () => {
  for (const c of cleanups.splice(0)) c();
  for (const h of harnesses.splice(0)) if (!h.settled()) await h.stop();
  for (const f of fakes.splice(0)) await f.close();
  load.active = 0;
  load.max = 0;
  load.calls = 0;
});

afterAll(async () => {
  await shared.close();
});

function body(r: RecordedRequest): Record<string, unknown> {
  return r.body as Record<string, unknown>;
}

describe("taking a job and posting its result", () => {
  it("sends runpod-python's headers and query on take and post, and posts {output: {output: payload}}", async () => {
    const platform = await fake();
    platform.addJobs({ ...roomJob("job-1"), webhook: "https://example.invalid/hook", delayTime: 12, retries: 0, status: "IN_QUEUE" });
    const h = startWorker(platform);
    await platform.waitFor(() => platform.posts("job-1").length > 0, 15_000, "the result");
    expect(await h.stop()).toBe(0);

    const take = platform.takes()[0]!;
    expect(take.kind).toBe("take");
    expect(take.method).toBe("GET");
    expect(take.path).toBe(`/v2/test-endpoint/job-take/${DEFAULT_POD_ID}`);
    // The template's own ?gpu= (with the GPU type substituted) stays; job_in_progress is joined with &.
    expect(take.search).toBe("?gpu=NVIDIA%20RTX%20A5000&job_in_progress=0");
    expect(take.query).toEqual({ gpu: "NVIDIA RTX A5000", job_in_progress: "0" });
    expect(take.headers.authorization).toBe(DEFAULT_API_KEY); // raw, no "Bearer"
    expect(take.headers["content-type"]).toBe("application/json");
    expect(take.headers["user-agent"]).toMatch(/runpod-python\/1\.12\.0/);

    const posts = platform.posts();
    expect(posts).toHaveLength(1);
    const post = posts[0]!;
    expect(post.method).toBe("POST");
    expect(post.path).toBe(`/v2/test-endpoint/job-done/${DEFAULT_POD_ID}/job-1`);
    expect(post.search).toBe("?gpu=NVIDIA%20RTX%20A5000&isStream=false");
    expect(post.headers.authorization).toBe(DEFAULT_API_KEY);
    expect(post.headers["x-request-id"]).toBe("job-1");
    expect(post.headers["content-type"]).toBe("application/x-www-form-urlencoded");
    expect(post.headers.charset).toBe("utf-8");
    expect(Number(post.headers["content-length"])).toBe(Buffer.byteLength(post.rawBody));

    const b = body(post);
    expect(Object.keys(b)).toEqual(["output"]);
    const output = b.output as Record<string, unknown>;
    expect(Object.keys(output)).toEqual(["output"]);
    const payload = output.output as { image_size: number[]; results: Record<string, { instance_count: number; masks_base64: string[]; scores: number[] }> };
    expect(payload.image_size).toEqual([800, 533]);
    expect(Object.keys(payload.results)).toEqual(["wall", "door", "window"]);
    expect(payload.results.wall!.instance_count).toBe(7);
    expect(payload.results.door!.instance_count).toBe(1);
    expect(payload.results.window!.instance_count).toBe(2);
    for (const r of Object.values(payload.results)) {
      expect(r.masks_base64).toHaveLength(r.instance_count);
      expect(r.scores).toHaveLength(r.instance_count);
      for (const m of r.masks_base64) expect(m.startsWith("iVBORw0KGgo")).toBe(true);
    }
    expect(h.messages()).toEqual(expect.arrayContaining(["Started.", "Finished."]));

    // A /run job reports progress after each concept but the last, before the result, with the result's headers.
    const progress = platform.progress("job-1");
    expect(progress.map(body)).toEqual([
      { status: "IN_PROGRESS", output: { done: 1, total: 3 } },
      { status: "IN_PROGRESS", output: { done: 2, total: 3 } },
    ]);
    for (const p of progress) {
      expect(p.at).toBeLessThanOrEqual(post.at);
      expect(p.search).toBe("?gpu=NVIDIA%20RTX%20A5000&isStream=false");
      expect(p.headers["x-request-id"]).toBe("job-1");
    }
  });

  it("sends no progress for /runsync jobs (ids sync-...) and none for a one-concept job", async () => {
    const platform = await fake();
    platform.addJobs(roomJob("sync-abc"), { id: "one", input: { image_base64: room64, concepts: ["door"] } });
    const h = startWorker(platform);
    await platform.waitFor(() => platform.posts("one").length > 0, 15_000, "both results");
    await h.stop();
    expect(platform.posts().map((p) => p.jobId)).toEqual(["sync-abc", "one"]);
    expect(platform.progress()).toEqual([]);
  });

  it("works with the test harness's template shape (no query on the take URL, $RUNPOD_GPU_TYPE_ID left when unset)", async () => {
    const platform = await fake();
    const base = `${platform.origin}/v2/IDE`;
    platform.addJobs(roomJob("job-sls"));
    const h = startWorker(platform, {
      RUNPOD_WEBHOOK_GET_JOB: `${base}/job-take/$RUNPOD_POD_ID`,
      RUNPOD_WEBHOOK_POST_OUTPUT: `${base}/job-done/$RUNPOD_POD_ID/$ID?gpu=$RUNPOD_GPU_TYPE_ID`,
      RUNPOD_GPU_TYPE_ID: "",
      RUNPOD_WEBHOOK_PING: "",
      RUNPOD_AI_API_KEY: "",
    });
    await platform.waitFor(() => platform.posts().length > 0, 15_000, "the result");
    await h.stop();
    const take = platform.takes()[0]!;
    expect(take.search).toBe("?job_in_progress=0");
    expect(take.headers.authorization).toBeUndefined();
    const post = platform.posts()[0]!;
    expect(post.path).toBe(`/v2/IDE/job-done/${DEFAULT_POD_ID}/job-sls`);
    expect(post.search).toBe("?gpu=$RUNPOD_GPU_TYPE_ID&isStream=false");
    expect(post.headers.authorization).toBeUndefined();
    expect(platform.of("ping")).toHaveLength(0); // no ping URL (and no key): no heartbeat
  });

  it("answers failing jobs with {output: {error}}, never a top-level error", async () => {
    const platform = await fake();
    platform.addJobs(
      { id: "bad-concepts", input: { image_base64: room64 } },
      // A private address without SAM3_ALLOW_PRIVATE_URLS: refused before any connection.
      { id: "bad-url", input: { image_url: "http://127.0.0.1:9/x.jpg", concepts: ["wall"] } },
    );
    const h = startWorker(platform);
    await platform.waitFor(() => platform.posts().length >= 2, 15_000, "two results");
    await h.stop();
    const byId = Object.fromEntries(platform.posts().map((p) => [p.jobId, body(p)]));
    expect(Object.keys(byId["bad-concepts"]!)).toEqual(["output"]);
    expect(byId["bad-concepts"]).toEqual({ output: { error: expect.stringMatching(/^Invalid input: .*concepts/) } });
    expect(byId["bad-url"]).toEqual({ output: { error: expect.stringMatching(/^Failed to download image/) } });
  });

  it("drops a job without an id and answers a job with an id but no input with an Invalid input result", async () => {
    const platform = await fake();
    platform.addJobs({ input: { image_base64: room64, concepts: ["wall"] } }, { id: "", input: {} }, { id: "no-input" }, roomJob("after"));
    const h = startWorker(platform);
    await platform.waitFor(() => platform.posts("after").length > 0, 15_000, "the last result");
    await delay(200);
    await h.stop();
    expect(platform.posts().map((p) => p.jobId)).toEqual(["no-input", "after"]);
    expect(body(platform.posts("no-input")[0]!)).toEqual({ output: { error: expect.stringMatching(/^Invalid input/) } });
    expect(h.messages().filter((m) => m.includes("dropped 1 job(s) without an id"))).toHaveLength(2);
  });
});

describe("take replies without a job", () => {
  it("treats 204, 400, an empty 200 and replies without a usable job as no job, and polls again without a hot loop", async () => {
    const replies = [
      { status: 204 },
      { status: 400, text: "FlashBoot" },
      { status: 200, text: "" },
      { status: 200, text: "<html></html>", contentType: "text/html" },
      { status: 200, json: [] },
      { status: 200, json: null },
      // A job without an id cannot be answered: dropped, and no reason to ask again at once.
      { status: 200, json: { input: { concepts: ["wall"] } } },
    ];
    const platforms = await Promise.all(replies.map((r) => fake({ take: () => r })));
    const workers = platforms.map((p) => startWorker(p));
    const started = Date.now();
    await delay(1_500);
    const elapsed = Date.now() - started;
    await Promise.all(workers.map((w) => w.stop()));
    for (const p of platforms) {
      const takes = p.takes().length;
      // The platform answers at once; the worker keeps a minimum cycle (250 ms), so a few polls, not thousands.
      expect(takes).toBeGreaterThanOrEqual(3);
      expect(takes).toBeLessThanOrEqual(Math.ceil(elapsed / 250) + 3);
      expect(p.posts()).toHaveLength(0);
    }
    for (const w of workers) expect(w.messages().filter((m) => m.includes("failed to get a job"))).toHaveLength(0);
  });

  it("waits after a 429 before asking again, and a shutdown cuts the wait short", async () => {
    const platform = await fake({ take: () => ({ status: 429, json: { error: "slow down" } }) });
    const h = startWorker(platform);
    await delay(1_000);
    expect(platform.takes()).toHaveLength(1);
    expect(h.messages().some((m) => m.includes("throttled"))).toBe(true);
    const stopping = Date.now();
    expect(await h.stop()).toBe(0);
    expect(Date.now() - stopping).toBeLessThan(2_000);
  });
});

describe("failed takes", () => {
  async function closedPort(): Promise<number> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return port;
  }

  it("backs off exponentially when the take URL cannot be reached, and keeps running", async () => {
    const port = await closedPort();
    const platform = await fake();
    const h = startWorker(platform, { RUNPOD_WEBHOOK_GET_JOB: `http://127.0.0.1:${port}/v2/ep/job-take/$RUNPOD_POD_ID` }, { takeBackoff: { baseMs: 100, capMs: 400, random: () => 1 } });
    await delay(1_500);
    expect(h.settled()).toBe(false); // no crash
    const failures = h.messages().filter((m) => m.startsWith("failed to get a job"));
    // Connection refused is instant: a hot loop would log thousands of these.
    expect(failures.length).toBeGreaterThanOrEqual(3);
    expect(failures.length).toBeLessThanOrEqual(10);
    const delays = failures.map((m) => Number(/retrying in (\d+) ms/.exec(m)?.[1]));
    expect(delays.slice(0, 4)).toEqual([100, 200, 400, 400]);
    expect(failures[0]).toMatch(/ECONNREFUSED/);
    expect(await h.stop()).toBe(0);
  });

  it("backs off on 5xx and network errors, spacing the requests, then takes the job and resets", async () => {
    let n = 0;
    const platform = await fake({
      take: (req, f) => {
        n++;
        if (n === 1 || n === 3) return { status: 500, text: "boom" };
        if (n === 2) return { destroy: true };
        return f.defaultTake(req);
      },
    });
    platform.addJobs(roomJob("after-errors"));
    const h = startWorker(platform, {}, { takeBackoff: { baseMs: 100, capMs: 1_000, random: () => 1 } });
    await platform.waitFor(() => platform.posts("after-errors").length > 0, 15_000, "the result");
    await h.stop();
    const at = platform.takes().map((t) => t.at);
    // Waits of 100, 200 and 400 ms after the three failures (never shorter; generous on the upper side).
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(90);
    expect(at[2]! - at[1]!).toBeGreaterThanOrEqual(190);
    expect(at[3]! - at[2]!).toBeGreaterThanOrEqual(390);
    expect(h.messages().filter((m) => m.startsWith("failed to get a job"))).toHaveLength(3);
  });
});

describe("posting results", () => {
  it("retries 5xx, 429 and network errors, then succeeds with the same body", async () => {
    let n = 0;
    const platform = await fake({
      done: (req) => {
        if (isProgress(req)) return { status: 200, json: {} };
        n++;
        if (n === 1) return { status: 503, text: "busy" };
        if (n === 2) return { status: 429 };
        if (n === 3) return { destroy: true };
        return { status: 200, json: {} };
      },
    });
    platform.addJobs(roomJob("retried"));
    const h = startWorker(platform);
    await platform.waitFor(() => n >= 4, 15_000, "four posts");
    await h.stop();
    const posts = platform.posts("retried");
    expect(posts).toHaveLength(4);
    expect(new Set(posts.map((p) => p.rawBody)).size).toBe(1);
    for (const p of posts) expect(p.headers["x-request-id"]).toBe("retried");
    expect(h.messages().filter((m) => m.startsWith("posting the result failed"))).toHaveLength(3);
    expect(h.messages()).toContain("Finished.");
    expect(h.messages().some((m) => m.includes("RESULT LOST"))).toBe(false);
  });

  it("never retries other 4xx, gives up on endless 5xx after a bounded number of attempts, and says so loudly with the job id", async () => {
    const platform = await fake({
      done: (req) => (isProgress(req) ? { status: 200, json: {} } : req.jobId === "rejected" ? { status: 400, text: "bad" } : { status: 500, text: "down" }),
    });
    platform.addJobs(roomJob("rejected"), roomJob("unlucky"), roomJob("third"));
    const h = startWorker(platform);
    await platform.waitFor(() => platform.posts("third").length >= 5, 15_000, "the last job's attempts");
    await delay(200);
    await h.stop();
    expect(platform.posts("rejected")).toHaveLength(1);
    expect(platform.posts("unlucky")).toHaveLength(5);
    const lost = h.records().filter((r) => String(r.msg).includes("RESULT LOST"));
    expect(lost.map((r) => r.jobId)).toEqual(["rejected", "unlucky", "third"]);
    expect(String(lost[0]!.msg)).toContain("job rejected");
    expect(lost.every((r) => r.level === 50)).toBe(true);
    // The worker went on taking jobs after each loss.
    expect(platform.queued).toBe(0);
  });
});

describe("heartbeat", () => {
  it("pings at the interval with the in-flight job id while the engine is busy for seconds", async () => {
    const platform = await fake();
    const startedAt = Date.now();
    const h = startWorker(platform);
    await platform.waitFor(() => platform.of("ping").length >= 2, 5_000, "idle pings");
    // The first ping goes out at once, not after an interval.
    expect(platform.of("ping")[0]!.at - startedAt).toBeLessThan(1_000);
    const addedAt = Date.now();
    platform.addJobs(heavyJob("heavy"));
    await platform.waitFor(() => platform.posts("heavy").length > 0, 30_000, "the heavy result");
    await delay(600);
    await h.stop();

    const pings = platform.of("ping");
    const idle = pings[0]!;
    expect(idle.path).toBe(`/v2/test-endpoint/ping/${DEFAULT_POD_ID}`);
    expect(idle.query).toEqual({ gpu: "NVIDIA RTX A5000", runpod_version: RUNPOD_PROTOCOL_VERSION });
    expect(idle.headers.authorization).toBe(DEFAULT_API_KEY);

    const postedAt = platform.posts("heavy")[0]!.at;
    // Concurrency 1: the last take before the post handed out the job (it may have been held open before the job was added).
    const takenAt = Math.max(addedAt, platform.takes().filter((t) => t.at < postedAt).at(-1)!.at);
    const during = pings.filter((p) => p.at > takenAt + 100 && p.at < postedAt);
    const withId = during.filter((p) => p.query.job_id === "heavy");
    const result = body(platform.posts("heavy")[0]!) as { output: { output: { results: { wall: { instance_count: number } } } } };
    expect(result.output.output.results.wall.instance_count).toBe(200);
    // The job kept the engine thread busy for a while; pings kept coming at about the interval.
    const busyMs = postedAt - takenAt;
    expect(busyMs, "the heavy job must keep the engine busy for a while; make it heavier if the engine got faster").toBeGreaterThan(600);
    expect(withId.length).toBeGreaterThanOrEqual(Math.max(3, Math.floor(busyMs / 600)));
    expect(withId.length).toBe(during.length);
    for (const p of withId) expect(p.query.runpod_version).toBe(RUNPOD_PROTOCOL_VERSION);
    const gaps = withId.slice(1).map((p, i) => p.at - withId[i]!.at);
    expect(Math.max(...gaps)).toBeLessThan(1_500);
    // Idle again after the post.
    const after = pings.filter((p) => p.at > postedAt + 300);
    expect(after.length).toBeGreaterThan(0);
    expect(after.every((p) => p.query.job_id === undefined)).toBe(true);
  });
});

describe("heartbeat failures", () => {
  it("counts a 401 as a failed ping, says so once, and says when pings get through again", async () => {
    let refuse = true;
    const platform = await fake({ ping: () => (refuse ? { status: 401, text: "bad key" } : { status: 200, json: {} }) });
    const h = startWorker(platform);
    await platform.waitFor(() => platform.of("ping").length >= 3, 5_000, "three refused pings");
    refuse = false;
    await platform.waitFor(() => h.messages().some((m) => m.startsWith("heartbeat restored")), 5_000, "a restored heartbeat");
    await h.stop();
    const failed = h.messages().filter((m) => m.startsWith("heartbeat ping failed"));
    expect(failed).toEqual(["heartbeat ping failed (1 in a row): HTTP 401"]);
    // Every refused ping was counted (a 401 is not retried: one request each).
    const restored = h.messages().find((m) => m.startsWith("heartbeat restored"))!;
    expect(Number(/after (\d+) failed/.exec(restored)![1])).toBeGreaterThanOrEqual(3);
  });
});

describe("the job-stop channel", () => {
  it("aborts a running job through its signal, posts nothing for it, and goes on to the next job", async () => {
    const platform = await fake();
    platform.addJobs(heavyJob("doomed"), roomJob("next"));
    const h = startWorker(platform, { RUNPOD_ENDPOINT_ID: "ep-1" });
    await vi.waitFor(() => expect(load.active).toBe(1), { timeout: 10_000, interval: 5 });
    const stopAt = Date.now();
    platform.stopJobs("doomed");
    await platform.waitFor(() => platform.posts("next").length > 0, 15_000, "the next job's result");
    await h.stop();

    expect(platform.posts("doomed")).toHaveLength(0);
    expect(platform.posts().map((p) => p.jobId)).toEqual(["next"]);
    const stops = platform.of("stop");
    expect(stops.length).toBeGreaterThan(0);
    expect(stops[0]!.path).toBe(`/v2/test-endpoint/job-stop/${DEFAULT_POD_ID}`);
    expect(stops[0]!.query).toEqual({ gpu: "NVIDIA RTX A5000" }); // query kept, no job_in_progress
    expect(stops[0]!.headers.authorization).toBe(DEFAULT_API_KEY);
    // The abort reached the engine thread: the next job was taken long before the heavy one could have finished.
    const nextTake = platform.takes().find((t) => t.at > stopAt)!;
    expect(nextTake.query.job_in_progress).toBe("0");
    const records = h.records();
    const stopped = records.find((r) => r.message === "job stopped by the platform: nothing posted")!;
    expect(stopped.requestId).toBe("doomed");
    // Every line about the stopped job carries its id as requestId.
    for (const r of records.filter((r) => JSON.stringify(r).includes("doomed"))) expect(r.requestId).toBe("doomed");
  });

  it("stops polling for good after a 404", async () => {
    const platform = await fake({ stop: () => ({ status: 404, text: "no such route" }) });
    platform.addJobs(roomJob("a"), roomJob("b"));
    const h = startWorker(platform);
    await platform.waitFor(() => platform.posts("b").length > 0, 15_000, "both results");
    await delay(300);
    await h.stop();
    expect(platform.of("stop")).toHaveLength(1);
    expect(h.messages().filter((m) => m.includes("no job-stop channel"))).toHaveLength(1);
  });

  it("does not poll hot when job-stop answers at once with no jobs", async () => {
    const platform = await fake({ stop: () => ({ status: 200, json: { jobsToStop: [] } }) });
    platform.addJobs(roomJob("slow"));
    const h = startWorker(platform, {}, { engine: engineWith({ delayMs: 1_500 }) });
    await platform.waitFor(() => platform.posts("slow").length > 0, 15_000, "the result");
    await h.stop();
    const post = platform.posts("slow")[0]!;
    const first = platform.of("stop")[0]!;
    const during = platform.of("stop").filter((s) => s.at < post.at);
    expect(during.length).toBeGreaterThanOrEqual(2);
    expect(during.length).toBeLessThanOrEqual(Math.ceil((post.at - first.at) / 250) + 2);
  });
});

describe("concurrency", () => {
  it("with 2, takes two jobs at once (batch take) and gives every taken job exactly one result", async () => {
    const platform = await fake();
    const ids = ["c1", "c2", "c3", "c4", "c5"];
    platform.addJobs(...ids.map(roomJob));
    const h = startWorker(platform, { SAM3_CONCURRENCY: "2" }, { engine: engineWith({ delayMs: 400 }) });
    await platform.waitFor(() => platform.posts().length >= ids.length, 20_000, "five results");
    await delay(300);
    await h.stop();

    const first = platform.takes()[0]!;
    expect(first.kind).toBe("take-batch");
    expect(first.path).toBe(`/v2/test-endpoint/job-take-batch/${DEFAULT_POD_ID}`);
    expect(first.query).toEqual({ gpu: "NVIDIA RTX A5000", batch_size: "2", job_in_progress: "0" });
    expect(load.max).toBe(2);
    // With one slot left while a job runs: a single take, flagged in progress.
    expect(platform.takes().some((t) => t.kind === "take" && t.query.job_in_progress === "1")).toBe(true);
    expect(platform.takes().every((t) => t.kind === "take" || t.query.job_in_progress === "0")).toBe(true);
    const posted = platform.posts().map((p) => p.jobId!);
    expect([...posted].sort()).toEqual(ids);
    expect(platform.of("ping").some((p) => (p.query.job_id ?? "").split(",").length === 2)).toBe(true);
  });

  it("falls back to single takes when the platform has no batch route (404)", async () => {
    const platform = await fake({ take: (req, f) => (req.kind === "take-batch" ? { status: 404, text: "404 page not found" } : f.defaultTake(req)) });
    platform.addJobs(roomJob("s1"), roomJob("s2"), roomJob("s3"));
    const h = startWorker(platform, { SAM3_CONCURRENCY: "2" }, { engine: engineWith({ delayMs: 300 }) });
    await platform.waitFor(() => platform.posts().length >= 3, 10_000, "three results");
    await h.stop();
    expect(platform.of("take-batch")).toHaveLength(1);
    expect(platform.takes()[1]!.kind).toBe("take");
    expect(h.messages().filter((m) => m.includes("no batch job-take route"))).toHaveLength(1);
    expect(load.max).toBe(2);
    expect([...platform.posts().map((p) => p.jobId!)].sort()).toEqual(["s1", "s2", "s3"]);
  });
});

describe("shutdown", () => {
  it("stops taking, lets the running job finish and post, resolves 0, and forces nothing afterwards", async () => {
    const platform = await fake();
    platform.addJobs(roomJob("draining"), roomJob("never-taken"));
    const h = startWorker(platform, { SAM3_DRAIN_TIMEOUT_MS: "1200" }, { engine: engineWith({ delayMs: 500 }) });
    await vi.waitFor(() => expect(load.active).toBe(1), { timeout: 10_000, interval: 10 });
    const at = Date.now();
    h.worker.shutdown("SIGTERM");
    expect(await h.run).toBe(0);
    expect(platform.posts("draining")).toHaveLength(1);
    expect(platform.takes().filter((t) => t.at > at)).toHaveLength(0);
    expect(platform.queued).toBe(1);
    expect(h.messages().some((m) => m.startsWith("SIGTERM: no new jobs"))).toBe(true);
    // The drain finished in time: its timeout must not fire later.
    await delay(Math.max(0, at + 1_500 - Date.now()));
    expect(h.forceExit).not.toHaveBeenCalled();
  });

  it("forces exit when the drain timeout passes, and at once on a second signal", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    cleanups.push(() => release());
    const stuck = engineWith({ segment: async (req) => (await gate, shared.segment(req)) });

    const p1 = await fake();
    p1.addJobs(roomJob("stuck-1"));
    const timedOut = startWorker(p1, { SAM3_DRAIN_TIMEOUT_MS: "300" }, { engine: stuck });
    const p2 = await fake();
    p2.addJobs(roomJob("stuck-2"));
    const twice = startWorker(p2, {}, { engine: stuck });
    await vi.waitFor(() => expect(load.active).toBe(2), { timeout: 10_000, interval: 10 });

    timedOut.worker.shutdown("SIGTERM");
    expect(timedOut.forceExit).not.toHaveBeenCalled();
    await vi.waitFor(() => expect(timedOut.forceExit).toHaveBeenCalledWith(1), { timeout: 5_000, interval: 20 });
    expect(timedOut.messages().some((m) => m.startsWith("drain timeout after 300 ms"))).toBe(true);

    twice.worker.shutdown("SIGTERM");
    expect(twice.forceExit).not.toHaveBeenCalled();
    twice.worker.shutdown("SIGTERM");
    expect(twice.forceExit).toHaveBeenCalledWith(1);
    release();
  });

  it("after an engine failure: marks the result stopPod, takes nothing more, and resolves 1", async () => {
    const platform = await fake();
    platform.addJobs(roomJob("fatal"), roomJob("untouched"));
    let worker: RunpodWorker | undefined;
    const broken = engineWith({
      segment: async () => {
        const err = new EngineError("INFERENCE", "the engine thread stopped: exit code 1");
        worker!.engineFailed(err);
        throw err;
      },
    });
    const h = startWorker(platform, { SAM3_DRAIN_TIMEOUT_MS: "500" }, { engine: broken });
    worker = h.worker;
    expect(await h.run).toBe(1);
    expect(platform.posts().map((p) => p.jobId)).toEqual(["fatal"]);
    expect(body(platform.posts("fatal")[0]!)).toEqual({ output: { error: "Segmentation failed: the engine thread stopped: exit code 1" }, stopPod: true });
    expect(platform.queued).toBe(1);
    await delay(700);
    expect(h.forceExit).not.toHaveBeenCalled();
  });
});

describe("a model that cannot load", () => {
  it("keeps the worker up and answers every job with the start-up error (a missing model file)", async () => {
    const platform = await fake();
    platform.addJobs(roomJob("first"), roomJob("second"));
    const empty = mkdtempSync(join(tmpdir(), "sam3-empty-"));
    cleanups.push(() => rmSync(empty, { recursive: true, force: true }));
    let worker: RunpodWorker | undefined;
    const broken = threadEngine(tinySettings({ modelDir: empty }), (err) => worker?.engineFailed(err));
    cleanups.push(() => void broken.close());
    const h = startWorker(platform, {}, { engine: broken });
    worker = h.worker;
    await platform.waitFor(() => platform.posts("second").length > 0, 15_000, "both results");
    await delay(300); // the thread stays up: no engine failure follows
    expect(h.settled()).toBe(false);
    for (const id of ["first", "second"]) expect(body(platform.posts(id)[0]!)).toEqual({ output: { error: "Model file not found: vision-encoder.onnx" } });
    expect(await h.stop()).toBe(0);
  });
});

describe("logs", () => {
  it("in Runpod's shape: JSON lines with requestId, message and level; the job id on every line of a job; never the API key", async () => {
    const platform = await fake();
    platform.addJobs(roomJob("logged"), { id: "logged-bad", input: { image_base64: room64, concepts: [] } });
    const h = startWorker(platform, { RUNPOD_ENDPOINT_ID: "ep-1", RUNPOD_LOG_LEVEL: "DEBUG" }, { postBackoff: { baseMs: 10, capMs: 10 } });
    await platform.waitFor(() => platform.posts("logged-bad").length > 0, 15_000, "both results");
    await vi.waitFor(() => expect(h.messages().filter((m) => m === "Finished.")).toHaveLength(2), { timeout: 5_000, interval: 10 });
    await h.stop();
    const records = h.records();
    expect(records.length).toBeGreaterThan(5);
    for (const r of records) {
      expect(typeof r.message).toBe("string");
      expect(["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]).toContain(r.level);
      expect(r.msg).toBeUndefined();
    }
    for (const id of ["logged", "logged-bad"]) {
      const mine = records.filter((r) => r.requestId === id);
      expect(mine.map((r) => r.message)).toEqual(expect.arrayContaining(["Started.", "Finished."]));
      const started = records.indexOf(mine[0]!);
      const finished = records.indexOf(mine.at(-1)!);
      // Concurrency 1: every line between a job's first and last line is that job's.
      for (const r of records.slice(started, finished + 1)) {
        if (String(r.message).startsWith("heartbeat")) continue;
        expect(r.requestId, JSON.stringify(r)).toBe(id);
      }
    }
    expect(h.lines.join("\n")).not.toContain(DEFAULT_API_KEY);
  });
});
