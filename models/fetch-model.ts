/**
 * Model fetch: downloads one variant of the usls SAM3 "v2" ONNX release (sam3-model.md 2.1, 2.4)
 * into a model directory, stored under the plain contract names (models/contract.ts) whatever the
 * variant, with a local manifest next to them saying which variant they are.
 *
 *   node dist/models/fetch-model.js --variant fp16 --dir models/sam3 [--base-url URL]
 *       [--allow-unverified] [--retries N] [--manifest PATH] [--json]
 *
 * Environment: SAM3_MODEL_BASE_URL (a mirror; default: "source" in models/manifest.json),
 * SAM3_MODEL_VARIANT and SAM3_MODEL_DIR (defaults for --variant and --dir), HTTPS_PROXY/NO_PROXY.
 * Exit codes: 0 done; 1 failure (one line on stderr says why); 2 usage error; 3 files in place but
 * unverified and --allow-unverified not given. Progress goes to stderr; stdout stays empty except
 * for the JSON summary of --json.
 *
 * Verification policy. The release publishes no checksums, so models/manifest.json records the
 * size and SHA-256 of every remote file once someone has fetched it (null until then).
 * - Hash recorded: each download is hashed while it is written (a resumed file: the part on disk
 *   first). On a mismatch the partial file is deleted and the fetch fails; a mismatching file
 *   never gets its final name.
 * - Hash not recorded: the file is downloaded and put in place, "UNVERIFIED <file>: sha256=...
 *   size=..." is printed so the values can be copied into the manifest, and the local manifest
 *   marks it "verified": false. The run then fails with exit 3 unless --allow-unverified is given,
 *   so unchecked weights are never shipped by accident; the Dockerfile may pass the flag until the
 *   hashes are recorded. A re-run does not download the file again (see skipping).
 *
 * Files and resume. A download goes to <dir>/<remote>.partial (named after the remote file, so a
 * partial of another variant is never appended to). A restart sends Range: bytes=<n>-; 206 appends,
 * 200 (Range ignored) starts over, 416 means the partial is already whole or stale. The finished
 * partial is fsynced and renamed into place. Network errors, 5xx and 429 are retried with
 * exponential backoff (--retries, default 5); 404 and other 4xx are not.
 *
 * Skipping. A file already at its final name is kept when its size and sha256 match the committed
 * manifest or, without a recorded hash, the local manifest's record of the same URL.
 *
 * Local manifest (<dir>/model-manifest.json): variant, source, complete, verified, fetchedAt and
 * per file remote, url, size, sha256, verified. It is rewritten after every file, so it never
 * claims a file it did not record; consumers should require "complete" (and "verified").
 */
import { createHash, type Hash } from "node:crypto";
import { createReadStream, readFileSync } from "node:fs";
import { mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { EnvHttpProxyAgent, interceptors, request, type Dispatcher } from "undici";
import { GRAPHS, MODEL_FILES } from "./contract.js";
import { findProjectRoot, isMainModule } from "../engine/module-paths.js";

// ---------------------------------------------------------------- committed manifest

/** How sure we are that the remote asset name exists in the release. */
export type NameStatus = "confirmed" | "likely" | "unconfirmed";

export interface RemoteFile {
  readonly remote: string;
  readonly status: NameStatus;
  /** null: not recorded yet. */
  readonly size: number | null;
  readonly sha256: string | null;
}

export interface VariantSpec {
  readonly note?: string;
  /** Contract file name (vision-encoder.onnx, ...) -> remote asset. */
  readonly files: Readonly<Record<string, RemoteFile>>;
  /** External-data sidecars, stored under their remote name because the graph refers to it. */
  readonly extra?: readonly RemoteFile[];
}

export interface ModelManifest {
  /** Base URL of the release (the tag's download folder). */
  readonly source: string;
  /** Files fetched for every variant (tokenizer.json). */
  readonly shared: Readonly<Record<string, RemoteFile>>;
  readonly variants: Readonly<Record<string, VariantSpec>>;
}

export const LOCAL_MANIFEST = "model-manifest.json";

const STATUSES: readonly string[] = ["confirmed", "likely", "unconfirmed"];
/** A plain file name: manifest entries must not be able to write outside the model directory. */
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

export function defaultManifestPath(): string {
  return join(findProjectRoot(), "models", "manifest.json");
}

/** Reads and checks a manifest file (default: the committed models/manifest.json). */
export function loadManifest(path: string = defaultManifestPath()): ModelManifest {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new FetchModelError("manifest", `cannot read manifest ${path}: ${messageOf(err)}`);
  }
  return parseManifest(data, path);
}

/** Checks the shape of a manifest, so that a typo in the JSON fails before any download. */
export function parseManifest(data: unknown, where = "manifest"): ModelManifest {
  const fail = (msg: string): never => {
    throw new FetchModelError("manifest", `${where}: ${msg}`);
  };
  const object = (v: unknown, at: string): Record<string, unknown> =>
    v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : fail(`${at} must be an object`);
  const file = (v: unknown, at: string): RemoteFile => {
    const f = object(v, at);
    const size = f.size ?? null;
    const sha256 = f.sha256 ?? null;
    if (typeof f.remote !== "string" || !SAFE_NAME.test(f.remote)) fail(`${at}.remote must be a plain file name`);
    if (typeof f.status !== "string" || !STATUSES.includes(f.status)) fail(`${at}.status must be one of ${STATUSES.join(", ")}`);
    if (size !== null && !(Number.isSafeInteger(size) && (size as number) >= 0)) fail(`${at}.size must be a byte count or null`);
    if (sha256 !== null && !(typeof sha256 === "string" && SHA256_HEX.test(sha256))) fail(`${at}.sha256 must be 64 lower-case hex digits or null`);
    return { remote: f.remote as string, status: f.status as NameStatus, size: size as number | null, sha256: sha256 as string | null };
  };
  const files = (v: unknown, at: string): Record<string, RemoteFile> =>
    Object.fromEntries(Object.entries(object(v, at)).map(([name, f]) => [name, file(f, `${at}.${name}`)]));

  const root = object(data, "manifest");
  if (typeof root.source !== "string") fail("source must be the release's base URL");
  const shared = files(root.shared ?? {}, "shared");
  const variants: Record<string, VariantSpec> = {};
  for (const [name, raw] of Object.entries(object(root.variants, "variants"))) {
    const v = object(raw, `variants.${name}`);
    const spec: VariantSpec = {
      ...(typeof v.note === "string" ? { note: v.note } : {}),
      files: files(v.files, `variants.${name}.files`),
      extra: (Array.isArray(v.extra) ? v.extra : v.extra === undefined ? [] : fail(`variants.${name}.extra must be a list`)).map((f, i) =>
        file(f, `variants.${name}.extra[${i}]`),
      ),
    };
    // Every variant must yield exactly the contract files, each from a distinct remote asset.
    const planned = planFiles(shared, spec);
    const locals = planned.map((p) => p.local);
    const remotes = planned.map((p) => p.spec.remote);
    for (const need of MODEL_FILES) if (!locals.includes(need)) fail(`variant ${name} lacks ${need}`);
    for (const local of Object.keys(spec.files)) {
      if (!GRAPHS.some((g) => g.file === local)) fail(`variants.${name}.files.${local} is not a graph of the contract`);
    }
    if (new Set(locals).size !== locals.length || locals.includes(LOCAL_MANIFEST)) fail(`variant ${name} stores two files under one name`);
    if (new Set(remotes).size !== remotes.length) fail(`variant ${name} names one remote file twice`);
    variants[name] = spec;
  }
  return { source: root.source as string, shared, variants };
}

interface PlannedFile {
  readonly local: string;
  readonly spec: RemoteFile;
}

/** Small files first (tokenizer), then graphs, then sidecars. */
function planFiles(shared: ModelManifest["shared"], variant: VariantSpec): PlannedFile[] {
  return [
    ...Object.entries(shared).map(([local, spec]) => ({ local, spec })),
    ...Object.entries(variant.files).map(([local, spec]) => ({ local, spec })),
    ...(variant.extra ?? []).map((spec) => ({ local: spec.remote, spec })),
  ];
}

// ---------------------------------------------------------------- errors and results

export type FetchErrorCode = "usage" | "manifest" | "offline" | "network" | "not-found" | "http" | "checksum" | "io" | "unverified";

export class FetchModelError extends Error {
  override name = "FetchModelError";
  readonly code: FetchErrorCode;
  /** Worth another attempt (network trouble, 5xx), as opposed to a definite answer. */
  readonly retryable: boolean;
  /** Set on "unverified": everything was fetched, only the verification is missing. */
  readonly summary: FetchSummary | undefined;

  constructor(code: FetchErrorCode, message: string, options: { retryable?: boolean; summary?: FetchSummary; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.summary = options.summary;
  }
}

export interface Progress {
  /** Remote file name. */
  readonly file: string;
  readonly received: number;
  readonly total: number | null;
}

export interface FileResult {
  /** Name in the model directory. */
  readonly file: string;
  readonly remote: string;
  readonly url: string;
  readonly size: number;
  readonly sha256: string;
  readonly verified: boolean;
  readonly action: "downloaded" | "skipped";
}

export interface FetchSummary {
  readonly variant: string;
  readonly dir: string;
  readonly source: string;
  readonly manifestPath: string;
  /** True when every file matched a recorded sha256. */
  readonly verified: boolean;
  readonly files: readonly FileResult[];
}

export interface LocalEntry {
  readonly remote: string;
  readonly url: string;
  readonly size: number;
  readonly sha256: string;
  readonly verified: boolean;
  readonly fetchedAt: string;
}

export interface LocalManifest {
  readonly format: 1;
  readonly variant: string;
  readonly source: string;
  complete: boolean;
  verified: boolean;
  fetchedAt: string;
  readonly files: Record<string, LocalEntry>;
}

/** The local manifest of a model directory, or null when absent or unreadable. */
export async function readLocalManifest(dir: string): Promise<LocalManifest | null> {
  try {
    const m = JSON.parse(await readFile(join(dir, LOCAL_MANIFEST), "utf8")) as LocalManifest;
    return m && m.format === 1 && typeof m.files === "object" && m.files !== null ? m : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- fetch

export interface FetchOptions {
  readonly variant: string;
  readonly dir: string;
  /** Default: the committed models/manifest.json. */
  readonly manifest?: ModelManifest;
  /** Default: the manifest's source. */
  readonly baseUrl?: string;
  readonly allowUnverified?: boolean;
  /** Further attempts per file after the first fails; default 5. */
  readonly retries?: number;
  /** First retry delay, doubled each time up to maxBackoffMs; defaults 1000 and 30000. */
  readonly backoffMs?: number;
  readonly maxBackoffMs?: number;
  /** Default: an EnvHttpProxyAgent (honours HTTP(S)_PROXY and NO_PROXY). Redirects are added on top. */
  readonly dispatcher?: Dispatcher;
  readonly log?: (line: string) => void;
  readonly onProgress?: (progress: Progress) => void;
}

interface Context {
  readonly dir: string;
  readonly dispatcher: Dispatcher;
  readonly retries: number;
  readonly backoffMs: number;
  readonly maxBackoffMs: number;
  readonly log: (line: string) => void;
  readonly onProgress: (progress: Progress) => void;
}

interface Job {
  readonly local: string;
  readonly spec: RemoteFile;
  /** What is requested, credentials of a private mirror included. */
  readonly url: string;
  /** What is logged, stored and put in messages: no user info, no query string. */
  readonly shown: string;
  readonly partial: string;
  readonly final: string;
}

interface Outcome {
  readonly size: number;
  readonly sha256: string;
  readonly verified: boolean;
}

/**
 * Fetches every file of one variant into options.dir. Throws FetchModelError; with code
 * "unverified" the files are in place and error.summary says what was fetched.
 */
export async function fetchModel(options: FetchOptions): Promise<FetchSummary> {
  const manifest = options.manifest ?? loadManifest();
  const variant = manifest.variants[options.variant];
  if (!variant) {
    throw new FetchModelError("usage", `unknown variant "${options.variant}" (known: ${Object.keys(manifest.variants).join(", ")})`);
  }
  const base = normaliseBaseUrl(options.baseUrl ?? manifest.source);
  const dir = resolve(options.dir);
  await mkdir(dir, { recursive: true });
  const manifestPath = join(dir, LOCAL_MANIFEST);
  const log = options.log ?? (() => {});

  const jobs: Job[] = planFiles(manifest.shared, variant).map(({ local, spec }) => ({
    local,
    spec,
    url: new URL(spec.remote, base).href,
    shown: shownUrl(new URL(spec.remote, base).href),
    partial: join(dir, `${spec.remote}.partial`),
    final: join(dir, local),
  }));

  // Keep earlier records of the same URLs: they let unhashed files be skipped after an interrupted run.
  const prior = await readLocalManifest(dir);
  const now = new Date().toISOString();
  const local: LocalManifest = { format: 1, variant: options.variant, source: shownUrl(base), complete: false, verified: false, fetchedAt: now, files: {} };
  for (const job of jobs) {
    const entry = prior?.files[job.local];
    if (entry?.url === job.shown) local.files[job.local] = entry;
  }
  await writeJsonAtomic(manifestPath, local);

  const ownDispatcher = options.dispatcher === undefined;
  const raw = options.dispatcher ?? new EnvHttpProxyAgent({ headersTimeout: 60_000, bodyTimeout: 60_000 });
  const ctx: Context = {
    dir,
    // GitHub release downloads answer with a redirect to their storage host.
    dispatcher: raw.compose(interceptors.redirect({ maxRedirections: 10 })),
    retries: options.retries ?? 5,
    backoffMs: options.backoffMs ?? 1000,
    maxBackoffMs: options.maxBackoffMs ?? 30_000,
    log,
    onProgress: options.onProgress ?? (() => {}),
  };

  const results: FileResult[] = [];
  try {
    for (const job of jobs) {
      let outcome = await checkExisting(ctx, job, local.files[job.local]);
      const action = outcome ? "skipped" : "downloaded";
      if (outcome) {
        log(`${job.local}: already present (${outcome.verified ? "verified" : "same as the earlier unverified download"}), skipped`);
      } else {
        if (job.spec.status === "unconfirmed") log(`${job.spec.remote}: note: this remote name is unconfirmed in the manifest`);
        // The file under this name is about to change: drop its record first.
        if (job.local in local.files) {
          delete local.files[job.local];
          await writeJsonAtomic(manifestPath, local);
        }
        outcome = await downloadWithRetries(ctx, job);
      }
      if (!outcome.verified) {
        log(`UNVERIFIED ${job.local} (${job.spec.remote}): sha256=${outcome.sha256} size=${outcome.size}; no hash recorded in the manifest`);
      }
      const fetchedAt = action === "skipped" ? (local.files[job.local]?.fetchedAt ?? now) : new Date().toISOString();
      local.files[job.local] = { remote: job.spec.remote, url: job.shown, size: outcome.size, sha256: outcome.sha256, verified: outcome.verified, fetchedAt };
      await writeJsonAtomic(manifestPath, local);
      results.push({ file: job.local, remote: job.spec.remote, url: job.shown, ...outcome, action });
    }
  } finally {
    if (ownDispatcher) await raw.close();
  }

  local.complete = true;
  local.verified = results.every((r) => r.verified);
  local.fetchedAt = new Date().toISOString();
  await writeJsonAtomic(manifestPath, local);
  const summary: FetchSummary = { variant: options.variant, dir, source: base, manifestPath, verified: local.verified, files: results };
  if (!summary.verified && !options.allowUnverified) {
    const n = results.filter((r) => !r.verified).length;
    throw new FetchModelError(
      "unverified",
      `${n} file(s) unverified: no sha256 recorded in the manifest (computed values printed above as UNVERIFIED); record them, or pass --allow-unverified`,
      { summary },
    );
  }
  return summary;
}

/** The outcome for a file already in place that matches what we know about it, else null. */
async function checkExisting(ctx: Context, job: Job, prior: LocalEntry | undefined): Promise<Outcome | null> {
  const size = await fileSize(job.final);
  if (size === null) return null;
  const known = job.spec.sha256 !== null ? job.spec : prior?.url === job.shown ? prior : undefined;
  if (!known || (known.size !== null && known.size !== size)) return null;
  ctx.log(`${job.local}: present, checking sha256`);
  const sha256 = (await hashFile(job.final, createHash("sha256"))).digest("hex");
  return sha256 === known.sha256 ? { size, sha256, verified: job.spec.sha256 !== null } : null;
}

async function downloadWithRetries(ctx: Context, job: Job): Promise<Outcome> {
  for (let failures = 0; ; failures++) {
    try {
      return await attempt(ctx, job);
    } catch (err) {
      const e = classify(err, job.shown);
      if (!e.retryable) throw e;
      if (failures >= ctx.retries) {
        throw new FetchModelError(e.code, `${e.message} (gave up after ${failures + 1} attempts)`, { cause: e.cause });
      }
      const delay = Math.min(ctx.backoffMs * 2 ** failures, ctx.maxBackoffMs);
      ctx.log(`${job.spec.remote}: ${e.message}; retry ${failures + 1}/${ctx.retries} in ${delay} ms`);
      await sleep(delay);
    }
  }
}

/** One HTTP request, resuming from the partial file when there is one. */
async function attempt(ctx: Context, job: Job): Promise<Outcome> {
  const { spec } = job;
  let offset = (await fileSize(job.partial)) ?? 0;
  if (spec.size !== null && offset > spec.size) {
    await rm(job.partial, { force: true });
    offset = 0;
  }
  let hash = createHash("sha256");
  if (offset > 0) await hashFile(job.partial, hash);
  if (offset > 0 && offset === spec.size) return finish(ctx, job, hash, offset);
  if (offset > 0) ctx.log(`${spec.remote}: resuming at byte ${offset}`);
  else ctx.log(`${spec.remote}: downloading ${job.shown}`);

  const res = await request(job.url, { dispatcher: ctx.dispatcher, method: "GET", headers: offset > 0 ? { range: `bytes=${offset}-` } : {} });
  const status = res.statusCode;
  const range = parseContentRange(headerValue(res.headers["content-range"]));
  if (status !== 200 && status !== 206) {
    await res.body.dump();
    if (status === 416 && offset > 0 && range?.total === offset) return finish(ctx, job, hash, offset); // partial was whole
    if (status === 416) {
      await rm(job.partial, { force: true });
      throw new FetchModelError("http", `HTTP 416 for ${job.shown} with ${offset} bytes on disk; partial file deleted`, { retryable: true });
    }
    if (status === 404 || status === 410) {
      const hint = spec.status === "confirmed" ? "" : ` (this name is "${spec.status}" in the manifest: check the release's assets and correct models/manifest.json)`;
      throw new FetchModelError("not-found", `not found (HTTP ${status}): ${job.shown}${hint}`);
    }
    throw new FetchModelError("http", `HTTP ${status} for ${job.shown}`, { retryable: status >= 500 || status === 429 });
  }

  let total: number | null;
  if (status === 206) {
    if (range?.start !== offset) {
      await res.body.dump();
      await rm(job.partial, { force: true });
      throw new FetchModelError("http", `bad Content-Range for ${job.shown} at byte ${offset}; partial file deleted`, { retryable: true });
    }
    total = range.total;
  } else {
    if (offset > 0) ctx.log(`${spec.remote}: server ignored the Range request, starting over`);
    offset = 0;
    hash = createHash("sha256");
    const length = Number(headerValue(res.headers["content-length"]));
    total = Number.isSafeInteger(length) ? length : null;
  }
  total ??= spec.size;

  const fh = await open(job.partial, offset > 0 ? "a" : "w");
  let received = offset;
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      received += chunk.length;
      if (spec.size !== null && received > spec.size) break; // finish() reports the size mismatch
      hash.update(chunk);
      await fh.write(chunk);
      ctx.onProgress({ file: spec.remote, received, total });
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  return finish(ctx, job, hash, received);
}

/** Verifies the whole partial file and renames it into place. */
async function finish(ctx: Context, job: Job, hash: Hash, size: number): Promise<Outcome> {
  const sha256 = hash.digest("hex");
  const { spec } = job;
  const badSize = spec.size !== null && size !== spec.size;
  if (badSize || (spec.sha256 !== null && sha256 !== spec.sha256)) {
    await rm(job.partial, { force: true });
    const what = badSize ? `${size > spec.size! ? `more than ${spec.size}` : size} bytes, expected ${spec.size}` : `sha256 ${sha256}, expected ${spec.sha256}`;
    throw new FetchModelError("checksum", `${spec.remote} does not match the manifest (${what}); partial file deleted; ${job.shown}`);
  }
  await rename(job.partial, job.final);
  await syncDir(ctx.dir);
  return { size, sha256, verified: spec.sha256 !== null };
}

const OFFLINE_CODES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "ENETUNREACH", "EHOSTUNREACH", "ENETDOWN", "UND_ERR_CONNECT_TIMEOUT"]);
const NETWORK_CODES = new Set(["ECONNRESET", "EPIPE", "ETIMEDOUT", "ECONNABORTED"]);

/** Turns a thrown value into a FetchModelError that says whether another attempt makes sense. */
function classify(err: unknown, url: string): FetchModelError {
  if (err instanceof FetchModelError) return err;
  const code = errorCode(err);
  if (code && OFFLINE_CODES.has(code)) {
    const host = new URL(url).host;
    return new FetchModelError("offline", `cannot reach ${host}: ${messageOf(err)} (offline? set SAM3_MODEL_BASE_URL or --base-url to a mirror)`, {
      retryable: true,
      cause: err,
    });
  }
  if (code && (code.startsWith("UND_ERR") || NETWORK_CODES.has(code))) {
    return new FetchModelError("network", `${messageOf(err)} (${code}) while fetching ${url}`, { retryable: true, cause: err });
  }
  // Anything else (disk full, permissions) will not get better by retrying.
  return new FetchModelError("io", `${messageOf(err)} while fetching ${url}`, { cause: err });
}

function errorCode(err: unknown): string | undefined {
  const e = err as { code?: unknown; cause?: unknown; errors?: unknown[] } | null;
  if (!e || typeof e !== "object") return undefined;
  if (typeof e.code === "string") return e.code;
  return errorCode(e.cause) ?? (Array.isArray(e.errors) ? errorCode(e.errors[0]) : undefined);
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message || String(errorCode(err)) : String(err);
}

// ---------------------------------------------------------------- small helpers

/** A URL as it may be shown: without user info, and with any query string replaced (it may carry a token). */
function shownUrl(href: string): string {
  const u = new URL(href);
  return `${u.protocol}//${u.host}${u.pathname}${u.search ? "?[REDACTED]" : ""}`;
}

function normaliseBaseUrl(base: string): string {
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new FetchModelError("usage", "invalid base URL (--base-url or SAM3_MODEL_BASE_URL)");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new FetchModelError("usage", `base URL must be http(s): ${shownUrl(url.href)}`);
  // Without the trailing slash, new URL(name, base) would replace the tag folder.
  return url.href.endsWith("/") ? url.href : `${url.href}/`;
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function parseContentRange(v: string | undefined): { start: number | null; total: number | null } | null {
  const m = v && /^bytes\s+(?:(\d+)-\d+|\*)\/(\d+|\*)$/i.exec(v.trim());
  if (!m) return null;
  return { start: m[1] === undefined ? null : Number(m[1]), total: m[2] === "*" ? null : Number(m[2]) };
}

async function fileSize(path: string): Promise<number | null> {
  const s = await stat(path).catch(() => null);
  return s?.isFile() ? s.size : null;
}

async function hashFile(path: string, hash: Hash): Promise<Hash> {
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash;
}

/** Makes a rename durable; not every platform can open a directory, hence best effort. */
async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, "r");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // best effort
  }
}

async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, "w");
  try {
    await fh.writeFile(JSON.stringify(value, null, 2) + "\n");
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}

// ---------------------------------------------------------------- CLI

const USAGE = `usage: fetch-model --variant <name> --dir <model dir> [--base-url URL] [--allow-unverified] [--retries N] [--manifest PATH] [--json]
  --variant           variant of models/manifest.json (default: $SAM3_MODEL_VARIANT or fp16)
  --dir               target directory (default: $SAM3_MODEL_DIR)
  --base-url          release mirror (default: $SAM3_MODEL_BASE_URL or the manifest's source)
  --allow-unverified  succeed although files have no recorded sha256 (they are printed)
  --retries N         further attempts per file after a network error or 5xx (default 5)
  --manifest PATH     manifest to use instead of models/manifest.json
  --json              print a JSON summary on stdout
`;

/** Prints a line per file at every 10 % (or 64 MiB when the size is unknown). */
export function progressPrinter(write: (text: string) => void): (p: Progress) => void {
  let last = { file: "", mark: -1 };
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
  return (p) => {
    const mark = p.total ? Math.floor((p.received / p.total) * 10) : Math.floor(p.received / 2 ** 26);
    if (p.file === last.file && mark === last.mark) return;
    last = { file: p.file, mark };
    write(p.total ? `${p.file}: ${Math.floor((p.received / p.total) * 100)}% (${mib(p.received)} of ${mib(p.total)})\n` : `${p.file}: ${mib(p.received)}\n`);
  };
}

export interface CliIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** For tests: the HTTP dispatcher and retry delay. */
  readonly dispatcher?: Dispatcher;
  readonly backoffMs?: number;
}

const processIo: CliIo = {
  env: process.env,
  stdout: (t) => void process.stdout.write(t),
  stderr: (t) => void process.stderr.write(t),
};

/** Runs the command line; resolves to the exit code. */
export async function runCli(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        variant: { type: "string" },
        dir: { type: "string" },
        "base-url": { type: "string" },
        "allow-unverified": { type: "boolean", default: false },
        retries: { type: "string" },
        manifest: { type: "string" },
        json: { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
    }));
  } catch (err) {
    io.stderr(`fetch-model: ${messageOf(err)}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    io.stderr(USAGE);
    return 0;
  }
  const dir = values.dir ?? (io.env.SAM3_MODEL_DIR || undefined);
  const retries = values.retries === undefined ? undefined : Number(values.retries);
  if (!dir || (retries !== undefined && !(Number.isSafeInteger(retries) && retries >= 0))) {
    io.stderr(`fetch-model: ${dir ? "--retries must be a whole number >= 0" : "--dir (or SAM3_MODEL_DIR) is required"}\n${USAGE}`);
    return 2;
  }
  const variant = values.variant ?? (io.env.SAM3_MODEL_VARIANT || "fp16");
  try {
    const summary = await fetchModel({
      variant,
      dir,
      manifest: loadManifest(values.manifest),
      baseUrl: values["base-url"] ?? (io.env.SAM3_MODEL_BASE_URL || undefined),
      allowUnverified: values["allow-unverified"],
      retries,
      ...(io.backoffMs !== undefined ? { backoffMs: io.backoffMs } : {}),
      ...(io.dispatcher ? { dispatcher: io.dispatcher } : {}),
      log: (line) => io.stderr(`${line}\n`),
      onProgress: progressPrinter(io.stderr),
    });
    if (values.json) io.stdout(`${JSON.stringify(summary, null, 2)}\n`);
    io.stderr(`fetch-model: ${variant} ready in ${summary.dir} (${summary.verified ? "verified" : "UNVERIFIED, allowed by --allow-unverified"})\n`);
    return 0;
  } catch (err) {
    const e = err instanceof FetchModelError ? err : undefined;
    if (values.json && e?.summary) io.stdout(`${JSON.stringify(e.summary, null, 2)}\n`);
    io.stderr(`fetch-model: ${messageOf(err)}\n`);
    return e?.code === "usage" ? 2 : e?.code === "unverified" ? 3 : 1;
  }
}

if (isMainModule(import.meta.url)) process.exitCode = await runCli(process.argv.slice(2));
