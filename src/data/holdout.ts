import { createHash } from "node:crypto";

import { EmbedtuneError } from "../errors.js";
import type { PairsDataset, RetrievalDataset } from "./types.js";

/**
 * A deterministic, leak-free hold-out of a retrieval split's queries.
 *
 * Queries are grouped with every other query they share a relevant document with (the
 * connected components of the query-document graph of the qrels): SciFact, for one, has
 * claims in pairs, a claim and its negation citing the same abstract, and putting one on
 * each side would train on the very abstract the held-out claim must find. A group is held
 * out when sha256(its smallest document id) falls in the first `percent` of the hash range,
 * so the split depends on the qrels alone: no seed, the same on every machine. No
 * relevant document of a held-out query is relevant to a training query; the corpus
 * (what is searched) stays whole on both sides.
 */
export function holdoutSplit(ds: RetrievalDataset, percent: number): { train: RetrievalDataset; heldOut: RetrievalDataset } {
  checkPercent(percent);
  const nq = ds.queries.length;
  // Union-find over query rows 0..nq-1 and documents nq + corpus row.
  const parent = new Int32Array(nq + ds.corpus.length).map((_, i) => i);
  const find = (x: number): number => {
    while (parent[x] !== x) {
      parent[x] = parent[parent[x]];
      x = parent[x];
    }
    return x;
  };
  ds.relevant.forEach((docs, q) => {
    for (const d of docs) parent[find(q)] = find(nq + d);
  });
  const groupKey = new Map<number, string>(); // root -> smallest document id of the group
  ds.relevant.forEach((docs) => {
    for (const d of docs) {
      const root = find(nq + d);
      const id = ds.corpus[d].id;
      const key = groupKey.get(root);
      if (key === undefined || id < key) groupKey.set(root, id);
    }
  });
  const held: number[] = [];
  const kept: number[] = [];
  for (let q = 0; q < nq; q++) (inHoldout(groupKey.get(find(q))!, percent) ? held : kept).push(q);
  if (held.length === 0 || kept.length === 0) {
    throw new EmbedtuneError("INVALID_ARGUMENT", `holding out ${percent}% of ${nq} queries leaves ${held.length === 0 ? "no held-out" : "no training"} query`, { file: ds.file, field: "holdout" });
  }
  const part = (rows: number[], which: "train" | "held-out"): RetrievalDataset => ({
    ...ds,
    queries: rows.map((q) => ds.queries[q]),
    relevant: rows.map((q) => ds.relevant[q]),
    holdout: { percent, part: which, ofQueries: nq },
  });
  return { train: part(kept, "train"), heldOut: part(held, "held-out") };
}

/** sha256(key) as a fraction of the hash range, compared with percent / 100. */
function inHoldout(key: string, percent: number): boolean {
  const h = createHash("sha256").update(key, "utf8").digest();
  return h.readUInt32BE(0) / 2 ** 32 < percent / 100;
}

export function checkPercent(percent: number): void {
  if (!(Number.isFinite(percent) && percent > 0 && percent < 100)) {
    throw new EmbedtuneError("INVALID_ARGUMENT", `holdout must be a percentage in (0, 100), got ${percent}`, { field: "holdout" });
  }
}

/**
 * Training pairs from a retrieval split: one (query, relevant document) pair per qrel, the
 * form sentence-transformers trains BEIR data in.
 */
export function retrievalPairs(ds: RetrievalDataset): PairsDataset {
  const examples = ds.relevant.flatMap((docs, q) => docs.map((d) => ({ anchor: ds.queries[q].text, positive: ds.corpus[d].text })));
  if (examples.length < 2) throw new EmbedtuneError("INVALID_DATA", `only ${examples.length} (query, document) pair; at least 2 are needed`, { file: ds.file });
  const part = ds.holdout ? `, the ${ds.holdout.part} part of ${ds.holdout.ofQueries.toLocaleString("en-US")} (holdout ${ds.holdout.percent}%)` : "";
  const source = `BEIR split "${ds.split}": ${ds.queries.length.toLocaleString("en-US")} queries${part}`;
  return { kind: "pairs", file: ds.file, examples, hasNegatives: false, source };
}
