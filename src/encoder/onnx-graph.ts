import onnxProto from "onnx-proto";

const { onnx } = onnxProto;

/** ONNX element types we use (TensorProto.DataType). */
export const FLOAT = onnx.TensorProto.DataType.FLOAT;
export const INT64 = onnx.TensorProto.DataType.INT64;

type Dim = number | string; // a fixed size or a symbolic name such as "batch"

/** Node attribute: an integer, a list of integers, or `{ float: x }`. */
export type Attr = number | number[] | { float: number };

/**
 * A small builder for ONNX graphs: named initializers, nodes and typed inputs/outputs,
 * serialised with the ONNX protobuf schema (onnx-proto). It knows nothing about models;
 * model files (src/encoder/use-lite/graph.ts, later exports) say what to compute.
 */
export class GraphBuilder {
  private readonly nodes: onnxProto.onnx.INodeProto[] = [];
  private readonly initializers: onnxProto.onnx.ITensorProto[] = [];
  private readonly inputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly outputs: onnxProto.onnx.IValueInfoProto[] = [];
  private counter = 0;
  private irVersion = 8;
  private opsetImport: onnxProto.onnx.IOperatorSetIdProto[] = [{ domain: "", version: 17 }];

  constructor(private readonly name: string) {}

  /**
   * Continues an existing model: its nodes, weights, inputs and outputs, IR version and
   * opsets are kept, so new nodes can be appended (e.g. pooling and an adapter head).
   */
  static fromModel(bytes: Uint8Array): GraphBuilder {
    const model = onnx.ModelProto.decode(bytes);
    const graph = model.graph;
    if (!graph) throw new Error("ONNX model has no graph");
    const g = new GraphBuilder(graph.name || "model");
    g.nodes.push(...(graph.node ?? []));
    g.initializers.push(...(graph.initializer ?? []));
    g.inputs.push(...(graph.input ?? []));
    g.outputs.push(...(graph.output ?? []));
    g.irVersion = Number(model.irVersion) || 8;
    g.opsetImport = model.opsetImport ?? g.opsetImport;
    g.counter = g.nodes.length;
    return g;
  }

  /** The default-domain opset: some operators take axes as an attribute before 13. */
  get opset(): number {
    return Number(this.opsetImport.find((o) => !o.domain)?.version ?? 17);
  }

  get outputNames(): string[] {
    return this.outputs.map((o) => o.name ?? "");
  }

  /** Drops every graph output (the tensors stay computed; new outputs are declared after). */
  clearOutputs(): void {
    this.outputs.length = 0;
  }

  /** Renames a tensor wherever a node produces or consumes it. */
  renameTensor(from: string, to: string): void {
    for (const node of this.nodes) {
      node.output = (node.output ?? []).map((n) => (n === from ? to : n));
      node.input = (node.input ?? []).map((n) => (n === from ? to : n));
    }
  }

  /** Σ over one axis, keeping it, in the form the model's opset takes. */
  reduceSum(x: string, axis: number): string {
    if (this.opset >= 13) return this.op("ReduceSum", [x, this.int64Tensor(`reduce_axis_${this.counter}`, [axis])], { keepdims: 1 });
    return this.op("ReduceSum", [x], { axes: [axis], keepdims: 1 });
  }

  input(name: string, elemType: number, shape: Dim[]): string {
    this.inputs.push(valueInfo(name, elemType, shape));
    return name;
  }

  output(name: string, elemType: number, shape: Dim[]): void {
    this.outputs.push(valueInfo(name, elemType, shape));
  }

  /** A float32 constant; `data` is row-major with the given dims. */
  floatTensor(name: string, data: Float32Array, dims: number[]): string {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    this.initializers.push({ name, dataType: FLOAT, dims, rawData: bytes });
    return name;
  }

  int64Tensor(name: string, values: number[], dims: number[] = [values.length]): string {
    const data = new BigInt64Array(values.map((v) => BigInt(v)));
    this.initializers.push({ name, dataType: INT64, dims, rawData: new Uint8Array(data.buffer) });
    return name;
  }

  scalar(name: string, value: number): string {
    return this.floatTensor(name, new Float32Array([value]), []);
  }

  /** Adds a node and returns the name of its (first) output. */
  op(opType: string, inputs: string[], attrs: Record<string, Attr> = {}, nOutputs = 1): string {
    const outs = Array.from({ length: nOutputs }, () => `et_${opType}_${this.counter++}`);
    this.opNamed(opType, inputs, outs, attrs);
    return outs[0];
  }

  /** Adds a node with several outputs; returns all their names. */
  opMulti(opType: string, inputs: string[], nOutputs: number, attrs: Record<string, Attr> = {}): string[] {
    const outs = Array.from({ length: nOutputs }, () => `${opType}_${this.counter++}`);
    this.opNamed(opType, inputs, outs, attrs);
    return outs;
  }

  /** Adds a node whose outputs have the given names (used for graph outputs). */
  opNamed(opType: string, inputs: string[], outputs: string[], attrs: Record<string, Attr> = {}): void {
    const attribute = Object.entries(attrs).map(([name, v]) => attributeOf(name, v));
    this.nodes.push({ opType, input: inputs, output: outputs, name: `${opType}_${this.nodes.length}`, attribute });
  }

  /** Serialises to ModelProto bytes (IR 8, default-domain opset 17). */
  toBytes(): Uint8Array {
    const graph = {
      name: this.name,
      node: this.nodes,
      initializer: this.initializers,
      input: this.inputs,
      output: this.outputs,
    };
    const model = {
      irVersion: this.irVersion,
      producerName: "embedtune",
      opsetImport: this.opsetImport,
      graph,
    };
    return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
  }
}

function valueInfo(name: string, elemType: number, shape: Dim[]): onnxProto.onnx.IValueInfoProto {
  const dim = shape.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d }));
  return { name, type: { tensorType: { elemType, shape: { dim } } } };
}

function attributeOf(name: string, v: Attr): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if (typeof v === "number") return { name, type: T.INT, i: v };
  return { name, type: T.FLOAT, f: v.float };
}
