/**
 * Symmetric InfoNCE with in-batch negatives: sentence-transformers'
 * MultipleNegativesSymmetricRankingLoss (MultipleNegativesRankingLoss plus the reverse,
 * positive → anchor, direction), on already-normalised embeddings.
 *
 * `scale` multiplies the cosine similarities: scale = 1 / temperature (the default 20
 * is temperature 0.05).
 *
 * Without hard negatives, S = scale · za zpᵀ (B, B), row i = anchor i, column j = positive j:
 *
 *     loss_a2p = (1/B) Σ_i ( lse_j S[i][j] − S[i][i] )     CE over rows
 *     loss_p2a = (1/B) Σ_j ( lse_i S[i][j] − S[j][j] )     CE over columns
 *     loss     = (loss_a2p + loss_p2a) / 2
 *     G = dL/dS = ( softmax_rows(S) − I + softmax_cols(S) − I ) / (2B)
 *     dza = scale · G zp        dzp = scale · Gᵀ za
 *
 * With one hard negative per anchor (zn (B, D)), every anchor's row is scored against all
 * 2B candidates [zp; zn]: the row CE runs over S = [Sp | Sn] (B, 2B), Sn = scale · za znᵀ,
 * while the column CE stays on the anchor–positive block Sp only, as in
 * sentence-transformers (`scores[:, :batch_size].t()`). Then
 *
 *     Gp = ( softmax_rows([Sp|Sn])[:, :B] − I + softmax_cols(Sp) − I ) / (2B)
 *     Gn =   softmax_rows([Sp|Sn])[:, B:] / (2B)
 *     dza = scale (Gp zp + Gn zn)    dzp = scale Gpᵀ za    dzn = scale Gnᵀ za
 *
 * log-sum-exp is taken after subtracting the max, so large scales cannot overflow.
 */
import { EmbedtuneError } from "../errors.js";
import { type Float, matmul, matmulABt, matmulAtB } from "../tensor/ops.js";

/** Reusable buffers for batches of up to maxBatch rows (float64: logits are where precision matters). */
export interface InfoNceWork {
  maxBatch: number;
  Sp: Float64Array; // (B, B)  scale · za zpᵀ, then overwritten by Gp
  Sn: Float64Array; // (B, B)  scale · za znᵀ, then overwritten by Gn
  lseRow: Float64Array; // (B)     log Σ_j exp over row i of [Sp | Sn]
  lseCol: Float64Array; // (B)     log Σ_i exp over column j of Sp
}

export function createInfoNceWork(maxBatch: number): InfoNceWork {
  return {
    maxBatch,
    Sp: new Float64Array(maxBatch * maxBatch),
    Sn: new Float64Array(maxBatch * maxBatch),
    lseRow: new Float64Array(maxBatch),
    lseCol: new Float64Array(maxBatch),
  };
}

/** What the last call left in its workspace, for tests and logging. */
export interface InfoNceParts {
  lossAnchorToPositive: number;
  lossPositiveToAnchor: number;
}

/**
 * Loss and gradients of symmetric InfoNCE. Returns the loss; OVERWRITES dza (B, D) and, when
 * given, dzp (B, D) and dzn (B, D). Pass dzp = null when the positives' gradient is not
 * needed (query-only mode). zn/dzn null means no hard negatives. `parts`, when given,
 * receives the two directional losses. After the call `work.Sp` holds Gp = dL/dSp and
 * `work.Sn` holds Gn (both (B, B), row stride B).
 */
export function infoNceForwardBackward(
  dza: Float, dzp: Float | null, dzn: Float | null,
  za: Float, zp: Float, zn: Float | null,
  B: number, D: number, scale: number,
  work: InfoNceWork = createInfoNceWork(B), parts?: InfoNceParts,
): number {
  if (B > work.maxBatch) {
    throw new EmbedtuneError("INVALID_ARGUMENT", `InfoNCE workspace holds ${work.maxBatch} rows, batch has ${B}`);
  }
  if (dzn && !zn) throw new EmbedtuneError("INVALID_ARGUMENT", "InfoNCE: dzn given without negatives zn");
  const { Sp, Sn, lseRow, lseCol } = work;
  const neg = zn !== null;

  // Logits.
  matmulABt(Sp, za, zp, B, D, B, scale); // Sp = scale · za zpᵀ  (B, B)
  if (neg) matmulABt(Sn, za, zn, B, D, B, scale); // Sn = scale · za znᵀ  (B, B)

  // Row log-sum-exp over [Sp | Sn] and column log-sum-exp over Sp.
  for (let i = 0; i < B; i++) {
    const o = i * B;
    let m = -Infinity;
    for (let j = 0; j < B; j++) m = Math.max(m, Sp[o + j]);
    if (neg) for (let j = 0; j < B; j++) m = Math.max(m, Sn[o + j]);
    let sum = 0;
    for (let j = 0; j < B; j++) sum += Math.exp(Sp[o + j] - m);
    if (neg) for (let j = 0; j < B; j++) sum += Math.exp(Sn[o + j] - m);
    lseRow[i] = m + Math.log(sum);
  }
  for (let j = 0; j < B; j++) {
    let m = -Infinity;
    for (let i = 0; i < B; i++) m = Math.max(m, Sp[i * B + j]);
    let sum = 0;
    for (let i = 0; i < B; i++) sum += Math.exp(Sp[i * B + j] - m);
    lseCol[j] = m + Math.log(sum);
  }

  let rowLoss = 0;
  let colLoss = 0;
  for (let i = 0; i < B; i++) {
    const sii = Sp[i * B + i];
    rowLoss += lseRow[i] - sii;
    colLoss += lseCol[i] - sii;
  }
  rowLoss /= B;
  colLoss /= B;
  if (parts) {
    parts.lossAnchorToPositive = rowLoss;
    parts.lossPositiveToAnchor = colLoss;
  }

  // G = dL/dS in place of S: each CE contributes (softmax − onehot) / B, halved by the mean.
  const c = 1 / (2 * B);
  for (let i = 0; i < B; i++) {
    const o = i * B;
    const lr = lseRow[i];
    for (let j = 0; j < B; j++) {
      const s = Sp[o + j];
      Sp[o + j] = (Math.exp(s - lr) + Math.exp(s - lseCol[j]) - (i === j ? 2 : 0)) * c;
    }
    if (neg) for (let j = 0; j < B; j++) Sn[o + j] = Math.exp(Sn[o + j] - lr) * c;
  }

  // Back through S = scale · za [zp; zn]ᵀ.
  matmul(dza, Sp, zp, B, B, D, scale); // dza  = scale Gp zp   (B, D)
  if (neg) matmul(dza, Sn, zn, B, B, D, scale, true); // dza += scale Gn zn
  if (dzp) {
    dzp.fill(0, 0, B * D);
    matmulAtB(dzp, Sp, za, B, B, D, scale); // dzp = scale Gpᵀ za  (B, D)
  }
  if (dzn && neg) {
    dzn.fill(0, 0, B * D);
    matmulAtB(dzn, Sn, za, B, B, D, scale); // dzn = scale Gnᵀ za  (B, D)
  }
  return (rowLoss + colLoss) / 2;
}
