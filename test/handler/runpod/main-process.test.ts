/**
 * The real entry point (`node dist/handler/main.js`) in child processes: the worker loop against
 * the fake Runpod platform with SIGTERM during a job (the result is still posted, exit 0) and a
 * second SIGTERM (forced exit), Runpod-shaped JSON logs without the API key, `--rp_serve_api`
 * queried with runpod-sdk, and `--test_input` winning over RUNPOD_WEBHOOK_GET_JOB.
 * Needs `npm run build` first (npm test does it).
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import runpodSdk from "runpod-sdk";
import sharp from "sharp";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { FIXTURES, ROOT } from "../../helpers/engine.js";
import { FakeRunpod } from "../../helpers/fake-runpod.js";

const MAIN = join(ROOT, "dist", "handler", "main.js");
const API_KEY = "rpa_SECRET_Zq8xW3vK7pL2mN9tR4";
const room64 = readFileSync(join(FIXTURES, "room.jpg")).toString("base64");
let heavy64 = "";

interface Child {
  readonly process: ChildProcess;
  readonly stdout: string[];
  readonly stderr: string[];
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first stdout line matching `test`. */
  line(test: (line: string) => boolean, timeoutMs?: number): Promise<string>;
  output(): string;
}

const children: Child[] = [];
const fakes: FakeRunpod[] = [];

/** The environment without the runner's own Runpod or SAM3 settings. */
function cleanEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("RUNPOD_") && !k.startsWith("SAM3_")) env[k] = v;
  return { ...env, SAM3_MODEL_DIR: "models/tiny", SAM3_DEVICE: "cpu", ...extra };
}

function start(args: string[], env: Record<string, string>): Child {
  const child = spawn(process.execPath, [MAIN, ...args], { cwd: ROOT, env: cleanEnv(env), stdio: ["ignore", "pipe", "pipe"] });
  const stdout: string[] = [];
  const stderr: string[] = [];
  let partial = "";
  const listeners = new Set<() => void>();
  child.stdout!.on("data", (chunk: Buffer) => {
    const text = partial + chunk.toString("utf8");
    const parts = text.split("\n");
    partial = parts.pop()!;
    stdout.push(...parts.filter(Boolean));
    for (const l of listeners) l();
  });
  child.stderr!.on("data", (chunk: Buffer) => stderr.push(chunk.toString("utf8")));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  const c: Child = {
    process: child,
    stdout,
    stderr,
    exit,
    output: () => `${stdout.join("\n")}\n${partial}\n${stderr.join("")}`,
    line: (test, timeoutMs = 20_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const found = stdout.find(test);
          if (found === undefined) return;
          done();
          resolve(found);
        };
        const done = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`no matching line within ${timeoutMs} ms; output:\n${c.output()}`));
        }, timeoutMs);
        listeners.add(check);
        void exit.then(() => setTimeout(() => {
          if (!listeners.has(check)) return;
          done();
          reject(new Error(`the process exited without a matching line; output:\n${c.output()}`));
        }, 50));
        check();
      }),
  };
  children.push(c);
  return c;
}

const record = (line: string) => JSON.parse(line) as Record<string, unknown>;
const is = (message: string, requestId?: string) => (line: string) => {
  try {
    const r = record(line);
    return r.message === message && (requestId === undefined || r.requestId === requestId);
  } catch {
    return false;
  }
};

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

beforeAll(async () => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run "npm run build" first`);
  heavy64 = (await sharp({ create: { width: 4000, height: 3000, channels: 3, background: { r: 90, g: 100, b: 110 } } }).jpeg().toBuffer()).toString("base64");
});

afterEach(async () => {
  for (const c of children.splice(0)) {
    if (c.process.exitCode === null && c.process.signalCode === null) c.process.kill("SIGKILL");
    await c.exit;
  }
  for (const f of fakes.splice(0)) await f.close();
});

async function platformWith(jobId: string): Promise<FakeRunpod> {
  const fake = await FakeRunpod.start();
  fakes.push(fake);
  fake.addJobs({ id: jobId, input: { image_base64: heavy64, concepts: ["wall", "door"], confidence_threshold: 0 } });
  return fake;
}

describe("the worker loop in a child process", () => {
  it("on SIGTERM during a job: takes nothing more, still posts the result, exits 0; logs in Runpod's shape without the key", async () => {
    const fake = await platformWith("term-job");
    const child = start([], fake.env({ RUNPOD_AI_API_KEY: API_KEY, RUNPOD_ENDPOINT_ID: "ep-child", SAM3_DRAIN_TIMEOUT_MS: "60000" }));
    await child.line(is("segmenting", "term-job"));
    const termAt = Date.now();
    child.process.kill("SIGTERM");
    const { code, signal } = await child.exit;
    expect({ code, signal }, child.output()).toEqual({ code: 0, signal: null });

    const posts = fake.posts();
    expect(posts.map((p) => p.jobId)).toEqual(["term-job"]);
    expect(posts[0]!.at).toBeGreaterThan(termAt);
    expect(posts[0]!.headers.authorization).toBe(API_KEY);
    const result = posts[0]!.body as { output: { output: { image_size: number[]; results: Record<string, { instance_count: number }> } } };
    expect(result.output.output.image_size).toEqual([4000, 3000]);
    expect(result.output.output.results.wall!.instance_count).toBe(200);
    // At most a take already on its way when the signal landed; none after it.
    expect(fake.takes().filter((t) => t.at > termAt).length).toBeLessThanOrEqual(1);
    expect(fake.takes().filter((t) => t.at > termAt + 1_000)).toHaveLength(0);
    // The heartbeat went on while draining.
    expect(fake.of("ping").some((p) => p.at > termAt && p.query.job_id === "term-job")).toBe(true);

    const records = child.stdout.map(record);
    for (const r of records) {
      expect(typeof r.message).toBe("string");
      expect(["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]).toContain(r.level);
    }
    const job = records.filter((r) => r.requestId === "term-job").map((r) => r.message);
    expect(job).toEqual(expect.arrayContaining(["Started.", "segmenting", "segmented", "Finished."]));
    expect(records.some((r) => String(r.message).startsWith("SIGTERM: no new jobs"))).toBe(true);
    expect(records.at(-1)!.message).toBe("worker stopped (exit code 0)");
    expect(child.output()).not.toContain(API_KEY);
  });

  it("exits at once, non-zero, on a second SIGTERM", async () => {
    const fake = await platformWith("forced-job");
    const child = start([], fake.env({ RUNPOD_AI_API_KEY: API_KEY, RUNPOD_ENDPOINT_ID: "ep-child" }));
    await child.line(is("segmenting", "forced-job"));
    child.process.kill("SIGTERM");
    await child.line((l) => l.includes("SIGTERM: no new jobs"));
    child.process.kill("SIGTERM");
    const { code } = await child.exit;
    expect(code, child.output()).toBe(1);
    expect(fake.posts()).toHaveLength(0);
    expect(child.stdout.some((l) => l.includes("SIGTERM again: exiting now with 1 job(s) unfinished"))).toBe(true);
    expect(child.output()).not.toContain(API_KEY);
  });

  it("runs --test_input as a one-shot even when RUNPOD_WEBHOOK_GET_JOB is set", async () => {
    const fake = await FakeRunpod.start();
    fakes.push(fake);
    const child = start(["--test_input", JSON.stringify({ input: { image_base64: room64, concepts: ["door"] } })], fake.env({ RUNPOD_AI_API_KEY: API_KEY }));
    const { code } = await child.exit;
    expect(code, child.output()).toBe(0);
    expect(child.stdout).toHaveLength(1);
    const doc = record(child.stdout[0]!) as { id: string; status: string; output: { output: { results: { door: { instance_count: number } } } } };
    expect(doc.id).toBe("local_test");
    expect(doc.status).toBe("COMPLETED");
    expect(doc.output.output.results.door.instance_count).toBe(1);
    expect(fake.requests).toHaveLength(0);
    expect(child.output()).not.toContain(API_KEY);
  });
});

describe("--rp_serve_api in a child process", () => {
  it("answers runpod-sdk on the chosen port and exits 0 on SIGTERM", async () => {
    const port = await freePort();
    const child = start(["--rp_serve_api", "--rp_api_port", String(port)], { RUNPOD_AI_API_KEY: API_KEY });
    await child.line((l) => l.includes(`local Runpod API on http://127.0.0.1:${port}/v2/`));
    const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
    try {
      const sdk = runpodSdk("any-key", { baseUrl: `http://127.0.0.1:${port}/v2` }).endpoint("my-endpoint")!;
      const res = (await sdk.runSync({ input: { image_base64: room64, concepts: ["wall", "door", "window"] } }, 30_000)) as unknown as Record<string, unknown>;
      expect(res.status).toBe("COMPLETED");
      const payload = (res.output as { output: { results: Record<string, { instance_count: number }> } }).output;
      expect(Object.fromEntries(Object.entries(payload.results).map(([k, v]) => [k, v.instance_count]))).toEqual({ wall: 7, door: 1, window: 2 });
      expect(typeof res.executionTime).toBe("number");
      expect((await sdk.health()).jobs.completed).toBe(1);
    } finally {
      log.mockRestore();
    }
    child.process.kill("SIGTERM");
    const { code, signal } = await child.exit;
    expect({ code, signal }, child.output()).toEqual({ code: 0, signal: null });
    expect(child.output()).not.toContain(API_KEY);
  });
});
