/**
 * One pino logger per process, passed down as children with the job id bound.
 * - Runpod mode (RUNPOD_ENDPOINT_ID set): the line shape Runpod's log viewer reads,
 *   {"level": "INFO", "requestId": "<job id>" or null outside a job, "message": "..."}.
 * - Otherwise pino's JSON lines with a `jobId` binding.
 * Secrets never reach a line: the worker's API key is replaced wherever it appears, and URLs are
 * logged through `redactUrl` (host and path, never the query string).
 */
import { pino } from "pino";
import type { DestinationStream, Logger, LoggerOptions } from "pino";

export type { Logger } from "pino";

export interface LoggerSettings {
  readonly level: string;
  /** Shape lines for Runpod's log viewer. */
  readonly runpodFormat: boolean;
  /** Strings that must never appear in a log line (API keys). */
  readonly secrets: readonly string[];
  /** Where lines go; stderr in local one-shot mode, where stdout carries the result. */
  readonly destination: DestinationStream | NodeJS.WritableStream;
}

/** Runpod's level names. */
const RUNPOD_LEVELS: Record<string, string> = { trace: "TRACE", debug: "DEBUG", info: "INFO", warn: "WARN", error: "ERROR", fatal: "ERROR" };

/** In Runpod format, the logger job lines come from: the same settings without the null requestId. */
const jobRoots = new WeakMap<Logger, Logger>();

export function createLogger(settings: LoggerSettings): Logger {
  const secrets = settings.secrets.filter((s) => s.length >= 4);
  const scrub = (text: string) => secrets.reduce((t, s) => t.split(s).join("[REDACTED]"), text);
  const options: LoggerOptions = {
    level: settings.level,
    // Errors are serialised as usual, then their text is scrubbed like every other string.
    serializers: {
      err: (err: Error) => {
        const out = pino.stdSerializers.err(err) as unknown as Record<string, unknown>;
        for (const key of ["message", "stack"]) if (typeof out[key] === "string") out[key] = scrub(out[key] as string);
        return out;
      },
    },
    redact: { paths: ["headers.authorization", "headers.Authorization", "*.headers.authorization", "apiKey", "*.apiKey"], censor: "[REDACTED]" },
    hooks: {
      // Runs on every call: message text and string arguments are scrubbed of secrets.
      logMethod(args, method) {
        const clean = args.map((a) => (typeof a === "string" ? scrub(a) : a));
        method.apply(this, clean as Parameters<typeof method>);
      },
    },
    ...(settings.runpodFormat
      ? {
          messageKey: "message",
          base: null,
          timestamp: false,
          formatters: {
            level: (label: string) => ({ level: RUNPOD_LEVELS[label] ?? label.toUpperCase() }),
          },
        }
      : { base: { pid: process.pid } }),
  };
  const destination = settings.destination as DestinationStream;
  if (!settings.runpodFormat) return pino(options, destination);
  // runpod-python writes "requestId": null outside a job. A child's binding would repeat the key
  // rather than replace it, so job lines come from a twin logger without the null.
  const root = pino({ ...options, base: { requestId: null } }, destination);
  jobRoots.set(root, pino(options, destination));
  return root;
}

/** A child logger whose every line carries the job id, under the key the line format expects. */
export function jobLogger(logger: Logger, jobId: string): Logger {
  const runpodRoot = jobRoots.get(logger);
  return runpodRoot ? runpodRoot.child({ requestId: jobId }) : logger.child({ jobId });
}

/** A URL as it may be logged: scheme, host, port and path; query and fragment (signed-URL secrets) dropped. */
export function redactUrl(url: URL | string): string {
  try {
    const u = typeof url === "string" ? new URL(url) : url;
    return `${u.protocol}//${u.host}${u.pathname}${u.search ? "?[REDACTED]" : ""}`;
  } catch {
    return "[unparsable URL]";
  }
}
