/**
 * A fake Runpod worker platform for tests: a real HTTP server on 127.0.0.1 with the routes a
 * worker calls (runpod-worker.md sections 4-8) under /v2/<endpoint>/:
 *   GET  job-take/<pod>            one job (JSON object) or 204
 *   GET  job-take-batch/<pod>      up to batch_size jobs (JSON array) or 204
 *   POST job-done/<pod>/<job id>   the result
 *   GET  ping/<pod>                the heartbeat
 *   GET  job-stop/<pod>            {"jobsToStop": [...]} or 204
 * Every request is recorded (method, path, query, headers, parsed body, arrival time). Each route's
 * reply can be scripted; by default takes hand out queued jobs (holding the poll for a while when
 * there are none, like the real long poll), posts and pings answer 200, and stop polls hand out
 * the ids given to stopJobs().
 */
import { EventEmitter } from "node:events";
import { createServer } from "node:http";
import type { IncomingHttpHeaders, ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export type RouteKind = "take" | "take-batch" | "done" | "ping" | "stop" | "other";

export interface RecordedRequest {
  readonly kind: RouteKind;
  readonly method: string;
  /** Path without the query. */
  readonly path: string;
  /** Decoded query parameters. */
  readonly query: Readonly<Record<string, string>>;
  /** The raw query string, "?..." or "". */
  readonly search: string;
  readonly headers: IncomingHttpHeaders;
  readonly rawBody: string;
  /** The body parsed as JSON (whatever the content type says), or undefined. */
  readonly body: unknown;
  /** The pod id segment of the path. */
  readonly podId?: string;
  /** For job-done: the job id segment of the path. */
  readonly jobId?: string;
  /** Date.now() when the request arrived. */
  readonly at: number;
}

export type Reply =
  | { readonly status: number; readonly json?: unknown; readonly text?: string; readonly contentType?: string; readonly delayMs?: number }
  /** Close the connection without a reply: the client sees a network error. */
  | { readonly destroy: true }
  /** Never answer (until the server closes). */
  | { readonly hang: true };

export type Responder = (req: RecordedRequest, fake: FakeRunpod) => Reply | Promise<Reply>;

export interface FakeRunpodOptions {
  readonly endpoint?: string;
  readonly take?: Responder;
  readonly done?: Responder;
  readonly ping?: Responder;
  readonly stop?: Responder;
  /** How long an empty take or stop poll is held before 204 (default 100 ms). */
  readonly holdMs?: number;
}

export const DEFAULT_POD_ID = "pod-test-1";
export const DEFAULT_API_KEY = "rpa_TESTKEY_5f0c2d9e1b7a4c3d";

export class FakeRunpod {
  readonly requests: RecordedRequest[] = [];
  readonly endpoint: string;
  origin = "";
  private readonly jobs: unknown[] = [];
  private readonly stopIds: string[] = [];
  private readonly changed = new EventEmitter();
  private readonly sockets = new Set<Socket>();
  private server = createServer();

  constructor(private readonly options: FakeRunpodOptions = {}) {
    this.endpoint = options.endpoint ?? "test-endpoint";
    this.changed.setMaxListeners(0);
  }

  static async start(options: FakeRunpodOptions = {}): Promise<FakeRunpod> {
    const fake = new FakeRunpod(options);
    await fake.listen();
    return fake;
  }

  private async listen(): Promise<void> {
    this.server.on("request", (req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const url = new URL(req.url ?? "/", "http://fake");
        const rawBody = Buffer.concat(chunks).toString("utf8");
        let body: unknown;
        try {
          body = rawBody ? JSON.parse(rawBody) : undefined;
        } catch {
          body = undefined;
        }
        const parts = url.pathname.split("/").filter(Boolean);
        const route = parts[0] === "v2" ? parts[2] : undefined;
        const kind: RouteKind =
          route === "job-take" ? "take" : route === "job-take-batch" ? "take-batch" : route === "job-done" ? "done" : route === "ping" ? "ping" : route === "job-stop" ? "stop" : "other";
        const recorded: RecordedRequest = {
          kind,
          method: req.method ?? "GET",
          path: url.pathname,
          query: Object.fromEntries(url.searchParams),
          search: url.search,
          headers: req.headers,
          rawBody,
          body,
          ...(parts[3] !== undefined ? { podId: decodeURIComponent(parts[3]) } : {}),
          ...(kind === "done" && parts[4] !== undefined ? { jobId: decodeURIComponent(parts[4]) } : {}),
          at: Date.now(),
        };
        this.requests.push(recorded);
        this.changed.emit("change");
        void this.reply(recorded).then(
          (reply) => this.send(res, reply),
          (err: unknown) => this.send(res, { status: 500, text: String(err) }),
        );
      });
    });
    this.server.on("connection", (socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(0, "127.0.0.1", () => resolve());
    });
    this.origin = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  private reply(req: RecordedRequest): Promise<Reply> {
    const custom = { take: this.options.take, "take-batch": this.options.take, done: this.options.done, ping: this.options.ping, stop: this.options.stop, other: undefined }[req.kind];
    if (custom) return Promise.resolve(custom(req, this));
    switch (req.kind) {
      case "take":
      case "take-batch":
        return this.defaultTake(req);
      case "stop":
        return this.defaultStop();
      case "done":
      case "ping":
        return Promise.resolve({ status: 200, json: {} });
      default:
        return Promise.resolve({ status: 404, text: "not found" });
    }
  }

  private send(res: ServerResponse, reply: Reply): void {
    if ("hang" in reply) return;
    if ("destroy" in reply) {
      res.socket?.destroy();
      return;
    }
    const write = () => {
      if (res.destroyed) return;
      if (reply.json !== undefined) {
        res.writeHead(reply.status, { "content-type": reply.contentType ?? "application/json" }).end(JSON.stringify(reply.json));
      } else if (reply.text !== undefined) {
        res.writeHead(reply.status, { "content-type": reply.contentType ?? "text/plain" }).end(reply.text);
      } else {
        res.writeHead(reply.status).end();
      }
    };
    if (reply.delayMs) setTimeout(write, reply.delayMs);
    else write();
  }

  /** Waits up to `ms` for `ready()` to hold, re-checking whenever a job or stop id is added. */
  private hold(ms: number, ready: () => boolean): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (!ready()) return;
        finish();
      };
      const finish = () => {
        clearTimeout(timer);
        this.changed.off("queue", check);
        resolve();
      };
      const timer = setTimeout(finish, ms);
      this.changed.on("queue", check);
      check();
    });
  }

  /** The default take: queued jobs (one, or up to batch_size on the batch route), else 204 after the hold. */
  async defaultTake(req: RecordedRequest): Promise<Reply> {
    await this.hold(this.options.holdMs ?? 100, () => this.jobs.length > 0);
    if (this.jobs.length === 0) return { status: 204 };
    if (req.kind === "take-batch") {
      const size = Math.max(1, Number(req.query.batch_size ?? 1));
      return { status: 200, json: this.jobs.splice(0, size) };
    }
    return { status: 200, json: this.jobs.shift() };
  }

  /** The default stop poll: the ids given to stopJobs(), else 204 after the hold. */
  async defaultStop(): Promise<Reply> {
    await this.hold(this.options.holdMs ?? 100, () => this.stopIds.length > 0);
    if (this.stopIds.length === 0) return { status: 204 };
    return { status: 200, json: { jobsToStop: this.stopIds.splice(0) } };
  }

  /** Queues jobs for the default take. */
  addJobs(...jobs: unknown[]): void {
    this.jobs.push(...jobs);
    this.changed.emit("queue");
  }

  /** Jobs queued and not yet taken. */
  get queued(): number {
    return this.jobs.length;
  }

  /** The next stop poll answers {"jobsToStop": ids}. */
  stopJobs(...ids: string[]): void {
    this.stopIds.push(...ids);
    this.changed.emit("queue");
  }

  of(kind: RouteKind): RecordedRequest[] {
    return this.requests.filter((r) => r.kind === kind);
  }

  /** Takes of either route. */
  takes(): RecordedRequest[] {
    return this.requests.filter((r) => r.kind === "take" || r.kind === "take-batch");
  }

  /** Result posts (progress updates left out). */
  posts(jobId?: string): RecordedRequest[] {
    return this.of("done").filter((r) => !isProgress(r) && (jobId === undefined || r.jobId === jobId));
  }

  /** Progress updates: posts to job-done with {"status": "IN_PROGRESS", ...}. */
  progress(jobId?: string): RecordedRequest[] {
    return this.of("done").filter((r) => isProgress(r) && (jobId === undefined || r.jobId === jobId));
  }

  /** Resolves once `predicate` holds (checked on every request and every 20 ms); rejects after `timeoutMs`. */
  waitFor(predicate: () => boolean, timeoutMs = 10_000, what = "condition"): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!predicate()) return;
        cleanup();
        resolve();
      };
      const cleanup = () => {
        clearInterval(poll);
        clearTimeout(timer);
        this.changed.off("change", check);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; requests: ${this.requests.length} in all, the last: ${this.requests.slice(-12).map((r) => `${r.method} ${r.path}${r.search}`).join(", ")}`));
      }, timeoutMs);
      const poll = setInterval(check, 20);
      this.changed.on("change", check);
      check();
    });
  }

  /**
   * The worker's environment for this platform, shaped like production URLs (a `?gpu=` query on
   * take, done and ping; runpod-worker.md section 3).
   */
  env(extra: Readonly<Record<string, string>> = {}): Record<string, string> {
    const base = `${this.origin}/v2/${this.endpoint}`;
    return {
      RUNPOD_WEBHOOK_GET_JOB: `${base}/job-take/$RUNPOD_POD_ID?gpu=$RUNPOD_GPU_TYPE_ID`,
      RUNPOD_WEBHOOK_POST_OUTPUT: `${base}/job-done/$RUNPOD_POD_ID/$ID?gpu=$RUNPOD_GPU_TYPE_ID`,
      RUNPOD_WEBHOOK_PING: `${base}/ping/$RUNPOD_POD_ID?gpu=$RUNPOD_GPU_TYPE_ID`,
      RUNPOD_AI_API_KEY: DEFAULT_API_KEY,
      RUNPOD_POD_ID: DEFAULT_POD_ID,
      RUNPOD_GPU_TYPE_ID: "NVIDIA RTX A5000",
      RUNPOD_PING_INTERVAL: "200",
      ...extra,
    };
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Whether a job-done post is a progress update rather than the result. */
export function isProgress(r: RecordedRequest): boolean {
  return (r.body as { status?: unknown } | undefined)?.status === "IN_PROGRESS";
}

/** Resolves after `ms`. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
