/**
 * The job-stop channel (runpod-worker.md section 8; runpod-python v1.10+): while jobs run, long
 * polls the take URL with /job-stop/ for {"jobsToStop": [...]} and hands the ids over. A 404 means
 * the platform (or the Hub test harness) has no such route: polling stops for good.
 */
import type { Logger } from "../logger.js";
import { sleep } from "./backoff.js";
import { LONG_POLL_MS } from "./job-take.js";
import { platformRequest } from "./platform-http.js";

/** Shortest cycle after a 200 reply, so a platform that answers at once cannot make us poll hot. */
const MIN_POLL_CYCLE_MS = 250;

export interface StopPollerSettings {
  readonly url: string;
  readonly apiKey?: string;
  readonly log: Logger;
  /** Whether any job is running; the poller idles otherwise. */
  readonly busy: () => boolean;
  readonly onStop: (jobIds: readonly string[]) => void;
  readonly longPollMs?: number;
}

export class StopPoller {
  private readonly stopped = new AbortController();
  private loop: Promise<void> | undefined;
  private supported = true;
  private wakeUp: (() => void) | undefined;

  constructor(private readonly settings: StopPollerSettings) {}

  start(): void {
    this.loop ??= this.run();
  }

  /** Tells an idle poller that a job started. */
  wake(): void {
    this.wakeUp?.();
  }

  async stop(): Promise<void> {
    this.stopped.abort();
    this.wakeUp?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { signal } = this.stopped;
    while (!signal.aborted && this.supported) {
      if (!this.settings.busy()) {
        await new Promise<void>((resolve) => (this.wakeUp = resolve));
        this.wakeUp = undefined;
        continue;
      }
      await sleep(await this.poll(), signal);
    }
  }

  /** One long poll; returns how long to wait before the next. */
  private async poll(): Promise<number> {
    const { log } = this.settings;
    const started = Date.now();
    try {
      const res = await platformRequest({
        method: "GET",
        url: this.settings.url,
        ...(this.settings.apiKey ? { apiKey: this.settings.apiKey } : {}),
        timeoutMs: this.settings.longPollMs ?? LONG_POLL_MS,
        signal: this.stopped.signal,
      });
      if (res.status === 404) {
        this.supported = false;
        log.info("the platform has no job-stop channel (404); not polling it again");
        return 0;
      }
      if (res.status === 429) return 5_000;
      if (res.status !== 200) {
        if (res.status !== 204) log.warn(`job-stop poll answered HTTP ${res.status}`);
        return 1_000;
      }
      const ids = (JSON.parse(res.body) as { jobsToStop?: unknown }).jobsToStop;
      if (Array.isArray(ids)) {
        const valid = ids.filter((id): id is string => typeof id === "string");
        if (valid.length > 0) this.settings.onStop(valid);
      }
      return MIN_POLL_CYCLE_MS - (Date.now() - started);
    } catch (err) {
      const e = err as Error;
      if (!this.stopped.signal.aborted && e.name !== "TimeoutError") log.warn(`job-stop poll failed: ${e.message}`);
      return 1_000;
    }
  }
}
