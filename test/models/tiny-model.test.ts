import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { DECODER, GRAPHS, TEXT_ENCODER, VISION_ENCODER } from "../../models/contract.js";
import type { GraphSpec } from "../../models/contract.js";
import { TINY_MODEL_DIRS, generateTinyModel } from "../../models/tiny-generator/generate.js";
import { PALETTE, toModelSpace, MATCH_RADIUS } from "../../models/tiny-generator/layout.js";
import { findProjectRoot } from "../../engine/module-paths.js";

const root = findProjectRoot();
const tinyDir = join(root, TINY_MODEL_DIRS.float32);

function dimsFor(spec: GraphSpec, name: string, batch: number, numBoxes = 1): number[] {
  const t = [...spec.inputs, ...spec.outputs].find((x) => x.name === name)!;
  return t.dims.map((d) => (d === "batch" ? batch : d === "num_boxes" ? numBoxes : (d as number)));
}

const ORT_TYPES = { float32: "float32", int64: "int64", bool: "bool", float16: "float16" } as const;

function expectOutputs(spec: GraphSpec, outputs: ort.InferenceSession.OnnxValueMapType, batch: number) {
  expect(Object.keys(outputs).sort()).toEqual(spec.outputs.map((o) => o.name).sort());
  for (const o of spec.outputs) {
    expect(outputs[o.name]!.type, o.name).toBe(ORT_TYPES[o.type]);
    expect(outputs[o.name]!.dims, o.name).toEqual(dimsFor(spec, o.name, batch));
  }
}

describe("tiny model files", () => {
  it("are reproduced byte for byte by the generator (float32 and float16-I/O variants)", () => {
    for (const [halfIO, dir] of [
      [false, TINY_MODEL_DIRS.float32],
      [true, TINY_MODEL_DIRS.float16],
    ] as const) {
      for (const [name, bytes] of generateTinyModel({ halfIO })) {
        const committed = readFileSync(join(root, dir, name));
        expect(Buffer.compare(committed, Buffer.from(bytes)), `${dir}/${name}`).toBe(0);
      }
    }
  });

  it("stay under 5 MB in total", () => {
    let total = 0;
    for (const dir of Object.values(TINY_MODEL_DIRS)) {
      for (const f of readdirSync(join(root, dir))) total += statSync(join(root, dir, f)).size;
    }
    expect(total).toBeLessThan(5 * 1024 * 1024);
  });

  it("use colours far enough apart that no two match each other", () => {
    const colours = Object.values(PALETTE).map(toModelSpace);
    for (let i = 0; i < colours.length; i++) {
      for (let j = i + 1; j < colours.length; j++) {
        const d = Math.hypot(...colours[i]!.map((v, k) => v - colours[j]![k]!));
        expect(d).toBeGreaterThan(2 * MATCH_RADIUS);
      }
    }
  });
});

describe.each([TINY_MODEL_DIRS.float32, TINY_MODEL_DIRS.float16])("tiny graphs in %s", (dir) => {
  it("declare exactly the contract's input and output names, in order", async () => {
    for (const spec of GRAPHS) {
      const session = await ort.InferenceSession.create(join(root, dir, spec.file));
      expect(session.inputNames).toEqual(spec.inputs.map((t) => t.name));
      expect(session.outputNames).toEqual(spec.outputs.map((t) => t.name));
      await session.release();
    }
  });
});

describe("tiny decoder semantics", () => {
  /** Runs the decoder on a door-coloured image with the given text features, mask and box. */
  async function decode(textFeatures: Float32Array, textMask: Uint8Array, box: { boxes: number[]; labels: bigint[] }) {
    const vision = await ort.InferenceSession.create(join(tinyDir, VISION_ENCODER.file));
    const decoder = await ort.InferenceSession.create(join(tinyDir, DECODER.file));
    const images = new Float32Array(3 * 1008 * 1008);
    const door = toModelSpace(PALETTE.door);
    for (let c = 0; c < 3; c++) images.fill(door[c]!, c * 1008 * 1008, (c + 1) * 1008 * 1008);
    const features = await vision.run({ images: new ort.Tensor("float32", images, [1, 3, 1008, 1008]) });
    const n = box.labels.length;
    const out = await decoder.run({
      ...features,
      text_features: new ort.Tensor("float32", textFeatures, [1, 32, 256]),
      text_mask: new ort.Tensor("bool", textMask, [1, 32]),
      input_boxes: new ort.Tensor("float32", Float32Array.from(box.boxes), [1, n, 4]),
      input_boxes_labels: new ort.Tensor("int64", BigInt64Array.from(box.labels), [1, n]),
    });
    return { logits: Array.from(out.pred_logits!.data as Float32Array), presence: (out.presence_logits!.data as Float32Array)[0] };
  }

  async function textFor(ids: bigint[], attention: bigint[]) {
    const text = await ort.InferenceSession.create(join(tinyDir, TEXT_ENCODER.file));
    const out = await text.run({
      input_ids: new ort.Tensor("int64", BigInt64Array.from(ids), [1, 32]),
      attention_mask: new ort.Tensor("int64", BigInt64Array.from(attention), [1, 32]),
    });
    return { features: out.text_features!.data as Float32Array, mask: out.text_mask!.data as Uint8Array };
  }

  const dummyBox = { boxes: [0, 0, 0, 0], labels: [-10n] };
  const padded = (words: bigint[], fill: bigint) => [49406n, ...words, 49407n, ...new Array<bigint>(30 - words.length).fill(fill)];
  const attention = (words: number) => [...new Array<bigint>(words + 2).fill(1n), ...new Array<bigint>(30 - words).fill(0n)];

  it("honours the text mask: padding positions never change the outputs, whatever they hold", async () => {
    const clean = await textFor(padded([49003n], 49407n), attention(1)); // "door", EOS padding
    // The same prompt with "window" (a colour word) written into every padding position, masked out.
    const noisy = await textFor(padded([49003n], 49005n), attention(1));
    expect(Array.from(noisy.mask)).toEqual(Array.from(clean.mask));
    const a = await decode(clean.features, clean.mask, dummyBox);
    const b = await decode(noisy.features, noisy.mask, dummyBox);
    expect(b).toEqual(a);
    expect(a.presence).toBe(5); // the door colour is everywhere
    // Unmasking those positions does change the result: the mask is what keeps them out.
    const unmasked = await decode(noisy.features, new Uint8Array(32).fill(1), dummyBox);
    expect(unmasked.presence).toBe(-5);
  });

  it("accepts the dummy box (zeros, label -10) and ignores the geometry prompt", async () => {
    const { features, mask } = await textFor(padded([49003n], 49407n), attention(1));
    const a = await decode(features, mask, dummyBox);
    const b = await decode(features, mask, { boxes: [0.5, 0.5, 0.2, 0.2, 0.1, 0.1, 0.05, 0.05], labels: [1n, 0n] });
    expect(b).toEqual(a);
  });
});

describe("tiny graphs", () => {
  it.each([1, 3])("run at batch %i with outputs of the contract's names, types and shapes", async (batch) => {
    const vision = await ort.InferenceSession.create(join(tinyDir, VISION_ENCODER.file));
    const text = await ort.InferenceSession.create(join(tinyDir, TEXT_ENCODER.file));
    const decoder = await ort.InferenceSession.create(join(tinyDir, DECODER.file));

    const images = new Float32Array(batch * 3 * 1008 * 1008).fill(-0.2);
    const visionOut = await vision.run({ images: new ort.Tensor("float32", images, dimsFor(VISION_ENCODER, "images", batch)) });
    expectOutputs(VISION_ENCODER, visionOut, batch);

    const ids = new BigInt64Array(batch * 32).fill(49407n);
    const mask = new BigInt64Array(batch * 32);
    for (let b = 0; b < batch; b++) {
      ids[b * 32] = 49406n;
      ids[b * 32 + 1] = 49003n; // "door"
      mask.fill(1n, b * 32, b * 32 + 3);
    }
    const textOut = await text.run({
      input_ids: new ort.Tensor("int64", ids, [batch, 32]),
      attention_mask: new ort.Tensor("int64", mask, [batch, 32]),
    });
    expectOutputs(TEXT_ENCODER, textOut, batch);

    const decoderOut = await decoder.run({
      ...visionOut,
      ...textOut,
      input_boxes: new ort.Tensor("float32", new Float32Array(batch * 4), [batch, 1, 4]),
      input_boxes_labels: new ort.Tensor("int64", new BigInt64Array(batch).fill(-10n), [batch, 1]),
    });
    expectOutputs(DECODER, decoderOut, batch);
    // A flat grey image holds no door: presence is low for every batch item.
    expect(Array.from(decoderOut.presence_logits!.data as Float32Array)).toEqual(new Array(batch).fill(-5));
  });
});
