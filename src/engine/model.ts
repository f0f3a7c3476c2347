/**
 * What an architecture gives the engine (src/engine/engine.ts): its embedding, its stack of
 * transformer layers (transformer-layer.ts) and its head (pooling, and for USE-Lite a tanh
 * dense layer, then L2 normalisation), plus the names of its linear layers for LoRA.
 *
 *   tokens -> embedForward -> x_0 (T, Din_0) -> layer 0 -> x_1 -> ... -> x_n (T, H) -> head -> z (N, dim), unit rows
 */
import type { Float } from "../tensor/ops.js";
import type { TokenBatch } from "./batch.js";
import type { LayerParams, LinearSlot } from "./transformer-layer.js";

export type Precision = 32 | 64;

/** Buffers the head's forward fills for its backward, for up to maxN texts. */
export interface HeadCache {
  pooled: Float; // (N, H)
  pre: Float; // (N, dim)  pooled W_t + b_t (USE-Lite), else unused
  y: Float; // (N, dim)  the row before normalisation
  norms: Float; // (N)
  z: Float; // (N, dim)
  dY: Float; // (N, dim) backward scratch
  dPooled: Float; // (N, H)  backward scratch
}

export interface EngineModel {
  arch: "bert" | "use-lite";
  dim: number; // output vector size
  /** Longest text in tokens (special tokens included). */
  maxTokens: number;
  layers: LayerParams[];
  /** x_0 (T, Din_0) from token ids (with BERT's embedding LayerNorm). OVERWRITES x. */
  embedForward(x: Float, batch: TokenBatch): void;
  createHeadCache(maxN: number, precision: Precision): HeadCache;
  /** z (N, dim) unit rows from the last hidden state x (T, H). OVERWRITES z and the cache. */
  headForward(z: Float, cache: HeadCache, x: Float, batch: TokenBatch): void;
  /** dx (T, H) += dL/dx given dz (N, dim), for the same x and batch. */
  headBackward(dx: Float, dz: Float, cache: HeadCache, x: Float, batch: TokenBatch): void;
  /** The module name of a linear (PEFT's, for BERT), or null when the layer has none in that slot. */
  moduleName(layer: number, slot: LinearSlot): string | null;
  /** --lora-targets names this architecture accepts, with the slot each selects. */
  targetSlots: Record<string, LinearSlot>;
}

export function createHeadCacheOf(maxN: number, H: number, dim: number, precision: Precision): HeadCache {
  const C = precision === 64 ? Float64Array : Float32Array;
  return {
    pooled: new C(maxN * H), pre: new C(maxN * dim), y: new C(maxN * dim), norms: new C(maxN), z: new C(maxN * dim),
    dY: new C(maxN * dim), dPooled: new C(maxN * H),
  };
}
