/**
 * Taking jobs (runpod-worker.md section 4; runpod-python rp_job.get_job): a long poll bounded at
 * 90 s. 204 and 400 mean no job, 429 asks us to wait, a JSON object is one job and a JSON array
 * a batch. A job object without an id cannot be answered and is dropped (and logged by the caller).
 */
import { addQuery, batchTakeUrl } from "./urls.js";
import { platformRequest } from "./platform-http.js";

export interface RunpodJob {
  readonly id: string;
  readonly input?: unknown;
  readonly [key: string]: unknown;
}

export type TakeResult =
  | { readonly kind: "jobs"; readonly jobs: RunpodJob[]; readonly dropped: number }
  | { readonly kind: "none" }
  | { readonly kind: "throttled" }
  /** `status`: the HTTP status of a non-2xx reply; `batch`: whether the batch route was asked. */
  | { readonly kind: "error"; readonly reason: string; readonly status?: number; readonly batch?: boolean };

export interface TakeRequest {
  /** The filled job-take URL. */
  readonly url: string;
  /** How many jobs this worker can start now; more than 1 uses the batch route when there is one. */
  readonly count: number;
  readonly inProgress: boolean;
  readonly apiKey?: string;
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export const LONG_POLL_MS = 90_000;

function asJob(value: unknown): RunpodJob | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const id = (value as { id?: unknown }).id;
  if ((typeof id !== "string" || id === "") && typeof id !== "number") return undefined;
  return { ...(value as object), id: String(id) } as RunpodJob;
}

export async function takeJobs(req: TakeRequest): Promise<TakeResult> {
  const batch = req.count > 1 ? batchTakeUrl(req.url) : undefined;
  const url = batch
    ? addQuery(batch, { batch_size: req.count, job_in_progress: req.inProgress ? 1 : 0 })
    : addQuery(req.url, { job_in_progress: req.inProgress ? 1 : 0 });
  let res;
  try {
    res = await platformRequest({
      method: "GET",
      url,
      ...(req.apiKey ? { apiKey: req.apiKey } : {}),
      timeoutMs: req.timeoutMs ?? LONG_POLL_MS,
      ...(req.signal ? { signal: req.signal } : {}),
    });
  } catch (err) {
    const e = err as Error & { code?: string };
    // The long poll's own bound: poll again at once, as runpod-python does.
    if (e.name === "TimeoutError" || e.code === "UND_ERR_HEADERS_TIMEOUT") return { kind: "none" };
    return { kind: "error", reason: `${e.code ?? e.name}: ${e.message}` };
  }
  if (res.status === 204 || res.status === 400) return { kind: "none" };
  if (res.status === 429) return { kind: "throttled" };
  if (res.status < 200 || res.status > 299) return { kind: "error", reason: `HTTP ${res.status}`, status: res.status, batch: batch !== undefined };
  if (!res.contentType.includes("json") || res.body.trim() === "") return { kind: "none" };
  let parsed: unknown;
  try {
    parsed = JSON.parse(res.body);
  } catch {
    return { kind: "error", reason: "the job-take reply is not valid JSON" };
  }
  const items = Array.isArray(parsed) ? parsed : [parsed];
  const jobs = items.map(asJob).filter((j): j is RunpodJob => j !== undefined);
  if (items.length === 0) return { kind: "none" };
  return { kind: "jobs", jobs, dropped: items.length - jobs.length };
}
