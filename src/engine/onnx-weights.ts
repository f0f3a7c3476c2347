/**
 * Reads a BERT-family model's weights from its ONNX file (the same file the frozen encoder
 * runs), by PyTorch state-dict name. Nothing is converted by hand: tensors are the graph's
 * initializers, linear weights (in, out) as the graph multiplies them.
 *
 * Exports name their initializers in two ways:
 *   - by state-dict name (our tiny model, many exports): "encoder.layer.0.attention.self.query.weight";
 *   - anonymously for MatMul weights (torch.onnx / optimum): "onnx::MatMul_1234". Then the name
 *     is found by walking the graph: the MatMul's output feeds an Add whose other input is the
 *     named bias "encoder.layer.0.attention.self.query.bias", so the MatMul's weight is that
 *     layer's ".weight". A weight consumed by Gemm with transB = 1 (PyTorch's (out, in)) is
 *     transposed to (in, out).
 * Graphs fused by an optimiser (Attention / SkipLayerNormalization nodes) or quantized
 * weights are refused with a message naming what was found.
 */
import onnxProto from "onnx-proto";

import { EmbedtuneError } from "../errors.js";
import type { NamedTensors } from "./bert.js";

const { onnx } = onnxProto;

export interface OnnxWeights {
  tensors: NamedTensors; // by state-dict name where known, else by initializer name
  /** state-dict name -> initializer name in the file (for writing merged copies back). */
  initializerOf: Map<string, string>;
  /** state-dict names whose initializer is stored (out, in) and was transposed on reading. */
  transposed: Set<string>;
}

/** Float32 initializers of an ONNX model (raw or float_data), by initializer name. */
export function readInitializers(model: onnxProto.onnx.IModelProto, file: string): NamedTensors {
  const out: NamedTensors = new Map();
  for (const t of model.graph?.initializer ?? []) {
    if (t.dataType !== onnx.TensorProto.DataType.FLOAT) continue;
    if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
      throw new EmbedtuneError("INVALID_FILE", `initializer ${t.name} is stored in an external data file, which the training engine does not read`, { file });
    }
    const shape = (t.dims ?? []).map(Number);
    const n = shape.reduce((a, b) => a * b, 1);
    let data: Float32Array;
    if (t.rawData && t.rawData.length) {
      if (t.rawData.length !== n * 4) throw new EmbedtuneError("INVALID_FILE", `initializer ${t.name} holds ${t.rawData.length} bytes for shape [${shape}]`, { file });
      data = new Float32Array(copyAligned(t.rawData)); // little-endian float32, as ONNX stores it
    } else {
      data = Float32Array.from(t.floatData ?? []);
    }
    if (data.length !== n) throw new EmbedtuneError("INVALID_FILE", `initializer ${t.name} holds ${data.length} values for shape [${shape}]`, { file });
    out.set(t.name ?? "", { shape, data });
  }
  return out;
}

function copyAligned(bytes: Uint8Array): ArrayBuffer {
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  return copy.buffer;
}

/** Reads the weights of a BERT ONNX export; `linears` are the state-dict prefixes of every linear layer. */
export function bertWeightsFromOnnx(bytes: Uint8Array, linears: string[], file: string): OnnxWeights {
  const model = onnx.ModelProto.decode(bytes);
  const nodes = model.graph?.node ?? [];
  const fused = nodes.filter((n) => ["Attention", "SkipLayerNormalization", "EmbedLayerNormalization", "MatMulInteger", "DynamicQuantizeLinear", "MatMulNBits"].includes(n.opType ?? ""));
  if (fused.length) {
    throw new EmbedtuneError("INVALID_FILE", `the ONNX graph is optimised or quantized (${[...new Set(fused.map((n) => n.opType))].join(", ")} nodes); the training engine reads plain float32 exports`, { file }, "use onnx/model.onnx, not model_quantized.onnx or an optimised graph");
  }
  const init = readInitializers(model, file);
  const tensors: NamedTensors = new Map(init);
  const initializerOf = new Map<string, string>();
  const transposed = new Set<string>();
  for (const name of init.keys()) initializerOf.set(name, name);

  const consumers = new Map<string, onnxProto.onnx.INodeProto[]>();
  for (const n of nodes) for (const i of n.input ?? []) consumers.set(i, [...(consumers.get(i) ?? []), n]);

  for (const prefix of linears) {
    const wName = `${prefix}.weight`;
    const bName = `${prefix}.bias`;
    // Which initializer multiplies this layer's input: the named weight, or the MatMul feeding the named bias's Add.
    let source = init.has(wName) ? wName : null;
    if (!source) {
      const add = (consumers.get(bName) ?? []).find((n) => n.opType === "Add");
      const other = add?.input?.find((i) => i !== bName);
      const producer = nodes.find((n) => n.output?.includes(other ?? "")) ?? null;
      if (producer?.opType === "MatMul" && init.has(producer.input?.[1] ?? "")) source = producer.input![1];
    }
    if (!source) {
      throw new EmbedtuneError("INVALID_FILE", `cannot find the weight of ${prefix} in the ONNX graph (no initializer ${wName}, and no MatMul feeding an Add with ${bName})`, { file },
        `found ${init.size} float initializers, e.g. ${[...init.keys()].slice(0, 4).join(", ")}`);
    }
    const user = (consumers.get(source) ?? [])[0];
    const t = init.get(source)!;
    const transB = user?.opType === "Gemm" && (user.attribute ?? []).some((a) => a.name === "transB" && Number(a.i) === 1);
    tensors.set(wName, transB ? transpose(t) : t);
    if (transB) transposed.add(wName);
    initializerOf.set(wName, source);
  }
  return { tensors, initializerOf, transposed };
}

function transpose(t: { shape: number[]; data: Float32Array }): { shape: number[]; data: Float32Array } {
  const [rows, cols] = t.shape;
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = t.data[i * cols + j];
  return { shape: [cols, rows], data: out };
}
