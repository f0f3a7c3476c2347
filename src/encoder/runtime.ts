import os from "node:os";

import * as ort from "onnxruntime-node";

/**
 * The one module that touches onnxruntime. A session runs a model given as ONNX bytes on
 * the CPU with one intra-op thread per core.
 */
export class OnnxSession {
  private constructor(private readonly session: ort.InferenceSession) {}

  /**
   * `spinning: false` makes idle pool threads sleep instead of spin-waiting between nodes:
   * slower on an idle machine, much faster on one whose cores are shared with other work.
   */
  static async create(model: Uint8Array, threads = defaultThreads(), options: { spinning?: boolean } = {}): Promise<OnnxSession> {
    const session = await ort.InferenceSession.create(model, {
      executionProviders: ["cpu"],
      graphOptimizationLevel: "all",
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      ...(options.spinning === false ? { extra: { session: { intra_op: { allow_spinning: "0" } } } } : {}),
    });
    return new OnnxSession(session);
  }

  /** Runs with int64 (B, L) inputs and returns the named float32 output's data. */
  async runInt64(inputs: Record<string, { data: BigInt64Array; dims: number[] }>, output: string): Promise<Float32Array> {
    const feeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(inputs)) feeds[name] = new ort.Tensor("int64", t.data, t.dims);
    const result = await this.session.run(feeds, [output]);
    const out = result[output];
    const data = out.data as Float32Array;
    out.dispose?.();
    return data;
  }

  /**
   * Binds inputs and outputs to arrays the caller owns, for a model run many times on the
   * same shapes (a training step): the ort tensors are created once over those arrays, the
   * caller refills the inputs in place between runs, and each run writes the outputs into
   * the caller's output arrays. Nothing is allocated or copied per run on the JS side.
   */
  bind(inputs: Record<string, HostTensor>, outputs: Record<string, HostTensor>): BoundRun {
    return new BoundRun(this.session, tensorsOf(inputs), tensorsOf(outputs));
  }

  /** The graph's input and output names, to check a model is an encoder before running it. */
  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

/** A float32 or int64 array with its dims, owned by the caller (row-major). */
export type HostTensor =
  | { type: "float32"; data: Float32Array; dims: readonly number[] }
  | { type: "int64"; data: BigInt64Array; dims: readonly number[] };

/** A session with its inputs and outputs bound to caller-owned arrays (see OnnxSession.bind). */
export class BoundRun {
  constructor(
    private readonly session: ort.InferenceSession,
    private readonly feeds: Record<string, ort.Tensor>,
    private readonly fetches: Record<string, ort.Tensor>,
  ) {}

  /** Runs the model on the current contents of the input arrays; fills the output arrays. */
  async run(): Promise<void> {
    await this.session.run(this.feeds, this.fetches);
  }
}

function tensorsOf(host: Record<string, HostTensor>): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(host)) {
    out[name] = t.type === "float32" ? new ort.Tensor("float32", t.data, t.dims) : new ort.Tensor("int64", t.data, t.dims);
  }
  return out;
}

export function defaultThreads(): number {
  return Math.max(1, os.availableParallelism());
}
