/**
 * A packed batch of texts: the token rows of every text back to back, no padding.
 * Text i owns rows offsets[i] .. offsets[i+1]; T = Σ L_i rows in all. Every layer works on
 * (T, width) row-major buffers, and attention keeps each text to its own rows (see
 * attention.ts for why this equals the padding mask).
 */
export interface TokenBatch {
  N: number; // texts
  T: number; // tokens in all
  offsets: Int32Array; // (N + 1)
  ids: Int32Array; // (T) token ids
  positions: Int32Array; // (T) position of each token in its text, 0 .. L_i − 1
  types: Int32Array; // (T) token type ids (all 0 for single texts)
}

/** Packs token id lists (already cut to the model's maximum) into one batch. */
export function packBatch(tokens: ArrayLike<ArrayLike<number>>): TokenBatch {
  const N = tokens.length;
  const offsets = new Int32Array(N + 1);
  for (let i = 0; i < N; i++) offsets[i + 1] = offsets[i] + tokens[i].length;
  const T = offsets[N];
  const ids = new Int32Array(T);
  const positions = new Int32Array(T);
  for (let i = 0; i < N; i++) {
    const list = tokens[i];
    for (let p = 0; p < list.length; p++) {
      ids[offsets[i] + p] = list[p];
      positions[offsets[i] + p] = p;
    }
  }
  return { N, T, offsets, ids, positions, types: new Int32Array(T) };
}
