import type { IndexedEvalData } from "../data/texts.js";
import type { ApplyTo } from "../io/adapter-folder.js";
import type { CosineSample } from "../report/report.js";
import { Rng } from "../util/rng.js";
import { embedRows, type AdapterMap } from "./evaluate.js";

/** Scored pairs count as positive from this normalised gold score (4 of 5 on STS-B). */
export const SCORED_POSITIVE_FROM = 0.8;

export interface PairPlan {
  left: Int32Array; // (P,) text ids of the query side
  right: Int32Array; // (P,) text ids of the document side
  negLeft: Int32Array; // (Q,) in-batch negatives: left of pair i ...
  negRight: Int32Array; // (Q,) ... right of pair j, j != i, same batch, not itself a positive
  source: string; // what the pairs are, for the report
}

/**
 * Which pairs the report's histograms compare: the positive pairs of `data` (a sample of at
 * most `maxPairs`, shuffled with a fixed seed), cut into batches of `batchSize` as training
 * does, and in each batch every (left i, right j != i) that is not itself a positive pair.
 * Fixed once, so "before" and "after" compare the same pairs.
 */
export function planPairs(data: IndexedEvalData, what: string, batchSize: number, maxPairs = 2000, seed = 1234): PairPlan {
  const lefts: number[] = [];
  const rights: number[] = [];
  let kind = "positive pairs";
  if (data.kind === "pairs") {
    data.anchors.forEach((a, e) => (lefts.push(a), rights.push(data.positives[e])));
  } else if (data.kind === "scored") {
    data.scores.forEach((s, e) => {
      if (s >= SCORED_POSITIVE_FROM) (lefts.push(data.s1[e]), rights.push(data.s2[e]));
    });
    kind = `pairs scored at least ${SCORED_POSITIVE_FROM} (of 1)`;
  } else {
    data.relevant.forEach((docs, q) => docs.forEach((d) => (lefts.push(data.queries[q]), rights.push(data.corpus[d]))));
    kind = "(query, relevant document) pairs";
  }
  const isPositive = new Set(lefts.map((l, i) => `${l}:${rights[i]}`));
  const order = Int32Array.from(lefts, (_, i) => i);
  Rng.seeded(seed).shuffle(order);
  const take = order.subarray(0, Math.min(maxPairs, order.length));
  const left = Int32Array.from(take, (i) => lefts[i]);
  const right = Int32Array.from(take, (i) => rights[i]);
  const negLeft: number[] = [];
  const negRight: number[] = [];
  const B = Math.max(2, batchSize);
  for (let b0 = 0; b0 < take.length; b0 += B) {
    const b1 = Math.min(take.length, b0 + B);
    for (let i = b0; i < b1; i++) {
      for (let j = b0; j < b1; j++) {
        if (j === i || right[j] === right[i] || isPositive.has(`${left[i]}:${right[j]}`)) continue;
        negLeft.push(left[i]);
        negRight.push(right[j]);
      }
    }
  }
  const source = `${what}: ${take.length.toLocaleString("en-US")} ${kind}${take.length < lefts.length ? ` (a fixed sample of ${lefts.length.toLocaleString("en-US")})` : ""}; ` +
    `negatives: every other pair's document in batches of ${B}, as in training.`;
  return { left, right, negLeft: Int32Array.from(negLeft), negRight: Int32Array.from(negRight), source };
}

/** Cosines of the planned pairs with the base vectors (lora null) or through the adapter (any map evaluate takes). */
export function pairCosines(plan: PairPlan, vectors: Float32Array, D: number, lora: AdapterMap | null, applyTo: ApplyTo): CosineSample {
  const rightLora = applyTo === "both" ? lora : null;
  const cos = (l: Int32Array, r: Int32Array): Float64Array => {
    const lIds = [...new Set(l)];
    const rIds = [...new Set(r)];
    const lRow = new Map(lIds.map((t, i) => [t, i]));
    const rRow = new Map(rIds.map((t, i) => [t, i]));
    const zl = embedRows(vectors, lIds, D, lora); // unit rows: cosine = dot
    const zr = embedRows(vectors, rIds, D, rightLora);
    const out = new Float64Array(l.length);
    for (let k = 0; k < l.length; k++) {
      const a = lRow.get(l[k])! * D;
      const b = rRow.get(r[k])! * D;
      let dot = 0;
      for (let d = 0; d < D; d++) dot += zl[a + d] * zr[b + d];
      out[k] = dot;
    }
    return out;
  };
  return { positive: cos(plan.left, plan.right), negative: cos(plan.negLeft, plan.negRight) };
}
