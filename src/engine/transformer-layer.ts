/**
 * One transformer encoder layer, in the two orders our encoders use (x: the layer's input):
 *
 *   post-LN (BERT):      h1 = LN1(x + MHA(x) W_o)            y = LN2(h1 + act(h1 W_i) W_f)
 *   pre-LN (USE-Lite):   h1 = MHA(LN1(x)) W_o + res(x)       y = h1 + act(LN2(h1) W_i) W_f
 *
 * MHA(z) = attention(z W_q, z W_k, z W_v) (attention.ts); every W has its bias; res(x) is x,
 * or x W_r + b_r where the layer changes width (USE-Lite's layer 0, 256 -> 512). Any linear
 * may carry a LoRA pair (linear.ts). Widths: Din (x), A (q, k, v), H (h1, y), F (feed-forward).
 *
 * The backward runs the same steps in reverse: each buffer the forward saved in LayerActs is
 * what one of the layer backwards needs; gradients of the frozen weights are never formed.
 */
import type { Float } from "../tensor/ops.js";
import type { Rng } from "../util/rng.js";
import {
  attentionBackward, attentionForward, createAttentionCache, createAttentionScratch, probsSize,
  type AttentionCache, type AttentionScratch,
} from "./attention.js";
import type { TokenBatch } from "./batch.js";
import { type Activation, activationBackward, activationForward, residualForward } from "./elementwise.js";
import { createLayerNormCache, layerNormBackward, layerNormForward, type LayerNormCache } from "./layernorm.js";
import { createLinearCache, type Linear, linearBackward, linearForward, type LinearCache, type LoraPair } from "./linear.js";

export const LINEAR_SLOTS = ["query", "key", "value", "attnOut", "ffnIn", "ffnOut", "residual"] as const;
export type LinearSlot = (typeof LINEAR_SLOTS)[number];

export interface Norm {
  gamma: Float;
  beta: Float;
  eps: number;
}

export interface LayerParams {
  order: "post" | "pre";
  act: Activation;
  heads: number;
  scale: number; // multiplies q kᵀ: 1/√dh
  query: Linear;
  key: Linear;
  value: Linear;
  attnOut: Linear;
  ffnIn: Linear;
  ffnOut: Linear;
  residual: Linear | null;
  ln1: Norm;
  ln2: Norm;
}

/** LoRA pairs of one layer by slot, and their gradients (same slots). */
export type LayerLora = Partial<Record<LinearSlot, LoraPair>>;
export type LayerLoraGrads = Partial<Record<LinearSlot, { dA: Float; dB: Float }>>;

export function layerWidths(p: LayerParams): { Din: number; A: number; H: number; F: number } {
  return { Din: p.query.inDim, A: p.query.outDim, H: p.attnOut.outDim, F: p.ffnIn.outDim };
}

/** What the forward keeps for the backward, for up to maxT tokens. */
export interface LayerActs {
  attnIn: Float; // (T, Din) x (post) or LN1(x) (pre)
  q: Float; k: Float; v: Float; // (T, A)
  attn: AttentionCache; // head-major q, k, v and the softmax probabilities
  ctx: Float; // (T, A)
  ctxh: Float; // (T · A) forward scratch: ctx head-major
  attnOut: Float; // (T, H)  ctx W_o + b_o
  res: Float; // (T, H)  x W_r + b_r (pre, with a projection)
  s1: Float; // (T, H)  x + attnOut (post: LN1's input)
  h1: Float; // (T, H)
  ffnIn: Float; // (T, H)  h1 (post) or LN2(h1) (pre)
  u: Float; g: Float; // (T, F)  pre-activation, activation
  f: Float; // (T, H)
  s2: Float; // (T, H)  h1 + f (post: LN2's input)
  ln1: LayerNormCache;
  ln2: LayerNormCache;
  lin: Partial<Record<LinearSlot, LinearCache>>;
  dropped: boolean; // the forward applied lora_dropout
}

export function createLayerActs(p: LayerParams, lora: LayerLora, maxT: number, maxProbs: number, precision: 32 | 64 = 32): LayerActs {
  const C = precision === 64 ? Float64Array : Float32Array;
  const { Din, A, H, F } = layerWidths(p);
  const lin: LayerActs["lin"] = {};
  for (const slot of LINEAR_SLOTS) {
    const pair = lora[slot];
    const l = slot === "residual" ? p.residual : p[slot];
    if (pair && l) lin[slot] = createLinearCache(maxT, l.inDim, pair, precision);
  }
  const post = p.order === "post";
  const h1 = new C(maxT * H);
  return {
    attnIn: new C(post ? 0 : maxT * Din), q: new C(maxT * A), k: new C(maxT * A), v: new C(maxT * A),
    attn: createAttentionCache(maxT, A, maxProbs, precision), ctx: new C(maxT * A), ctxh: new C(maxT * A),
    attnOut: new C(maxT * H), res: new C(p.residual ? maxT * H : 0), s1: new C(post ? maxT * H : 0), h1, ffnIn: post ? h1 : new C(maxT * H),
    u: new C(maxT * F), g: new C(maxT * F), f: new C(maxT * H), s2: new C(post ? maxT * H : 0),
    ln1: createLayerNormCache(maxT), ln2: createLayerNormCache(maxT), lin, dropped: false,
  };
}

/** y (T, H) = layer(x (T, Din)); OVERWRITES y and acts. rng: lora_dropout (null = off). */
export function layerForward(y: Float, acts: LayerActs, x: Float, batch: TokenBatch, p: LayerParams, lora: LayerLora, rng: Rng | null): void {
  const { T } = batch;
  const { Din, A, H, F } = layerWidths(p);
  const a = acts;
  const lin = (slot: LinearSlot, out: Float, inp: Float, l: Linear) => linearForward(out, a.lin[slot] ?? null, inp, l, lora[slot] ?? null, T, rng);
  a.dropped = rng !== null;
  if (p.order === "pre") layerNormForward(a.attnIn, a.ln1, x, p.ln1.gamma, p.ln1.beta, T, Din, p.ln1.eps);
  const z = p.order === "pre" ? a.attnIn : x;
  lin("query", a.q, z, p.query);
  lin("key", a.k, z, p.key);
  lin("value", a.v, z, p.value);
  if (a.attn.probs.length < probsSize(batch.offsets, batch.N, p.heads)) throw new Error("layer activations too small for this batch");
  attentionForward(a.ctx, a.attn, a.ctxh, a.q, a.k, a.v, batch.offsets, batch.N, A, p.heads, p.scale);
  lin("attnOut", a.attnOut, a.ctx, p.attnOut);
  if (p.order === "post") {
    residualForward(a.s1, x, a.attnOut, T * H);
    layerNormForward(a.h1, a.ln1, a.s1, p.ln1.gamma, p.ln1.beta, T, H, p.ln1.eps); // ffnIn is h1
  } else {
    if (p.residual) lin("residual", a.res, x, p.residual);
    residualForward(a.h1, a.attnOut, p.residual ? a.res : x, T * H);
    layerNormForward(a.ffnIn, a.ln2, a.h1, p.ln2.gamma, p.ln2.beta, T, H, p.ln2.eps);
  }
  lin("ffnIn", a.u, a.ffnIn, p.ffnIn);
  activationForward(a.g, a.u, T * F, p.act);
  lin("ffnOut", a.f, a.g, p.ffnOut);
  if (p.order === "post") {
    residualForward(a.s2, a.h1, a.f, T * H);
    layerNormForward(y, a.ln2, a.s2, p.ln2.gamma, p.ln2.beta, T, H, p.ln2.eps);
  } else {
    residualForward(y, a.h1, a.f, T * H);
  }
}

/** Backward scratch shared by all layers of a model, sized for the widest layer. */
export interface LayerScratch {
  dH: Float; dH2: Float; // (T, max H)
  dF: Float; dF2: Float; // (T, max F)
  dA: Float; dQ: Float; dK: Float; dV: Float; // (T, max A)
  dIn: Float; // (T, max Din)
  attn: AttentionScratch;
}

export function createLayerScratch(layers: LayerParams[], maxT: number, maxL: number, precision: 32 | 64 = 32): LayerScratch {
  const C = precision === 64 ? Float64Array : Float32Array;
  const w = layers.map(layerWidths);
  const m = (f: (x: ReturnType<typeof layerWidths>) => number) => maxT * Math.max(...w.map(f));
  return {
    dH: new C(m((x) => x.H)), dH2: new C(m((x) => x.H)), dF: new C(m((x) => x.F)), dF2: new C(m((x) => x.F)),
    dA: new C(m((x) => x.A)), dQ: new C(m((x) => x.A)), dK: new C(m((x) => x.A)), dV: new C(m((x) => x.A)),
    dIn: new C(m((x) => x.Din)), attn: createAttentionScratch(maxT, Math.max(...w.map((x) => x.A)), maxL, precision),
  };
}

/**
 * Backward of layerForward for the same x and batch: dy (T, H) -> dx (T, Din), ACCUMULATED
 * when dx is given (null: the layer's input needs no gradient). LoRA gradients ACCUMULATE
 * into `grads`. Frozen weights get none.
 */
export function layerBackward(
  dx: Float | null, dy: Float, acts: LayerActs, x: Float, batch: TokenBatch,
  p: LayerParams, lora: LayerLora, grads: LayerLoraGrads, s: LayerScratch,
): void {
  const { T } = batch;
  const { Din, A, H, F } = layerWidths(p);
  const a = acts;
  const back = (slot: LinearSlot, dIn: Float | null, dOut: Float, inp: Float, l: Linear) =>
    linearBackward(dIn, null, null, grads[slot]?.dA ?? null, grads[slot]?.dB ?? null, dOut, inp, l, lora[slot] ?? null, a.lin[slot] ?? null, T, a.dropped);
  const zero = (buf: Float, n: number) => buf.fill(0, 0, n);

  // Feed-forward block: dh1 (s.dH) = gradient at h1.
  zero(s.dH, T * H);
  let dF: Float; // gradient at f (T, H)
  if (p.order === "post") {
    zero(s.dH2, T * H);
    layerNormBackward(s.dH2, null, null, dy, a.s2, a.ln2, p.ln2.gamma, T, H); // ds2
    for (let e = 0; e < T * H; e++) s.dH[e] = s.dH2[e]; // the residual h1 + f
    dF = s.dH2;
  } else {
    for (let e = 0; e < T * H; e++) s.dH[e] = dy[e];
    dF = dy;
  }
  zero(s.dF, T * F);
  back("ffnOut", s.dF, dF, a.g, p.ffnOut); // dg
  zero(s.dF2, T * F);
  activationBackward(s.dF2, s.dF, a.u, T * F, p.act); // du
  if (p.order === "post") {
    back("ffnIn", s.dH, s.dF2, a.ffnIn, p.ffnIn); // dh1 += du W_iᵀ
  } else {
    zero(s.dH2, T * H);
    back("ffnIn", s.dH2, s.dF2, a.ffnIn, p.ffnIn); // dn2
    layerNormBackward(s.dH, null, null, s.dH2, a.h1, a.ln2, p.ln2.gamma, T, H); // dh1 += LN2ᵀ dn2
  }

  // Attention block: dAttnOut = gradient at attnOut (post: ds1 = LN1ᵀ dh1; pre: dh1).
  let dAttnOut: Float;
  if (p.order === "post") {
    zero(s.dH2, T * H);
    layerNormBackward(s.dH2, null, null, s.dH, a.s1, a.ln1, p.ln1.gamma, T, H);
    dAttnOut = s.dH2;
    if (dx) for (let e = 0; e < T * H; e++) dx[e] += s.dH2[e]; // the residual x + attnOut
  } else {
    dAttnOut = s.dH;
    if (p.residual) back("residual", dx, s.dH, x, p.residual);
    else if (dx) for (let e = 0; e < T * H; e++) dx[e] += s.dH[e];
  }
  zero(s.dA, T * A);
  back("attnOut", s.dA, dAttnOut, a.ctx, p.attnOut); // dctx
  zero(s.dQ, T * A);
  zero(s.dK, T * A);
  zero(s.dV, T * A);
  attentionBackward(s.dQ, s.dK, s.dV, s.dA, a.attn, s.attn, batch.offsets, batch.N, A, p.heads, p.scale);
  const z = p.order === "pre" ? a.attnIn : x;
  // Gradient at the attention input z: x itself (post) or LN1(x) (pre, then back through LN1).
  const dz = !dx ? null : p.order === "post" ? dx : (zero(s.dIn, T * Din), s.dIn);
  back("query", dz, s.dQ, z, p.query);
  back("key", dz, s.dK, z, p.key);
  back("value", dz, s.dV, z, p.value);
  if (p.order === "pre" && dx) layerNormBackward(dx, null, null, s.dIn, x, a.ln1, p.ln1.gamma, T, Din);
}
