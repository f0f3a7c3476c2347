import { EmbedtuneError } from "../errors.js";
import type { Rng } from "../util/rng.js";

export interface SamplerOptions {
  /**
   * Batches smaller than this are dropped (default min(2, batchSize)): with in-batch
   * negatives a batch of one example has nothing to contrast with. Only the tail of an
   * epoch can be that small, so at most a few examples per epoch are skipped, and a
   * different few each epoch.
   */
  minBatchSize?: number;
}

/**
 * Batches with no text twice, as sentence-transformers' NoDuplicatesBatchSampler makes
 * them: with in-batch negatives (MultipleNegativesRankingLoss and kin) a text that occurs
 * in two examples of a batch would be a "negative" identical to a positive.
 *
 * Each epoch shuffles the examples, then fills batches greedily in that order: an example
 * that shares a text id with the batch being filled is deferred, and every later batch
 * looks at the deferred examples first, in order. A batch is full unless every example has
 * been looked at: only then, at the tail of the epoch, can the deferred examples left over
 * (that collide with each other) make smaller batches. Deterministic for a given Rng state. Cost: O(n * columns) plus the rescans of deferred examples, which are
 * few unless most examples share texts.
 */
export class NoDuplicatesBatchSampler {
  readonly n: number; // examples
  readonly batchSize: number;
  readonly minBatchSize: number;
  private readonly columns: readonly Int32Array[];
  private readonly rng: Rng;
  private readonly stamp: Int32Array; // (maxTextId + 1,): number of the batch that last took the text
  private batchNumber = 0;

  /**
   * @param columns text ids per example, one column per role (e.g. anchors, positives,
   *   negatives; see textColumns); all of length n.
   * @param batchSize examples per batch; "all" = n (one full batch if no text repeats); 1 = online.
   */
  constructor(columns: readonly Int32Array[], batchSize: number | "all", rng: Rng, options: SamplerOptions = {}) {
    if (columns.length === 0) {
      throw new EmbedtuneError("INVALID_ARGUMENT", "the sampler needs at least one column of text ids");
    }
    this.n = columns[0].length;
    this.batchSize = batchSize === "all" ? Math.max(1, this.n) : batchSize;
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1) {
      throw new EmbedtuneError("INVALID_ARGUMENT", `batch size ${String(batchSize)} must be a positive integer or "all"`,
        { field: "batch_size" });
    }
    this.minBatchSize = options.minBatchSize ?? Math.min(2, this.batchSize);
    let maxId = -1;
    for (const column of columns) {
      if (column.length !== this.n) {
        throw new EmbedtuneError("INVALID_ARGUMENT", `text id columns differ in length (${this.n} and ${column.length})`);
      }
      for (let i = 0; i < column.length; i++) {
        if (column[i] < 0) throw new EmbedtuneError("INVALID_ARGUMENT", `negative text id ${column[i]} at example ${i}`);
        if (column[i] > maxId) maxId = column[i];
      }
    }
    this.columns = columns;
    this.rng = rng;
    this.stamp = new Int32Array(maxId + 1);
  }

  /** One epoch's batches, each an array of example indices. */
  epoch(): number[][] {
    const { n, batchSize, columns, stamp } = this;
    const order = new Int32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    this.rng.shuffle(order);

    const deferred = new Int32Array(n); // examples skipped so far, in shuffled order
    let deferredCount = 0;
    let next = 0; // position in `order` of the first example not yet looked at
    const batches: number[][] = [];

    // An example fits when none of its texts is in the batch (its own texts may repeat).
    const fits = (ex: number, mark: number): boolean => {
      for (const column of columns) if (stamp[column[ex]] === mark) return false;
      return true;
    };
    const take = (ex: number, mark: number, batch: number[]): void => {
      for (const column of columns) stamp[column[ex]] = mark;
      batch.push(ex);
    };

    while (deferredCount > 0 || next < n) {
      const mark = ++this.batchNumber;
      const batch: number[] = [];
      let kept = 0;
      let i = 0;
      for (; i < deferredCount && batch.length < batchSize; i++) {
        const ex = deferred[i];
        if (fits(ex, mark)) take(ex, mark, batch);
        else deferred[kept++] = ex;
      }
      for (; i < deferredCount; i++) deferred[kept++] = deferred[i]; // not looked at: stay in order
      deferredCount = kept;
      while (batch.length < batchSize && next < n) {
        const ex = order[next++];
        if (fits(ex, mark)) take(ex, mark, batch);
        else deferred[deferredCount++] = ex;
      }
      if (batch.length >= this.minBatchSize) batches.push(batch);
    }
    return batches;
  }
}

/**
 * Batches per epoch when no text repeats (the usual case; repeated texts can add partial
 * batches at the tail): full batches plus a last partial one of at least minBatchSize.
 */
export function batchesPerEpoch(n: number, batchSize: number | "all", minBatchSize?: number): number {
  const b = batchSize === "all" ? Math.max(1, n) : batchSize;
  const min = minBatchSize ?? Math.min(2, b);
  return Math.floor(n / b) + (n % b > 0 && n % b >= min ? 1 : 0);
}
