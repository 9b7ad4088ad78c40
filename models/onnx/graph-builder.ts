/**
 * A small builder for ONNX graphs: named inputs and outputs from the contract, initializers
 * stored little-endian in raw_data, nodes named by a counter so the bytes are deterministic.
 */
import type { ElementType, TensorSpec } from "../contract.js";
import { AttributeType, DataType, encodeModel } from "./proto.js";

export type Attr =
  | { kind: "int"; value: number }
  | { kind: "float"; value: number }
  | { kind: "string"; value: string }
  | { kind: "ints"; value: readonly number[] };

export const int = (value: number): Attr => ({ kind: "int", value });
export const float = (value: number): Attr => ({ kind: "float", value });
export const str = (value: string): Attr => ({ kind: "string", value });
export const ints = (value: readonly number[]): Attr => ({ kind: "ints", value });

const ELEMENT_TYPES: Record<ElementType, number> = {
  float32: DataType.FLOAT,
  float16: DataType.FLOAT16,
  int64: DataType.INT64,
  bool: DataType.BOOL,
};

function encodeAttr(name: string, attr: Attr): object {
  switch (attr.kind) {
    case "int":
      return { name, type: AttributeType.INT, i: attr.value };
    case "float":
      return { name, type: AttributeType.FLOAT, f: attr.value };
    case "string":
      return { name, type: AttributeType.STRING, s: Buffer.from(attr.value, "utf8") };
    case "ints":
      return { name, type: AttributeType.INTS, ints: [...attr.value] };
  }
}

function valueInfo(spec: TensorSpec): object {
  return {
    name: spec.name,
    type: {
      tensor_type: {
        elem_type: ELEMENT_TYPES[spec.type],
        shape: {
          dim: spec.dims.map((d) => (typeof d === "number" ? { dim_value: d } : { dim_param: d })),
        },
      },
    },
  };
}

export class GraphBuilder {
  private readonly nodes: object[] = [];
  private readonly initializers: object[] = [];
  private readonly inputs: object[] = [];
  private readonly outputs: object[] = [];
  private counter = 0;

  /**
   * With `halfIO`, float32 inputs and outputs are declared float16 and cast at the edge, the way
   * an fp16 export presents itself; the arithmetic inside stays float32.
   */
  constructor(
    private readonly name: string,
    private readonly halfIO = false,
  ) {}

  /** Declares a graph input; returns the name to compute with (float32 in every case). */
  input(spec: TensorSpec): string {
    if (this.halfIO && spec.type === "float32") {
      this.inputs.push(valueInfo({ ...spec, type: "float16" }));
      return this.op("Cast", [spec.name], { to: int(DataType.FLOAT) });
    }
    this.inputs.push(valueInfo(spec));
    return spec.name;
  }

  /** Declares a graph output and routes `from` into it. */
  output(spec: TensorSpec, from: string): void {
    if (this.halfIO && spec.type === "float32") {
      this.op("Cast", [from], { to: int(DataType.FLOAT16) }, spec.name);
      this.outputs.push(valueInfo({ ...spec, type: "float16" }));
      return;
    }
    this.op("Identity", [from], {}, spec.name);
    this.outputs.push(valueInfo(spec));
  }

  f32(dims: readonly number[], values: ArrayLike<number>): string {
    const raw = Buffer.alloc(values.length * 4);
    for (let i = 0; i < values.length; i++) raw.writeFloatLE(values[i]!, i * 4);
    return this.initializer(dims, DataType.FLOAT, raw, values.length);
  }

  i64(dims: readonly number[], values: readonly number[]): string {
    const raw = Buffer.alloc(values.length * 8);
    values.forEach((v, i) => raw.writeBigInt64LE(BigInt(v), i * 8));
    return this.initializer(dims, DataType.INT64, raw, values.length);
  }

  /** Adds a node; returns the name of its (first) output. */
  op(opType: string, inputs: readonly string[], attrs: Record<string, Attr> = {}, outName?: string): string {
    const id = this.counter++;
    const out = outName ?? `${opType.toLowerCase()}_${id}`;
    this.nodes.push({
      name: `${opType}_${id}`,
      op_type: opType,
      input: [...inputs],
      output: [out],
      attribute: Object.entries(attrs).map(([k, a]) => encodeAttr(k, a)),
    });
    return out;
  }

  /** Serialises the graph as a ModelProto with the given opset. */
  toModel(opset: number, docString: string): Uint8Array {
    return encodeModel({
      ir_version: 8,
      opset_import: [{ domain: "", version: opset }],
      producer_name: "sam3-worker tiny-model generator",
      producer_version: "1",
      doc_string: docString,
      graph: {
        name: this.name,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    });
  }

  private initializer(dims: readonly number[], dataType: number, raw: Buffer, count: number): string {
    const expected = dims.reduce((a, b) => a * b, 1);
    if (expected !== count) throw new Error(`initializer dims ${dims} hold ${expected} values, got ${count}`);
    const name = `const_${this.counter++}`;
    this.initializers.push({ name, dims: [...dims], data_type: dataType, raw_data: raw });
    return name;
  }
}
