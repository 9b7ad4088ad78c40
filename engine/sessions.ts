/**
 * The three ONNX Runtime sessions of a model directory: created once, on CUDA or CPU, checked
 * against the contract, with float16 conversion at the boundary where a variant declares it.
 * Counts every run, so tests can prove what ran (vision once per image, text once per concept).
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import ort from "onnxruntime-node";
import { DECODER, IGNORE_BOX_LABEL, MASK_SIZE, NUM_QUERIES, TEXT_ENCODER, TEXT_LENGTH, VISION_ENCODER, IMAGE_SIZE } from "../models/contract.js";
import type { ElementType, GraphSpec } from "../models/contract.js";
import { checkGraph } from "./contract-check.js";
import type { CheckedGraph } from "./contract-check.js";
import { EngineError } from "./errors.js";
import { float32ToHalf, halfToFloat32 } from "./float16.js";

export type DeviceSetting = "cpu" | "cuda" | "auto";
export type Device = "cpu" | "cuda";

export interface SessionSettings {
  readonly modelDir: string;
  readonly device: DeviceSetting;
  /** ONNX Runtime intra-op threads; undefined lets ONNX Runtime choose (all physical cores). */
  readonly intraOpThreads?: number;
  /** Let ONNX Runtime's thread pools spin-wait between runs. */
  readonly allowSpinning?: boolean;
  readonly warn: (message: string) => void;
}

/** The vision encoder's outputs for one image, in the element types the decoder declares. */
export type ImageFeatures = Readonly<Record<"fpn_feat_0" | "fpn_feat_1" | "fpn_feat_2" | "fpn_pos_2", ort.Tensor>>;

/** The text encoder's outputs for one concept (batch 1), features in the decoder's element type. */
export interface ConceptFeatures {
  readonly text_features: ort.Tensor;
  readonly text_mask: ort.Tensor;
}

/** Decoder outputs for one concept, as float32 where the engine reads them. */
export interface DecoderResult {
  readonly logits: Float32Array;
  readonly boxes: Float32Array;
  readonly presenceLogit: number;
  /** The 288x288 logit plane of one query, float32. */
  readonly maskPlane: (query: number) => Float32Array;
}

export interface RunCounts {
  vision: number;
  text: number;
  decoder: number;
}

const PLANE = MASK_SIZE * MASK_SIZE;

function cudaProviderInstalled(): boolean {
  const require = createRequire(import.meta.url);
  const binDir = join(dirname(require.resolve("onnxruntime-node")), "..", "bin", "napi-v6", process.platform, process.arch);
  return existsSync(join(binDir, "libonnxruntime_providers_cuda.so")) || existsSync(join(binDir, "onnxruntime_providers_cuda.dll"));
}

function floatData(tensor: ort.Tensor): Float32Array {
  if (tensor.type === "float16") return halfToFloat32(tensor.data as Uint16Array);
  return tensor.data as Float32Array;
}

/** Converts a float tensor to the element type the receiving graph declares. */
function asType(tensor: ort.Tensor, type: ElementType | undefined): ort.Tensor {
  if (type === undefined || tensor.type === type) return tensor;
  if (tensor.type === "float32" && type === "float16") return new ort.Tensor("float16", float32ToHalf(tensor.data as Float32Array), tensor.dims);
  if (tensor.type === "float16" && type === "float32") return new ort.Tensor("float32", halfToFloat32(tensor.data as Uint16Array), tensor.dims);
  throw new EngineError("INFERENCE", `cannot convert ${tensor.type} to ${type}`);
}

/** Copies batch item `i` of a tensor into a new batch-1 tensor. */
function batchItem(tensor: ort.Tensor, i: number): ort.Tensor {
  const [n, ...rest] = tensor.dims;
  const size = rest.reduce((a, b) => a * b, 1);
  const data = tensor.data as Float32Array | Uint16Array | Uint8Array;
  if (i >= (n ?? 0)) throw new RangeError(`batch item ${i} of ${n}`);
  return new ort.Tensor(tensor.type as "float32", data.slice(i * size, (i + 1) * size) as Float32Array, [1, ...rest]);
}

/** Stacks batch-1 tensors into one batch. */
function stack(tensors: readonly ort.Tensor[]): ort.Tensor {
  const first = tensors[0]!;
  const item = (first.data as Float32Array).length;
  const Ctor = (first.data as Float32Array).constructor as Float32ArrayConstructor;
  const data = new Ctor(item * tensors.length);
  tensors.forEach((t, i) => data.set(t.data as Float32Array, i * item));
  return new ort.Tensor(first.type as "float32", data, [tensors.length, ...first.dims.slice(1)]);
}

export class ModelSessions {
  readonly counts: RunCounts = { vision: 0, text: 0, decoder: 0 };

  private constructor(
    readonly device: Device,
    private readonly vision: ort.InferenceSession,
    private readonly text: ort.InferenceSession,
    private readonly decoder: ort.InferenceSession,
    private readonly checked: { vision: CheckedGraph; text: CheckedGraph; decoder: CheckedGraph },
  ) {}

  /** Largest decoder batch the export allows: 1 when it fixed the batch dimension, else unbounded. */
  get maxDecoderBatch(): number {
    return this.checked.decoder.fixedBatch ?? Number.POSITIVE_INFINITY;
  }

  /** Opens the three graphs (the engine has checked that the files exist). */
  static async load(settings: SessionSettings): Promise<ModelSessions> {
    if (settings.device === "cpu") return ModelSessions.open(settings, "cpu");
    const unavailable = (reason: string) => {
      if (settings.device === "cuda") throw new EngineError("DEVICE_UNAVAILABLE", `SAM3_DEVICE=cuda but the CUDA execution provider cannot be used: ${reason}`);
      settings.warn(`CUDA execution provider unavailable, running on CPU: ${reason}`);
      return ModelSessions.open(settings, "cpu");
    };
    if (!cudaProviderInstalled()) {
      return unavailable("onnxruntime-node was installed without its CUDA 12 libraries (install with ONNXRUNTIME_NODE_INSTALL=cuda12)");
    }
    try {
      return await ModelSessions.open(settings, "cuda");
    } catch (err) {
      // A missing driver, GPU or cuDNN shows up as a failure to create the first session.
      if (err instanceof EngineError && err.code === "MODEL_CONTRACT") throw err;
      return unavailable((err as Error).message);
    }
  }

  private static async open(settings: SessionSettings, device: Device): Promise<ModelSessions> {
    const options: ort.InferenceSession.SessionOptions = {
      executionProviders: device === "cuda" ? [{ name: "cuda", deviceId: 0 }, "cpu"] : ["cpu"],
      graphOptimizationLevel: "all",
      logSeverityLevel: 3,
      ...(settings.intraOpThreads ? { intraOpNumThreads: settings.intraOpThreads } : {}),
      // Spinning intra-op threads keep cores busy between runs, which starves mask encoding and
      // decoding on small machines (jh.md: ~25 % slower jobs on 2 cores); off unless asked for.
      ...(settings.allowSpinning ? {} : { extra: { session: { intra_op: { allow_spinning: "0" }, inter_op: { allow_spinning: "0" } } } }),
    };
    const opened: ort.InferenceSession[] = [];
    const open = async (spec: GraphSpec) => {
      // From a path, not a buffer, so external-data files next to the graph resolve.
      const session = await ort.InferenceSession.create(join(settings.modelDir, spec.file), options).catch((err: Error) => {
        throw new EngineError("INFERENCE", `could not load ${spec.file} on ${device}: ${err.message}`, { cause: err });
      });
      opened.push(session);
      const checked = checkGraph(spec, { inputs: session.inputMetadata, outputs: session.outputMetadata });
      return [session, checked] as const;
    };
    try {
      const [vision, visionChecked] = await open(VISION_ENCODER);
      const [text, textChecked] = await open(TEXT_ENCODER);
      const [decoder, decoderChecked] = await open(DECODER);
      return new ModelSessions(device, vision, text, decoder, { vision: visionChecked, text: textChecked, decoder: decoderChecked });
    } catch (err) {
      await Promise.all(opened.map((s) => s.release()));
      throw err;
    }
  }

  /** pixels: [1, 3, 1008, 1008] float32 in -1..1. */
  async encodeImage(pixels: Float32Array): Promise<ImageFeatures> {
    const images = asType(new ort.Tensor("float32", pixels, [1, 3, IMAGE_SIZE, IMAGE_SIZE]), this.checked.vision.types.images);
    this.counts.vision++;
    const out = await this.vision.run({ images });
    // Converted once here, to what the decoder declares, not again for every concept.
    const as = (name: keyof ImageFeatures) => asType(out[name]!, this.checked.decoder.types[name]);
    return { fpn_feat_0: as("fpn_feat_0"), fpn_feat_1: as("fpn_feat_1"), fpn_feat_2: as("fpn_feat_2"), fpn_pos_2: as("fpn_pos_2") };
  }

  /** Encodes several tokenised concepts in one run; returns one batch-1 result per concept. */
  async encodeTexts(tokens: readonly { ids: readonly number[]; attentionMask: readonly number[] }[]): Promise<ConceptFeatures[]> {
    if (tokens.length === 0) return [];
    // An export with its batch fixed at 1 takes the concepts one at a time.
    if (this.checked.text.fixedBatch === 1 && tokens.length > 1) {
      const out: ConceptFeatures[] = [];
      for (const t of tokens) out.push(...(await this.encodeTexts([t])));
      return out;
    }
    const n = tokens.length;
    const ids = new BigInt64Array(n * TEXT_LENGTH);
    const mask = new BigInt64Array(n * TEXT_LENGTH);
    tokens.forEach((t, i) => {
      t.ids.forEach((v, j) => (ids[i * TEXT_LENGTH + j] = BigInt(v)));
      t.attentionMask.forEach((v, j) => (mask[i * TEXT_LENGTH + j] = BigInt(v)));
    });
    this.counts.text++;
    const out = await this.text.run({
      input_ids: new ort.Tensor("int64", ids, [n, TEXT_LENGTH]),
      attention_mask: new ort.Tensor("int64", mask, [n, TEXT_LENGTH]),
    });
    const features = asType(out.text_features!, this.checked.decoder.types.text_features);
    return tokens.map((_, i) => ({ text_features: batchItem(features, i), text_mask: batchItem(out.text_mask!, i) }));
  }

  /** Runs the decoder for the given concepts against one image, in one batch. */
  async decode(image: ImageFeatures, concepts: readonly ConceptFeatures[]): Promise<DecoderResult[]> {
    const n = concepts.length;
    const types = this.checked.decoder.types;
    const repeat = (t: ort.Tensor) => (n === 1 ? t : stack(new Array<ort.Tensor>(n).fill(t)));
    const feeds: Record<string, ort.Tensor> = {};
    for (const name of ["fpn_feat_0", "fpn_feat_1", "fpn_feat_2", "fpn_pos_2"] as const) feeds[name] = repeat(asType(image[name], types[name]));
    feeds.text_features = asType(n === 1 ? concepts[0]!.text_features : stack(concepts.map((c) => c.text_features)), types.text_features);
    feeds.text_mask = n === 1 ? concepts[0]!.text_mask : stack(concepts.map((c) => c.text_mask));
    // Text-only prompting: one dummy box per item, zeros with label -10 (sam3-model.md 2.3).
    feeds.input_boxes = asType(new ort.Tensor("float32", new Float32Array(n * 4), [n, 1, 4]), types.input_boxes);
    feeds.input_boxes_labels = new ort.Tensor("int64", new BigInt64Array(n).fill(BigInt(IGNORE_BOX_LABEL)), [n, 1]);
    this.counts.decoder++;
    const out = await this.decoder.run(feeds);
    const logits = floatData(out.pred_logits!);
    const boxes = floatData(out.pred_boxes!);
    const presence = floatData(out.presence_logits!);
    const masks = out.pred_masks!;
    return concepts.map((_, i) => ({
      logits: logits.subarray(i * NUM_QUERIES, (i + 1) * NUM_QUERIES),
      boxes: boxes.subarray(i * NUM_QUERIES * 4, (i + 1) * NUM_QUERIES * 4),
      presenceLogit: presence[i]!,
      maskPlane: (q: number) => {
        const start = (i * NUM_QUERIES + q) * PLANE;
        return masks.type === "float16"
          ? halfToFloat32((masks.data as Uint16Array).subarray(start, start + PLANE))
          : (masks.data as Float32Array).subarray(start, start + PLANE);
      },
    }));
  }

  async release(): Promise<void> {
    await Promise.all([this.vision.release(), this.text.release(), this.decoder.release()]);
  }
}
