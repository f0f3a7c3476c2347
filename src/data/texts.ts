import type { AnyDataset, Dataset, RetrievalDataset } from "./types.js";

/**
 * Distinct texts, each with a dense id 0..size-1 in order of first appearance. The encoder
 * encodes each id once; training batches refer to rows of that cache by id. Texts are
 * compared exactly (no trimming or case folding), so ids match what the model will see.
 */
export class TextTable {
  private readonly ids = new Map<string, number>();
  private readonly list: string[] = [];

  /** The id of `text`, adding it if new. */
  add(text: string): number {
    let id = this.ids.get(text);
    if (id === undefined) {
      id = this.list.length;
      this.ids.set(text, id);
      this.list.push(text);
    }
    return id;
  }

  /** The id of `text`, or undefined if it was never added. */
  idOf(text: string): number | undefined {
    return this.ids.get(text);
  }

  get(id: number): string {
    const text = this.list[id];
    if (text === undefined) throw new RangeError(`text id ${id} out of range [0, ${this.list.length})`);
    return text;
  }

  get size(): number {
    return this.list.length;
  }

  /** All texts, index = id (a copy). */
  texts(): string[] {
    return this.list.slice();
  }
}

/** A pairs dataset as text ids, one entry per example. */
export interface IndexedPairs {
  kind: "pairs";
  anchors: Int32Array; // (N,) text ids
  positives: Int32Array; // (N,)
  negatives: Int32Array | null; // (N,) or null when the dataset has no negatives
}

/** A scored dataset as text ids and gold scores in [0, 1]. */
export interface IndexedScored {
  kind: "scored";
  s1: Int32Array; // (N,) text ids of sentence1
  s2: Int32Array; // (N,)
  scores: Float32Array; // (N,)
}

export type IndexedDataset = IndexedPairs | IndexedScored;

/**
 * Replaces every text of `dataset` by its id in `table` (adding new texts). One table can be
 * shared by several datasets (train and eval) so a text common to both is encoded once.
 */
export function indexPairs(dataset: Dataset, table: TextTable): IndexedDataset {
  const n = dataset.examples.length;
  if (dataset.kind === "pairs") {
    const anchors = new Int32Array(n);
    const positives = new Int32Array(n);
    const negatives = dataset.hasNegatives ? new Int32Array(n) : null;
    dataset.examples.forEach((e, i) => {
      anchors[i] = table.add(e.anchor);
      positives[i] = table.add(e.positive);
      if (negatives !== null) negatives[i] = table.add(e.negative as string);
    });
    return { kind: "pairs", anchors, positives, negatives };
  }
  const s1 = new Int32Array(n);
  const s2 = new Int32Array(n);
  const scores = new Float32Array(n);
  dataset.examples.forEach((e, i) => {
    s1[i] = table.add(e.sentence1);
    s2[i] = table.add(e.sentence2);
    scores[i] = e.score;
  });
  return { kind: "scored", s1, s2, scores };
}

/** The id columns of an indexed dataset, as the batch sampler takes them. */
export function textColumns(indexed: IndexedDataset): Int32Array[] {
  if (indexed.kind === "scored") return [indexed.s1, indexed.s2];
  return indexed.negatives === null
    ? [indexed.anchors, indexed.positives]
    : [indexed.anchors, indexed.positives, indexed.negatives];
}

/** A retrieval set as text ids: queries search the whole corpus; relevant rows per query. */
export interface IndexedRetrieval {
  kind: "retrieval";
  queries: Int32Array; // (nq,) text ids
  corpus: Int32Array; // (nc,) text ids; two documents with the same text share an id but stay two rows
  relevant: number[][]; // (nq,) corpus rows relevant to each query
}

/** Anything evaluate() takes. */
export type IndexedEvalData = IndexedDataset | IndexedRetrieval;

export function indexRetrieval(ds: RetrievalDataset, table: TextTable): IndexedRetrieval {
  return {
    kind: "retrieval",
    queries: Int32Array.from(ds.queries, (q) => table.add(q.text)),
    corpus: Int32Array.from(ds.corpus, (d) => table.add(d.text)),
    relevant: ds.relevant,
  };
}

/** indexPairs, or indexRetrieval for a BEIR set. */
export function indexData(ds: AnyDataset, table: TextTable): IndexedEvalData {
  return ds.kind === "retrieval" ? indexRetrieval(ds, table) : indexPairs(ds, table);
}
