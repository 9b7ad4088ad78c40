/**
 * The local Runpod-compatible API server (`--rp_serve_api`; runpod-worker.md sections 13-14):
 * the public routes under /v2/<any endpoint id>/ (run, runsync, status, status-sync, cancel,
 * health, purge-queue, stream) with real long polls, plus runpod-python's bare dev routes (/run,
 * /runsync, /status/<id>), so `runpodSdk(key, { baseUrl: "http://127.0.0.1:8000/v2" })` works
 * against it. One bounded FIFO queue, SAM3_CONCURRENCY jobs at a time, results kept for a while.
 */
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { jobLimits } from "../config.js";
import type { WorkerConfig } from "../config.js";
import type { EngineClient } from "../engine-client.js";
import { JobCancelledError, runSegmentationJob } from "../job.js";
import type { Logger } from "../logger.js";
import { jobLogger } from "../logger.js";
import { resultBody } from "./worker.js";

export type JobStatus = "IN_QUEUE" | "IN_PROGRESS" | "COMPLETED" | "FAILED" | "CANCELLED";
const TERMINAL: ReadonlySet<JobStatus> = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

interface LocalJob {
  readonly id: string;
  readonly input: unknown;
  readonly sync: boolean;
  readonly createdAt: number;
  status: JobStatus;
  startedAt?: number;
  finishedAt?: number;
  output?: unknown;
  error?: string;
  readonly controller: AbortController;
  readonly waiters: Set<() => void>;
}

export interface LocalServerOptions {
  readonly host: string;
  readonly port: number;
  readonly config: WorkerConfig;
  readonly engine: EngineClient;
  readonly log: Logger;
  /** Jobs waiting to start before /run and /runsync answer 429. */
  readonly queueLimit?: number;
  /** How long finished jobs stay readable: /runsync ones and /run ones (Runpod: 1 min and 30 min). */
  readonly retainSyncMs?: number;
  readonly retainAsyncMs?: number;
}

const RUN_BODY_LIMIT = 10 * 1024 * 1024;
const RUNSYNC_BODY_LIMIT = 20 * 1024 * 1024;
const DEFAULT_WAIT_MS = 90_000;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function clampWait(raw: string | null): number {
  const n = raw === null ? DEFAULT_WAIT_MS : Number(raw);
  if (!Number.isFinite(n)) return DEFAULT_WAIT_MS;
  return Math.min(300_000, Math.max(1_000, Math.round(n)));
}

async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > limit) throw new HttpError(413, `request body is over the limit of ${limit} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new HttpError(413, `request body is over the limit of ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8") || "null");
  } catch {
    throw new HttpError(400, "request body is not valid JSON");
  }
}

export class LocalApiServer {
  private readonly jobs = new Map<string, LocalJob>();
  private readonly queue: LocalJob[] = [];
  private running = 0;
  private readonly executing = new Set<Promise<void>>();
  private counters = { completed: 0, failed: 0 };
  private server: Server | undefined;

  constructor(private readonly options: LocalServerOptions) {}

  async start(): Promise<number> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        const status = err instanceof HttpError ? err.status : 500;
        if (status === 500) this.options.log.error({ err }, "local API server error");
        this.send(res, status, { error: (err as Error).message });
      });
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.options.port, this.options.host, resolve);
    });
    const port = (server.address() as AddressInfo).port;
    this.options.log.info(`local Runpod API on http://${this.options.host}:${port}/v2/<endpoint id>/ (run, runsync, status, status-sync, cancel, health)`);
    return port;
  }

  /** Stops accepting requests, cancels queued jobs and waits for running ones to finish. */
  async close(): Promise<void> {
    for (const job of this.queue.splice(0)) this.finish(job, "CANCELLED");
    await new Promise<void>((resolve) => {
      this.server?.close(() => resolve());
      this.server?.closeAllConnections();
    });
    await Promise.allSettled([...this.executing]);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://local");
    // /v2/<endpoint>/<route>[/<id>] or runpod-python's bare /<route>[/<id>].
    const parts = url.pathname.split("/").filter(Boolean);
    const [route, id] = parts[0] === "v2" ? [parts[2], parts[3]] : [parts[0], parts[1]];
    const method = req.method ?? "GET";
    const wait = clampWait(url.searchParams.get("wait"));

    if (route === "run" && method === "POST" && !id) return this.send(res, 200, this.view(this.enqueue(await readJson(req, RUN_BODY_LIMIT), false)));
    if (route === "runsync" && method === "POST" && !id) {
      const job = this.enqueue(await readJson(req, RUNSYNC_BODY_LIMIT), true);
      await this.waitFor(job, wait, res);
      return this.send(res, 200, this.view(job));
    }
    if ((route === "status" || route === "status-sync") && id && (method === "GET" || method === "POST")) {
      const job = this.find(id);
      if (route === "status-sync") await this.waitFor(job, wait, res);
      return this.send(res, 200, this.view(job));
    }
    if (route === "cancel" && id && method === "POST") return this.send(res, 200, this.view(this.cancel(this.find(id))));
    if (route === "stream" && id && method === "GET") {
      const job = this.find(id);
      return this.send(res, 200, { status: job.status, stream: [] });
    }
    if (route === "health" && method === "GET") return this.send(res, 200, this.health());
    if (route === "purge-queue" && method === "POST") {
      const removed = this.queue.splice(0);
      for (const job of removed) this.finish(job, "CANCELLED");
      return this.send(res, 200, { removed: removed.length, status: "completed" });
    }
    throw new HttpError(404, `no route ${method} ${url.pathname}`);
  }

  private enqueue(body: unknown, sync: boolean): LocalJob {
    if (typeof body !== "object" || body === null || Array.isArray(body) || typeof (body as { input?: unknown }).input !== "object" || (body as { input: unknown }).input === null) {
      throw new HttpError(400, 'request body must be a JSON object with an "input" object');
    }
    const limit = this.options.queueLimit ?? 100;
    if (this.queue.length >= limit) throw new HttpError(429, `the queue is full (${limit} jobs waiting); retry later`);
    const job: LocalJob = {
      id: `${sync ? "sync-" : ""}${randomUUID()}`,
      input: (body as { input: unknown }).input,
      sync,
      createdAt: Date.now(),
      status: "IN_QUEUE",
      controller: new AbortController(),
      waiters: new Set(),
    };
    this.jobs.set(job.id, job);
    this.queue.push(job);
    this.pump();
    return job;
  }

  private pump(): void {
    while (this.running < this.options.config.concurrency && this.queue.length > 0) {
      const job = this.queue.shift()!;
      this.running++;
      const run: Promise<void> = this.execute(job).finally(() => {
        this.running--;
        this.executing.delete(run);
        this.pump();
      });
      this.executing.add(run);
    }
  }

  private async execute(job: LocalJob): Promise<void> {
    const { config, engine, log } = this.options;
    job.status = "IN_PROGRESS";
    job.startedAt = Date.now();
    try {
      const outcome = await runSegmentationJob(job.input, {
        engine,
        limits: jobLimits(config),
        log: jobLogger(log, job.id),
        signal: job.controller.signal,
        // As the platform shows a /run job's progress updates: IN_PROGRESS with {done, total}.
        ...(job.sync ? {} : { onProgress: (done: number, total: number) => void (job.status === "IN_PROGRESS" && (job.output = { done, total })) }),
      });
      // Cancelled while the engine finished anyway: the job stays CANCELLED, without an output.
      if (TERMINAL.has(job.status)) return;
      // What the platform stores from a posted {"output": X} body: the job's output is X.
      job.output = resultBody(outcome, false).output;
      this.finish(job, "COMPLETED");
    } catch (err) {
      if (err instanceof JobCancelledError) return; // already CANCELLED
      job.error = (err as Error).message;
      this.finish(job, "FAILED");
    }
  }

  private cancel(job: LocalJob): LocalJob {
    if (TERMINAL.has(job.status)) return job;
    const queued = this.queue.indexOf(job);
    if (queued >= 0) this.queue.splice(queued, 1);
    job.controller.abort(new Error("cancelled through the API"));
    this.finish(job, "CANCELLED");
    return job;
  }

  private finish(job: LocalJob, status: JobStatus): void {
    if (TERMINAL.has(job.status)) return;
    job.status = status;
    job.finishedAt = Date.now();
    if (status === "COMPLETED") this.counters.completed++;
    if (status === "FAILED") this.counters.failed++;
    for (const wake of job.waiters) wake();
    job.waiters.clear();
    const retain = job.sync ? (this.options.retainSyncMs ?? 60_000) : (this.options.retainAsyncMs ?? 30 * 60_000);
    setTimeout(() => this.jobs.delete(job.id), retain).unref();
  }

  private find(id: string): LocalJob {
    const job = this.jobs.get(id);
    if (!job) throw new HttpError(404, `job ${id} not found (unknown or expired)`);
    return job;
  }

  /**
   * Resolves when the job ends, `ms` pass, or the client goes away. The response's close is the
   * signal: the request's own close fires as soon as its body has been read.
   */
  private waitFor(job: LocalJob, ms: number, res: ServerResponse): Promise<void> {
    if (TERMINAL.has(job.status)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        job.waiters.delete(done);
        res.off("close", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      job.waiters.add(done);
      res.once("close", done);
    });
  }

  private view(job: LocalJob): Record<string, unknown> {
    const view: Record<string, unknown> = { id: job.id, status: job.status };
    if (job.startedAt !== undefined) view.delayTime = job.startedAt - job.createdAt;
    if (job.finishedAt !== undefined && job.startedAt !== undefined) view.executionTime = job.finishedAt - job.startedAt;
    if (job.output !== undefined) view.output = job.output;
    if (job.error !== undefined) view.error = job.error;
    view.workerId = this.options.config.runpod.workerId;
    return view;
  }

  private health(): Record<string, unknown> {
    return {
      jobs: { completed: this.counters.completed, failed: this.counters.failed, inProgress: this.running, inQueue: this.queue.length, retried: 0 },
      workers: { idle: Math.max(0, this.options.config.concurrency - this.running), running: this.running },
    };
  }

  private send(res: ServerResponse, status: number, body: unknown): void {
    if (res.headersSent || res.destroyed) return;
    const text = JSON.stringify(body);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
    res.end(text);
  }
}
