/**
 * CoSENT: sentence-transformers' CoSENTLoss (Su Jianlin's "Cosine Sentence" loss) for
 * pairs with a gold similarity score. Only the ORDER of the scores matters: every pair the
 * gold data ranks higher should have a higher cosine.
 *
 * `scale` multiplies the cosine differences: scale = 1 / temperature (the default 20 is
 * temperature 0.05).
 *
 * For N pairs (z1_i, z2_i, score_i), already normalised:
 *
 *     cos_i = z1_i · z2_i
 *     t_ij  = scale · (cos_j − cos_i)       for every ordered (i, j) with score_i > score_j
 *     loss  = log(1 + Σ exp t_ij) = lse([0, t…])     (ties add nothing; no averaging)
 *
 * Backward: with w_ij = exp(t_ij − loss) (the softmax weight of term ij),
 *
 *     dcos_j += scale · w_ij      dcos_i −= scale · w_ij
 *     dz1_i = dcos_i · z2_i       dz2_i = dcos_i · z1_i
 *
 * O(N²) pairs, which is fine at batch sizes.
 */
import { EmbedtuneError } from "../errors.js";
import { type Float, dotAt } from "../tensor/ops.js";

/** Reusable buffers for up to maxPairs pairs. */
export interface CosentWork {
  maxPairs: number;
  cos: Float64Array; // (N)  cos_i
  dcos: Float64Array; // (N)  dL/dcos_i
}

export function createCosentWork(maxPairs: number): CosentWork {
  return { maxPairs, cos: new Float64Array(maxPairs), dcos: new Float64Array(maxPairs) };
}

/**
 * Loss and gradients of CoSENT. Returns the loss; OVERWRITES dz1 (N, D) and dz2 (N, D).
 * scores (N) are the gold scores. After the call work.cos and work.dcos hold cos and dL/dcos.
 * With no strictly ordered pair the loss is log 1 = 0 and the gradients are zero.
 */
export function cosentForwardBackward(
  dz1: Float, dz2: Float, z1: Float, z2: Float, scores: ArrayLike<number>,
  N: number, D: number, scale: number, work: CosentWork = createCosentWork(N),
): number {
  if (N > work.maxPairs) {
    throw new EmbedtuneError("INVALID_ARGUMENT", `CoSENT workspace holds ${work.maxPairs} pairs, batch has ${N}`);
  }
  const { cos, dcos } = work;
  for (let i = 0; i < N; i++) cos[i] = dotAt(z1, i * D, z2, i * D, D);

  // lse over [0, t_ij …]: first the max, then the shifted sum.
  let m = 0; // the leading 0 term
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < N; j++) {
      if (scores[i] > scores[j]) m = Math.max(m, scale * (cos[j] - cos[i]));
    }
  }
  let sum = Math.exp(-m);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < N; j++) {
      if (scores[i] > scores[j]) sum += Math.exp(scale * (cos[j] - cos[i]) - m);
    }
  }
  const loss = m + Math.log(sum);

  dcos.fill(0, 0, N);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < N; j++) {
      if (scores[i] > scores[j]) {
        const g = scale * Math.exp(scale * (cos[j] - cos[i]) - loss); // scale · w_ij
        dcos[j] += g;
        dcos[i] -= g;
      }
    }
  }

  for (let i = 0; i < N; i++) {
    const o = i * D;
    const g = dcos[i];
    for (let k = 0; k < D; k++) {
      dz1[o + k] = g * z2[o + k];
      dz2[o + k] = g * z1[o + k];
    }
  }
  return loss;
}
