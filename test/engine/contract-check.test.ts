import { describe, expect, it } from "vitest";
import { checkGraph } from "../../engine/contract-check.js";
import type { GraphMeta, ValueMeta } from "../../engine/contract-check.js";
import { DECODER, VISION_ENCODER } from "../../models/contract.js";
import type { GraphSpec } from "../../models/contract.js";

const asMeta = (spec: GraphSpec): GraphMeta => ({
  inputs: spec.inputs.map((t) => ({ name: t.name, isTensor: true, type: t.type, shape: [...t.dims] })),
  outputs: spec.outputs.map((t) => ({ name: t.name, isTensor: true, type: t.type, shape: [...t.dims] })),
});

const withInput = (meta: GraphMeta, name: string, change: Partial<ValueMeta>): GraphMeta => ({
  ...meta,
  inputs: meta.inputs.map((m) => (m.name === name ? { ...m, ...change } : m)),
});

describe("checkGraph", () => {
  it("accepts the contract itself and records element types", () => {
    const checked = checkGraph(DECODER, asMeta(DECODER));
    expect(checked.types.text_mask).toBe("bool");
    expect(checked.types.pred_masks).toBe("float32");
    expect(checked.fixedBatch).toBeUndefined();
  });

  it("accepts float16 in place of float32 and a fixed batch of 1", () => {
    const meta = withInput(asMeta(VISION_ENCODER), "images", { type: "float16", shape: [1, 3, 1008, 1008] });
    const checked = checkGraph(VISION_ENCODER, meta);
    expect(checked.types.images).toBe("float16");
    expect(checked.fixedBatch).toBe(1);
  });

  it("refuses a batch dimension fixed at more than 1", () => {
    const meta = withInput(asMeta(VISION_ENCODER), "images", { shape: [4, 3, 1008, 1008] });
    expect(() => checkGraph(VISION_ENCODER, meta)).toThrow("the batch dimension is fixed at 4; the worker needs it symbolic or 1");
  });

  it("names every difference: size, element type, missing output, unexpected input", () => {
    let meta = withInput(asMeta(VISION_ENCODER), "images", { shape: ["batch", 3, 504, 896] });
    meta = { inputs: [...meta.inputs, { name: "extra", isTensor: true, type: "float32", shape: [1] }], outputs: meta.outputs.slice(0, 3) };
    expect(() => checkGraph(VISION_ENCODER, meta)).toThrow(
      "vision-encoder.onnx does not match the SAM3 ONNX contract: input images has shape [batch,3,504,896], expected [batch,3,1008,1008]; " +
        "output fpn_pos_2 is missing; unexpected input extra (the worker cannot feed it)",
    );
    const wrongType = withInput(asMeta(DECODER), "text_mask", { type: "float32" });
    expect(() => checkGraph(DECODER, wrongType)).toThrow("input text_mask has element type float32, expected bool");
  });

  it("flags a v1 decoder (prompt_features instead of the v2 box inputs)", () => {
    const v1: GraphMeta = {
      inputs: [{ name: "prompt_features", isTensor: true, type: "float32", shape: ["batch", 33, 256] }],
      outputs: asMeta(DECODER).outputs,
    };
    expect(() => checkGraph(DECODER, v1)).toThrow(/input fpn_feat_0 is missing.*unexpected input prompt_features/);
  });
});
