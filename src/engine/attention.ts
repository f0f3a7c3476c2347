/**
 * Multi-head self-attention on a packed batch: text i owns token rows offsets[i] ..
 * offsets[i+1] (L_i rows), and attends only over its own rows. This IS the padding mask:
 * with padding, the graphs add −1e4 (BERT) or −1e9 (USE-Lite) to the scores of padded keys,
 * whose exp underflows to exactly 0, so each text's softmax runs over its own tokens alone;
 * packing computes the same numbers without the padded rows.
 *
 * Per text and head h (columns h·dh .. (h+1)·dh of q, k, v, out (T, H)):
 *
 *   S = scale · q_h k_hᵀ  (L, L)      P = softmax_rows(S)      out_h = P v_h  (L, dh)
 *
 * Backward, given dout:
 *
 *   dP = dout_h v_hᵀ      dv_h += Pᵀ dout_h
 *   dS = P ⊙ (dP − rowsum(dP ⊙ P))                     (softmax's Jacobian, row by row)
 *   dq_h += scale · dS k_h          dk_h += scale · dSᵀ q_h
 *
 * `probs` holds every P: text i, head h at probOffset(i) + h · L_i², row-major (L_i, L_i).
 * Dimensions: T tokens, H = nh · dh width, nh heads, dh head size.
 */
import type { Float } from "../tensor/ops.js";

/** Entries of `probs` a batch needs: nh · Σ L_i². */
export function probsSize(offsets: Int32Array, N: number, nh: number): number {
  let s = 0;
  for (let i = 0; i < N; i++) {
    const L = offsets[i + 1] - offsets[i];
    s += L * L;
  }
  return s * nh;
}

/** out (T, H) = attention(q, k, v); OVERWRITES out and probs. */
export function attentionForward(
  out: Float, probs: Float, q: Float, k: Float, v: Float,
  offsets: Int32Array, N: number, H: number, nh: number, scale: number,
): void {
  const dh = H / nh;
  let po = 0;
  for (let i = 0; i < N; i++) {
    const t0 = offsets[i];
    const L = offsets[i + 1] - t0;
    for (let h = 0; h < nh; h++, po += L * L) {
      const c = h * dh;
      for (let a = 0; a < L; a++) {
        const qa = (t0 + a) * H + c;
        const row = po + a * L;
        let m = -Infinity;
        for (let b = 0; b < L; b++) {
          const kb = (t0 + b) * H + c;
          let s = 0;
          for (let d = 0; d < dh; d++) s += q[qa + d] * k[kb + d];
          s *= scale;
          probs[row + b] = s;
          if (s > m) m = s;
        }
        let sum = 0;
        for (let b = 0; b < L; b++) {
          const e = Math.exp(probs[row + b] - m);
          probs[row + b] = e;
          sum += e;
        }
        const inv = 1 / sum;
        for (let b = 0; b < L; b++) probs[row + b] *= inv;
        const oa = qa; // same row and head columns in out
        for (let d = 0; d < dh; d++) out[oa + d] = 0;
        for (let b = 0; b < L; b++) {
          const p = probs[row + b];
          const vb = (t0 + b) * H + c;
          for (let d = 0; d < dh; d++) out[oa + d] += p * v[vb + d];
        }
      }
    }
  }
}

/** Backward of attentionForward; ACCUMULATES dq, dk, dv (T, H). `dp` is scratch of at least max L entries. */
export function attentionBackward(
  dq: Float, dk: Float, dv: Float, dout: Float, probs: Float, q: Float, k: Float, v: Float,
  offsets: Int32Array, N: number, H: number, nh: number, scale: number, dp: Float64Array,
): void {
  const dh = H / nh;
  let po = 0;
  for (let i = 0; i < N; i++) {
    const t0 = offsets[i];
    const L = offsets[i + 1] - t0;
    for (let h = 0; h < nh; h++, po += L * L) {
      const c = h * dh;
      for (let a = 0; a < L; a++) {
        const oa = (t0 + a) * H + c;
        const row = po + a * L;
        // dP[a, b] = dout_a · v_b and Σ_b P dP
        let pdp = 0;
        for (let b = 0; b < L; b++) {
          const vb = (t0 + b) * H + c;
          let s = 0;
          for (let d = 0; d < dh; d++) s += dout[oa + d] * v[vb + d];
          dp[b] = s;
          pdp += probs[row + b] * s;
        }
        for (let b = 0; b < L; b++) {
          const p = probs[row + b];
          const kb = (t0 + b) * H + c;
          for (let d = 0; d < dh; d++) dv[kb + d] += p * dout[oa + d]; // dv_b += P[a,b] dout_a
          const ds = scale * p * (dp[b] - pdp); // scale · dS[a, b]
          for (let d = 0; d < dh; d++) {
            dq[oa + d] += ds * k[kb + d];
            dk[kb + d] += ds * q[oa + d];
          }
        }
      }
    }
  }
}
