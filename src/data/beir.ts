import { readdir, readFile } from "node:fs/promises";
import path from "node:path";

import { EmbedtuneError, type ErrorLocation } from "../errors.js";
import type { RetrievalDataset, RetrievalText } from "./types.js";
import { describe } from "./validate.js";

/**
 * BEIR folders (Thakur et al., 2021; the layout of the BeIR datasets on the Hugging Face Hub):
 *   corpus.jsonl          {"_id", "title", "text"} one document per line
 *   queries.jsonl         {"_id", "text"} one query per line
 *   qrels/<split>.tsv     query-id <TAB> corpus-id <TAB> score, after a header row
 * A document's text is title + " " + text, trimmed (BEIR's own convention when it encodes a
 * corpus with sentence-transformers). A qrel with score > 0 makes the document relevant
 * (binary relevance, as sentence-transformers' InformationRetrievalEvaluator); queries with
 * no relevant document in the split are left out, as BEIR's loader does.
 */
export const BEIR_FILES = { corpus: "corpus.jsonl", queries: "queries.jsonl", qrels: "qrels" } as const;

export interface BeirOptions {
  /** qrels/<split>.tsv to read. Default: the only split when there is one, else `defaultSplit`. */
  split?: string;
  /** The split used when the folder has several and none was asked for ("train" to train, "test" to evaluate). */
  defaultSplit?: "train" | "test";
}

/** Whether `dir` looks like a BEIR folder (it has corpus.jsonl). */
export async function isBeirFolder(dir: string): Promise<boolean> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.includes(BEIR_FILES.corpus);
}

export async function readBeir(dir: string, options: BeirOptions = {}): Promise<RetrievalDataset> {
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const need of [BEIR_FILES.corpus, BEIR_FILES.queries, BEIR_FILES.qrels]) {
    if (!names.includes(need)) {
      throw new EmbedtuneError("INVALID_DATA", `not a BEIR folder: ${need} is missing`, { file: dir },
        "a BEIR folder holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv; a data file must end in .jsonl, .json, .csv or .tsv");
    }
  }
  const split = await chooseSplit(dir, options);
  const corpusFile = path.join(dir, BEIR_FILES.corpus);
  const corpus = readTexts(corpusFile, await readText(corpusFile), true);
  if (corpus.length === 0) throw new EmbedtuneError("INVALID_DATA", "no documents", { file: corpusFile });
  const queriesFile = path.join(dir, BEIR_FILES.queries);
  const allQueries = readTexts(queriesFile, await readText(queriesFile), false);
  const qrelsFile = path.join(dir, BEIR_FILES.qrels, `${split}.tsv`);
  const qrels = readQrels(qrelsFile, await readText(qrelsFile));

  const docRow = new Map(corpus.map((d, i) => [d.id, i]));
  const queryRow = new Map(allQueries.map((q, i) => [q.id, i]));
  const relevantOf = new Map<number, number[]>(); // query row -> corpus rows, in qrels order
  for (const { queryId, docId, score, line } of qrels) {
    const q = queryRow.get(queryId);
    if (q === undefined) {
      throw new EmbedtuneError("INVALID_DATA", `query ${JSON.stringify(queryId)} is not in ${BEIR_FILES.queries}`, { file: qrelsFile, line, field: "query-id" });
    }
    const d = docRow.get(docId);
    if (d === undefined) {
      throw new EmbedtuneError("INVALID_DATA", `document ${JSON.stringify(docId)} is not in ${BEIR_FILES.corpus}`, { file: qrelsFile, line, field: "corpus-id" });
    }
    if (score <= 0) continue;
    const list = relevantOf.get(q) ?? [];
    if (!list.includes(d)) list.push(d);
    relevantOf.set(q, list);
  }
  const kept = [...relevantOf.keys()].sort((a, b) => a - b); // queries.jsonl order
  if (kept.length === 0) {
    throw new EmbedtuneError("INVALID_DATA", "no query has a relevant document (score > 0)", { file: qrelsFile });
  }
  return {
    kind: "retrieval",
    file: dir,
    split,
    queries: kept.map((q) => allQueries[q]),
    corpus,
    relevant: kept.map((q) => relevantOf.get(q)!),
  };
}

async function chooseSplit(dir: string, options: BeirOptions): Promise<string> {
  const qrelsDir = path.join(dir, BEIR_FILES.qrels);
  const splits = (await readdir(qrelsDir).catch(() => [] as string[])).filter((f) => f.endsWith(".tsv")).map((f) => f.slice(0, -4)).sort();
  const available = splits.length > 0 ? splits.join(", ") : "none";
  if (options.split) {
    if (!splits.includes(options.split)) {
      throw new EmbedtuneError("INVALID_ARGUMENT", `no split "${options.split}": qrels/${options.split}.tsv is missing (available: ${available})`, { file: dir, field: "split" });
    }
    return options.split;
  }
  if (splits.length === 1) return splits[0];
  const wanted = options.defaultSplit ?? "test";
  if (splits.includes(wanted)) return wanted;
  throw new EmbedtuneError("INVALID_ARGUMENT", `choose a qrels split (available: ${available})`, { file: dir, field: "split" }, "pass --split <name>");
}

async function readText(file: string): Promise<string> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new EmbedtuneError("FILE_NOT_FOUND", code === "ENOENT" ? "file not found" : `cannot read file (${code})`, { file });
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    const text = bytes.toString("utf8");
    const line = text.slice(0, text.indexOf("\uFFFD")).split("\n").length;
    throw new EmbedtuneError("INVALID_DATA", "invalid UTF-8", { file, line }, "save the file as UTF-8");
  }
}

/** corpus.jsonl (documents: title + " " + text) or queries.jsonl (text), ids unique. */
function readTexts(file: string, content: string, isCorpus: boolean): RetrievalText[] {
  const out: RetrievalText[] = [];
  const seen = new Map<string, number>(); // id -> line
  const lines = content.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const source = lines[i].endsWith("\r") ? lines[i].slice(0, -1) : lines[i];
    if (source.trim() === "") continue;
    const line = i + 1;
    let value: unknown;
    try {
      value = JSON.parse(source);
    } catch (e) {
      throw new EmbedtuneError("INVALID_DATA", `malformed JSON: ${(e as Error).message.slice(0, 100)}`, { file, line });
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw new EmbedtuneError("INVALID_DATA", `expected a JSON object, found ${describe(value)}`, { file, line });
    }
    const o = value as Record<string, unknown>;
    const at = (field: string): ErrorLocation => ({ file, line, field });
    const rawId = o._id;
    if (typeof rawId !== "string" && typeof rawId !== "number") {
      throw new EmbedtuneError("INVALID_DATA", rawId === undefined ? "missing" : `expected a string, found ${describe(rawId)}`, at("_id"));
    }
    const id = String(rawId);
    const before = seen.get(id);
    if (before !== undefined) throw new EmbedtuneError("INVALID_DATA", `duplicate id ${JSON.stringify(id)} (first on line ${before})`, at("_id"));
    seen.set(id, line);
    const body = field(o.text, at("text"), !isCorpus);
    const title = isCorpus ? field(o.title, at("title"), false) : "";
    const text = isCorpus ? `${title} ${body}`.trim() : body;
    if (!isCorpus && text.trim() === "") throw new EmbedtuneError("INVALID_DATA", "empty text", at("text")); // an empty document is kept: it can still be retrieved
    out.push({ id, text });
  }
  return out;
}

/** A text field: a string; missing or null is "" unless required. */
function field(value: unknown, where: ErrorLocation, required: boolean): string {
  if (typeof value === "string") return value;
  if ((value === undefined || value === null) && !required) return "";
  throw new EmbedtuneError("INVALID_DATA", value === undefined ? "missing" : `expected a string, found ${describe(value)}`, where);
}

interface Qrel {
  queryId: string;
  docId: string;
  score: number;
  line: number;
}

/** qrels/<split>.tsv: a header row, then query-id, corpus-id, score (an integer) per line. */
function readQrels(file: string, content: string): Qrel[] {
  const lines = content.split("\n");
  const out: Qrel[] = [];
  let header = true;
  for (let i = 0; i < lines.length; i++) {
    const source = lines[i].endsWith("\r") ? lines[i].slice(0, -1) : lines[i];
    if (source.trim() === "") continue;
    const line = i + 1;
    const cells = source.split("\t");
    if (header) {
      header = false;
      if (!/^-?\d+$/.test(cells[2]?.trim() ?? "")) continue; // the header row (BEIR writes query-id, corpus-id, score)
    }
    if (cells.length !== 3) {
      throw new EmbedtuneError("INVALID_DATA", `expected 3 tab-separated columns (query-id, corpus-id, score), found ${cells.length}`, { file, line });
    }
    const [queryId, docId, rawScore] = cells.map((c) => c.trim());
    if (queryId === "") throw new EmbedtuneError("INVALID_DATA", "empty", { file, line, field: "query-id" });
    if (docId === "") throw new EmbedtuneError("INVALID_DATA", "empty", { file, line, field: "corpus-id" });
    if (!/^-?\d+$/.test(rawScore)) {
      throw new EmbedtuneError("INVALID_DATA", `expected an integer, found ${JSON.stringify(rawScore)}`, { file, line, field: "score" });
    }
    out.push({ queryId, docId, score: Number(rawScore), line });
  }
  if (out.length === 0) throw new EmbedtuneError("INVALID_DATA", "no qrels (the file is empty or holds only a header)", { file });
  return out;
}
