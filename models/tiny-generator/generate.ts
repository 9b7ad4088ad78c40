/**
 * Generates the tiny SAM3-contract model: three ONNX graphs with the exact tensor names, element
 * types and ranks of sam3-model.md section 2.2, plus a CLIP-style tokenizer.json. The behaviour is
 * described in layout.ts. Output is deterministic; the committed files are checked byte for byte.
 *
 *   node dist/models/tiny-generator/generate.js [--out models/tiny] [--half-io]
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { DECODER, FPN_CHANNELS, MASK_SIZE, NUM_QUERIES, TEXT_DIM, TEXT_ENCODER, TOKENIZER_FILE, VISION_ENCODER } from "../contract.js";
import type { GraphSpec, TensorSpec } from "../contract.js";
import { GraphBuilder, int, ints, str } from "../onnx/graph-builder.js";
import { DataType } from "../onnx/proto.js";
import {
  ABSENT_LOGIT,
  COLOUR_WORDS,
  MASK_LOGIT_GAIN,
  MATCH_RADIUS,
  PALETTE,
  PRESENCE_LOGIT,
  PRESENT_FRACTION,
  queryRegions,
  toModelSpace,
} from "./layout.js";
import { buildTokenizerJson } from "./tokenizer-json.js";
import { findProjectRoot, isMainModule } from "../../engine/module-paths.js";

const OPSET = 17;

function spec(graph: GraphSpec, name: string): TensorSpec {
  const found = [...graph.inputs, ...graph.outputs].find((t) => t.name === name);
  if (!found) throw new Error(`no tensor ${name} in ${graph.file}`);
  return found;
}

function logit(p: number): number {
  return Math.log(p / (1 - p));
}

/** images -> RGB at 288/144/72 (linear resize), zero-padded to 256 channels; a sine fpn_pos_2. */
function buildVision(halfIO: boolean): Uint8Array {
  const g = new GraphBuilder("tiny_sam3_vision_encoder", halfIO);
  const images = g.input(spec(VISION_ENCODER, "images"));
  const shape = g.op("Shape", [images]);
  const batchAndChannels = g.op("Slice", [shape, g.i64([1], [0]), g.i64([1], [2])]);
  const resize = (x: string, n: number) =>
    g.op("Resize", [x, "", "", g.op("Concat", [batchAndChannels, g.i64([2], [n, n])], { axis: int(0) })], {
      mode: str("linear"),
    });
  const pads = g.i64([8], [0, 0, 0, 0, 0, FPN_CHANNELS - 3, 0, 0]);
  const pad = (x: string) => g.op("Pad", [x, pads], { mode: str("constant") });

  const rgb288 = resize(images, 288);
  const rgb144 = resize(rgb288, 144);
  const rgb72 = resize(rgb144, 72);
  g.output(spec(VISION_ENCODER, "fpn_feat_0"), pad(rgb288));
  g.output(spec(VISION_ENCODER, "fpn_feat_1"), pad(rgb144));
  g.output(spec(VISION_ENCODER, "fpn_feat_2"), pad(rgb72));

  // A constant sine position encoding, like the real export bakes in: sin(y) in half the channels, cos(x) in the other.
  const half = FPN_CHANNELS / 2;
  const posY = new Float32Array(FPN_CHANNELS * 72);
  const posX = new Float32Array(FPN_CHANNELS * 72);
  for (let k = 0; k < half; k++) {
    const freq = 1 / Math.pow(10000, k / half);
    for (let i = 0; i < 72; i++) {
      posY[k * 72 + i] = Math.sin(i * freq);
      posX[(half + k) * 72 + i] = Math.cos(i * freq);
    }
  }
  const pos = g.op("Add", [g.f32([1, FPN_CHANNELS, 72, 1], posY), g.f32([1, FPN_CHANNELS, 1, 72], posX)]);
  const posShape = g.op("Concat", [g.op("Slice", [shape, g.i64([1], [0]), g.i64([1], [1])]), g.i64([3], [FPN_CHANNELS, 72, 72])], {
    axis: int(0),
  });
  g.output(spec(VISION_ENCODER, "fpn_pos_2"), g.op("Expand", [pos, posShape]));
  return g.toModel(OPSET, "Tiny SAM3-contract vision encoder (test model, not SAM3).");
}

/** input_ids -> per-token features: a colour word's colour in channels 0-2 and weight 1 in channel 3. */
function buildText(halfIO: boolean): Uint8Array {
  const g = new GraphBuilder("tiny_sam3_text_encoder", halfIO);
  const ids = g.input(spec(TEXT_ENCODER, "input_ids"));
  const attention = g.input(spec(TEXT_ENCODER, "attention_mask"));
  const k = COLOUR_WORDS.length;
  const table = new Float32Array(k * TEXT_DIM);
  COLOUR_WORDS.forEach(({ colour }, row) => {
    const [r, gr, b] = toModelSpace(PALETTE[colour]);
    table.set([r, gr, b, 1], row * TEXT_DIM);
  });
  const ids3 = g.op("Unsqueeze", [ids, g.i64([1], [2])]);
  const oneHot = g.op("Cast", [g.op("Equal", [ids3, g.i64([k], COLOUR_WORDS.map((w) => w.id))])], { to: int(DataType.FLOAT) });
  g.output(spec(TEXT_ENCODER, "text_features"), g.op("MatMul", [oneHot, g.f32([k, TEXT_DIM], table)]));
  g.output(spec(TEXT_ENCODER, "text_mask"), g.op("Greater", [attention, g.i64([], [0])]));
  return g.toModel(OPSET, "Tiny SAM3-contract text encoder (test model, not SAM3).");
}

/** Colour match per query rectangle -> masks, boxes, class logits; colour anywhere -> presence. */
function buildDecoder(halfIO: boolean): Uint8Array {
  const g = new GraphBuilder("tiny_sam3_geo_encoder_mask_decoder", halfIO);
  const input = (name: string) => g.input(spec(DECODER, name));
  const feat0 = input("fpn_feat_0");
  input("fpn_feat_1");
  const feat2 = input("fpn_feat_2");
  input("fpn_pos_2");
  const textFeatures = input("text_features");
  const textMask = input("text_mask");
  // The geometry prompt is accepted and ignored: text-only calls send the dummy box (label -10).
  input("input_boxes");
  input("input_boxes_labels");

  const scalar = (v: number) => g.f32([], [v]);
  const axes = (...a: number[]) => g.i64([a.length], a);
  const slice = (x: string, start: number, end: number, axis: number) =>
    g.op("Slice", [x, g.i64([1], [start]), g.i64([1], [end]), g.i64([1], [axis])]);

  // Concept colour: mean colour of valid tokens with weight 1; `known` is 0 when there is none.
  const valid = g.op("Unsqueeze", [g.op("Cast", [textMask], { to: int(DataType.FLOAT) }), axes(2)]);
  const weight = g.op("Mul", [slice(textFeatures, 3, 4, 2), valid]);
  const weightSum = g.op("ReduceSum", [weight, axes(1)], { keepdims: int(1) });
  const colourSum = g.op("ReduceSum", [g.op("Mul", [slice(textFeatures, 0, 3, 2), weight]), axes(1)], { keepdims: int(1) });
  const colour = g.op("Div", [colourSum, g.op("Max", [weightSum, scalar(1e-6)])]);
  const known = g.op("Reshape", [g.op("Min", [weightSum, scalar(1)]), g.i64([2], [-1, 1])]);
  const colour4 = g.op("Unsqueeze", [g.op("Transpose", [colour], { perm: ints([0, 2, 1]) }), axes(3)]);

  const radius2 = scalar(MATCH_RADIUS * MATCH_RADIUS);
  const distance2 = (features: string) => {
    const diff = g.op("Sub", [slice(features, 0, 3, 1), colour4]);
    return g.op("ReduceSum", [g.op("Mul", [diff, diff]), axes(1)], { keepdims: int(1) });
  };
  const hitMap = (d2: string) => g.op("Cast", [g.op("Less", [d2, radius2])], { to: int(DataType.FLOAT) });

  const d2 = distance2(feat0);
  const matchLogits = g.op("Clip", [g.op("Mul", [g.op("Sub", [radius2, d2]), scalar(MASK_LOGIT_GAIN)]), scalar(-10), scalar(10)]);
  const hit = g.op("Squeeze", [hitMap(d2), axes(1)]);

  const regions = queryRegions();
  const rows = new Float32Array(NUM_QUERIES * MASK_SIZE);
  const cols = new Float32Array(NUM_QUERIES * MASK_SIZE);
  const colsT = new Float32Array(MASK_SIZE * NUM_QUERIES);
  const area = new Float32Array(NUM_QUERIES);
  const classLogit = new Float32Array(NUM_QUERIES);
  regions.forEach(({ rect: [x0, y0, x1, y1], score }, q) => {
    for (let y = y0; y < y1; y++) rows[q * MASK_SIZE + y] = 1;
    for (let x = x0; x < x1; x++) {
      cols[q * MASK_SIZE + x] = 1;
      colsT[x * NUM_QUERIES + q] = 1;
    }
    area[q] = Math.max(1, (x1 - x0) * (y1 - y0));
    classLogit[q] = logit(score);
  });
  const rowsC = g.f32([NUM_QUERIES, MASK_SIZE], rows);
  const colsC = g.f32([NUM_QUERIES, MASK_SIZE], cols);

  // Profiles of matching pixels inside each query's rectangle, along x and along y.
  const colProfile = g.op("Mul", [g.op("MatMul", [rowsC, hit]), colsC]);
  const rowProfile = g.op("Mul", [
    g.op("Transpose", [g.op("MatMul", [hit, g.f32([MASK_SIZE, NUM_QUERIES], colsT)])], { perm: ints([0, 2, 1]) }),
    rowsC,
  ]);

  const coverage = g.op("Div", [g.op("ReduceSum", [colProfile, axes(2)], { keepdims: int(0) }), g.f32([NUM_QUERIES], area)]);
  const present = g.op("Mul", [g.op("Clip", [g.op("Mul", [coverage, scalar(1 / PRESENT_FRACTION)]), scalar(0), scalar(1)]), known]);
  const spread = new Float32Array(NUM_QUERIES).map((_, q) => classLogit[q]! - ABSENT_LOGIT);
  const predLogits = g.op("Add", [g.op("Mul", [present, g.f32([NUM_QUERIES], spread)]), scalar(ABSENT_LOGIT)]);

  // Box of the matching pixels in each rectangle (normalised x1, y1, x2, y2); zeros when none.
  const index = g.f32([MASK_SIZE], Array.from({ length: MASK_SIZE }, (_, i) => i));
  const reverse = g.f32([MASK_SIZE], Array.from({ length: MASK_SIZE }, (_, i) => MASK_SIZE - 1 - i));
  const extent = (profile: string): [string, string] => {
    const has = g.op("Cast", [g.op("Greater", [profile, scalar(0.5)])], { to: int(DataType.FLOAT) });
    const any = g.op("ReduceMax", [has], { axes: ints([2]), keepdims: int(1) });
    const last = g.op("ReduceMax", [g.op("Mul", [has, index])], { axes: ints([2]), keepdims: int(1) });
    const first = g.op("Sub", [scalar(MASK_SIZE - 1), g.op("ReduceMax", [g.op("Mul", [has, reverse])], { axes: ints([2]), keepdims: int(1) })]);
    const norm = (v: string) => g.op("Mul", [g.op("Div", [v, scalar(MASK_SIZE)]), any]);
    return [norm(first), norm(g.op("Add", [last, scalar(1)]))];
  };
  const [bx1, bx2] = extent(colProfile);
  const [by1, by2] = extent(rowProfile);
  const predBoxes = g.op("Concat", [bx1, by1, bx2, by2], { axis: int(2) });

  // Mask logits: the match logits inside the query's rectangle, -10 outside.
  const regionMask = g.op("Mul", [g.op("Unsqueeze", [rowsC, axes(2)]), g.op("Unsqueeze", [colsC, axes(1)])]);
  const predMasks = g.op("Sub", [g.op("Mul", [regionMask, g.op("Add", [matchLogits, scalar(10)])]), scalar(10)]);

  // Presence: the colour appears anywhere at the 72x72 level.
  const anywhere = g.op("ReduceMax", [hitMap(distance2(feat2))], { axes: ints([1, 2, 3]), keepdims: int(0) });
  const presence = g.op("Mul", [g.op("Reshape", [anywhere, g.i64([2], [-1, 1])]), known]);
  const presenceLogits = g.op("Sub", [g.op("Mul", [presence, scalar(2 * PRESENCE_LOGIT)]), scalar(PRESENCE_LOGIT)]);

  // Declared in the contract's order.
  g.output(spec(DECODER, "pred_masks"), predMasks);
  g.output(spec(DECODER, "pred_boxes"), predBoxes);
  g.output(spec(DECODER, "pred_logits"), predLogits);
  g.output(spec(DECODER, "presence_logits"), presenceLogits);
  return g.toModel(OPSET, "Tiny SAM3-contract geometry encoder + mask decoder (test model, not SAM3).");
}

/** Every file of the tiny model, by name. */
export function generateTinyModel(options: { halfIO?: boolean } = {}): Map<string, Uint8Array> {
  const halfIO = options.halfIO ?? false;
  return new Map<string, Uint8Array>([
    [VISION_ENCODER.file, buildVision(halfIO)],
    [TEXT_ENCODER.file, buildText(halfIO)],
    [DECODER.file, buildDecoder(halfIO)],
    [TOKENIZER_FILE, Buffer.from(JSON.stringify(buildTokenizerJson(), null, 1) + "\n", "utf8")],
  ]);
}

/** Where each variant is committed. */
export const TINY_MODEL_DIRS = { float32: "models/tiny", float16: "models/tiny-fp16" } as const;

function main(): void {
  const { values } = parseArgs({ options: { out: { type: "string" }, "half-io": { type: "boolean", default: false } } });
  const halfIO = values["half-io"] ?? false;
  const out = values.out ?? join(findProjectRoot(), halfIO ? TINY_MODEL_DIRS.float16 : TINY_MODEL_DIRS.float32);
  mkdirSync(out, { recursive: true });
  for (const [name, bytes] of generateTinyModel({ halfIO })) {
    writeFileSync(join(out, name), bytes);
    process.stderr.write(`wrote ${join(out, name)} (${bytes.length} bytes)\n`);
  }
}

if (isMainModule(import.meta.url)) main();
