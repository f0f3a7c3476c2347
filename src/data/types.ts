/** One training pair (sentence-transformers `anchor`/`positive`[/`negative`] columns). */
export interface PairExample {
  anchor: string;
  positive: string;
  negative?: string; // a hard negative; present on every example or on none
}

/** One pair with a gold similarity. */
export interface ScoredExample {
  sentence1: string;
  sentence2: string;
  score: number; // normalised to [0, 1]: the file's score divided by Dataset.scoreScale
}

/** A document or query of a BEIR folder. */
export interface RetrievalText {
  id: string;
  text: string; // documents: title + " " + text, trimmed (BEIR's convention)
}

/**
 * A retrieval benchmark (BEIR folder): every query searches the whole corpus, and the qrels
 * say which documents are relevant (several per query are allowed). Only queries with at
 * least one relevant document in the split are kept, as BEIR's loader does.
 */
export interface RetrievalDataset {
  kind: "retrieval";
  file: string; // the folder
  split: string; // the qrels file read: qrels/<split>.tsv
  queries: RetrievalText[];
  corpus: RetrievalText[];
  relevant: number[][]; // (queries,) corpus indices with a qrel score > 0, in qrels order
  /** Set when a deterministic share of the queries was held out (see holdout.ts). */
  holdout?: { percent: number; part: "train" | "held-out"; ofQueries: number };
}

export type PairsDataset = {
  kind: "pairs"; file: string; examples: PairExample[]; hasNegatives: boolean;
  /** Headerless CSV/TSV: the names given to the columns by position. */
  columns?: string[];
  /** Pairs made from a BEIR folder: which queries they come from. */
  source?: string;
};
export type ScoredDataset = {
  kind: "scored"; file: string; examples: ScoredExample[];
  // scoreScale: the range the file used ([0, 1] or [0, 5], e.g. STSb); scores were divided by it
  scoreScale: 1 | 5;
  /** Headerless CSV/TSV: the names given to the columns by position. */
  columns?: string[];
};

/** What a data file holds (readDataset). */
export type Dataset = PairsDataset | ScoredDataset;

/** A data file or a BEIR folder (loadData). */
export type AnyDataset = Dataset | RetrievalDataset;
