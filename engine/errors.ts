/**
 * Engine failures carry a stable code (the habit of undici's errors), so the job boundary maps
 * codes, not message text, to the contract's message prefixes.
 */
export type EngineErrorCode =
  | "MODEL_FILE_NOT_FOUND"
  | "MODEL_CONTRACT"
  | "DEVICE_UNAVAILABLE"
  | "IMAGE_DECODE"
  | "IMAGE_TOO_LARGE"
  | "INFERENCE"
  | "ABORTED";

export class EngineError extends Error {
  override readonly name = "EngineError";
  constructor(
    readonly code: EngineErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Throws the engine's abort error when the job's signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new EngineError("ABORTED", "job was cancelled", { cause: signal.reason });
}
