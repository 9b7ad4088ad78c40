/**
 * Downloads a caller's image URL with undici, safely: only http(s), every address actually
 * connected to is checked against the SSRF guard (so DNS rebinding cannot slip past an earlier
 * check), redirects are followed by hand with each hop checked again, and connect, headers,
 * whole-body and byte limits all fail fast with a DownloadError whose message a caller can act on.
 * Neither messages nor log lines ever carry the URL's query string (signed URLs keep secrets there).
 */
import { lookup as dnsLookup } from "node:dns";
import type { LookupAddress, LookupAllOptions } from "node:dns";
import { isIP } from "node:net";
import type { Socket } from "node:net";
import { Agent, buildConnector } from "undici";
import type { Dispatcher } from "undici";
import { refusedCategory } from "./address-guard.js";
import { redactUrl } from "./logger.js";
import type { Logger } from "./logger.js";
import type { DownloadLimits } from "./download-limits.js";

export { DEFAULT_DOWNLOAD_LIMITS } from "./download-limits.js";
export type { DownloadLimits } from "./download-limits.js";

export type DownloadErrorCode =
  | "UNSUPPORTED_SCHEME"
  | "BLOCKED_ADDRESS"
  | "DNS_FAILED"
  | "CONNECT_FAILED"
  | "CONNECT_TIMEOUT"
  | "HEADERS_TIMEOUT"
  | "BODY_TIMEOUT"
  | "HTTP_STATUS"
  | "BAD_REDIRECT"
  | "TOO_MANY_REDIRECTS"
  | "TOO_LARGE"
  | "NETWORK"
  | "ABORTED";

/** Message without the contract's "Failed to download image: " prefix; the job boundary adds it. */
export class DownloadError extends Error {
  override readonly name = "DownloadError";
  constructor(
    readonly code: DownloadErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The all-addresses form of dns.lookup; `dns.lookup` itself fits. */
export type LookupAll = (
  hostname: string,
  options: LookupAllOptions,
  callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

export type Connector = buildConnector.connector;

export interface DownloadOptions {
  /** Job cancellation: rejects at once with DownloadError code "ABORTED" (cause: the signal's reason). */
  signal?: AbortSignal;
  log?: Logger;
  /** Replaces the guarded Agent (tests inject a MockAgent); lookup and connect are then unused. IP-literal hosts are still checked. */
  dispatcher?: Dispatcher;
  /** Resolver for the guarded Agent (default dns.lookup). */
  lookup?: LookupAll;
  /** The connector the guarded Agent hands checked IP addresses to (default undici's). */
  connect?: Connector;
}

const PRIVATE_HINT = " (set SAM3_ALLOW_PRIVATE_URLS=1 to allow private addresses)";
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

const stripBrackets = (host: string) => host.replace(/^\[(.*)\]$/, "$1");

function blocked(host: string, ip: string, category: string): DownloadError {
  const what = host === ip ? `${ip} is ${category}` : `${host} resolves to ${ip}, which is ${category}`;
  return new DownloadError("BLOCKED_ADDRESS", `${what}${PRIVATE_HINT}`);
}

function connectFailed(host: string, timeoutMs: number, err: Error & { code?: string }): DownloadError {
  if (err instanceof DownloadError) return err;
  if (err.code === "UND_ERR_CONNECT_TIMEOUT") return new DownloadError("CONNECT_TIMEOUT", `timed out after ${timeoutMs} ms connecting to ${host}`, { cause: err });
  return new DownloadError("CONNECT_FAILED", `could not connect to ${host}: ${err.code ?? err.name}`, { cause: err });
}

/**
 * An undici connector that resolves the hostname itself, refuses it if ANY address is refused,
 * then connects to the checked address (never re-resolving), trying the next address on failure.
 * The connected socket's remote address is checked again as defence in depth.
 */
export function guardedConnector(settings: { allowPrivate: boolean; timeoutMs: number; lookup: LookupAll; connect: Connector }): Connector {
  const { allowPrivate, timeoutMs, lookup, connect } = settings;
  return (options, callback) => {
    const host = stripBrackets(options.hostname);
    let done = false;
    const finish = (err: Error | null, socket?: Socket) => {
      if (done) return void socket?.destroy();
      done = true;
      clearTimeout(timer);
      if (err) callback(err, null);
      else callback(null, socket as Socket);
    };
    // Covers resolution and every attempt, so a hanging resolver or connector cannot stall the job.
    const timer = setTimeout(() => finish(new DownloadError("CONNECT_TIMEOUT", `timed out after ${timeoutMs} ms connecting to ${host}`)), timeoutMs);

    const attempt = (addresses: readonly string[], i: number) => {
      const address = addresses[i] as string;
      connect({ ...options, hostname: address, servername: options.servername ?? (isIP(host) ? undefined : host) }, (err, socket) => {
        if (done) return void socket?.destroy();
        if (err) return i + 1 < addresses.length ? attempt(addresses, i + 1) : finish(connectFailed(host, timeoutMs, err));
        const remote = socket.remoteAddress;
        const category = allowPrivate ? undefined : refusedCategory(remote ?? "");
        if (category !== undefined) {
          socket.destroy();
          return finish(new DownloadError("BLOCKED_ADDRESS", `${host} connected to ${remote ?? "an unknown address"}, which is ${category}${PRIVATE_HINT}`));
        }
        finish(null, socket);
      });
    };

    const checked = (addresses: readonly string[]) => {
      if (done) return;
      if (addresses.length === 0) return finish(new DownloadError("DNS_FAILED", `could not resolve ${host}: no addresses`));
      for (const ip of allowPrivate ? [] : addresses) {
        const category = refusedCategory(ip);
        if (category !== undefined) return finish(blocked(host, ip, category));
      }
      attempt(addresses, 0);
    };

    // net.connect skips lookup for IP literals, so those are checked as they are.
    if (isIP(host)) return checked([host]);
    lookup(host, { all: true }, (err, addresses) => {
      if (err) return finish(new DownloadError("DNS_FAILED", `could not resolve ${host}: ${err.code ?? err.name}`, { cause: err }));
      checked(addresses.map((a) => a.address));
    });
  };
}

/** Scheme and (for IP-literal hosts) address, checked before each hop whatever the dispatcher. */
function checkTarget(url: URL, allowPrivate: boolean): void {
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new DownloadError("UNSUPPORTED_SCHEME", `unsupported URL scheme ${url.protocol}`);
  const host = stripBrackets(url.hostname);
  if (allowPrivate || !isIP(host)) return;
  const category = refusedCategory(host);
  if (category !== undefined) throw blocked(host, host, category);
}

function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** Drops a body we will not read; undici reports that as an error event nobody needs. */
function discard(body: NodeJS.ReadableStream & { destroy(): void }): void {
  body.on("error", () => undefined);
  body.destroy();
}

type Hop = { redirect: URL } | { body: Buffer; contentType: string | undefined };

async function fetchHop(url: URL, dispatcher: Dispatcher, limits: DownloadLimits, signal: AbortSignal | undefined, log: Logger | undefined): Promise<Hop> {
  const deadline = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  try {
    log?.debug({ url: redactUrl(url) }, "requesting image");
    const res = await dispatcher.request({
      origin: url.origin,
      path: `${url.pathname}${url.search}`,
      method: "GET",
      headers: { accept: "image/*,*/*;q=0.8", "user-agent": "sam3-worker" },
      headersTimeout: limits.headersTimeoutMs,
      bodyTimeout: limits.bodyTimeoutMs,
      signal: signal ? AbortSignal.any([signal, deadline.signal]) : deadline.signal,
    });
    const status = res.statusCode;
    const contentType = firstHeader(res.headers["content-type"]);
    log?.debug({ url: redactUrl(url), status, contentType }, "image response headers");

    if (REDIRECT_STATUSES.has(status)) {
      discard(res.body);
      const location = firstHeader(res.headers.location);
      if (!location) throw new DownloadError("BAD_REDIRECT", `HTTP ${status} redirect without a Location header`);
      try {
        return { redirect: new URL(location, url) };
      } catch {
        throw new DownloadError("BAD_REDIRECT", `HTTP ${status} redirect to an invalid URL`);
      }
    }
    if (status < 200 || status > 299) {
      discard(res.body);
      throw new DownloadError("HTTP_STATUS", `HTTP ${status}`);
    }

    const tooLarge = () => new DownloadError("TOO_LARGE", `response is larger than the limit of ${limits.maxBytes} bytes (SAM3_MAX_IMAGE_BYTES)`);
    const declared = Number(firstHeader(res.headers["content-length"]));
    if (Number.isFinite(declared) && declared > limits.maxBytes) {
      discard(res.body);
      throw tooLarge();
    }
    // undici's bodyTimeout is per-chunk idle time; a trickling body needs a whole-body deadline.
    timer = setTimeout(
      () => deadline.abort(new DownloadError("BODY_TIMEOUT", `timed out after ${limits.bodyTimeoutMs} ms reading the response body`)),
      limits.bodyTimeoutMs,
    );
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > limits.maxBytes) throw tooLarge(); // leaving the loop destroys the body
      chunks.push(chunk);
    }
    return { body: Buffer.concat(chunks, total), contentType };
  } catch (err) {
    throw toDownloadError(err, url, limits, signal, deadline.signal);
  } finally {
    clearTimeout(timer);
  }
}

function toDownloadError(err: unknown, url: URL, limits: DownloadLimits, signal: AbortSignal | undefined, deadline: AbortSignal): DownloadError {
  if (signal?.aborted) return new DownloadError("ABORTED", "download was cancelled", { cause: signal.reason });
  if (err instanceof DownloadError) return err;
  if (deadline.aborted && deadline.reason instanceof DownloadError) return deadline.reason;
  const e = err as Error & { code?: string };
  const host = stripBrackets(url.hostname);
  // Only codes and names go into messages: some undici messages quote the request path and query.
  switch (e.code) {
    case "UND_ERR_HEADERS_TIMEOUT":
      return new DownloadError("HEADERS_TIMEOUT", `timed out after ${limits.headersTimeoutMs} ms waiting for response headers`, { cause: err });
    case "UND_ERR_BODY_TIMEOUT":
      return new DownloadError("BODY_TIMEOUT", `timed out after ${limits.bodyTimeoutMs} ms reading the response body`, { cause: err });
    case "UND_ERR_CONNECT_TIMEOUT":
    case "ECONNREFUSED":
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return connectFailed(host, limits.connectTimeoutMs, e);
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return new DownloadError("DNS_FAILED", `could not resolve ${host}: ${e.code}`, { cause: err });
    default:
      return new DownloadError("NETWORK", `connection to ${host} failed: ${e.code ?? e.name ?? "unknown error"}`, { cause: err });
  }
}

/**
 * GETs an image and returns its bytes. Throws DownloadError for every failure, including
 * cancellation through options.signal (code "ABORTED", the signal's reason as cause).
 * The body's content type is not judged here: the decoder reports non-image bytes.
 */
export async function downloadImage(url: URL, limits: DownloadLimits, options: DownloadOptions = {}): Promise<Buffer> {
  const { signal, log } = options;
  const started = Date.now();
  const ownAgent = options.dispatcher
    ? undefined
    : new Agent({
        connect: guardedConnector({
          allowPrivate: limits.allowPrivate,
          timeoutMs: limits.connectTimeoutMs,
          lookup: options.lookup ?? dnsLookup,
          connect: options.connect ?? buildConnector({ timeout: limits.connectTimeoutMs }),
        }),
      });
  const dispatcher = options.dispatcher ?? (ownAgent as Agent);
  try {
    let current = url;
    for (let redirects = 0; ; redirects++) {
      if (signal?.aborted) throw new DownloadError("ABORTED", "download was cancelled", { cause: signal.reason });
      checkTarget(current, limits.allowPrivate);
      const hop = await fetchHop(current, dispatcher, limits, signal, log);
      if ("body" in hop) {
        log?.info({ url: redactUrl(current), bytes: hop.body.length, contentType: hop.contentType, redirects, ms: Date.now() - started }, "image downloaded");
        return hop.body;
      }
      if (redirects >= limits.maxRedirects) throw new DownloadError("TOO_MANY_REDIRECTS", `too many redirects (more than ${limits.maxRedirects})`);
      log?.debug({ from: redactUrl(current), to: redactUrl(hop.redirect) }, "following redirect");
      current = hop.redirect;
    }
  } finally {
    await ownAgent?.destroy().catch(() => undefined);
  }
}
