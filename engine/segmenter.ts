/**
 * The SAM3 engine: image bytes and concept strings in, per-concept instances out.
 * Knows nothing of Runpod, HTTP or environment variables: it takes a settings object.
 *
 *   decode + orient -> 1008x1008 tensor -> vision encoder (once per image; features cached by image hash)
 *   concepts -> tokenizer -> text encoder (only for concepts not in the LRU, all of them in one run)
 *   decoder per concept (dummy box) -> scores > threshold, sorted, capped -> masks of kept queries only
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { MODEL_FILES, TOKENIZER_FILE } from "../models/contract.js";
import { EngineError, throwIfAborted } from "./errors.js";
import { decodeRgb, readImageHeader, toModelInput } from "./image.js";
import type { RgbImage } from "./image.js";
import { LruCache } from "./lru.js";
import { MaskEncoder } from "./masks.js";
import type { MaskFormat, MaskTimings } from "./masks.js";
import { OVERLAY_COLOURS, OverlayCanvas } from "./overlay.js";
import type { CocoRle } from "./rle.js";
import { pixelBox, selectInstances } from "./postprocess.js";
import type { Box } from "./postprocess.js";
import { ModelSessions } from "./sessions.js";
import type { ConceptFeatures, DecoderResult, Device, DeviceSetting, ImageFeatures, RunCounts } from "./sessions.js";
import { ClipTokenizer } from "./tokenizer.js";
import { existsSync } from "node:fs";

export interface EngineSettings {
  readonly modelDir: string;
  readonly device: DeviceSetting;
  /** Images with more pixels fail before decoding. */
  readonly maxImagePixels: number;
  /** Text features kept per concept string (32x256 floats each). */
  readonly textCacheSize: number;
  /** Vision features kept per image hash (about 117 MB each for the real fp32 model); 0 disables. */
  readonly imageCacheSize: number;
  /** Full-size masks being compressed at once. */
  readonly maskConcurrency: number;
  /** Decoder calls: one per concept, or all concepts of a job in one batch. */
  readonly decoderBatching: "per-concept" | "batched";
  readonly intraOpThreads?: number;
  /** Let ONNX Runtime's threads spin-wait between runs (faster runs, busier cores); off by default. */
  readonly allowSpinning?: boolean;
  /** Run one small job at start-up so the first real job is not the cold one. */
  readonly warmUp: boolean;
  readonly warn: (message: string) => void;
}

export const DEFAULT_ENGINE_SETTINGS: Omit<EngineSettings, "modelDir" | "warn"> = {
  device: "auto",
  maxImagePixels: 40_000_000,
  textCacheSize: 256,
  imageCacheSize: 2,
  maskConcurrency: 2,
  decoderBatching: "per-concept",
  warmUp: true,
};

export interface SegmentRequest {
  readonly image: Uint8Array;
  /** Concept strings as sent; duplicates are answered once. */
  readonly concepts: readonly string[];
  readonly threshold: number;
  /** Cap per concept, applied to the sorted scores before any mask is resized. */
  readonly maxInstances?: number;
  /** "png" (default): base64 PNGs in masks_base64; "rle": COCO RLE objects in masks_rle. */
  readonly maskFormat?: MaskFormat;
  /** Also draw the overlay picture (overlay_base64). */
  readonly overlay?: boolean;
  readonly signal?: AbortSignal;
  /** Called after each concept's masks are done. */
  readonly onConceptDone?: (done: number, total: number) => void;
}

/** One concept's instances; exactly one of masks_base64 (PNG, the default) and masks_rle is present. */
export interface ConceptResult {
  instance_count: number;
  masks_base64?: string[];
  masks_rle?: CocoRle[];
  scores: number[];
  boxes: Box[];
}

export const STAGES = ["decode", "preprocess", "vision", "text", "decoder", "postprocess", "encode", "overlay", "total"] as const;
export type Stage = (typeof STAGES)[number];
export type StageTimings = Record<Stage, number>;

export interface SegmentResult {
  /** [width, height] after EXIF orientation. */
  readonly image_size: [number, number];
  readonly results: Record<string, ConceptResult>;
  /** JPEG of the image with the masks drawn on it, when asked for. */
  readonly overlay_base64?: string;
  readonly timings: StageTimings;
  /** True when the vision features came from the image cache. */
  readonly imageCacheHit: boolean;
}

interface CachedImage {
  readonly width: number;
  readonly height: number;
  readonly features: ImageFeatures;
}

export class Sam3Engine {
  private readonly textCache: LruCache<string, ConceptFeatures>;
  private readonly imageCache: LruCache<string, CachedImage>;

  private constructor(
    private readonly settings: EngineSettings,
    private readonly sessions: ModelSessions,
    private readonly tokenizer: ClipTokenizer,
  ) {
    this.textCache = new LruCache(settings.textCacheSize);
    this.imageCache = new LruCache(settings.imageCacheSize);
  }

  static async create(settings: EngineSettings): Promise<Sam3Engine> {
    for (const file of MODEL_FILES) {
      if (!existsSync(join(settings.modelDir, file))) throw new EngineError("MODEL_FILE_NOT_FOUND", `Model file not found: ${file}`);
    }
    const tokenizerPath = join(settings.modelDir, TOKENIZER_FILE);
    const sessions = await ModelSessions.load({
      modelDir: settings.modelDir,
      device: settings.device,
      warn: settings.warn,
      ...(settings.intraOpThreads ? { intraOpThreads: settings.intraOpThreads } : {}),
      ...(settings.allowSpinning ? { allowSpinning: true } : {}),
    });
    let tokenizer: ClipTokenizer;
    try {
      tokenizer = await ClipTokenizer.fromFile(tokenizerPath);
    } catch (err) {
      await sessions.release();
      throw new EngineError("MODEL_CONTRACT", (err as Error).message, { cause: err });
    }
    const engine = new Sam3Engine(settings, sessions, tokenizer);
    if (settings.warmUp) {
      try {
        await engine.warmUp();
      } catch (err) {
        await sessions.release();
        throw err;
      }
    }
    return engine;
  }

  get device(): Device {
    return this.sessions.device;
  }

  /** Session runs since start-up (warm-up excluded). */
  get runCounts(): Readonly<RunCounts> {
    return { ...this.sessions.counts };
  }

  async segment(request: SegmentRequest): Promise<SegmentResult> {
    const timings = Object.fromEntries(STAGES.map((s) => [s, 0])) as StageTimings;
    const started = performance.now();
    const time = async <T>(stage: Stage, work: () => Promise<T> | T): Promise<T> => {
      const t0 = performance.now();
      try {
        return await work();
      } finally {
        timings[stage] += performance.now() - t0;
      }
    };
    const { signal } = request;
    throwIfAborted(signal);

    const key = this.settings.imageCacheSize > 0 ? createHash("sha256").update(request.image).digest("hex") : "";
    let image = key ? this.imageCache.get(key) : undefined;
    const imageCacheHit = image !== undefined;
    const decode = () =>
      time("decode", async () => {
        await readImageHeader(request.image, this.settings.maxImagePixels);
        return decodeRgb(request.image, this.settings.maxImagePixels);
      });
    let rgb: RgbImage | undefined;
    if (!image) {
      const decoded = await decode();
      rgb = decoded;
      throwIfAborted(signal);
      const pixels = await time("preprocess", () => toModelInput(decoded));
      const features = await time("vision", () => this.run(() => this.sessions.encodeImage(pixels)));
      image = { width: decoded.width, height: decoded.height, features };
      if (key) this.imageCache.set(key, image);
    }
    throwIfAborted(signal);

    const concepts = [...new Set(request.concepts)];
    const text = await time("text", () => this.conceptFeatures(concepts));
    const { width, height } = image;
    const encoder = new MaskEncoder(width, height, this.settings.maskConcurrency);
    const format = request.maskFormat ?? "png";
    // The overlay needs the pixels; a cached image was not decoded this time.
    if (request.overlay && !rgb) rgb = await decode();
    const canvas = request.overlay && rgb ? new OverlayCanvas(rgb.data, width, height) : undefined;
    rgb = undefined;
    const maskTimings: MaskTimings = { resizeMs: 0, totalMs: 0 };
    const results: Record<string, ConceptResult> = {};

    const finish = async (concept: string, decoded: DecoderResult) => {
      const t0 = performance.now();
      const kept = selectInstances(decoded.logits, decoded.presenceLogit, request.threshold, request.maxInstances);
      const boxes = kept.map((k) => pixelBox(decoded.boxes, k.query, width, height));
      timings.postprocess += performance.now() - t0;
      const colour = OVERLAY_COLOURS[concepts.indexOf(concept) % OVERLAY_COLOURS.length]!;
      const masks = await encoder.encode(
        kept.map((k) => () => decoded.maskPlane(k.query)),
        format,
        maskTimings,
        {
          ...(signal ? { signal } : {}),
          ...(canvas ? { visit: (_i: number, mask: Uint8Array, offset: number, stride: number) => canvas.paint(mask, offset, stride, colour) } : {}),
        },
      );
      results[concept] = {
        instance_count: kept.length,
        ...(format === "rle" ? { masks_rle: masks as CocoRle[] } : { masks_base64: masks as string[] }),
        scores: kept.map((k) => k.score),
        boxes,
      };
      request.onConceptDone?.(Object.keys(results).length, concepts.length);
    };

    if (this.settings.decoderBatching === "batched" && this.sessions.maxDecoderBatch >= concepts.length) {
      const decoded = await time("decoder", () => this.run(() => this.sessions.decode(image.features, concepts.map((c) => text.get(c)!))));
      for (let i = 0; i < concepts.length; i++) {
        throwIfAborted(signal);
        await finish(concepts[i]!, decoded[i]!);
      }
    } else {
      for (const concept of concepts) {
        throwIfAborted(signal);
        const [decoded] = await time("decoder", () => this.run(() => this.sessions.decode(image.features, [text.get(concept)!])));
        throwIfAborted(signal);
        await finish(concept, decoded!);
      }
    }
    timings.postprocess += maskTimings.resizeMs;
    timings.encode += maskTimings.totalMs - maskTimings.resizeMs;
    // Keys in request order (duplicates once), whatever order the work finished in.
    const ordered: Record<string, ConceptResult> = {};
    for (const c of concepts) ordered[c] = results[c]!;
    const overlay = canvas
      ? await time("overlay", () =>
          canvas.toJpegBase64(concepts.map((c, i) => ({ label: c, colour: OVERLAY_COLOURS[i % OVERLAY_COLOURS.length]!, count: ordered[c]!.instance_count }))),
        )
      : undefined;
    timings.total = performance.now() - started;
    return { image_size: [width, height], results: ordered, ...(overlay ? { overlay_base64: overlay } : {}), timings, imageCacheHit };
  }

  async dispose(): Promise<void> {
    this.textCache.clear();
    this.imageCache.clear();
    await this.sessions.release();
  }

  /** Text features per concept: cached ones from the LRU, the rest from one text-encoder run. */
  private async conceptFeatures(concepts: readonly string[]): Promise<Map<string, ConceptFeatures>> {
    const out = new Map<string, ConceptFeatures>();
    const missing: { concept: string; key: string; tokens: ReturnType<ClipTokenizer["encode"]> }[] = [];
    for (const concept of concepts) {
      const tokens = this.tokenizer.encode(concept);
      // Keyed by token ids: "Wall" and "wall" tokenise alike and share one entry.
      const key = tokens.ids.join(",");
      const cached = this.textCache.get(key);
      if (cached) out.set(concept, cached);
      else missing.push({ concept, key, tokens });
    }
    const unique = [...new Map(missing.map((m) => [m.key, m])).values()];
    const encoded = await this.run(() => this.sessions.encodeTexts(unique.map((m) => m.tokens)));
    unique.forEach((m, i) => this.textCache.set(m.key, encoded[i]!));
    for (const m of missing) out.set(m.concept, encoded[unique.findIndex((u) => u.key === m.key)]!);
    return out;
  }

  /** Model runs fail as inference errors, whatever ONNX Runtime threw. */
  private async run<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      if (err instanceof EngineError) throw err;
      throw new EngineError("INFERENCE", `inference failed: ${(err as Error).message}`, { cause: err });
    }
  }

  private async warmUp(): Promise<void> {
    const sharp = (await import("sharp")).default;
    const png = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 128, g: 128, b: 128 } } }).png().toBuffer();
    await this.segment({ image: png, concepts: ["warm up"], threshold: 0, maxInstances: 1 });
    this.textCache.clear();
    this.imageCache.clear();
    Object.assign(this.sessions.counts, { vision: 0, text: 0, decoder: 0 });
  }
}
