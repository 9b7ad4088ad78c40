/**
 * Runpod's webhook URL templates (runpod-worker.md section 3): `$RUNPOD_POD_ID` -> worker id,
 * `$RUNPOD_GPU_TYPE_ID` -> GPU type when known (left as is otherwise, as runpod-python does),
 * `$ID` -> job id (or worker id for take, stop and ping). Query parameters are appended with
 * `?` or `&` as the URL needs (runpod-python blindly appends `&`).
 */

export interface UrlContext {
  readonly workerId: string;
  readonly gpuTypeId?: string;
}

export function fillTemplate(template: string, ctx: UrlContext, id: string): string {
  let url = template.replaceAll("$RUNPOD_POD_ID", ctx.workerId);
  if (ctx.gpuTypeId) url = url.replaceAll("$RUNPOD_GPU_TYPE_ID", encodeURIComponent(ctx.gpuTypeId));
  return url.replaceAll("$ID", id);
}

export function addQuery(url: string, params: Readonly<Record<string, string | number>>): string {
  const query = new URLSearchParams(Object.entries(params).map(([k, v]): [string, string] => [k, String(v)])).toString();
  if (!query) return url;
  const [base, fragment] = url.split("#", 2) as [string, string?];
  const joined = base + (base.includes("?") ? (base.endsWith("?") || base.endsWith("&") ? "" : "&") : "?") + query;
  return fragment === undefined ? joined : `${joined}#${fragment}`;
}

/** The job-stop channel: the filled take URL with /job-take/ -> /job-stop/; undefined when it has no /job-take/. */
export function jobStopUrl(takeUrl: string): string | undefined {
  return takeUrl.includes("/job-take/") ? takeUrl.replace("/job-take/", "/job-stop/") : undefined;
}

/** The batch take URL: /job-take/ -> /job-take-batch/. */
export function batchTakeUrl(takeUrl: string): string | undefined {
  return takeUrl.includes("/job-take/") ? takeUrl.replace("/job-take/", "/job-take-batch/") : undefined;
}
