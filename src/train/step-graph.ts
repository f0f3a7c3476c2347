/**
 * The training step of the output-space adapter on (anchor, positive[, negative]) pairs
 * with symmetric InfoNCE, as one ONNX graph: forward AND the hand-derived backward, so
 * onnxruntime's GEMMs (AVX2/AVX-512) do the arithmetic while the maths stays ours. It is the
 * same computation as the reference TypeScript step (src/train/step.ts with
 * src/lora/output-adapter.ts and src/losses/infonce.ts), node for node; the formulas are
 * derived there. Clipping and AdamW stay in JavaScript (2·R·D values, cheap).
 *
 * Legend: B batch, D dim, R rank, C columns (2: anchor, positive; 3: + hard negative),
 * T rows of the vector table, s = lora_alpha / r, scale = 1 / temperature.
 *
 * Inputs   vectors (T, D) float32   base vector of every text id (the whole table, not copied)
 *          rows    (C·B) int64      text ids: anchors, then positives, then negatives
 *          lora_A  (R, D), lora_B (D, R)
 * Outputs  loss [], dA (R, D), dB (D, R)   (gradients before clipping)
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
  const g = new GraphBuilder("embedtune_infonce_step");
  let flops = 0;
  const gemms: StepGraph["gemms"] = [];
  const gemm = (a: string, b: string, c: string | null, M: number, N: number, Kd: number, attrs: { alpha?: number; transA?: number; transB?: number }, name?: string): string => {
    flops += 2 * M * N * Kd + (c ? M * N : 0);
    gemms.push({ M, N, K: Kd, transA: !!attrs.transA, transB: !!attrs.transB });
    const at: Record<string, number | { float: number }> = {};
    if (attrs.alpha !== undefined) at.alpha = { float: attrs.alpha };
    if (attrs.transA) at.transA = 1;
    if (attrs.transB) at.transB = 1;
    const inputs = c ? [a, b, c] : [a, b];
    if (name) {
      g.opNamed("Gemm", inputs, [name], at);
      return name;
    }
    return g.op("Gemm", inputs, at);
  };
  const ew = (n: number, op: string, inputs: string[], attrs: Record<string, number | number[]> = {}): string => {
    flops += n; // one operation per output element
    return g.op(op, inputs, attrs);
  };

  const vectors = g.input("vectors", FLOAT, [T, D]);
  const rows = g.input("rows", INT64, [C * B]);
  const A = g.input("lora_A", FLOAT, [R, D]);
  const Bw = g.input("lora_B", FLOAT, [D, R]);
  g.output("loss", FLOAT, []);
  g.output("dA", FLOAT, [R, D]);
  g.output("dB", FLOAT, [D, R]);
  const axis1 = g.int64Tensor("axis_1", [1]);
  const eps = g.scalar("norm_eps", NORM_EPS);

  // Gather the batch: anchors Xa = vectors[rows[:B]] (B, D); candidates Xc = vectors[rows[B:]] (K, D).
  const [ia, ic] = g.opMulti("Split", [rows, g.int64Tensor("split_rows", [B, K])], 2, { axis: 0 });
  const Xa = g.op("Gather", [vectors, ia], { axis: 0 });
  const Xc = g.op("Gather", [vectors, ic], { axis: 0 });

  // Adapter forward, per side (N rows):  U = X Aᵀ (N, R);  H = X + s U Bᵀ (N, D).
  // A side without the adapter (query-only mode) has H = X.
  const adapter = (X: string, N: number) => {
    const U = gemm(X, A, null, N, R, D, { transB: 1 });
    return { U, H: gemm(U, Bw, X, N, D, R, { alpha: s, transB: 1 }) };
  };
  const a = adapter(Xa, B);
  const c = adaptRight ? adapter(Xc, K) : { U: null, H: Xc };
  // Inverse norms q = 1 / max(‖h‖, eps) (N, 1); z = q h is never formed: it is folded into
  // the (B, K) logits below and into the backward's GEMMs.
  const invNorm = (H: string, N: number): string => {
    const sq = ew(N, "ReduceSum", [ew(N * D, "Mul", [H, H]), axis1], { keepdims: 1 });
    flops += N * D; // the sum's additions
    return ew(N, "Reciprocal", [ew(N, "Max", [ew(N, "Sqrt", [sq]), eps])]);
  };
  const qa = invNorm(a.H, B); // (B, 1)
  const qc = invNorm(c.H, K); // (K, 1)
  const c2b = 1 / (2 * B);
  const qcRowS = g.op("Mul", [g.op("Reshape", [qc, g.int64Tensor("row_shape", [1, K])]), g.scalar("scale", scale)]); // scale · qcᵀ (1, K)

  // Logits S = scale · za zcᵀ = diag(qa) (Ha Hcᵀ) diag(scale · qc)   (B, K)
  const P = gemm(a.H, c.H, null, B, K, D, { transB: 1 });
  const S = ew(B * K, "Mul", [ew(B * K, "Mul", [P, qa]), qcRowS]);
  const Sp = C === 3 ? g.op("Slice", [S, g.int64Tensor("sl_start", [0]), g.int64Tensor("sl_end", [B]), axis1]) : S; // (B, B)
  // log-softmax over rows of S (anchor -> candidates) and over columns of Sp (positive -> anchors).
  const LSr = ew(4 * B * K, "LogSoftmax", [S], { axis: 1 }); // (B, K)
  const LSc = ew(4 * B * B, "LogSoftmax", [Sp], { axis: 0 }); // (B, B)

  // loss = −(Σ_i LSr[i][i] + Σ_i LSc[i][i]) / (2B): the mean of the two cross-entropies;
  // the diagonal is picked by a mask holding −1/(2B) on it.
  const eye = new Float32Array(B * B);
  for (let i = 0; i < B; i++) eye[i * B + i] = 1;
  const LSrp = C === 3 ? g.op("Slice", [LSr, g.int64Tensor("sl_start2", [0]), g.int64Tensor("sl_end2", [B]), axis1]) : LSr;
  const lossMask = g.floatTensor("loss_mask", eye.map((v) => -v * c2b), [B, B]);
  g.opNamed("ReduceSum", [ew(B * B, "Mul", [ew(B * B, "Add", [LSrp, LSc]), lossMask])], ["loss"], { keepdims: 0 });
  flops += B * B;

  // Gs = 2B · dL/dS = softmax_rows(S) − [I|0] + [softmax_cols(Sp) − I | 0]   (B, K);
  // the 1/(2B) is folded into the scalings below.
  let Pc = ew(B * B, "Exp", [LSc]);
  if (C === 3) Pc = g.op("Concat", [Pc, g.floatTensor("zeros_bb", new Float32Array(B * B), [B, B])], { axis: 1 });
  const twoEye = new Float32Array(B * K); // 2 · [I | 0]
  for (let i = 0; i < B; i++) twoEye[i * K + i] = 2;
  const Gs = ew(B * K, "Sub", [ew(B * K, "Add", [ew(B * K, "Exp", [LSr]), Pc]), g.floatTensor("two_eye", twoEye, [B, K])]);

  // Back through S = scale · za zcᵀ and the normalisation z = q h, whose backward is
  // dh = q (dz − z (z·dz)). With G = Gs / (2B), dza = scale G zc and dzc = scale Gᵀ za:
  //   za_i · dza_i = Σ_j G_ij S_ij = ka_i (row sums of G ⊙ S),  zc_j · dzc_j = kc_j (column sums),
  //   dHa = Gt Hc − Ha ⊙ (ka qa²)      dHc = Gtᵀ Ha − Hc ⊙ (kc qc²)      Gt = scale · diag(qa) G diag(qc)
  // so each side is one GEMM with its correction term as the C input.
  const qaC = ew(B, "Mul", [qa, g.scalar("inv_2b", c2b)]); // qa / (2B)
  const Gt = ew(B * K, "Mul", [ew(B * K, "Mul", [Gs, qaC]), qcRowS]); // (B, K)
  const GS = ew(B * K, "Mul", [Gs, S]); // 2B · G ⊙ S
  const correction = (H: string, k2b: string, q: string, N: number): string => {
    const coef = ew(N, "Mul", [k2b, ew(N, "Mul", [q, ew(N, "Mul", [q, g.scalar(`minus_inv_2b_${N}_${H}`, -c2b)])])]); // −k q²  (N, 1)
    return ew(N * D, "Mul", [H, coef]);
  };
  const ka = ew(B * K, "ReduceSum", [GS, axis1], { keepdims: 1 }); // 2B · ka  (B, 1)
  const dHa = gemm(Gt, c.H, correction(a.H, ka, qa, B), B, D, K, {}); // (B, D)

  // Adapter backward, summed over the adapted sides:
  //   dBᵀ = s Σ Uᵀ dH (R, D);  dU = s dH B (N, R);  dA = Σ dUᵀ X (R, D).
  // The small (N, R) factors are transposed first, so every GEMM runs untransposed.
  const tr = (x: string) => g.op("Transpose", [x], { perm: [1, 0] });
  const dUa = gemm(dHa, Bw, null, B, R, D, { alpha: s });
  const dBtA = gemm(tr(a.U), dHa, null, R, D, B, { alpha: s });
  const dAa = gemm(tr(dUa), Xa, null, R, D, B, {});
  if (!adaptRight) {
    g.opNamed("Transpose", [dBtA], ["dB"], { perm: [1, 0] });
    g.opNamed("Identity", [dAa], ["dA"]);
    return { model: g.toBytes(), flops, gemms };
  }
  const kc = g.op("Reshape", [ew(B * K, "ReduceSum", [GS, g.int64Tensor("axis_0", [0])], { keepdims: 1 }), g.int64Tensor("col_shape", [K, 1])]); // 2B · kc  (K, 1)
  const dHc = gemm(tr(Gt), a.H, correction(c.H, kc, qc, K), K, D, B, {}); // (K, D)
  const dUc = gemm(dHc, Bw, null, K, R, D, { alpha: s });
  g.opNamed("Transpose", [gemm(tr(c.U!), dHc, dBtA, R, D, K, { alpha: s })], ["dB"], { perm: [1, 0] });
  gemm(tr(dUc), Xc, dAa, R, D, K, {}, "dA");
  return { model: g.toBytes(), flops, gemms };
}
