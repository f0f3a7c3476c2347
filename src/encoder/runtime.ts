import os from "node:os";

import * as ort from "onnxruntime-node";

/**
 * The one module that touches onnxruntime. A session runs a model given as ONNX bytes on
 * the CPU with one intra-op thread per core.
 */
export class OnnxSession {
  private constructor(private readonly session: ort.InferenceSession) {}

  static async create(model: Uint8Array, threads = defaultThreads()): Promise<OnnxSession> {
    const session = await ort.InferenceSession.create(model, {
      executionProviders: ["cpu"],
      graphOptimizationLevel: "all",
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
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

  async close(): Promise<void> {
    await this.session.release();
  }
}

export function defaultThreads(): number {
  return Math.max(1, os.availableParallelism());
}
