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
 * q, k, v are first copied head-major ((nh, T, dh): head h, row t at (h·T + t)·dh), so each
 * text's head is one contiguous (L, dh) block and every product above is one matrix product
 * (kernels.ts: onnxruntime's GEMM when large enough). The cache keeps the head-major copies
 * and every P: text i, head h at probOffset(i) + h · L_i², row-major (L_i, L_i).
 * Dimensions: T tokens, H = nh · dh width, nh heads, dh head size.
 */
import type { Float } from "../tensor/ops.js";
import { mm, mmABt, mmAtB } from "./kernels.js";

/** Entries of `probs` a batch needs: nh · Σ L_i². */
export function probsSize(offsets: Int32Array, N: number, nh: number): number {
  let s = 0;
  for (let i = 0; i < N; i++) {
    const L = offsets[i + 1] - offsets[i];
    s += L * L;
  }
  return s * nh;
}

/** What the forward keeps: head-major q, k, v (T · H each) and every P. */
export interface AttentionCache {
  qh: Float;
  kh: Float;
  vh: Float;
  probs: Float; // nh · Σ L²
}

/** Backward scratch: head-major gradients (T · H each) and one (L, L) block. */
export interface AttentionScratch {
  dout: Float;
  dq: Float;
  dk: Float;
  dv: Float;
  dP: Float; // (max L)²
}

export function createAttentionCache(maxT: number, H: number, maxProbs: number, precision: 32 | 64 = 32): AttentionCache {
  const C = precision === 64 ? Float64Array : Float32Array;
  return { qh: new C(maxT * H), kh: new C(maxT * H), vh: new C(maxT * H), probs: new C(maxProbs) };
}

export function createAttentionScratch(maxT: number, H: number, maxL: number, precision: 32 | 64 = 32): AttentionScratch {
  const C = precision === 64 ? Float64Array : Float32Array;
  return { dout: new C(maxT * H), dq: new C(maxT * H), dk: new C(maxT * H), dv: new C(maxT * H), dP: new C(maxL * maxL) };
}

/** (T, H) row-major -> (nh, T, dh) head-major; OVERWRITES dst. */
function toHeads(dst: Float, src: Float, T: number, H: number, nh: number): void {
  const dh = H / nh;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nh; h++) {
      const s = t * H + h * dh;
      const d = (h * T + t) * dh;
      for (let j = 0; j < dh; j++) dst[d + j] = src[s + j];
    }
  }
}

/** (nh, T, dh) -> (T, H); ACCUMULATES into dst when `acc`, else OVERWRITES. */
function fromHeads(dst: Float, src: Float, T: number, H: number, nh: number, acc: boolean): void {
  const dh = H / nh;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nh; h++) {
      const d = t * H + h * dh;
      const s = (h * T + t) * dh;
      if (acc) for (let j = 0; j < dh; j++) dst[d + j] += src[s + j];
      else for (let j = 0; j < dh; j++) dst[d + j] = src[s + j];
    }
  }
}

/** out (T, H) = attention(q, k, v); OVERWRITES out and the cache. `ctxh` is (T · H) scratch. */
export function attentionForward(
  out: Float, cache: AttentionCache, ctxh: Float, q: Float, k: Float, v: Float,
  offsets: Int32Array, N: number, H: number, nh: number, scale: number,
): void {
  const T = offsets[N];
  const dh = H / nh;
  const { qh, kh, vh, probs } = cache;
  toHeads(qh, q, T, H, nh);
  toHeads(kh, k, T, H, nh);
  toHeads(vh, v, T, H, nh);
  let po = 0;
  for (let i = 0; i < N; i++) {
    const t0 = offsets[i];
    const L = offsets[i + 1] - t0;
    for (let h = 0; h < nh; h++, po += L * L) {
      const b = (h * T + t0) * dh; // this text's head block (L, dh)
      const P = probs.subarray(po, po + L * L);
      mmABt(P, qh.subarray(b, b + L * dh), kh.subarray(b, b + L * dh), L, dh, L, scale); // S = scale q kᵀ
      for (let a = 0; a < L; a++) {
        const row = a * L;
        let m = -Infinity;
        for (let c = 0; c < L; c++) if (P[row + c] > m) m = P[row + c];
        let sum = 0;
        for (let c = 0; c < L; c++) {
          const e = Math.exp(P[row + c] - m);
          P[row + c] = e;
          sum += e;
        }
        const inv = 1 / sum;
        for (let c = 0; c < L; c++) P[row + c] *= inv;
      }
      mm(ctxh.subarray(b, b + L * dh), P, vh.subarray(b, b + L * dh), L, L, dh); // ctx_h = P v_h
    }
  }
  fromHeads(out, ctxh, T, H, nh, false);
}

/** Backward of attentionForward; ACCUMULATES dq, dk, dv (T, H) given dout (T, H). */
export function attentionBackward(
  dq: Float, dk: Float, dv: Float, dout: Float, cache: AttentionCache, s: AttentionScratch,
  offsets: Int32Array, N: number, H: number, nh: number, scale: number,
): void {
  const T = offsets[N];
  const dh = H / nh;
  const { qh, kh, vh, probs } = cache;
  toHeads(s.dout, dout, T, H, nh);
  s.dq.fill(0, 0, T * H);
  s.dk.fill(0, 0, T * H);
  s.dv.fill(0, 0, T * H);
  let po = 0;
  for (let i = 0; i < N; i++) {
    const t0 = offsets[i];
    const L = offsets[i + 1] - t0;
    for (let h = 0; h < nh; h++, po += L * L) {
      const b = (h * T + t0) * dh;
      const blk = (x: Float) => x.subarray(b, b + L * dh);
      const P = probs.subarray(po, po + L * L);
      const dP = s.dP.subarray(0, L * L);
      mmABt(dP, blk(s.dout), blk(vh), L, dh, L); // dP = dout_h v_hᵀ
      mmAtB(blk(s.dv), P, blk(s.dout), L, L, dh); // dv_h += Pᵀ dout_h
      for (let a = 0; a < L; a++) {
        const row = a * L;
        let pdp = 0;
        for (let c = 0; c < L; c++) pdp += P[row + c] * dP[row + c];
        for (let c = 0; c < L; c++) dP[row + c] = scale * P[row + c] * (dP[row + c] - pdp); // scale · dS
      }
      mm(blk(s.dq), dP, blk(kh), L, L, dh, 1, true); // dq_h += scale dS k_h
      mmAtB(blk(s.dk), dP, blk(qh), L, L, dh); // dk_h += scale dSᵀ q_h
    }
  }
  fromHeads(dq, s.dq, T, H, nh, true);
  fromHeads(dk, s.dk, T, H, nh, true);
  fromHeads(dv, s.dv, T, H, nh, true);
}
