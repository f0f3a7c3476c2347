import { describe, expect, it } from "vitest";
import { batchesPerEpoch, NoDuplicatesBatchSampler } from "../src/data/sampler.js";
import { Rng } from "../src/util/rng.js";

/** Columns (anchors, positives) of n examples whose text ids come from `draw`. */
function columns(n: number, draw: (i: number, role: number) => number): Int32Array[] {
  return [0, 1].map((role) => Int32Array.from({ length: n }, (_, i) => draw(i, role)));
}
const unique = (n: number): Int32Array[] => columns(n, (i, role) => 2 * i + role);

/**
 * sentence-transformers' NoDuplicatesBatchSampler.__iter__ transcribed literally
 * (remaining = ordered dict; every batch rescans it from the start), drop_last=False,
 * then batches under minBatch removed.
 */
function reference(cols: Int32Array[], batchSize: number, seed: number, minBatch: number): number[][] {
  const order = Int32Array.from({ length: cols[0].length }, (_, i) => i);
  Rng.seeded(seed).shuffle(order);
  let remaining = [...order];
  const out: number[][] = [];
  while (remaining.length > 0) {
    const values = new Set<number>();
    const batch: number[] = [];
    for (const ex of remaining) {
      const texts = cols.map((c) => c[ex]);
      if (texts.some((t) => values.has(t))) continue;
      batch.push(ex);
      texts.forEach((t) => values.add(t));
      if (batch.length === batchSize) break;
    }
    const taken = new Set(batch);
    remaining = remaining.filter((ex) => !taken.has(ex));
    if (batch.length >= minBatch) out.push(batch);
  }
  return out;
}

function checkNoDuplicates(cols: Int32Array[], batches: number[][]): void {
  for (const batch of batches) {
    const texts = batch.flatMap((ex) => [...new Set(cols.map((c) => c[ex]))]);
    expect(new Set(texts).size).toBe(texts.length);
  }
}

describe("NoDuplicatesBatchSampler", () => {
  it("puts every example exactly once, in full batches but the last", () => {
    const cols = unique(103);
    const batches = new NoDuplicatesBatchSampler(cols, 10, Rng.seeded(1)).epoch();
    expect(batches.map((b) => b.length)).toEqual([...Array(10).fill(10), 3]);
    expect(batches.flat().sort((a, b) => a - b)).toEqual([...Array(103).keys()]);
    expect(batches.flat()).not.toEqual([...Array(103).keys()]); // shuffled
    expect(batchesPerEpoch(103, 10)).toBe(11);
  });

  it("drops a last batch of one (documented), keeps it for online training", () => {
    const batches = new NoDuplicatesBatchSampler(unique(21), 4, Rng.seeded(2)).epoch();
    expect(batches.map((b) => b.length)).toEqual([4, 4, 4, 4, 4]);
    expect(batchesPerEpoch(21, 4)).toBe(5);
    const online = new NoDuplicatesBatchSampler(unique(7), 1, Rng.seeded(2)).epoch();
    expect(online).toHaveLength(7);
    expect(batchesPerEpoch(7, 1)).toBe(7);
    const kept = new NoDuplicatesBatchSampler(unique(21), 4, Rng.seeded(2), { minBatchSize: 1 }).epoch();
    expect(kept.flat()).toHaveLength(21);
  });

  it('"all" is one full batch', () => {
    const batches = new NoDuplicatesBatchSampler(unique(50), "all", Rng.seeded(3)).epoch();
    expect(batches).toHaveLength(1);
    expect(batches[0]).toHaveLength(50);
    expect(batchesPerEpoch(50, "all")).toBe(1);
  });

  it("is deterministic for a seed, differs across epochs, and resumes from a saved Rng state", () => {
    const cols = columns(500, (i, role) => (i * 7 + role * 3) % 180);
    const a = new NoDuplicatesBatchSampler(cols, 16, Rng.seeded(42));
    const b = new NoDuplicatesBatchSampler(cols, 16, Rng.seeded(42));
    const first = a.epoch();
    expect(b.epoch()).toEqual(first);
    expect(a.epoch()).not.toEqual(first);
    const rng = Rng.seeded(9);
    const c = new NoDuplicatesBatchSampler(cols, 16, rng);
    c.epoch();
    const state = rng.state();
    const next = c.epoch();
    expect(new NoDuplicatesBatchSampler(cols, 16, Rng.fromState(state)).epoch()).toEqual(next);
  });

  it("never repeats a text within a batch when many texts repeat, matching sentence-transformers' order", () => {
    for (const [n, distinct, batchSize, seed] of [[300, 12, 8, 1], [200, 5, 4, 2], [1000, 400, 32, 3], [64, 3, 64, 4]]) {
      const draw = Rng.seeded(seed * 31);
      const cols = columns(n, () => draw.int(distinct));
      const batches = new NoDuplicatesBatchSampler(cols, batchSize, Rng.seeded(seed)).epoch();
      checkNoDuplicates(cols, batches);
      expect(batches).toEqual(reference(cols, batchSize, seed, 2));
      const seen = batches.flat();
      expect(new Set(seen).size).toBe(seen.length); // at most once
      // Only examples of trailing single-example batches can be missing.
      const withSingles = new NoDuplicatesBatchSampler(cols, batchSize, Rng.seeded(seed), { minBatchSize: 1 }).epoch();
      expect(withSingles.flat().sort((x, y) => x - y)).toEqual([...Array(n).keys()]);
    }
  });

  it("allows an example whose own texts repeat (anchor = positive)", () => {
    const cols = columns(6, (i) => i); // anchor id = positive id
    const batches = new NoDuplicatesBatchSampler(cols, 3, Rng.seeded(5)).epoch();
    expect(batches.map((b) => b.length)).toEqual([3, 3]);
  });

  it("handles 20k examples with batch 64 quickly", () => {
    const draw = Rng.seeded(11);
    const cols = columns(20_000, (i, role) => (role === 0 ? draw.int(15_000) : 15_000 + i)); // repeated queries
    const sampler = new NoDuplicatesBatchSampler(cols, 64, Rng.seeded(12));
    const t0 = performance.now();
    const batches = sampler.epoch();
    const ms = performance.now() - t0;
    checkNoDuplicates(cols, batches);
    expect(batches.flat()).toHaveLength(20_000);
    expect(ms).toBeLessThan(500);
  });

  it("rejects bad arguments", () => {
    expect(() => new NoDuplicatesBatchSampler(unique(4), 0, Rng.seeded(1))).toThrow(/batch size 0 must be a positive integer/);
    expect(() => new NoDuplicatesBatchSampler(unique(4), 2.5, Rng.seeded(1))).toThrow(/batch size 2.5/);
    expect(() => new NoDuplicatesBatchSampler([new Int32Array(3), new Int32Array(2)], 2, Rng.seeded(1))).toThrow(/differ in length/);
    expect(() => new NoDuplicatesBatchSampler([Int32Array.from([0, -1])], 2, Rng.seeded(1))).toThrow(/negative text id -1/);
  });
});
