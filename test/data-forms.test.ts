/**
 * The data forms users have besides headed JSONL/CSV/TSV: headerless two- and three-column
 * files, and BEIR folders (corpus.jsonl, queries.jsonl, qrels/<split>.tsv), with the
 * deterministic, group-aware query hold-out used to evaluate on queries kept out of training.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, describe, expect, it } from "vitest";

import { readBeir } from "../src/data/beir.js";
import { holdoutSplit, retrievalPairs } from "../src/data/holdout.js";
import { describeData, loadEvalData, loadTrainingData } from "../src/data/load.js";
import { readDataset } from "../src/data/read.js";
import { indexData, TextTable } from "../src/data/texts.js";
import type { RetrievalDataset } from "../src/data/types.js";
import { EmbedtuneError } from "../src/errors.js";
import { sharedData } from "./helpers.js";

const dir = mkdtempSync(join(tmpdir(), "embedtune-forms-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, content: string): string {
  const file = join(dir, name);
  mkdirSync(join(file, ".."), { recursive: true });
  writeFileSync(file, content);
  return file;
}
const jsonl = (...objects: unknown[]): string => objects.map((o) => JSON.stringify(o)).join("\n") + "\n";

async function errorOf(p: Promise<unknown>): Promise<EmbedtuneError> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  expect(e).toBeInstanceOf(EmbedtuneError);
  expect((e as Error).message).not.toContain("\n");
  return e as EmbedtuneError;
}

describe("headerless CSV and TSV", () => {
  it("two columns are (anchor, positive)", async () => {
    const ds = await readDataset(write("two.csv", "A text editor for programmers,\"vim, improved\"\nXML parsing library,libxml2\n"));
    expect(ds).toMatchObject({ kind: "pairs", hasNegatives: false, columns: ["anchor", "positive"] });
    expect(ds.examples).toEqual([{ anchor: "A text editor for programmers", positive: "vim, improved" }, { anchor: "XML parsing library", positive: "libxml2" }]);
    expect(describeData(ds)).toBe("2 pairs (no header row: columns read as anchor, positive)");
  });

  it("three columns with a numeric third are scored pairs (the STS-B upstream layout), 0-5 scaled", async () => {
    const ds = await readDataset(write("sts.tsv", "A man is dancing.\tA man dances.\t4.5\nA cat sleeps.\tThe market fell.\t0\n"));
    expect(ds).toMatchObject({ kind: "scored", scoreScale: 5, columns: ["sentence1", "sentence2", "score"] });
    expect(ds.examples[0]).toEqual({ sentence1: "A man is dancing.", sentence2: "A man dances.", score: 0.9 });
    expect(describeData(ds)).toBe("2 scored pairs (scores 0-5, divided by 5, no header row: columns read as sentence1, sentence2, score)");
  });

  it("three columns of text are triplets", async () => {
    const ds = await readDataset(write("trip.csv", "how to parse xml?,libxml2 parses XML,a text editor\nwhat plays mp3?,an audio player,a PDF viewer\n"));
    expect(ds).toMatchObject({ kind: "pairs", hasNegatives: true });
    expect(ds.examples[1]).toEqual({ anchor: "what plays mp3?", positive: "an audio player", negative: "a PDF viewer" });
  });

  it("a header of bare identifiers is still a header (and unknown names are reported)", async () => {
    const e = await errorOf(readDataset(write("named.csv", "question,answer\nwhat is vim?,a text editor\n")));
    expect(e.message).toMatch(/named\.csv:1: no known fields \(found: question,answer;/);
  });

  it("errors name the line and the column by position", async () => {
    const bad = await errorOf(readDataset(write("badscore.csv", "A man is dancing.,A man dances.,4.5\nA cat.,A dog.,high\n")));
    expect(bad.message).toMatch(/badscore\.csv:2: field "column 3 \(score\)": expected a finite number, found "high"$/);
    expect(bad).toMatchObject({ line: 2, field: "column 3 (score)" });
    const short = await errorOf(readDataset(write("short.tsv", "a b\tc d\ne f\n")));
    expect(short.message).toMatch(/short\.tsv:2: expected 2 columns as on line 1 \(no header row\), found 1$/);
    const four = await errorOf(readDataset(write("four.csv", "a b,c d,e f,g h\n")));
    expect(four.message).toMatch(/four\.csv:1: no header row, and 4 columns \(a file without a header has 2 columns/);
    const empty = await errorOf(readDataset(write("emptycell.csv", "a b,c d\ne f,\n")));
    expect(empty.message).toMatch(/emptycell\.csv:2: field "column 2 \(positive\)": empty text$/);
    const range = await errorOf(readDataset(write("range.csv", "a b,c d,4\ne f,g h,9\n")));
    expect(range.message).toMatch(/range\.csv:2: field "column 3 \(score\)": score 9 is out of range/);
  });
});

/** A small BEIR folder: 6 documents, 5 queries; q1 and q2 share doc d2 (a claim pair). */
function beirFolder(name: string, overrides: Partial<Record<"corpus" | "queries" | "train" | "test", string>> = {}): string {
  const root = join(dir, name);
  write(`${name}/corpus.jsonl`, overrides.corpus ?? jsonl(
    { _id: "d1", title: "Vim", text: "A text editor." },
    { _id: "d2", title: "", text: "Aspirin lowers fever." },
    { _id: "d3", title: "Libxml2", text: "Parses XML." },
    { _id: 4, title: "Audio", text: "Plays MP3 files." },
    { _id: "d5", title: "Orphan", text: "Never relevant." },
    { _id: "d6", text: "Only text, no title field." },
  ));
  write(`${name}/queries.jsonl`, overrides.queries ?? jsonl(
    { _id: "q1", text: "Aspirin reduces fever." },
    { _id: "q2", text: "Aspirin does not reduce fever." },
    { _id: "q3", text: "edit text files" },
    { _id: "q4", text: "play music" },
    { _id: "q5", text: "no qrels for me" },
  ));
  write(`${name}/qrels/train.tsv`, overrides.train ?? "query-id\tcorpus-id\tscore\nq1\td2\t1\nq2\td2\t1\nq3\td1\t1\nq3\td6\t2\nq4\t4\t1\nq4\td3\t0\n");
  if (overrides.test !== undefined) write(`${name}/qrels/test.tsv`, overrides.test);
  return root;
}

describe("BEIR folders", () => {
  it("reads corpus (title + ' ' + text), queries with qrels, several relevant documents per query", async () => {
    const ds = await readBeir(beirFolder("small"));
    expect(ds.split).toBe("train");
    expect(ds.corpus.map((d) => d.text)).toEqual(["Vim A text editor.", "Aspirin lowers fever.", "Libxml2 Parses XML.", "Audio Plays MP3 files.", "Orphan Never relevant.", "Only text, no title field."]);
    expect(ds.corpus[3].id).toBe("4"); // numeric ids read as strings
    expect(ds.queries.map((q) => q.id)).toEqual(["q1", "q2", "q3", "q4"]); // q5 has no qrels; score 0 is not relevant
    expect(ds.relevant).toEqual([[1], [1], [0, 5], [3]]);
    expect(describeData(ds)).toBe('BEIR split "train": 4 queries, 5 relevant documents, searching 6 documents');
    const table = new TextTable();
    const indexed = indexData(ds, table);
    expect(indexed.kind).toBe("retrieval");
    if (indexed.kind === "retrieval") expect(indexed.corpus).toHaveLength(6);
    expect(table.size).toBe(10);
  });

  it("trains on one (query, relevant document) pair per qrel", async () => {
    const pairs = await loadTrainingData(beirFolder("small2"));
    expect(pairs.kind).toBe("pairs");
    expect(pairs.examples).toEqual([
      { anchor: "Aspirin reduces fever.", positive: "Aspirin lowers fever." },
      { anchor: "Aspirin does not reduce fever.", positive: "Aspirin lowers fever." },
      { anchor: "edit text files", positive: "Vim A text editor." },
      { anchor: "edit text files", positive: "Only text, no title field." },
      { anchor: "play music", positive: "Audio Plays MP3 files." },
    ]);
  });

  it("chooses the split: the only one, else train to train and test to evaluate, else --split", async () => {
    const both = beirFolder("both", { test: "query-id\tcorpus-id\tscore\nq4\t4\t1\n" });
    expect((await loadEvalData(both)) as RetrievalDataset).toMatchObject({ split: "test", queries: [{ id: "q4" }] });
    expect((await loadTrainingData(both)).examples).toHaveLength(5);
    expect(((await loadEvalData(both, { split: "train" })) as RetrievalDataset).split).toBe("train");
    const e = await errorOf(loadEvalData(both, { split: "dev" }));
    expect(e.message).toMatch(/both: field "split": no split "dev": qrels\/dev\.tsv is missing \(available: test, train\)$/);
  });

  it("reports bad files with file, line and field", async () => {
    const cases: Array<[Partial<Record<"corpus" | "queries" | "train", string>>, RegExp]> = [
      [{ corpus: jsonl({ _id: "d1", text: "a" }) + '{"_id": "d2", "text": \n' }, /corpus\.jsonl:2: malformed JSON/],
      [{ corpus: jsonl({ _id: "d1", text: "a" }, { title: "t", text: "b" }) }, /corpus\.jsonl:2: field "_id": missing$/],
      [{ corpus: jsonl({ _id: "d1", text: "a" }, { _id: "d1", text: "b" }) }, /corpus\.jsonl:2: field "_id": duplicate id "d1" \(first on line 1\)$/],
      [{ corpus: jsonl({ _id: "d1", text: 5 }) }, /corpus\.jsonl:1: field "text": expected a string, found number 5$/],
      [{ queries: jsonl({ _id: "q1", text: "a" }, { _id: "q2", text: "  " }) }, /queries\.jsonl:2: field "text": empty text$/],
      [{ train: "query-id\tcorpus-id\tscore\nq1\td2\t1\nq1\tnope\t1\n" }, /train\.tsv:3: field "corpus-id": document "nope" is not in corpus\.jsonl$/],
      [{ train: "query-id\tcorpus-id\tscore\nq9\td2\t1\n" }, /train\.tsv:2: field "query-id": query "q9" is not in queries\.jsonl$/],
      [{ train: "query-id\tcorpus-id\tscore\nq1\td2\thigh\n" }, /train\.tsv:2: field "score": expected an integer, found "high"$/],
      [{ train: "query-id\tcorpus-id\tscore\nq1\td2\n" }, /train\.tsv:2: expected 3 tab-separated columns/],
      [{ train: "query-id\tcorpus-id\tscore\nq1\td2\t0\n" }, /train\.tsv: no query has a relevant document/],
    ];
    let i = 0;
    for (const [override, message] of cases) {
      const e = await errorOf(readBeir(beirFolder(`bad${i++}`, override)));
      expect(e.message).toMatch(message);
    }
    const notBeir = join(dir, "plain");
    mkdirSync(notBeir);
    expect((await errorOf(loadEvalData(notBeir))).message).toMatch(/plain: not a BEIR folder: corpus\.jsonl is missing/);
    const file = write("pairs.jsonl", jsonl({ query: "a", positive: "b" }, { query: "c", positive: "d" }));
    expect((await errorOf(loadEvalData(file, { holdout: 20 }))).message).toMatch(/--holdout applies to BEIR folders/);
  });
});

describe("holdout of BEIR queries", () => {
  it("keeps queries that share a relevant document on the same side, deterministically", async () => {
    const ds = await readBeir(beirFolder("hold"));
    let splits = 0;
    for (const percent of [10, 30, 50, 70, 90]) {
      let split;
      try {
        split = holdoutSplit(ds, percent);
      } catch {
        continue; // a tiny set may leave one side empty at some percentages
      }
      const held = split.heldOut.queries.map((q) => q.id);
      const kept = split.train.queries.map((q) => q.id);
      expect([...held, ...kept].sort()).toEqual(["q1", "q2", "q3", "q4"]);
      expect(held.includes("q1")).toBe(held.includes("q2")); // the claim pair stays together
      expect(holdoutSplit(ds, percent).heldOut.queries).toEqual(split.heldOut.queries);
      splits++;
    }
    expect(splits).toBeGreaterThan(1);
  });

  it("SciFact: 20% held out, no relevant abstract shared with training queries", async () => {
    const scifact = join(sharedData, "scifact");
    const ds = await readBeir(scifact);
    expect([ds.queries.length, ds.corpus.length, ds.relevant.flat().length]).toEqual([809, 5183, 919]);
    const { train, heldOut } = holdoutSplit(ds, 20);
    expect(train.queries.length + heldOut.queries.length).toBe(809);
    expect(heldOut.queries.length / 809).toBeGreaterThan(0.12);
    expect(heldOut.queries.length / 809).toBeLessThan(0.28);
    const trainDocs = new Set(train.relevant.flat());
    expect(heldOut.relevant.flat().filter((d) => trainDocs.has(d))).toEqual([]);
    const pairs = retrievalPairs(train);
    expect(pairs.examples).toHaveLength(train.relevant.flat().length);
    const evalSet = (await loadEvalData(scifact, { holdout: 20 })) as RetrievalDataset;
    expect(evalSet.queries).toEqual(heldOut.queries);
    expect(describeData(evalSet)).toMatch(/^BEIR split "train": \d+ queries, the held-out part of 809 \(holdout 20%\), \d+ relevant documents, searching 5,183 documents$/);
    const trainPart = await loadTrainingData(scifact, { holdout: 20 });
    expect(trainPart.examples).toEqual(pairs.examples);
    expect(describeData(trainPart)).toBe('703 pairs (from BEIR split "train": 620 queries, the train part of 809 (holdout 20%))');
  });
});
