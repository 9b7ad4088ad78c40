/**
 * The heartbeat (runpod-worker.md section 7; runpod-python rp_ping): a first ping at once, then
 * one every interval, carrying the in-flight job ids and the protocol version. It runs on the main
 * thread, which never runs inference (the engine has its own thread), so a busy model cannot
 * starve it. Runs only with RUNPOD_AI_API_KEY, RUNPOD_POD_ID and RUNPOD_WEBHOOK_PING all set.
 */
import type { Logger } from "../logger.js";
import { addQuery } from "./urls.js";
import { backoffDelay, sleep } from "./backoff.js";
import { RUNPOD_PROTOCOL_VERSION, platformRequest } from "./platform-http.js";

export interface HeartbeatSettings {
  /** The filled ping URL. */
  readonly url: string;
  readonly apiKey: string;
  readonly intervalMs: number;
  readonly jobIds: () => readonly string[];
  readonly log: Logger;
}

const RETRY_STATUSES = new Set([429, 500, 502, 503, 504]);
/** runpod-python's backoff factor of 1 s between ping retries, with jitter. */
const PING_RETRY_BACKOFF = { baseMs: 1_000, capMs: 4_000 };

export class Heartbeat {
  private readonly stopped = new AbortController();
  private loop: Promise<void> | undefined;
  private failures = 0;

  constructor(private readonly settings: HeartbeatSettings) {}

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { intervalMs } = this.settings;
    while (!this.stopped.signal.aborted) {
      await this.ping();
      await sleep(intervalMs, this.stopped.signal);
    }
  }

  /**
   * One ping, retried up to 3 times on 429 and 5xx with backoff (runpod-python retries those 3
   * times). Only a 2xx counts as delivered; anything else (401 from a wrong key, 404 from a wrong
   * URL, a network error, 5xx to the end) is counted and logged, never thrown.
   */
  private async ping(): Promise<void> {
    const ids = this.settings.jobIds();
    const url = addQuery(this.settings.url, { ...(ids.length > 0 ? { job_id: ids.join(",") } : {}), runpod_version: RUNPOD_PROTOCOL_VERSION });
    let reason = "";
    for (let attempt = 0; attempt < 4; attempt++) {
      try {
        const res = await platformRequest({
          method: "GET",
          url,
          apiKey: this.settings.apiKey,
          timeoutMs: this.settings.intervalMs * 2,
          signal: this.stopped.signal,
        });
        if (res.status >= 200 && res.status < 300) {
          if (this.failures > 0) this.settings.log.info(`heartbeat restored after ${this.failures} failed ping(s)`);
          this.failures = 0;
          return;
        }
        reason = `HTTP ${res.status}`;
        if (!RETRY_STATUSES.has(res.status)) break;
      } catch (err) {
        if (this.stopped.signal.aborted) return;
        reason = (err as Error).message;
        break;
      }
      if (attempt < 3) await sleep(backoffDelay(attempt, PING_RETRY_BACKOFF), this.stopped.signal);
    }
    if (this.stopped.signal.aborted) return;
    this.failures++;
    // Logged on the first failure and then sparsely, so an outage does not flood the log.
    if (this.failures === 1 || this.failures % 30 === 0) this.settings.log.warn(`heartbeat ping failed (${this.failures} in a row): ${reason}`);
  }
}
