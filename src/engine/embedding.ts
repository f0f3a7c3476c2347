/**
 * Token embeddings, one row per token of a packed batch (see batch.ts). Tables are frozen
 * in training; their backward (a scatter-add) exists so the gradient checks cover the whole
 * model down to its inputs.
 *
 *   BERT      x[t] = E_word[id_t] + E_pos[p_t] + E_type[type_t]      (then LayerNorm, in bert.ts)
 *             dE_word[id_t] += dx[t], dE_pos[p_t] += dx[t], dE_type[type_t] += dx[t]
 *   USE-Lite  x[t] = 2 E[id_t] + timing[p_t]   (the graph adds E + (E + T))
 *             dE[id_t] += 2 dx[t]
 *
 * Dimensions: T tokens, H width.
 */
import type { Float } from "../tensor/ops.js";
import type { TokenBatch } from "./batch.js";

/** x (T, H) = E_word[ids] + E_pos[positions] + E_type[types]; OVERWRITES x. */
export function bertEmbeddingForward(x: Float, batch: TokenBatch, word: Float, pos: Float, type: Float, H: number): void {
  for (let t = 0; t < batch.T; t++) {
    const o = t * H;
    const w = batch.ids[t] * H;
    const p = batch.positions[t] * H;
    const y = batch.types[t] * H;
    for (let h = 0; h < H; h++) x[o + h] = word[w + h] + pos[p + h] + type[y + h];
  }
}

/** ACCUMULATES into the tables given (null = frozen, skipped). */
export function bertEmbeddingBackward(dWord: Float | null, dPos: Float | null, dType: Float | null, dx: Float, batch: TokenBatch, H: number): void {
  for (let t = 0; t < batch.T; t++) {
    const o = t * H;
    if (dWord) scatter(dWord, batch.ids[t] * H, dx, o, H, 1);
    if (dPos) scatter(dPos, batch.positions[t] * H, dx, o, H, 1);
    if (dType) scatter(dType, batch.types[t] * H, dx, o, H, 1);
  }
}

/** x (T, D) = 2 E[ids] + timing[positions]; OVERWRITES x. timing is (maxLen, D). */
export function useLiteEmbeddingForward(x: Float, batch: TokenBatch, table: Float, timing: Float, D: number): void {
  for (let t = 0; t < batch.T; t++) {
    const o = t * D;
    const e = batch.ids[t] * D;
    const p = batch.positions[t] * D;
    // E + (E + T), in the graph's order of additions
    for (let h = 0; h < D; h++) x[o + h] = table[e + h] + (table[e + h] + timing[p + h]);
  }
}

/** dE[id_t] += 2 dx[t]. */
export function useLiteEmbeddingBackward(dTable: Float, dx: Float, batch: TokenBatch, D: number): void {
  for (let t = 0; t < batch.T; t++) scatter(dTable, batch.ids[t] * D, dx, t * D, D, 2);
}

function scatter(dst: Float, d: number, src: Float, s: number, n: number, k: number): void {
  for (let h = 0; h < n; h++) dst[d + h] += k * src[s + h];
}
