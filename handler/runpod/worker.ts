/**
 * The deployed worker (runpod-worker.md sections 4-10): take jobs while there is room for them,
 * run each through the job function, post exactly one result per job taken, keep the heartbeat
 * and the job-stop channel going, and drain on SIGTERM/SIGINT.
 *
 * Differences from runpod-python, on purpose: errors back off instead of looping hot; results are
 * retried on network errors and 429 too; a job with an id but no usable input gets an
 * "Invalid input" result instead of being dropped; a drain timeout bounds shutdown; a platform
 * without the batch take route (404) gets single takes.
 */
import { jobLimits } from "../config.js";
import type { WorkerConfig } from "../config.js";
import type { EngineClient } from "../engine-client.js";
import { JobCancelledError, runSegmentationJob } from "../job.js";
import type { JobOutcome } from "../job.js";
import type { Logger } from "../logger.js";
import { jobLogger } from "../logger.js";
import { backoffDelay, sleep } from "./backoff.js";
import type { BackoffPolicy } from "./backoff.js";
import { Heartbeat } from "./heartbeat.js";
import { takeJobs } from "./job-take.js";
import type { RunpodJob } from "./job-take.js";
import { DEFAULT_POST_BACKOFF, postResult } from "./result-post.js";
import { StopPoller } from "./stop-poller.js";
import { fillTemplate, jobStopUrl } from "./urls.js";

export interface WorkerOptions {
  readonly config: WorkerConfig;
  readonly engine: EngineClient;
  readonly log: Logger;
  /** Backoff after failed takes; tests shorten it. */
  readonly takeBackoff?: BackoffPolicy;
  readonly postBackoff?: BackoffPolicy;
  /** Exits the process at once (second signal, drain timeout). */
  readonly forceExit?: (code: number) => void;
}

/** Shortest cycle after an empty take, so a platform that answers at once cannot make us loop hot. */
const MIN_EMPTY_TAKE_CYCLE_MS = 250;
const THROTTLED_WAIT_MS = 5_000;
const DEFAULT_TAKE_BACKOFF: BackoffPolicy = { baseMs: 1_000, capMs: 30_000 };

interface Running {
  readonly controller: AbortController;
  readonly done: Promise<void>;
  /** The job's logger: every line about the job carries its id. */
  readonly log: Logger;
}

/** The body posted for an outcome: the contract's nested shape, never a top-level "error". */
export function resultBody(outcome: JobOutcome, stopPod: boolean): Record<string, unknown> {
  const output = "output" in outcome ? { output: outcome.output } : { error: outcome.error };
  return stopPod ? { output, stopPod: true } : { output };
}

/** /runsync jobs have ids starting with "sync-"; their callers see only the final answer. */
export const isSyncJob = (id: string) => id.startsWith("sync-");

/**
 * Progress for /run jobs (runpod-python's progress_update): after each concept but the last,
 * {"status": "IN_PROGRESS", "output": {"done": k, "total": n}} to the job-done URL, so /status
 * shows it while the job runs. Posts go out one after another, once, and never block the job.
 */
function progressReporter(jobId: string, url: string, apiKey: string | undefined, log: Logger) {
  if (isSyncJob(jobId)) return undefined;
  let chain = Promise.resolve();
  return {
    report: (done: number, total: number) => {
      if (done >= total) return;
      chain = chain.then(async () => {
        const posted = await postResult({ url, jobId, body: { status: "IN_PROGRESS", output: { done, total } }, ...(apiKey ? { apiKey } : {}), attempts: 1 });
        if (!posted.ok) log.debug(`progress update ${done}/${total} not delivered: ${posted.reason}`);
      });
    },
    settled: () => chain,
  };
}

export class RunpodWorker {
  private readonly running = new Map<string, Running>();
  private readonly stopping = new AbortController();
  private jobFinished: (() => void) | undefined;
  private exitCode = 0;
  private fatal: Error | undefined;
  private heartbeat: Heartbeat | undefined;
  private stopPoller: StopPoller | undefined;
  private drainTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: WorkerOptions) {}

  /** Ids of the jobs in progress. */
  get inFlight(): string[] {
    return [...this.running.keys()];
  }

  /** Stops taking jobs after the current take; in-flight jobs finish and post. A second call forces exit. */
  shutdown(reason: string): void {
    const { log, config } = this.options;
    if (this.stopping.signal.aborted) {
      log.warn(`${reason} again: exiting now with ${this.running.size} job(s) unfinished`);
      this.forceExit(1);
      return;
    }
    log.info(`${reason}: no new jobs; waiting for ${this.running.size} job(s) in progress (drain timeout ${config.drainTimeoutMs} ms)`);
    this.stopping.abort();
    this.jobFinished?.();
    this.drainTimer = setTimeout(() => {
      log.error(`drain timeout after ${config.drainTimeoutMs} ms: exiting with ${this.running.size} job(s) unfinished`);
      this.forceExit(1);
    }, config.drainTimeoutMs).unref();
  }

  /** Called when the engine cannot go on (its thread died): stop taking, mark results stopPod, exit 1. */
  engineFailed(err: Error): void {
    if (this.fatal) return;
    this.fatal = err;
    this.exitCode = 1;
    this.options.log.error(`engine failed, this worker will stop: ${err.message}`);
    if (!this.stopping.signal.aborted) this.shutdown("engine failure");
  }

  /** Runs until shut down and drained; resolves with the exit code. */
  async run(): Promise<number> {
    const { config, log } = this.options;
    const rp = config.runpod;
    if (!rp.getJobUrl || !rp.postOutputUrl) throw new Error("RUNPOD_WEBHOOK_GET_JOB and RUNPOD_WEBHOOK_POST_OUTPUT must both be set for the worker loop");
    const urlContext = { workerId: rp.workerId, ...(rp.gpuTypeId ? { gpuTypeId: rp.gpuTypeId } : {}) };
    const takeUrl = fillTemplate(rp.getJobUrl, urlContext, rp.workerId);
    const postTemplate = rp.postOutputUrl;
    log.info(`worker ${rp.workerId} starting: concurrency ${config.concurrency}`);

    if (rp.apiKey && rp.pingUrl && rp.podId) {
      this.heartbeat = new Heartbeat({
        url: fillTemplate(rp.pingUrl, urlContext, rp.workerId),
        apiKey: rp.apiKey,
        intervalMs: Math.max(100, rp.pingIntervalMs),
        jobIds: () => this.inFlight,
        log,
      });
      this.heartbeat.start();
    }
    const stopUrl = jobStopUrl(takeUrl);
    if (stopUrl) {
      this.stopPoller = new StopPoller({
        url: stopUrl,
        ...(rp.apiKey ? { apiKey: rp.apiKey } : {}),
        log,
        busy: () => this.running.size > 0,
        onStop: (ids) => this.stopJobs(ids),
      });
      this.stopPoller.start();
    }

    let failures = 0;
    // Cleared when the platform has no /job-take-batch/ route (404): single takes from then on.
    let batchTake = true;
    const signal = this.stopping.signal;
    while (!signal.aborted) {
      const room = config.concurrency - this.running.size;
      if (room <= 0) {
        await new Promise<void>((resolve) => (this.jobFinished = resolve));
        continue;
      }
      const takeStarted = Date.now();
      // Not aborted by shutdown: the platform may already have assigned the job this take returns.
      const taken = await takeJobs({ url: takeUrl, count: batchTake ? room : 1, inProgress: this.running.size > 0, ...(rp.apiKey ? { apiKey: rp.apiKey } : {}) });
      switch (taken.kind) {
        case "jobs": {
          failures = 0;
          if (taken.dropped > 0) log.error(`dropped ${taken.dropped} job(s) without an id from the take reply: they cannot be answered`);
          let started = 0;
          for (const job of taken.jobs) if (this.start(job, postTemplate, urlContext)) started++;
          // Nothing to run (only id-less jobs or duplicates): no reason to ask again at once.
          if (started === 0) await sleep(MIN_EMPTY_TAKE_CYCLE_MS - (Date.now() - takeStarted), signal);
          break;
        }
        case "none":
          failures = 0;
          await sleep(MIN_EMPTY_TAKE_CYCLE_MS - (Date.now() - takeStarted), signal);
          break;
        case "throttled":
          log.warn(`job take throttled (HTTP 429): waiting ${THROTTLED_WAIT_MS} ms`);
          await sleep(THROTTLED_WAIT_MS, signal);
          break;
        case "error": {
          if (taken.batch && taken.status === 404) {
            batchTake = false;
            log.warn("the platform has no batch job-take route (HTTP 404): taking one job at a time");
            break;
          }
          const delay = backoffDelay(failures++, this.options.takeBackoff ?? DEFAULT_TAKE_BACKOFF);
          log.warn(`failed to get a job (${taken.reason}); retrying in ${delay} ms`);
          await sleep(delay, signal);
          break;
        }
      }
    }

    while (this.running.size > 0) await Promise.all([...this.running.values()].map((r) => r.done));
    await Promise.all([this.heartbeat?.stop(), this.stopPoller?.stop()]);
    await this.options.engine.close();
    // Drained in time: the drain timeout must not force an exit later.
    clearTimeout(this.drainTimer);
    log.info(`worker stopped (exit code ${this.exitCode})`);
    return this.exitCode;
  }

  /** Starts a job; false when it is a duplicate of one still running. */
  private start(job: RunpodJob, postTemplate: string, urlContext: { workerId: string; gpuTypeId?: string }): boolean {
    const { config, log: rootLog, engine } = this.options;
    const log = jobLogger(rootLog, job.id);
    if (this.running.has(job.id)) {
      log.error("job taken twice while still running; ignoring the second copy");
      return false;
    }
    const controller = new AbortController();
    const done = (async () => {
      log.info("Started.");
      try {
        const doneUrl = fillTemplate(postTemplate, urlContext, job.id);
        const progress = progressReporter(job.id, doneUrl, config.runpod.apiKey, log);
        const outcome = await runSegmentationJob(job.input, {
          engine,
          limits: jobLimits(config),
          log,
          signal: controller.signal,
          ...(progress ? { onProgress: progress.report } : {}),
        });
        // A progress post must never land after the result.
        await progress?.settled();
        const posted = await postResult({
          url: doneUrl,
          jobId: job.id,
          body: resultBody(outcome, this.fatal !== undefined),
          ...(config.runpod.apiKey ? { apiKey: config.runpod.apiKey } : {}),
          backoff: this.options.postBackoff ?? DEFAULT_POST_BACKOFF,
          onRetry: (attempt, reason, delay) => log.warn(`posting the result failed (attempt ${attempt}: ${reason}); retrying in ${delay} ms`),
        });
        if (posted.ok) log.info("Finished.");
        else log.error(`RESULT LOST: could not post the result of job ${job.id} after ${posted.attempts} attempt(s): ${posted.reason}`);
      } catch (err) {
        if (err instanceof JobCancelledError) log.info("job stopped by the platform: nothing posted");
        else log.error({ err }, `job ${job.id} failed outside the job function`);
      } finally {
        this.running.delete(job.id);
        this.jobFinished?.();
      }
    })();
    this.running.set(job.id, { controller, done, log });
    this.stopPoller?.wake();
    return true;
  }

  private stopJobs(ids: readonly string[]): void {
    for (const id of ids) {
      const job = this.running.get(id);
      if (!job) continue;
      job.log.info(`stop signal for job ${id}: cancelling`);
      job.controller.abort(new Error("stopped by the platform"));
    }
  }

  private forceExit(code: number): void {
    (this.options.forceExit ?? ((c: number) => process.exit(c)))(code);
  }
}
