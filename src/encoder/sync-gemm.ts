/**
 * onnxruntime's float32 GEMM (MLAS: AVX2 / AVX-512 kernels) as a synchronous call, for the
 * training engine's large matrix products (src/engine/kernels.ts).
 *
 * onnxruntime-node's public InferenceSession.run is asynchronous, but it only defers the
 * native binding's run, which is synchronous. We create sessions of one Gemm node through
 * the binding directly and call run with input and output tensors over the caller's arrays
 * (no copies). This uses onnxruntime-node's dist/binding.js, an internal module: when it is
 * missing or behaves differently (another onnxruntime-node version), createSyncGemm returns
 * null and the engine keeps its JavaScript kernels: slower, same results to float32 rounding.
 */
import { createRequire } from "node:module";

import * as ort from "onnxruntime-node";

import type { GemmBackend } from "../engine/kernels.js";
import { FLOAT, GraphBuilder } from "./onnx-graph.js";

interface NativeSession {
  loadModel(buffer: ArrayBuffer, byteOffset: number, byteLength: number, options: Record<string, unknown>): Promise<void>;
  run(feeds: Record<string, ort.Tensor>, fetches: Record<string, ort.Tensor>, options: Record<string, unknown>): unknown;
  dispose(): void;
}

/** A one-node model: Y = op(A) op(B), op = transpose where the flag is set. */
function gemmModel(transA: boolean, transB: boolean): Uint8Array {
  const g = new GraphBuilder("gemm");
  const a = g.input("A", FLOAT, ["a0", "a1"]);
  const b = g.input("B", FLOAT, ["b0", "b1"]);
  g.output("Y", FLOAT, ["m", "n"]);
  g.opNamed("Gemm", [a, b], ["Y"], { transA: transA ? 1 : 0, transB: transB ? 1 : 0 });
  return g.toBytes();
}

/** The MLAS GEMM on `threads` intra-op threads, or null when the native binding cannot be used. */
export async function createSyncGemm(threads = 1): Promise<GemmBackend | null> {
  let binding: { binding: { InferenceSession: new () => NativeSession }; initOrt: () => void };
  try {
    binding = createRequire(import.meta.url)("onnxruntime-node/dist/binding.js");
    binding.initOrt();
  } catch {
    return null;
  }
  const sessions: NativeSession[] = [];
  try {
    for (const [ta, tb] of [[false, false], [false, true], [true, false], [true, true]] as const) {
      const s = new binding.binding.InferenceSession();
      const bytes = gemmModel(ta, tb);
      await s.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, {
        executionProviders: ["cpu"], intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: "all",
      });
      sessions.push(s);
    }
  } catch {
    for (const s of sessions) s.dispose();
    return null;
  }
  const backend: GemmBackend = {
    name: `onnxruntime MLAS (${threads} thread${threads > 1 ? "s" : ""})`,
    gemm(out, a, b, M, K, N, transA, transB) {
      const s = sessions[(transA ? 2 : 0) + (transB ? 1 : 0)];
      s.run(
        { A: new ort.Tensor("float32", a, transA ? [K, M] : [M, K]), B: new ort.Tensor("float32", b, transB ? [N, K] : [K, N]) },
        { Y: new ort.Tensor("float32", out, [M, N]) },
        {},
      );
    },
  };
  // Check it once on a known product (a different binding could ignore the output tensor).
  const y = new Float32Array(4);
  backend.gemm(y, Float32Array.of(1, 2, 3, 4), Float32Array.of(5, 6, 7, 8), 2, 2, 2, false, false);
  if (y.join() !== "19,22,43,50") {
    for (const s of sessions) s.dispose();
    return null;
  }
  return backend;
}
