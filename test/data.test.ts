import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { EmbedtuneError } from "../src/errors.js";
import { readDataset } from "../src/data/read.js";
import { indexPairs, TextTable, textColumns } from "../src/data/texts.js";

const dir = mkdtempSync(join(tmpdir(), "embedtune-data-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const repoRoot = fileURLToPath(new URL("..", import.meta.url));
const shared = resolve(repoRoot, "../shared/data");

function write(name: string, content: string | Uint8Array): string {
  const file = join(dir, name);
  writeFileSync(file, content);
  return file;
}
const jsonl = (...objects: unknown[]): string => objects.map((o) => JSON.stringify(o)).join("\n") + "\n";
const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Reads `name` with `content` and expects an error starting `file:line: field "f": ` then `rest`. */
async function expectError(name: string, content: string | Uint8Array, line: number | null, field: string | null,
  rest: string, code = "INVALID_DATA"): Promise<EmbedtuneError> {
  const file = write(name, content);
  let place = escape(file) + (line === null ? "" : `:${line}`) + ": ";
  if (field !== null) place += `field "${field}": `;
  const error = await readDataset(file).then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(EmbedtuneError);
  expect(() => { throw error; }).toThrow(new RegExp(`^${place}${rest}`));
  expect((error as EmbedtuneError).code).toBe(code);
  expect((error as Error).message).not.toContain("\n");
  expect((error as EmbedtuneError).line).toBe(line ?? undefined);
  expect((error as EmbedtuneError).field).toBe(field ?? undefined);
  return error as EmbedtuneError;
}

const pair = (anchor: string, positive: string) => ({ anchor, positive });

describe("readDataset: happy paths", () => {
  it("reads JSONL pairs, ignoring extra fields, blank lines and CRLF, keeping texts as they are", async () => {
    const file = write("pairs.jsonl",
      '{"query": " q1 ", "positive": "p1", "package": "x"}\r\n\r\n{"query": "q2", "positive": "p\\u00e92", "package": "y"}\r\n');
    const ds = await readDataset(file);
    expect(ds).toEqual({
      kind: "pairs", file, hasNegatives: false,
      examples: [{ anchor: " q1 ", positive: "p1" }, { anchor: "q2", positive: "pé2" }],
    });
  });

  it("reads JSONL triplets (anchor/positive/negative) and .json as JSON Lines", async () => {
    const content = jsonl({ anchor: "a", positive: "b", negative: "c" }, { anchor: "d", positive: "e", negative: "f" });
    for (const name of ["triplets.jsonl", "triplets.json"]) {
      const ds = await readDataset(write(name, content));
      expect(ds.kind === "pairs" && ds.hasNegatives).toBe(true);
      expect(ds.examples[1]).toEqual({ anchor: "d", positive: "e", negative: "f" });
    }
  });

  it("reads CSV pairs with quoted commas, quotes and newlines", async () => {
    const ds = await readDataset(write("pairs.csv", 'anchor,positive,id\n"a, b","say ""hi""",1\n"multi\nline",x,2\n'));
    expect(ds.examples).toEqual([{ anchor: "a, b", positive: 'say "hi"' }, { anchor: "multi\nline", positive: "x" }]);
  });

  it("scales 0-5 CSV scores to [0, 1] and keeps 0-1 scores", async () => {
    const ds5 = await readDataset(write("sts5.csv", "sentence1,sentence2,score\na,b,5.0\nc,d,2.5\ne,f,0\n"));
    expect(ds5).toMatchObject({ kind: "scored", scoreScale: 5 });
    expect(ds5.examples.map((e) => (e as { score: number }).score)).toEqual([1, 0.5, 0]);
    const ds1 = await readDataset(write("sts1.jsonl", jsonl({ sentence1: "a", sentence2: "b", score: 0.25 },
      { sentence1: "c", sentence2: "d", score: "1" })));
    expect(ds1).toMatchObject({ kind: "scored", scoreScale: 1, examples: [{ score: 0.25 }, { score: 1 }] });
  });

  it("reads TSV (text1/text2/label, quotes are plain characters, BOM dropped)", async () => {
    const ds = await readDataset(write("sts.tsv", '\uFEFFtext1\ttext2\tlabel\n"a\tb, c\t3\nd\te\t4\n'));
    expect(ds).toMatchObject({ kind: "scored", scoreScale: 5 });
    expect(ds.examples[0]).toEqual({ sentence1: '"a', sentence2: "b, c", score: 0.6 });
  });

  it("indexes texts once each and gives sampler columns", async () => {
    const ds = await readDataset(write("dup.jsonl", jsonl(pair("a", "b"), pair("a", "c"), pair("c", "b"))));
    const table = new TextTable();
    const indexed = indexPairs(ds, table);
    expect(table.texts()).toEqual(["a", "b", "c"]);
    expect(table.size).toBe(3);
    expect(table.get(2)).toBe("c");
    expect(table.idOf("b")).toBe(1);
    if (indexed.kind !== "pairs") throw new Error("expected pairs");
    expect([...indexed.anchors]).toEqual([0, 0, 2]);
    expect([...indexed.positives]).toEqual([1, 2, 1]);
    expect(indexed.negatives).toBeNull();
    expect(textColumns(indexed)).toHaveLength(2);
  });

  it("reads the real STSb dev set: 1500 scored pairs", async () => {
    const ds = await readDataset(join(shared, "stsb/dev.csv"));
    expect(ds.kind).toBe("scored");
    expect(ds.examples).toHaveLength(1500);
    expect(ds).toMatchObject({ scoreScale: 5 });
    expect(ds.examples[0]).toEqual({
      sentence1: "A man with a hard hat is dancing.", sentence2: "A man wearing a hard hat is dancing.", score: 1,
    });
    const table = new TextTable();
    const indexed = indexPairs(ds, table);
    expect(indexed.kind === "scored" && indexed.scores[1]).toBeCloseTo(0.95, 6);
  });

  it("reads the real Debian pairs: 19875", async () => {
    const ds = await readDataset(join(shared, "debian-pkgs/train.jsonl"));
    expect(ds).toMatchObject({ kind: "pairs", hasNegatives: false });
    expect(ds.examples).toHaveLength(19875);
    expect(ds.examples[0]).toMatchObject({ anchor: "cross-distribution packaging system" });
  });
});

describe("readDataset: errors name file, line and field", () => {
  it("file not found, directory, unknown extension", async () => {
    const missing = join(dir, "nope.jsonl");
    await expect(readDataset(missing)).rejects.toThrow(new RegExp(`^${escape(missing)}: file not found$`));
    await expect(readDataset(missing)).rejects.toMatchObject({ code: "FILE_NOT_FOUND", file: missing });
    const sub = join(dir, "folder.jsonl");
    mkdirSync(sub);
    await expect(readDataset(sub)).rejects.toThrow(new RegExp(`^${escape(sub)}: is a directory`));
    await expectError("data.txt", "x", null, null, 'unsupported extension ".txt" \\(use .jsonl', "INVALID_ARGUMENT");
  });

  it("empty files", async () => {
    await expectError("empty.jsonl", "", null, null, "no examples \\(the file is empty\\)");
    await expectError("blank.jsonl", "\n  \n\n", null, null, "no examples");
    await expectError("empty.csv", "", null, null, "no examples \\(the file is empty\\)");
    await expectError("header.csv", "anchor,positive\n", null, null, "no examples \\(only a header row\\)");
  });

  it("malformed JSON and non-object lines", async () => {
    await expectError("bad.jsonl", jsonl(pair("a", "b")) + '\n{"anchor": "a", \n', 3, null, "malformed JSON: ");
    await expectError("array.jsonl", jsonl(pair("a", "b"), ["a", "b"]), 2, null, "expected a JSON object, found an array");
    await expectError("null.jsonl", "null\n", 1, null, "expected a JSON object, found null");
    await expectError("string.jsonl", '"text"\n', 1, null, 'expected a JSON object, found "text"');
    const e = await expectError("pretty.json", "[\n  {\"anchor\": \"a\"}\n]\n", 1, null, "malformed JSON");
    expect(e.message).toMatch(/\(a \.json file is read as JSON Lines: one object per line\)$/);
  });

  it("missing fields, with what was found and what is accepted", async () => {
    const e = await expectError("missing.jsonl", jsonl(pair("a", "b"), { anchor: "a", package: "p" }), 2, "positive",
      "missing \\(found: anchor,package; accepted: anchor,positive\\[,negative\\] \\| query,positive\\[,negative\\] \\| ");
    expect(e.message).toContain("sentence1,sentence2,score | text1,text2,label)");
    await expectError("unknown.jsonl", jsonl({ a: 1 }), 1, null, "no known fields \\(found: a; accepted: ");
    await expectError("noscore.jsonl", jsonl({ sentence1: "a", sentence2: "b", label: 1 }), 1, "score", "missing");
    await expectError("missing.csv", "sentence1,score\na,1\nb,2\n", 1, "sentence2", "missing \\(found: sentence1,score;");
  });

  it("empty, whitespace-only and non-string texts", async () => {
    await expectError("emptytext.jsonl", jsonl(pair("a", "b"), pair("", "b")), 2, "anchor", "empty text$");
    await expectError("space.jsonl", jsonl(pair("a", "b"), pair("c", " \t ")), 2, "positive", "empty text$");
    await expectError("space.csv", "query,positive\na,b\nc,  \n", 3, "positive", "empty text$");
    await expectError("number.jsonl", jsonl(pair("a", "b"), { anchor: 5, positive: "b" }), 2, "anchor",
      "expected a string, found number 5$");
    await expectError("nullneg.jsonl", jsonl({ anchor: "a", positive: "b", negative: null }), 1, "negative",
      "expected a string, found null$");
  });

  it("bad scores: non-numeric, NaN, infinite, negative, out of range", async () => {
    const head = "sentence1,sentence2,score\na,b,1\n";
    await expectError("word.csv", head + "c,d,high\n", 3, "score", 'expected a finite number, found "high"$');
    await expectError("nan.csv", head + "c,d,NaN\n", 3, "score", 'expected a finite number, found "NaN"$');
    await expectError("blank.csv", head + "c,d,\n", 3, "score", 'expected a finite number, found ""$');
    await expectError("inf.jsonl", jsonl({ sentence1: "a", sentence2: "b", score: 1 }) + '{"sentence1":"c","sentence2":"d","score":1e999}\n',
      2, "score", "expected a finite number, found number Infinity$");
    await expectError("bool.jsonl", jsonl({ text1: "a", text2: "b", label: true }), 1, "label",
      "expected a finite number, found boolean true$");
    await expectError("neg.csv", head + "c,d,-0.5\n", 3, "score", "negative score -0.5 \\(scores must all lie");
    await expectError("range.csv", head + "c,d,4\ne,f,7.5\ng,h,9\n", 4, "score",
      "score 7.5 is out of range \\(scores must all lie in \\[0, 1\\] or all in \\[0, 5\\]\\)$");
  });

  it("fewer than 2 examples", async () => {
    await expectError("one.jsonl", jsonl(pair("a", "b")), null, null, "only 1 example; at least 2 are needed$");
  });

  it("invalid UTF-8 names its line", async () => {
    const bytes = Buffer.concat([Buffer.from(jsonl(pair("a", "b"), pair("c", "d"))), Buffer.from('{"anchor": "'),
      Buffer.from([0xc3, 0x28]), Buffer.from('", "positive": "x"}\n')]);
    await expectError("latin1.jsonl", bytes, 3, null, "invalid UTF-8 \\(save the file as UTF-8\\)$");
    await expectError("latin1.csv", Buffer.concat([Buffer.from("anchor,positive\na,"), Buffer.from([0xe9]), Buffer.from("\n")]),
      2, null, "invalid UTF-8");
  });

  it("mixed conventions and inconsistent negatives", async () => {
    await expectError("mixed.jsonl", jsonl(pair("a", "b"), pair("c", "d"), { query: "e", positive: "f" }), 3, null,
      "mixed conventions: this line has query,positive\\[,negative\\] but line 1 has anchor,positive\\[,negative\\]");
    await expectError("mixedkind.jsonl", jsonl(pair("a", "b"), { sentence1: "e", sentence2: "f", score: 1 }), 2, null,
      "mixed conventions");
    await expectError("someneg.jsonl", jsonl(pair("a", "b"), { ...pair("c", "d"), negative: "e" }), 2, "negative",
      "present here but absent on line 1 \\(give every example a negative, or none\\)$");
    await expectError("lostneg.jsonl", jsonl({ ...pair("c", "d"), negative: "e" }, pair("a", "b")), 2, "negative",
      "absent here but present on line 1");
    await expectError("ambiguous.jsonl", jsonl({ anchor: "a", query: "q", positive: "p" }), 1, null,
      "ambiguous fields: fits both anchor,positive\\[,negative\\] and query,positive\\[,negative\\]");
  });

  it("CSV structure: column counts, quotes, duplicate columns, a TSV named .csv", async () => {
    await expectError("short.csv", 'anchor,positive\n"multi\nline",b\n\nc\n', 5, null,
      "expected 2 columns as in the header, found 1");
    await expectError("unclosed.csv", 'anchor,positive\na,b\n\nc,"d\ne,f\n', 4, null, "unclosed quote");
    await expectError("quote.csv", 'anchor,positive\na,b\nc,d"x"\n', 3, null, "malformed CSV: Invalid Opening Quote");
    await expectError("dupcol.csv", "anchor,positive,anchor\na,b,c\n", 1, "anchor", "duplicate column");
    await expectError("tabs.csv", "anchor\tpositive\na\tb\n", 1, null,
      "the header has one column containing tabs \\(a tab-separated file must be named .tsv\\)$");
    await expectError("shortrow.tsv", "anchor\tpositive\na\tb\r\nc\r\n", 3, null, "expected 2 columns");
    // CRLF inside a quoted field is one line break, not two
    await expectError("crlf.csv", 'anchor,positive\r\n"x\r\ny",b\r\n\r\nc,\r\n', 5, "positive", "empty text$");
  });

  it("CSV with mixed line endings keeps no stray carriage returns", async () => {
    const ds = await readDataset(write("mixed.csv", "anchor,positive\na,b\r\nc,d\n"));
    expect(ds.examples).toEqual([pair("a", "b"), pair("c", "d")]);
  });
});
