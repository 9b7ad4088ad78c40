/**
 * Parses and validates a job's `input` (api-contract.md section 1) into a typed request, or fails
 * with `Invalid input: <field> <what is wrong> (got <what>)`. Unknown fields are ignored.
 * Nothing echoed back carries a URL's query string or a long value.
 */
import type { SegmentRequest } from "../engine/segmenter.js";
import { redactUrl } from "./logger.js";

export class InvalidInputError extends Error {
  override readonly name = "InvalidInputError";
  constructor(detail: string) {
    super(`Invalid input: ${detail}`);
  }
}

export type ImageSource = { readonly kind: "url"; readonly url: URL } | { readonly kind: "base64"; readonly bytes: Buffer };

export interface SegmentationRequest {
  readonly image: ImageSource;
  /** As sent (the result keys), in order. */
  readonly concepts: readonly string[];
  readonly threshold: number;
  /** Extensions (api-contract.md section 5); the defaults leave the response as the original API's. */
  readonly maskFormat: "png" | "rle";
  readonly maxInstances?: number;
  readonly returnOverlay: boolean;
}

export interface InputLimits {
  readonly maxConcepts: number;
  readonly maxImageBytes: number;
}

export const DEFAULT_THRESHOLD = 0.5;
export const MAX_CONCEPT_LENGTH = 200;

/** A short description of a value for error messages: its type, or a clipped rendering. */
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === "string") return value.length > 40 ? `a string of ${value.length} characters` : JSON.stringify(value);
  if (typeof value === "number") return String(value);
  return typeof value;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

export function parseInput(input: unknown, limits: InputLimits): SegmentationRequest {
  if (!isObject(input)) throw new InvalidInputError(`input must be an object (got ${input === undefined ? "nothing" : describe(input)})`);
  const image = parseImage(input, limits);
  return { image, ...parseOptions(input, limits) };
}

/** The engine's request for validated options and the image bytes. */
export function engineRequest(options: Omit<SegmentationRequest, "image">, image: Uint8Array): SegmentRequest {
  return {
    image,
    concepts: options.concepts,
    threshold: options.threshold,
    maskFormat: options.maskFormat,
    overlay: options.returnOverlay,
    ...(options.maxInstances !== undefined ? { maxInstances: options.maxInstances } : {}),
  };
}

/** Everything but the image source (the command-line tool reads its image itself). */
export function parseOptions(input: Record<string, unknown>, limits: InputLimits): Omit<SegmentationRequest, "image"> {
  const maxInstances = parseMaxInstances(input.max_instances);
  return {
    concepts: parseConcepts(input.concepts, limits),
    threshold: parseThreshold(input.confidence_threshold),
    maskFormat: parseMaskFormat(input.mask_format),
    ...(maxInstances !== undefined ? { maxInstances } : {}),
    returnOverlay: parseFlag("return_overlay", input.return_overlay),
  };
}

export const MAX_INSTANCES_LIMIT = 200;

function parseMaskFormat(value: unknown): "png" | "rle" {
  if (value === undefined || value === null) return "png";
  if (value === "png" || value === "rle") return value;
  throw new InvalidInputError(`mask_format must be "png" or "rle" (got ${describe(value)})`);
}

function parseMaxInstances(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > MAX_INSTANCES_LIMIT) {
    throw new InvalidInputError(`max_instances must be an integer from 1 to ${MAX_INSTANCES_LIMIT} (got ${describe(value)})`);
  }
  return value;
}

function parseFlag(field: string, value: unknown): boolean {
  if (value === undefined || value === null) return false;
  if (typeof value !== "boolean") throw new InvalidInputError(`${field} must be true or false (got ${describe(value)})`);
  return value;
}

function parseImage(input: Record<string, unknown>, limits: InputLimits): ImageSource {
  const hasUrl = input.image_url !== undefined && input.image_url !== null;
  const hasBase64 = input.image_base64 !== undefined && input.image_base64 !== null;
  if (hasUrl && hasBase64) throw new InvalidInputError("image_url and image_base64 must not both be set; send exactly one (got both)");
  if (!hasUrl && !hasBase64) throw new InvalidInputError("image_url or image_base64 is required (got neither)");
  return hasUrl ? { kind: "url", url: parseImageUrl(input.image_url) } : { kind: "base64", bytes: parseBase64(input.image_base64, limits.maxImageBytes) };
}

/** image_url's rules: an absolute http(s) URL without credentials. */
export function parseImageUrl(value: unknown): URL {
  if (typeof value !== "string") throw new InvalidInputError(`image_url must be a string (got ${describe(value)})`);
  if (value.trim() === "") throw new InvalidInputError('image_url must not be empty (got "")');
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    throw new InvalidInputError(`image_url is not an absolute URL (got a string of ${value.length} characters)`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new InvalidInputError(`image_url must use http or https (got ${url.protocol})`);
  }
  if (url.username || url.password) throw new InvalidInputError(`image_url must not carry credentials (got ${redactUrl(url)} with user info)`);
  return url;
}

const DATA_URL = /^data:([^;,]*)(;[^,]*)?,/i;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const BASE64_URL_SAFE = /^[A-Za-z0-9_-]*={0,2}$/;

function parseBase64(value: unknown, maxBytes: number): Buffer {
  if (typeof value !== "string") throw new InvalidInputError(`image_base64 must be a string (got ${describe(value)})`);
  let text = value;
  const dataUrl = DATA_URL.exec(text);
  if (dataUrl) {
    const [prefix, mime = "", params = ""] = dataUrl;
    if (!/^image\//i.test(mime)) throw new InvalidInputError(`image_base64 data URL must have an image/* type (got "${mime || "none"}")`);
    if (!/;base64$/i.test(params)) throw new InvalidInputError("image_base64 data URL must be base64-encoded (got a data URL without ;base64)");
    text = text.slice(prefix.length);
  }
  // Line breaks and spaces from wrapped encoders are allowed; nothing else outside the alphabet is.
  if (/\s/.test(text)) text = text.replace(/\s+/g, "");
  if (text === "") throw new InvalidInputError("image_base64 must not be empty (got no data)");
  const estimated = Math.floor((text.length * 3) / 4);
  if (estimated - 2 > maxBytes) {
    throw new InvalidInputError(`image_base64 decodes to about ${estimated} bytes, over the limit of ${maxBytes} bytes (SAM3_MAX_IMAGE_BYTES)`);
  }
  // One pass of the alphabet check each (tens of MB of text can arrive here, on the main thread).
  const standard = BASE64.test(text);
  if (!(standard || BASE64_URL_SAFE.test(text)) || text.length % 4 === 1) {
    const bad = text.search(/[^A-Za-z0-9+/=_-]/);
    throw new InvalidInputError(
      `image_base64 is not valid base64 (got ${bad >= 0 ? `the character ${JSON.stringify(text[bad])} at position ${bad}` : "a malformed length or padding"})`,
    );
  }
  const bytes = Buffer.from(text, standard ? "base64" : "base64url");
  if (bytes.length > maxBytes) {
    throw new InvalidInputError(`image_base64 decodes to ${bytes.length} bytes, over the limit of ${maxBytes} bytes (SAM3_MAX_IMAGE_BYTES)`);
  }
  return bytes;
}

function parseConcepts(value: unknown, limits: InputLimits): string[] {
  if (!Array.isArray(value)) throw new InvalidInputError(`concepts must be an array of strings (got ${value === undefined ? "nothing" : describe(value)})`);
  if (value.length < 1 || value.length > limits.maxConcepts) {
    throw new InvalidInputError(`concepts must have 1 to ${limits.maxConcepts} items (SAM3_MAX_CONCEPTS) (got ${value.length})`);
  }
  return value.map((c, i) => {
    if (typeof c !== "string") throw new InvalidInputError(`concepts[${i}] must be a string (got ${describe(c)})`);
    if (c.trim() === "") throw new InvalidInputError(`concepts[${i}] must not be empty or blank (got ${JSON.stringify(c)})`);
    const length = [...c].length;
    if (length > MAX_CONCEPT_LENGTH) throw new InvalidInputError(`concepts[${i}] must be at most ${MAX_CONCEPT_LENGTH} characters (got ${length})`);
    return c;
  });
}

function parseThreshold(value: unknown): number {
  if (value === undefined || value === null) return DEFAULT_THRESHOLD;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > 1) {
    throw new InvalidInputError(`confidence_threshold must be a number from 0 to 1 (got ${describe(value)})`);
  }
  return value;
}
