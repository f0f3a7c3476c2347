/**
 * The bad-input corpus: every case gets one line "embedtune: error: <file>:<line>: field ...:
 * what", a non-zero exit code, and leaves no output behind.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";

import { describe, expect, it } from "vitest";

import { encodeNpyMatrix } from "../src/io/npy.js";
import { repoRoot, runCli, tempDir } from "./helpers.js";

const work = tempDir();
const cacheDir = path.join(work, "cache");
const file = (name: string, content: string | Uint8Array): string => {
  const p = path.join(work, name);
  writeFileSync(p, content);
  return p;
};
const pairs = (n: number) => Array.from({ length: n }, (_, i) => JSON.stringify({ query: `query ${i}`, positive: `document ${i}` })).join("\n") + "\n";
const good = () => file("good.jsonl", pairs(4));
const scored = () => file("good.csv", "sentence1,sentence2,score\na,b,1\nc,d,2\ne,f,3\n");
const adapterDir = path.join(repoRoot, "adapters/debian-use-lite");

interface Case {
  name: string;
  args: () => string[];
  message: RegExp;
  command?: string;
}

const cases: Case[] = [
  { name: "malformed JSON line", args: () => ["--data", file("c1.jsonl", pairs(2) + '{"query": "x", "positive": \n')], message: /c1\.jsonl:3: malformed JSON/ },
  { name: "a line that is not an object", args: () => ["--data", file("c2.jsonl", pairs(2) + '["x", "y"]\n')], message: /c2\.jsonl:3: .*object/ },
  { name: "missing column", args: () => ["--data", file("c3.jsonl", pairs(2) + '{"query": "x"}\n')], message: /c3\.jsonl:3: field "positive": missing/ },
  { name: "empty text", args: () => ["--data", file("c4.jsonl", pairs(2) + '{"query": "", "positive": "y"}\n')], message: /c4\.jsonl:3: field "query": empty text/ },
  { name: "whitespace-only text", args: () => ["--data", file("c5.jsonl", pairs(2) + '{"query": "  \\t ", "positive": "y"}\n')], message: /c5\.jsonl:3: field "query": empty text/ },
  { name: "non-string text", args: () => ["--data", file("c6.jsonl", pairs(2) + '{"query": 5, "positive": "y"}\n')], message: /c6\.jsonl:3: field "query": expected a string, found number/ },
  { name: "null text", args: () => ["--data", file("c7.jsonl", pairs(2) + '{"query": null, "positive": "y"}\n')], message: /c7\.jsonl:3: field "query": expected a string, found null/ },
  { name: "NaN score", args: () => ["--data", file("c8.csv", "sentence1,sentence2,score\na,b,1\nc,d,nan\n")], message: /c8\.csv:3: field "score"/ },
  { name: "negative score", args: () => ["--data", file("c9.csv", "sentence1,sentence2,score\na,b,1\nc,d,-0.5\n")], message: /c9\.csv:3: field "score": .*negative|c9\.csv:3: field "score"/ },
  { name: "out-of-range score", args: () => ["--data", file("c10.csv", "sentence1,sentence2,score\na,b,1\nc,d,7.5\n")], message: /c10\.csv:3: field "score": score 7\.5 is out of range/ },
  { name: "non-numeric score", args: () => ["--data", file("c11.csv", "sentence1,sentence2,score\na,b,1\nc,d,high\n")], message: /c11\.csv:3: field "score"/ },
  { name: "fewer than two pairs", args: () => ["--data", file("c12.jsonl", pairs(1))], message: /c12\.jsonl: .*only 1 example/ },
  { name: "every pair a duplicate", args: () => ["--data", file("c13.jsonl", '{"query": "a", "positive": "b"}\n'.repeat(5))], message: /c13\.jsonl: .*(duplicate|distinct)/ },
  { name: "invalid UTF-8", args: () => ["--data", file("c14.jsonl", Buffer.concat([Buffer.from(pairs(2)), Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d, 0x0a])]))], message: /c14\.jsonl:3: invalid UTF-8/ },
  { name: "a binary file", args: () => ["--data", file("c15.jsonl", Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256)))], message: /c15\.jsonl:\d+: (invalid UTF-8|malformed JSON)/ },
  { name: "a 50 MB single line", args: () => ["--data", file("c16.jsonl", `{"query": "${"a".repeat(50 * 1024 * 1024)}", "positive": "b"}\n`)], message: /c16\.jsonl:1: .*(MB|too long)/ },
  { name: "a directory where a file was expected", args: () => { mkdirSync(path.join(work, "c17.jsonl"), { recursive: true }); return ["--data", path.join(work, "c17.jsonl")]; }, message: /c17\.jsonl: not a BEIR folder: corpus\.jsonl is missing/ },
  { name: "a path that does not exist", args: () => ["--data", path.join(work, "nope.jsonl")], message: /nope\.jsonl: file not found/ },
  { name: "an unknown extension", args: () => ["--data", file("c19.txt", "a\tb\n")], message: /c19\.txt: unsupported extension/ },
  { name: "a CSV without the score column", args: () => ["--data", file("c20.csv", "sentence1,sentence2\na,b\nc,d\n")], message: /c20\.csv:1: / },
  { name: "a CSV with an unclosed quote", args: () => ["--data", file("c21.csv", 'sentence1,sentence2,score\n"a,b,1\nc,d,2\n')], message: /c21\.csv:\d+: / },
  { name: "mixed column conventions", args: () => ["--data", file("c22.jsonl", '{"query": "a", "positive": "b"}\n{"anchor": "c", "positive": "d"}\n')], message: /c22\.jsonl:2: .*mixed conventions/ },
  { name: "a negative on some lines only", args: () => ["--data", file("c23.jsonl", '{"query": "a", "positive": "b", "negative": "x"}\n{"query": "c", "positive": "d"}\n')], message: /c23\.jsonl:2: field "negative"/ },
  { name: "an empty file", args: () => ["--data", file("c24.jsonl", "")], message: /c24\.jsonl: .*(empty|no examples)/ },
  { name: "an unwritable output folder", args: () => ["--data", good(), "--out", path.join(good(), "sub", "adapter")], message: /cannot write to folder/ },
  { name: "an output folder holding another adapter", args: () => ["--data", good(), "--out", adapterDir], message: /already exists and is not empty .*--overwrite/ },
  { name: "rank 0", args: () => ["--data", good(), "--rank", "0"], message: /rank must be a positive integer, got 0/ },
  { name: "a negative learning rate", args: () => ["--data", good(), "--lr", "-0.1"], message: /learning rate must be a non-negative number, got -0\.1/ },
  { name: "a batch larger than the data", args: () => ["--data", good(), "--batch-size", "100"], message: /batch size 100 is larger than the 4 training examples/ },
  { name: "zero epochs", args: () => ["--data", good(), "--epochs", "0"], message: /epochs must be a positive integer, got 0/ },
  { name: "a negative alpha", args: () => ["--data", good(), "--alpha", "-1"], message: /lora_alpha must be a positive number, got -1/ },
  { name: "a warm-up ratio of 1.5", args: () => ["--data", good(), "--warmup-ratio", "1.5"], message: /warm-up ratio must be in \[0, 1\), got 1\.5/ },
  { name: "a non-integer batch size", args: () => ["--data", good(), "--batch-size", "many"], message: /--batch-size expects an integer, got "many"/ },
  { name: "CoSENT on unscored pairs", args: () => ["--data", good(), "--loss", "cosent"], message: /loss cosent needs scored pairs/ },
  { name: "MNRL on scored pairs", args: () => ["--data", scored(), "--loss", "mnrl"], message: /loss mnrl needs \(anchor, positive\) pairs/ },
  { name: "an eval file of another kind", args: () => ["--data", good(), "--eval", scored()], message: /good\.csv: eval data holds scored but training data holds pairs/ },
  { name: "vectors with the wrong row count", args: () => ["--data", good(), "--vectors", `${file("a.npy", encodeNpyMatrix(new Float32Array(6), 3, 2))},${file("p.npy", encodeNpyMatrix(new Float32Array(8), 4, 2))}`], message: /a\.npy: has 3 rows but .*good\.jsonl has 4 pairs/ },
  { name: "a vectors file that is not .npy", args: () => ["--data", good(), "--vectors", `${file("bad.npy", "not numpy")},${file("p2.npy", encodeNpyMatrix(new Float32Array(8), 4, 2))}`], message: /bad\.npy: not a float32 \(N, d\) \.npy file/ },
  { name: "an unknown model", args: () => ["--data", good(), "--model", "not a model"], message: /model "not a model" is neither a folder nor a Hub id/ },
  { name: "eval with a missing adapter", command: "eval", args: () => ["--data", good(), "--adapter", path.join(work, "no-adapter")], message: /no-adapter\/adapter_config\.json: cannot read/ },
  { name: "eval with an adapter of another version", command: "eval", args: () => { const dir = path.join(work, "v99"); mkdirSync(dir, { recursive: true }); writeFileSync(path.join(dir, "adapter_config.json"), JSON.stringify({ format: "embedtune-adapter", format_version: 99 })); return ["--data", good(), "--adapter", dir]; }, message: /v99\/adapter_config\.json: field "format_version": this embedtune reads version 1, found 99/ },
  { name: "encode from a file with no texts", command: "encode", args: () => ["--input", file("empty.txt", "\n\n"), "--output", path.join(work, "never.npy")], message: /empty\.txt: holds no texts/ },
  { name: "encode to an unknown extension", command: "encode", args: () => ["--input", file("t.txt", "hello\n"), "--output", path.join(work, "v.parquet")], message: /v\.parquet: unknown output extension/ },
];

describe(`bad input (${cases.length} cases): one line naming the place, exit 1, nothing written`, () => {
  it.each(cases)("$name", async ({ args, message, command }) => {
    const out = path.join(work, "out-adapter");
    const argv = [command ?? "train", ...args()];
    if (argv[0] === "train" && !argv.includes("--out")) argv.push("--out", out);
    if (argv[0] !== "encode") argv.push("--cache-dir", cacheDir);
    const { code, stdout, stderr } = await runCli(argv);
    expect(code).toBe(1);
    expect(stdout).toBe("");
    const lines = stderr.trim().split("\n");
    expect(lines, stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^embedtune: error: /);
    expect(lines[0]).toMatch(message);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(path.join(work, "never.npy"))).toBe(false);
  });
});
