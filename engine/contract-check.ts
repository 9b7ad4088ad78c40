/**
 * Checks a loaded graph's declared inputs and outputs against the contract (sam3-model.md 2.2)
 * before any job runs, so a wrong export fails at start-up with every difference listed, not
 * later with an obscure ONNX Runtime error. float16 in place of float32 is accepted and recorded:
 * the sessions convert at the boundary.
 */
import type { Dim, ElementType, GraphSpec, TensorSpec } from "../models/contract.js";
import { EngineError } from "./errors.js";

export interface ValueMeta {
  readonly name: string;
  readonly isTensor: boolean;
  readonly type?: string;
  readonly shape?: readonly (number | string)[];
}

export interface GraphMeta {
  readonly inputs: readonly ValueMeta[];
  readonly outputs: readonly ValueMeta[];
}

/** What the sessions need to know about a graph that passed the check. */
export interface CheckedGraph {
  readonly file: string;
  /** Declared element type of every contract tensor, by name. */
  readonly types: Readonly<Record<string, ElementType>>;
  /** 1 when the export fixed the batch dimension at 1 (the only fixed size accepted). */
  readonly fixedBatch?: 1;
}

const showDims = (dims: readonly (number | string)[]) => `[${dims.join(",")}]`;

function checkTensor(kind: "input" | "output", spec: TensorSpec, meta: ValueMeta | undefined, problems: string[]): ElementType | undefined {
  if (!meta) {
    problems.push(`${kind} ${spec.name} is missing`);
    return undefined;
  }
  if (!meta.isTensor) {
    problems.push(`${kind} ${spec.name} is not a tensor`);
    return undefined;
  }
  const type = meta.type as ElementType | undefined;
  const typeOk = type === spec.type || (spec.type === "float32" && type === "float16");
  if (!typeOk) problems.push(`${kind} ${spec.name} has element type ${meta.type ?? "unknown"}, expected ${spec.type}`);
  const shape = meta.shape ?? [];
  // ONNX Runtime reports an empty shape when the graph does not declare one: nothing to compare.
  if (shape.length > 0) {
    const rankOk = shape.length === spec.dims.length;
    const dimsOk = rankOk && spec.dims.every((d: Dim, i) => typeof d === "string" || shape[i] === d);
    if (!dimsOk) problems.push(`${kind} ${spec.name} has shape ${showDims(shape)}, expected ${showDims(spec.dims)}`);
  }
  return typeOk ? type : undefined;
}

export function checkGraph(spec: GraphSpec, meta: GraphMeta): CheckedGraph {
  const problems: string[] = [];
  const types: Record<string, ElementType> = {};
  const byName = (list: readonly ValueMeta[], name: string) => list.find((m) => m.name === name);
  for (const t of spec.inputs) {
    const type = checkTensor("input", t, byName(meta.inputs, t.name), problems);
    if (type) types[t.name] = type;
  }
  for (const t of spec.outputs) {
    const type = checkTensor("output", t, byName(meta.outputs, t.name), problems);
    if (type) types[t.name] = type;
  }
  for (const m of meta.inputs) {
    if (!spec.inputs.some((t) => t.name === m.name)) problems.push(`unexpected input ${m.name} (the worker cannot feed it)`);
  }
  // A fixed batch of 1 is handled by feeding one item per run; other fixed sizes would need padding.
  const batch = (meta.inputs[0]?.shape ?? [])[0];
  if (typeof batch === "number" && batch > 1) problems.push(`the batch dimension is fixed at ${batch}; the worker needs it symbolic or 1`);
  if (problems.length > 0) {
    throw new EngineError("MODEL_CONTRACT", `${spec.file} does not match the SAM3 ONNX contract: ${problems.join("; ")}`);
  }
  return { file: spec.file, types, ...(batch === 1 ? { fixedBatch: 1 } : {}) };
}
