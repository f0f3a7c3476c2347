/**
 * Length bucketing: texts are sorted by token count and cut into batches of similar
 * length, so padding (wasted work in attention and matmuls) stays small. Each batch is
 * capped by a token budget as well as a count, so long texts go in smaller batches.
 */
export interface Batch {
  indices: number[]; // positions in the caller's text list
  length: number; // longest sequence in the batch (L)
}

export function lengthBuckets(lengths: ArrayLike<number>, maxBatch = 64, maxTokens = 4096): Batch[] {
  const order = Array.from({ length: lengths.length }, (_, i) => i).sort((a, b) => lengths[a] - lengths[b] || a - b);
  const batches: Batch[] = [];
  let current: number[] = [];
  let longest = 0;
  for (const i of order) {
    const L = Math.max(1, lengths[i]);
    if (current.length > 0 && (current.length >= maxBatch || (current.length + 1) * Math.max(longest, L) > maxTokens)) {
      batches.push({ indices: current, length: longest });
      current = [];
      longest = 0;
    }
    current.push(i);
    longest = Math.max(longest, L);
  }
  if (current.length > 0) batches.push({ indices: current, length: longest });
  return interleave(batches);
}

/**
 * Alternates short and long batches (first, last, second, second to last, ...), so texts
 * per second stay steady through a run and a progress bar's ETA is honest from the start.
 */
function interleave<T>(items: T[]): T[] {
  const out: T[] = [];
  for (let lo = 0, hi = items.length - 1; lo <= hi; lo++, hi--) {
    out.push(items[lo]);
    if (hi !== lo) out.push(items[hi]);
  }
  return out;
}

/** Pads token-id rows into int64 (B, L) input_ids and attention_mask. */
export function padBatch(rows: number[][], length: number): { ids: BigInt64Array; mask: BigInt64Array } {
  const ids = new BigInt64Array(rows.length * length);
  const mask = new BigInt64Array(rows.length * length);
  rows.forEach((row, b) => {
    for (let t = 0; t < row.length && t < length; t++) {
      ids[b * length + t] = BigInt(row[t]);
      mask[b * length + t] = 1n;
    }
  });
  return { ids, mask };
}
