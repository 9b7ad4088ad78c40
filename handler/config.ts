/**
 * Configuration read from the environment once at start-up into a typed object; a bad value
 * fails fast with a message naming the variable (the fastify habit). Nothing else reads
 * process.env.
 */
import { existsSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { randomUUID } from "node:crypto";
import { VISION_ENCODER } from "../models/contract.js";
import type { DeviceSetting } from "../engine/sessions.js";
import { DEFAULT_ENGINE_SETTINGS } from "../engine/segmenter.js";
import { findProjectRoot } from "../engine/module-paths.js";
import { DEFAULT_DOWNLOAD_LIMITS } from "./download-limits.js";
import type { InputLimits } from "./input.js";

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

export interface DownloadSettings {
  readonly maxBytes: number;
  readonly connectTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly maxRedirects: number;
  readonly allowPrivate: boolean;
}

export interface RunpodSettings {
  readonly getJobUrl?: string;
  readonly postOutputUrl?: string;
  readonly pingUrl?: string;
  readonly pingIntervalMs: number;
  readonly apiKey?: string;
  /** RUNPOD_POD_ID, or a random UUID as runpod-python uses. */
  readonly workerId: string;
  /** RUNPOD_POD_ID itself: the heartbeat runs only when the platform named this pod. */
  readonly podId?: string;
  readonly gpuTypeId?: string;
  readonly endpointId?: string;
}

/** What the job function needs to know of the limits. */
export function jobLimits(config: WorkerConfig): InputLimits & { readonly download: DownloadSettings } {
  return { maxConcepts: config.maxConcepts, maxImageBytes: config.download.maxBytes, download: config.download };
}

export interface WorkerConfig {
  readonly modelDir: string;
  /** Where modelDir came from: SAM3_MODEL_DIR, the default models/sam3, or the bundled tiny model. */
  readonly modelDirSource: "env" | "default" | "tiny-fallback";
  readonly device: DeviceSetting;
  readonly maxImagePixels: number;
  readonly maxConcepts: number;
  readonly download: DownloadSettings;
  /** Jobs run at once by the worker loop and the local API server. */
  readonly concurrency: number;
  readonly textCacheSize: number;
  readonly imageCacheSize: number;
  readonly maskConcurrency: number;
  readonly decoderBatching: "per-concept" | "batched";
  readonly intraOpThreads?: number;
  /** Let ONNX Runtime's threads spin-wait between runs (SAM3_ORT_ALLOW_SPINNING=1). */
  readonly allowSpinning: boolean;
  /** How long SIGTERM waits for in-flight jobs before forcing exit. */
  readonly drainTimeoutMs: number;
  readonly logLevel: string;
  readonly runpod: RunpodSettings;
}

type Env = Readonly<Record<string, string | undefined>>;

function integer(env: Env, name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  const value = Number(raw.trim());
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max} (got "${raw}")`);
  }
  return value;
}

function oneOf<T extends string>(env: Env, name: string, fallback: T, allowed: readonly T[]): T {
  const raw = env[name]?.trim().toLowerCase();
  if (!raw) return fallback;
  if (!(allowed as readonly string[]).includes(raw)) throw new ConfigError(`${name} must be one of ${allowed.join(", ")} (got "${env[name]}")`);
  return raw as T;
}

function flag(env: Env, name: string): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (!raw || raw === "0" || raw === "false" || raw === "no") return false;
  if (raw === "1" || raw === "true" || raw === "yes") return true;
  throw new ConfigError(`${name} must be 1 or 0 (got "${env[name]}")`);
}

/**
 * The log level as a pino level, from the first of `override` (--rp_log_level), SAM3_LOG_LEVEL,
 * RUNPOD_LOG_LEVEL and RUNPOD_DEBUG_LEVEL that is set (runpod-python's names); blank is unset.
 */
function logLevel(env: Env, override: string | undefined): string {
  const sources: [string, string | undefined][] = [
    ["--rp_log_level", override],
    ["SAM3_LOG_LEVEL", env.SAM3_LOG_LEVEL],
    ["RUNPOD_LOG_LEVEL", env.RUNPOD_LOG_LEVEL],
    ["RUNPOD_DEBUG_LEVEL", env.RUNPOD_DEBUG_LEVEL],
  ];
  const [name, raw] = sources.find(([, v]) => v !== undefined && v.trim() !== "") ?? ["", "info"];
  const map: Record<string, string> = { notset: "trace", trace: "trace", debug: "debug", info: "info", warn: "warn", warning: "warn", error: "error", silent: "silent" };
  const level = map[raw!.trim().toLowerCase()];
  if (!level) throw new ConfigError(`${name} must be one of NOTSET, TRACE, DEBUG, INFO, WARN, ERROR (got "${raw}")`);
  return level;
}

/**
 * The model directory: SAM3_MODEL_DIR when set (no fallback: a missing file must surface as
 * "Model file not found"); otherwise models/sam3, and where that holds no model and the process
 * is not a deployed worker, the bundled tiny test model, so the quickstart runs on a fresh clone.
 */
function modelDir(env: Env, root: string, deployed: boolean): Pick<WorkerConfig, "modelDir" | "modelDirSource"> {
  const explicit = env.SAM3_MODEL_DIR?.trim();
  if (explicit) return { modelDir: isAbsolute(explicit) ? explicit : resolve(explicit), modelDirSource: "env" };
  const real = join(root, "models", "sam3");
  if (deployed || existsSync(join(real, VISION_ENCODER.file))) return { modelDir: real, modelDirSource: "default" };
  return { modelDir: join(root, "models", "tiny"), modelDirSource: "tiny-fallback" };
}

export function loadConfig(env: Env = process.env, root: string = findProjectRoot(), overrides: { logLevel?: string } = {}): WorkerConfig {
  const deployed = Boolean(env.RUNPOD_WEBHOOK_GET_JOB);
  if (deployed && !env.RUNPOD_WEBHOOK_POST_OUTPUT) {
    throw new ConfigError("RUNPOD_WEBHOOK_POST_OUTPUT must be set when RUNPOD_WEBHOOK_GET_JOB is: results have nowhere to go");
  }
  const intraOp = integer(env, "SAM3_INTRA_OP_THREADS", 0, 0, 1024);
  return {
    ...modelDir(env, root, deployed),
    device: oneOf<DeviceSetting>(env, "SAM3_DEVICE", "auto", ["auto", "cuda", "cpu"]),
    maxImagePixels: integer(env, "SAM3_MAX_IMAGE_PIXELS", DEFAULT_ENGINE_SETTINGS.maxImagePixels, 1),
    maxConcepts: integer(env, "SAM3_MAX_CONCEPTS", 32, 1, 1000),
    download: {
      maxBytes: integer(env, "SAM3_MAX_IMAGE_BYTES", DEFAULT_DOWNLOAD_LIMITS.maxBytes, 1),
      connectTimeoutMs: integer(env, "SAM3_DOWNLOAD_CONNECT_TIMEOUT_MS", DEFAULT_DOWNLOAD_LIMITS.connectTimeoutMs, 1),
      headersTimeoutMs: integer(env, "SAM3_DOWNLOAD_HEADERS_TIMEOUT_MS", DEFAULT_DOWNLOAD_LIMITS.headersTimeoutMs, 1),
      bodyTimeoutMs: integer(env, "SAM3_DOWNLOAD_BODY_TIMEOUT_MS", DEFAULT_DOWNLOAD_LIMITS.bodyTimeoutMs, 1),
      maxRedirects: integer(env, "SAM3_DOWNLOAD_MAX_REDIRECTS", DEFAULT_DOWNLOAD_LIMITS.maxRedirects, 0, 20),
      allowPrivate: flag(env, "SAM3_ALLOW_PRIVATE_URLS"),
    },
    concurrency: integer(env, "SAM3_CONCURRENCY", 2, 1, 64),
    textCacheSize: integer(env, "SAM3_TEXT_CACHE_SIZE", DEFAULT_ENGINE_SETTINGS.textCacheSize, 0),
    imageCacheSize: integer(env, "SAM3_IMAGE_CACHE_SIZE", DEFAULT_ENGINE_SETTINGS.imageCacheSize, 0),
    maskConcurrency: integer(env, "SAM3_MASK_CONCURRENCY", DEFAULT_ENGINE_SETTINGS.maskConcurrency, 1, 64),
    decoderBatching: oneOf(env, "SAM3_DECODER_BATCHING", DEFAULT_ENGINE_SETTINGS.decoderBatching, ["per-concept", "batched"]),
    ...(intraOp > 0 ? { intraOpThreads: intraOp } : {}),
    allowSpinning: flag(env, "SAM3_ORT_ALLOW_SPINNING"),
    drainTimeoutMs: integer(env, "SAM3_DRAIN_TIMEOUT_MS", 120_000, 0),
    logLevel: logLevel(env, overrides.logLevel),
    runpod: {
      ...(env.RUNPOD_WEBHOOK_GET_JOB ? { getJobUrl: env.RUNPOD_WEBHOOK_GET_JOB } : {}),
      ...(env.RUNPOD_WEBHOOK_POST_OUTPUT ? { postOutputUrl: env.RUNPOD_WEBHOOK_POST_OUTPUT } : {}),
      ...(env.RUNPOD_WEBHOOK_PING ? { pingUrl: env.RUNPOD_WEBHOOK_PING } : {}),
      pingIntervalMs: integer(env, "RUNPOD_PING_INTERVAL", 10_000, 1),
      ...(env.RUNPOD_AI_API_KEY ? { apiKey: env.RUNPOD_AI_API_KEY } : {}),
      workerId: env.RUNPOD_POD_ID || randomUUID(),
      ...(env.RUNPOD_POD_ID ? { podId: env.RUNPOD_POD_ID } : {}),
      ...(env.RUNPOD_GPU_TYPE_ID ? { gpuTypeId: env.RUNPOD_GPU_TYPE_ID } : {}),
      ...(env.RUNPOD_ENDPOINT_ID ? { endpointId: env.RUNPOD_ENDPOINT_ID } : {}),
    },
  };
}
