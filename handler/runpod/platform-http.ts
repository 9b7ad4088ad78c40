/**
 * HTTP calls to Runpod's worker API (take, done, ping, stop) with the headers runpod-python sends:
 * the raw API key as Authorization (no "Bearer"), JSON content type, a User-Agent. Responses are
 * read whole as text; callers decide what a status means.
 */
import { Agent, request } from "undici";

export const RUNPOD_PROTOCOL_VERSION = "1.12.0";
export const USER_AGENT = `sam3-worker/0.1.0 (runpod-python/${RUNPOD_PROTOCOL_VERSION} protocol; node ${process.version})`;

export interface PlatformResponse {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

export interface PlatformRequest {
  readonly method: "GET" | "POST";
  readonly url: string;
  readonly apiKey?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

const agent = new Agent({ keepAliveTimeout: 30_000, connections: 16 });

export async function platformRequest(req: PlatformRequest): Promise<PlatformResponse> {
  const signals = [AbortSignal.timeout(req.timeoutMs), ...(req.signal ? [req.signal] : [])];
  const res = await request(req.url, {
    method: req.method,
    dispatcher: agent,
    headers: {
      "content-type": "application/json",
      "user-agent": USER_AGENT,
      ...(req.apiKey ? { authorization: req.apiKey } : {}),
      ...req.headers,
    },
    ...(req.body !== undefined ? { body: req.body } : {}),
    headersTimeout: req.timeoutMs,
    bodyTimeout: req.timeoutMs,
    signal: AbortSignal.any(signals),
  });
  const body = await res.body.text();
  const contentType = String(res.headers["content-type"] ?? "");
  return { status: res.statusCode, contentType, body };
}
