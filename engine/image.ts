/**
 * Image bytes to the model's input: decode with sharp (EXIF orientation applied, alpha dropped the
 * way PIL's convert("RGB") drops it, any colour space to 8-bit sRGB), then the Pillow-exact
 * stretch to 1008x1008 and the x/127.5 - 1 normalisation (sam3-model.md section 3).
 * The header is read first, so an image over the pixel limit fails before any pixel is decoded.
 */
import sharp from "sharp";
import { IMAGE_SIZE } from "../models/contract.js";
import { EngineError } from "./errors.js";
import { resizeToPlanar } from "./resample.js";

/** Formats accepted from callers; others (SVG, PDF, raw...) are refused before decoding. */
export const ACCEPTED_FORMATS = ["jpeg", "png", "webp", "gif", "avif", "tiff"] as const;

export interface ImageHeader {
  readonly format: string;
  /** Size as displayed, after EXIF orientation. */
  readonly width: number;
  readonly height: number;
}

export interface RgbImage {
  /** Interleaved 8-bit RGB, `width * height * 3` bytes, EXIF orientation applied. */
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
}

function decodeError(err: unknown): EngineError {
  const message = (err as Error).message ?? String(err);
  return new EngineError("IMAGE_DECODE", `image could not be decoded: ${message.replace(/^Input (buffer|file) /, "input ")}`, { cause: err });
}

/** Reads the header only: format and oriented size, checked against the pixel limit. */
export async function readImageHeader(bytes: Uint8Array, maxPixels: number): Promise<ImageHeader> {
  if (bytes.length === 0) throw new EngineError("IMAGE_DECODE", "image could not be decoded: the image is empty (0 bytes)");
  let meta: sharp.Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw decodeError(err);
  }
  const format = meta.format === "heif" ? (meta.compression === "av1" ? "avif" : "heic") : (meta.format ?? "unknown");
  if (!(ACCEPTED_FORMATS as readonly string[]).includes(format)) {
    throw new EngineError("IMAGE_DECODE", `image format ${format} is not accepted (accepted: ${ACCEPTED_FORMATS.join(", ")})`);
  }
  const { width = 0, height = 0 } = meta;
  if (width <= 0 || height <= 0) throw new EngineError("IMAGE_DECODE", "image could not be decoded: it declares no size");
  const pixels = width * height;
  if (pixels > maxPixels) {
    throw new EngineError(
      "IMAGE_TOO_LARGE",
      `image is ${width}x${height} (${pixels} pixels), over the limit of ${maxPixels} pixels (SAM3_MAX_IMAGE_PIXELS)`,
    );
  }
  const rotated = (meta.orientation ?? 1) >= 5;
  return { format, width: rotated ? height : width, height: rotated ? width : height };
}

/** Decodes to oriented 8-bit sRGB without alpha. GIFs and multi-page TIFFs give their first frame. */
export async function decodeRgb(bytes: Uint8Array, maxPixels: number): Promise<RgbImage> {
  try {
    const { data, info } = await sharp(bytes, { limitInputPixels: maxPixels, failOn: "error", sequentialRead: true })
      .rotate()
      .toColourspace("srgb")
      .removeAlpha()
      .raw({ depth: "uchar" })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels, expected 3`);
    return { data, width: info.width, height: info.height };
  } catch (err) {
    throw decodeError(err);
  }
}

/** The vision encoder's input: [1, 3, 1008, 1008] float32 in -1..1, planes R, G, B. */
export function toModelInput(image: RgbImage): Float32Array {
  return resizeToPlanar(image.data, image.width, image.height, IMAGE_SIZE, IMAGE_SIZE);
}
