/**
 * The ONNX contract of the usls "v2" SAM3 export (sam3-model.md section 2.2), in code.
 * The engine checks real model files against it at load; the tiny-model generator builds
 * graphs from it, so both sides share one description.
 */

export type ElementType = "float32" | "float16" | "int64" | "bool";

/** A dimension is a fixed size or a symbolic name (`batch`, `num_boxes`). */
export type Dim = number | string;

export interface TensorSpec {
  readonly name: string;
  readonly type: ElementType;
  readonly dims: readonly Dim[];
}

export interface GraphSpec {
  readonly file: string;
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
}

export const IMAGE_SIZE = 1008;
export const MASK_SIZE = 288;
export const NUM_QUERIES = 200;
export const TEXT_LENGTH = 32;
export const TEXT_DIM = 256;
export const FPN_CHANNELS = 256;

const B = "batch";

const fpnOutputs: readonly TensorSpec[] = [
  { name: "fpn_feat_0", type: "float32", dims: [B, FPN_CHANNELS, 288, 288] },
  { name: "fpn_feat_1", type: "float32", dims: [B, FPN_CHANNELS, 144, 144] },
  { name: "fpn_feat_2", type: "float32", dims: [B, FPN_CHANNELS, 72, 72] },
  { name: "fpn_pos_2", type: "float32", dims: [B, FPN_CHANNELS, 72, 72] },
];

const textOutputs: readonly TensorSpec[] = [
  { name: "text_features", type: "float32", dims: [B, TEXT_LENGTH, TEXT_DIM] },
  { name: "text_mask", type: "bool", dims: [B, TEXT_LENGTH] },
];

export const VISION_ENCODER: GraphSpec = {
  file: "vision-encoder.onnx",
  inputs: [{ name: "images", type: "float32", dims: [B, 3, IMAGE_SIZE, IMAGE_SIZE] }],
  outputs: fpnOutputs,
};

export const TEXT_ENCODER: GraphSpec = {
  file: "text-encoder.onnx",
  inputs: [
    { name: "input_ids", type: "int64", dims: [B, TEXT_LENGTH] },
    { name: "attention_mask", type: "int64", dims: [B, TEXT_LENGTH] },
  ],
  outputs: textOutputs,
};

export const DECODER: GraphSpec = {
  file: "geo-encoder-mask-decoder.onnx",
  inputs: [
    ...fpnOutputs,
    ...textOutputs,
    { name: "input_boxes", type: "float32", dims: [B, "num_boxes", 4] },
    { name: "input_boxes_labels", type: "int64", dims: [B, "num_boxes"] },
  ],
  outputs: [
    { name: "pred_masks", type: "float32", dims: [B, NUM_QUERIES, MASK_SIZE, MASK_SIZE] },
    { name: "pred_boxes", type: "float32", dims: [B, NUM_QUERIES, 4] },
    { name: "pred_logits", type: "float32", dims: [B, NUM_QUERIES] },
    { name: "presence_logits", type: "float32", dims: [B, 1] },
  ],
};

export const GRAPHS = [VISION_ENCODER, TEXT_ENCODER, DECODER] as const;

export const TOKENIZER_FILE = "tokenizer.json";

/** Every file a model directory must hold. */
export const MODEL_FILES = [...GRAPHS.map((g) => g.file), TOKENIZER_FILE] as const;

/** CLIP special tokens (sam3-model.md section 4). */
export const BOS_ID = 49406;
export const EOS_ID = 49407;

/** Label of the dummy box that a text-only prompt feeds the geometry encoder (section 2.3). */
export const IGNORE_BOX_LABEL = -10;
