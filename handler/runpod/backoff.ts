/**
 * Waiting between retries: exponential with jitter up to a cap (runpod-python polls again at once
 * after an error, a hot loop). Sleeps end early when the given signal fires.
 */

export interface BackoffPolicy {
  readonly baseMs: number;
  readonly capMs: number;
  /** 0..1 random source; tests pass a constant. */
  readonly random?: () => number;
}

/** Delay before retry `attempt` (0-based): min(cap, base * 2^attempt), then between half and all of it. */
export function backoffDelay(attempt: number, policy: BackoffPolicy): number {
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling * (0.5 + 0.5 * (policy.random ?? Math.random)()));
}

/** Resolves after `ms`, or at once when `signal` fires (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted || ms <= 0) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
