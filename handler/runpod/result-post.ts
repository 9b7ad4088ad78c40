/**
 * Posting a job's result to the job-done URL (runpod-worker.md section 5) with runpod-python's
 * headers plus X-Request-ID. Retries 5xx, 429 and network errors with backoff (runpod-python
 * retries 5xx only, twice), never other 4xx. Returns whether the platform took it; the caller
 * logs a final failure loudly.
 */
import { addQuery } from "./urls.js";
import { backoffDelay, sleep } from "./backoff.js";
import type { BackoffPolicy } from "./backoff.js";
import { platformRequest } from "./platform-http.js";

export interface PostRequest {
  /** The filled job-done URL for this job. */
  readonly url: string;
  readonly jobId: string;
  readonly body: unknown;
  readonly apiKey?: string;
  /** Attempts in all, the first included. */
  readonly attempts?: number;
  readonly backoff?: BackoffPolicy;
  readonly timeoutMs?: number;
  /** Called before each retry, for logging. */
  readonly onRetry?: (attempt: number, reason: string, delayMs: number) => void;
}

export type PostOutcome = { readonly ok: true; readonly attempts: number } | { readonly ok: false; readonly attempts: number; readonly reason: string };

export const DEFAULT_POST_BACKOFF: BackoffPolicy = { baseMs: 1_000, capMs: 16_000 };

export async function postResult(req: PostRequest): Promise<PostOutcome> {
  const attempts = req.attempts ?? 5;
  const url = addQuery(req.url, { isStream: "false" });
  const body = JSON.stringify(req.body);
  let reason = "";
  for (let attempt = 1; attempt <= attempts; attempt++) {
    let retryable: boolean;
    try {
      const res = await platformRequest({
        method: "POST",
        url,
        ...(req.apiKey ? { apiKey: req.apiKey } : {}),
        // runpod-python's exact headers (its content type is form-encoded although the body is JSON).
        headers: { "content-type": "application/x-www-form-urlencoded", charset: "utf-8", "x-request-id": req.jobId },
        body,
        timeoutMs: req.timeoutMs ?? 60_000,
      });
      if (res.status >= 200 && res.status < 300) return { ok: true, attempts: attempt };
      reason = `HTTP ${res.status}`;
      retryable = res.status >= 500 || res.status === 429;
    } catch (err) {
      const e = err as Error & { code?: string };
      reason = `${e.code ?? e.name}: ${e.message}`;
      retryable = true;
    }
    if (!retryable || attempt === attempts) return { ok: false, attempts: attempt, reason };
    const delay = backoffDelay(attempt - 1, req.backoff ?? DEFAULT_POST_BACKOFF);
    req.onRetry?.(attempt, reason, delay);
    await sleep(delay);
  }
  return { ok: false, attempts, reason };
}
