/**
 * The download limits and their defaults, apart from the downloader: the configuration reads them
 * without loading undici, whose mere import measurably slows the engine's JavaScript in the same
 * process (jh.md), which matters for the benchmark and the in-process engine.
 */
export interface DownloadLimits {
  /** Byte cap, checked against Content-Length and while streaming. */
  maxBytes: number;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  /** Deadline for the whole body, not an idle timeout between chunks. */
  bodyTimeoutMs: number;
  maxRedirects: number;
  /** Turns the address guard off (SAM3_ALLOW_PRIVATE_URLS=1, local development and tests). */
  allowPrivate: boolean;
}

export const DEFAULT_DOWNLOAD_LIMITS: DownloadLimits = Object.freeze({
  maxBytes: 50 * 1024 * 1024,
  connectTimeoutMs: 5_000,
  headersTimeoutMs: 10_000,
  bodyTimeoutMs: 30_000,
  maxRedirects: 5,
  allowPrivate: false,
});
