/**
 * The training step of the output-space adapter on (anchor, positive[, negative]) pairs
 * with symmetric InfoNCE, as one ONNX graph: forward AND the hand-derived backward, so
 * onnxruntime's GEMMs (AVX2/AVX-512) do the arithmetic while the maths stays ours. It
 * computes the same loss and gradients as the reference TypeScript step (src/train/step.ts
 * with src/lora/output-adapter.ts and src/losses/infonce.ts), in a factored order that does
 * half its arithmetic; test/onnx-step.test.ts holds the two together to float32 rounding.
 * Clipping and AdamW stay in JavaScript (2·R·D values, cheap).
 *
 * Legend: B batch, D dim, R rank, K = (C−1)·B candidates (C columns: anchor, positive[,
 * negative]), T rows of the vector table, s = lora_alpha / r, scale = 1 / temperature.
 *
 * Inputs   vectors  (T, D) float32  base vector of every text id (the whole table, not copied)
 *          sq_norms (T, 1) float32  ‖x‖² of every row of the table (the table is frozen: once)
 *          rows     (C·B) int64     text ids: anchors, then positives, then negatives
 *          lora_A   (R, D), lora_B (D, R)
 * Outputs  loss [], dA (R, D), dB (D, R)   (gradients before clipping)
 *
 * Why factored. The adapted vector is h = x + s·B·(A x): the base vector plus a rank-R
 * correction. The direct step forms every h (N, D), the logits Ha Hcᵀ and the backward's
 * dHa = G Hc, dHc = Gᵀ Ha: three (B, K, D) products. But in the coordinates
 * z = [u; w] = [A x; Bᵀx] (2R per row, one thin GEMM against AB = [A; Bᵀ]) and with
 *
 *   J = [ s·BᵀB  I ]   (2R, 2R, symmetric),   f = J z = [v; u],  v = Bᵀh = w + s BᵀB u,
 *       [ I      0 ]
 *
 * everything the loss needs is the raw Gram Xa Xcᵀ plus rank-2R terms:
 *
 *   ha·hc = xa·xc + s fa·zc          ‖h‖² = ‖x‖² + s z·f
 *
 * and the gradient flows back to z (then to A and B through one (2R, N)·(N, D) product per
 * side) and to BᵀB. So the step is one (B, K, D) GEMM and four thin ones, instead of three
 * and ten: 55 MFLOP instead of 108 at B 128, D 768, R 16. No h is ever formed. The small
 * work is folded into as few nodes as possible (scalings into GEMM alphas, sums into GEMMs
 * against ones): at these sizes each onnxruntime node costs a few microseconds whatever it
 * does.
 *
 * The graph has fixed shapes (one per batch size B), so onnxruntime plans its memory once.
 */
import { FLOAT, GraphBuilder, INT64 } from "../encoder/onnx-graph.js";
import { NORM_EPS } from "../tensor/ops.js";

export interface StepGraphSpec {
  B: number;
  D: number;
  R: number;
  T: number; // rows in the vector table
  columns: 2 | 3;
  adaptRight: boolean; // apply_to "both": positives (and negatives) go through the adapter too
  s: number; // lora_alpha / r
  scale: number;
}

export interface StepGraph {
  model: Uint8Array;
  /** Floating-point operations of one run, counted node by node (a multiply-add is 2). */
  flops: number;
  /** Every GEMM of the graph: out (M, N) = op(a) (M, K) · op(b) (K, N); for the benchmark. */
  gemms: Array<{ M: number; N: number; K: number; transA: boolean; transB: boolean }>;
}

export function buildInfoNceStepGraph(spec: StepGraphSpec): StepGraph {
  const { B, D, R, T, columns: C, adaptRight, s, scale } = spec;
  const K = (C - 1) * B; // candidates per anchor: the positives, then the negatives
  const R2 = 2 * R;
  const g = new GraphBuilder("embedtune_infonce_step");
  let flops = 0;
  const gemms: StepGraph["gemms"] = [];
  let names = 0;
  const gemm = (a: string, b: string, c: string | null, M: number, N: number, Kd: number,
    attrs: { alpha?: number; beta?: number; transA?: number; transB?: number }, out?: string): string => {
    flops += 2 * M * N * Kd + (c ? M * N : 0);
    gemms.push({ M, N, K: Kd, transA: !!attrs.transA, transB: !!attrs.transB });
    const at: Record<string, number | { float: number }> = {};
    if (attrs.alpha !== undefined) at.alpha = { float: attrs.alpha };
    if (attrs.beta !== undefined) at.beta = { float: attrs.beta };
    if (attrs.transA) at.transA = 1;
    if (attrs.transB) at.transB = 1;
    const inputs = c ? [a, b, c] : [a, b];
    if (!out) return g.op("Gemm", inputs, at);
    g.opNamed("Gemm", inputs, [out], at);
    return out;
  };
  const ew = (n: number, op: string, inputs: string[], attrs: Record<string, number | number[]> = {}): string => {
    flops += n; // one operation per output element
    return g.op(op, inputs, attrs);
  };
  const constant = (data: Float32Array, dims: number[]) => g.floatTensor(`const_${names++}`, data, dims);
  const ones = (n: number) => constant(new Float32Array(n).fill(1), [n, 1]);
  const eye = (n: number, m: number, value = 1) => {
    const e = new Float32Array(n * m);
    for (let i = 0; i < Math.min(n, m); i++) e[i * m + i] = value;
    return e;
  };

  const vectors = g.input("vectors", FLOAT, [T, D]);
  const sqNorms = g.input("sq_norms", FLOAT, [T, 1]);
  const rows = g.input("rows", INT64, [C * B]);
  const A = g.input("lora_A", FLOAT, [R, D]);
  const Bw = g.input("lora_B", FLOAT, [D, R]);
  g.output("loss", FLOAT, []);
  g.output("dA", FLOAT, [R, D]);
  g.output("dB", FLOAT, [D, R]);

  // Gather the batch: anchors Xa = vectors[rows[:B]] (B, D), candidates Xc (K, D), and their ‖x‖².
  const [ia, ic] = g.opMulti("Split", [rows, g.int64Tensor("split_rows", [B, K])], 2, { axis: 0 });
  const Xa = g.op("Gather", [vectors, ia], { axis: 0 });
  const Xc = g.op("Gather", [vectors, ic], { axis: 0 });
  const xa2 = g.op("Gather", [sqNorms, ia], { axis: 0 }); // (B, 1)
  const xc2 = g.op("Gather", [sqNorms, ic], { axis: 0 }); // (K, 1)

  // AB = [A; Bᵀ] (2R, D) and J = [[s BᵀB, I], [I, 0]] (2R, 2R).
  const AB = g.op("Concat", [A, g.op("Transpose", [Bw], { perm: [1, 0] })], { axis: 0 });
  const sM = gemm(Bw, Bw, null, R, R, D, { transA: 1, alpha: s });
  const J = g.op("Concat", [g.op("Concat", [sM, constant(eye(R, R), [R, R])], { axis: 1 }), constant(eye(R, R2), [R, R2])], { axis: 0 });

  // One side (N rows): z = [u w] (N, 2R), f = z J = [v u], q² = 1 / max(‖h‖², eps²), q = √q².
  // ‖h‖² = ‖x‖² + s Σ z ⊙ f is one GEMM of z ⊙ f against a column of ones with ‖x‖² as C.
  // A side without the adapter (query-only candidates) has z = [0 w]: u = 0 there, h = x.
  const eps2 = g.scalar("norm_eps_sq", NORM_EPS * NORM_EPS);
  const onesR2 = ones(R2);
  const side = (X: string, x2: string, N: number, adapted: boolean) => {
    const ABside = adapted ? AB : ew(R2 * D, "Mul", [AB, constant(Float32Array.from({ length: R2 }, (_, i) => (i < R ? 0 : 1)), [R2, 1])]);
    const Z = gemm(X, ABside, null, N, R2, D, { transB: 1 });
    if (!adapted) return { Z, F: null, q2: ew(N, "Reciprocal", [ew(N, "Max", [x2, eps2])]) };
    const F = gemm(Z, J, null, N, R2, R2, {});
    const h2 = gemm(ew(N * R2, "Mul", [Z, F]), onesR2, x2, N, 1, R2, { alpha: s });
    return { Z, F, q2: ew(N, "Reciprocal", [ew(N, "Max", [h2, eps2])]) };
  };
  const a = side(Xa, xa2, B, true);
  const c = side(Xc, xc2, K, adaptRight);
  const qa = ew(B, "Sqrt", [a.q2]);
  const qc = ew(K, "Sqrt", [c.q2]);

  // P = Ha Hcᵀ = Xa Xcᵀ + s Fa Zcᵀ (B, K); logits S = P ⊙ Q with Q = scale · qa qcᵀ.
  const Gram = gemm(Xa, Xc, null, B, K, D, { transB: 1 });
  const P = gemm(a.F!, c.Z, Gram, B, K, R2, { alpha: s, transB: 1 });
  const Q = gemm(qa, qc, null, B, K, 1, { alpha: scale, transB: 1 });
  const S = ew(B * K, "Mul", [P, Q]);
  const axis1 = g.int64Tensor("axis_1", [1]);
  const Sp = C === 3 ? g.op("Slice", [S, g.int64Tensor("sl_start", [0]), g.int64Tensor("sl_end", [B]), axis1]) : S; // (B, B)
  // log-softmax over rows of S (anchor -> candidates) and over columns of Sp (positive -> anchors).
  const LSr = ew(4 * B * K, "LogSoftmax", [S], { axis: 1 }); // (B, K)
  const LSc = ew(4 * B * B, "LogSoftmax", [Sp], { axis: 0 }); // (B, B)

  // loss = −(Σ_i LSr[i][i] + Σ_i LSc[i][i]) / (2B): the mean of the two cross-entropies;
  // the diagonal is picked by a mask holding −1/(2B) on it.
  const c2b = 1 / (2 * B);
  const LSrp = C === 3 ? g.op("Slice", [LSr, g.int64Tensor("sl_start2", [0]), g.int64Tensor("sl_end2", [B]), axis1]) : LSr;
  g.opNamed("ReduceSum", [ew(B * B, "Mul", [ew(B * B, "Add", [LSrp, LSc]), constant(eye(B, B, -c2b), [B, B])])], ["loss"], { keepdims: 0 });
  flops += B * B;

  // Gs = 2B · dL/dS = softmax_rows(S) − [I|0] + [softmax_cols(Sp) − I | 0]   (B, K).
  let Pc = ew(B * B, "Exp", [LSc]);
  if (C === 3) Pc = g.op("Concat", [Pc, constant(new Float32Array(B * B), [B, B])], { axis: 1 });
  const Gs = ew(B * K, "Sub", [ew(B * K, "Add", [ew(B * K, "Exp", [LSr]), Pc]), constant(eye(B, K, 2), [B, K])]);

  // Back through S = P ⊙ Q, the norms and P = Gram + s Fa Zcᵀ. With G = Gs / (2B):
  //   dP = G ⊙ Q = Gq / (2B)
  //   dL/d‖h‖² = −k q² / 2 with k = Σ G ⊙ S over the row (anchors) or column (candidates)
  //   dz = s dP (Zc J) + 2 s dL/d‖h‖² f = (s / 2B) (Gq Fc − n ⊙ f),  n = (Σ Gs ⊙ S) q²
  // (candidates: Gqᵀ Fa). The common factor s / 2B goes into the GEMMs that use dz.
  const Gq = ew(B * K, "Mul", [Gs, Q]);
  const GS = ew(B * K, "Mul", [Gs, S]);
  const na = ew(B, "Mul", [g.op("ReduceSum", [GS, axis1], { keepdims: 1 }), a.q2]); // (B, 1)
  flops += B * K;
  const dZa = gemm(Gq, c.F ?? gemm(c.Z, J, null, K, R2, R2, {}), ew(B * R2, "Mul", [na, a.F!]), B, R2, K, { beta: -1 });
  let dZc: string;
  if (adaptRight) {
    const nc = ew(K, "Mul", [gemm(GS, ones(B), null, K, 1, B, { transA: 1 }), c.q2]); // column sums (K, 1)
    dZc = gemm(Gq, a.F!, ew(K * R2, "Mul", [nc, c.F!]), K, R2, B, { transA: 1, beta: -1 });
  } else {
    // Only w = Bᵀx of an unadapted candidate depends on the weights.
    dZc = ew(K * R2, "Mul", [gemm(Gq, a.F!, null, K, R2, B, { transA: 1 }), constant(Float32Array.from({ length: R2 }, (_, i) => (i < R ? 0 : 1)), [1, R2])]);
  }

  // [dA; dBᵀ] (2R, D) = (s / 2B) (dZaᵀ Xa + dZcᵀ Xc), since z = AB x.
  const sc = s * c2b;
  const dAB = gemm(dZc, Xc, gemm(dZa, Xa, null, R2, D, B, { transA: 1, alpha: sc }), R2, D, K, { transA: 1, alpha: sc });
  const dBt = "dB_transposed";
  g.opNamed("Split", [dAB, g.int64Tensor("split_ab", [R, R])], ["dA", dBt], { axis: 0 });

  // M = BᵀB sits in J, so dB also gains B (dM + dMᵀ). Σ zᵀdz over both sides is
  // (dJ + dJᵀ) J, whose top-right (R, R) block is (dJ + dJᵀ)₀₀ = (dM + dMᵀ) / s: a (2R, 2R)
  // product of factors already at hand, then dB = dBᵀᵀ + s · B · that block.
  const ZdZa = gemm(a.Z, dZa, null, R2, R2, B, { transA: 1 });
  const ZdZ = adaptRight ? gemm(c.Z, dZc, ZdZa, R2, R2, K, { transA: 1 }) : ZdZa; // unadapted candidates: u = 0 rows
  const E = g.op("Slice", [ZdZ, g.int64Tensor("blk_start", [0, R]), g.int64Tensor("blk_end", [R, R2]), g.int64Tensor("blk_axes", [0, 1])]);
  gemm(Bw, E, g.op("Transpose", [dBt], { perm: [1, 0] }), D, R, R, { alpha: s * sc }, "dB");
  return { model: g.toBytes(), flops, gemms };
}
