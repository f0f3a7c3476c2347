import { isDirectory } from "../io/atomic.js";
import { EmbedtuneError } from "../errors.js";
import { readBeir } from "./beir.js";
import { holdoutSplit, retrievalPairs } from "./holdout.js";
import { readDataset } from "./read.js";
import type { AnyDataset, Dataset, RetrievalDataset } from "./types.js";

export interface LoadOptions {
  /** BEIR folders: the qrels split (qrels/<split>.tsv). */
  split?: string;
  /** BEIR folders: hold out this percentage of the queries (see holdout.ts); 0 or undefined = none. */
  holdout?: number;
}

/**
 * Data to train on: a data file as it is, or a BEIR folder as one (query, relevant document)
 * pair per qrel of its split, without the held-out queries when `holdout` is given.
 */
export async function loadTrainingData(file: string, options: LoadOptions = {}): Promise<Dataset> {
  if (!(await isDirectory(file))) {
    noHoldout(file, options);
    return readDataset(file);
  }
  const ds = await readBeir(file, { split: options.split, defaultSplit: "train" });
  return retrievalPairs(options.holdout ? holdoutSplit(ds, options.holdout).train : ds);
}

/**
 * Data to evaluate on: a data file as it is, or a BEIR folder as a retrieval set (its queries
 * search the whole corpus), only the held-out queries when `holdout` is given.
 */
export async function loadEvalData(file: string, options: LoadOptions = {}): Promise<AnyDataset> {
  if (!(await isDirectory(file))) {
    noHoldout(file, options);
    return readDataset(file);
  }
  const ds = await readBeir(file, { split: options.split, defaultSplit: "test" });
  return options.holdout ? holdoutSplit(ds, options.holdout).heldOut : ds;
}

function noHoldout(file: string, options: LoadOptions): void {
  if (options.holdout) {
    throw new EmbedtuneError("INVALID_ARGUMENT", "--holdout applies to BEIR folders; this is a data file", { file, field: "holdout" },
      "split the file yourself, or give a BEIR folder (corpus.jsonl, queries.jsonl, qrels/)");
  }
}

/** One line saying what was read, for the command line ("5,749 scored pairs (scores 0-5, divided by 5)"). */
export function describeData(ds: AnyDataset): string {
  const n = (x: number): string => x.toLocaleString("en-US");
  const layout = "columns" in ds && ds.columns ? `, no header row: columns read as ${ds.columns.join(", ")}` : "";
  if (ds.kind === "scored") {
    const scale = ds.scoreScale === 5 ? "scores 0-5, divided by 5" : "scores 0-1, used as they are";
    return `${n(ds.examples.length)} scored pairs (${scale}${layout})`;
  }
  if (ds.kind === "pairs") {
    const note = ds.source ? ` (from ${ds.source})` : layout ? ` (${layout.slice(2)})` : "";
    return `${n(ds.examples.length)} ${ds.hasNegatives ? "triplets" : "pairs"}${note}`;
  }
  return describeRetrieval(ds);
}

function describeRetrieval(ds: RetrievalDataset): string {
  const n = (x: number): string => x.toLocaleString("en-US");
  const qrels = ds.relevant.reduce((s, r) => s + r.length, 0);
  const part = ds.holdout ? `, the ${ds.holdout.part} part of ${n(ds.holdout.ofQueries)} (holdout ${ds.holdout.percent}%)` : "";
  return `BEIR split "${ds.split}": ${n(ds.queries.length)} queries${part}, ${n(qrels)} relevant documents, searching ${n(ds.corpus.length)} documents`;
}
