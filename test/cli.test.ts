/**
 * The command line end to end on the real default encoder: bad input gets one line naming
 * file and line and leaves no adapter folder; train -> eval -> encode round trip; --json.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

import { beforeAll, describe, expect, it } from "vitest";

import { decodeNpyMatrix } from "../src/io/npy.js";
import { lastJson, readJsonl, repoRoot, runCli, tempDir } from "./helpers.js";

const work = tempDir();
const cacheDir = path.join(work, "cache");
const pairs = readJsonl<{ query: string; positive: string }>(path.join(repoRoot, "data/debian-train.jsonl"));
const evalPairs = readJsonl<{ query: string; positive: string }>(path.join(repoRoot, "data/debian-eval.jsonl"));
const trainFile = path.join(work, "train.jsonl");
const evalFile = path.join(work, "eval.jsonl");

beforeAll(() => {
  writeFileSync(trainFile, pairs.slice(0, 300).map((p) => JSON.stringify(p)).join("\n") + "\n");
  writeFileSync(evalFile, evalPairs.slice(0, 100).map((p) => JSON.stringify(p)).join("\n") + "\n");
});

function badFile(name: string, content: string): string {
  const file = path.join(work, name);
  writeFileSync(file, content);
  return file;
}

describe("embedtune CLI: bad input", () => {
  const good = '{"query": "a", "positive": "b"}\n{"query": "c", "positive": "d"}\n';
  const cases: Array<[string, () => string[], RegExp]> = [
    ["a malformed line", () => ["--data", badFile("malformed.jsonl", good + '{"query": "e", "positive": \n')], /malformed\.jsonl:3: malformed JSON/],
    ["a missing column", () => ["--data", badFile("missing.jsonl", good + '{"query": "e"}\n')], /missing\.jsonl:3: field "positive": missing/],
    ["an empty file", () => ["--data", badFile("empty.jsonl", "")], /empty\.jsonl: .*(empty|no examples)/],
    ["a wrong path", () => ["--data", path.join(work, "nope.jsonl")], /nope\.jsonl: .*not found/],
    ["a CSV row without its score", () => ["--data", badFile("sts.csv", "sentence1,sentence2,score\na,b,1\nc,d,\n")], /sts\.csv:3: field "score"/],
    ["rank 0", () => ["--data", badFile("ok1.jsonl", good), "--rank", "0"], /rank must be a positive integer, got 0/],
    ["a batch larger than the data", () => ["--data", badFile("ok2.jsonl", good), "--batch-size", "64"], /batch size 64 is larger than the 2 training examples/],
    ["a non-numeric learning rate", () => ["--data", badFile("ok3.jsonl", good), "--lr", "fast"], /--lr expects a number, got "fast"/],
  ];
  it.each(cases)("%s: one line naming the place, exit 1, no adapter folder", async (_name, args, message) => {
    const out = path.join(work, `adapter-${_name.replace(/\W+/g, "-")}`);
    const { code, stderr } = await runCli(["train", ...args(), "--out", out, "--cache-dir", cacheDir]);
    expect(code).not.toBe(0);
    expect(stderr.trim().split("\n")).toHaveLength(1);
    expect(stderr).toMatch(/^embedtune: error: /);
    expect(stderr).toMatch(message);
    expect(existsSync(out)).toBe(false);
  });

  it("--verbose adds the stack", async () => {
    const { stderr } = await runCli(["train", "--data", path.join(work, "nope.jsonl"), "--verbose"]);
    expect(stderr.split("\n").length).toBeGreaterThan(2);
    expect(stderr).toMatch(/at /);
  });
});

describe("embedtune CLI: train, eval, encode", () => {
  const adapterDir = path.join(work, "adapter");

  it("trains with --json: last line holds before/after metrics, and writes the adapter folder", async () => {
    const { code, stdout, stderr } = await runCli(["train", "--data", trainFile, "--eval", evalFile, "--out", adapterDir, "--epochs", "2", "--batch-size", "32", "--cache-dir", cacheDir, "--json"]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const result = lastJson(stdout);
    for (const when of ["before", "after"]) {
      for (const name of ["recall@1", "recall@10", "mrr@10", "ndcg@10"]) expect(result.metrics[when][name]).toBeGreaterThan(0);
    }
    expect(result.primary_metric).toBe("ndcg@10");
    expect(result.steps).toBeGreaterThan(10);
    const config = JSON.parse(readFileSync(path.join(adapterDir, "adapter_config.json"), "utf8"));
    expect(config).toMatchObject({ format: "embedtune-adapter", format_version: 1, kind: "output", r: 16, lora_alpha: 32, dim: 512, apply_to: "both" });
    expect(config.base_model.name).toBe("default");
    expect(config.metrics.after["ndcg@10"]).toBe(result.metrics.after["ndcg@10"]);
    expect(config.training.epochs).toBe(2);
  });

  it("eval with the adapter reproduces train's 'best' metrics (the saved adapter); without it, 'before'", async () => {
    const trained = JSON.parse(readFileSync(path.join(adapterDir, "adapter_config.json"), "utf8")).metrics;
    const withAdapter = lastJson((await runCli(["eval", "--data", evalFile, "--adapter", adapterDir, "--cache-dir", cacheDir, "--json"])).stdout);
    const base = lastJson((await runCli(["eval", "--data", evalFile, "--cache-dir", cacheDir, "--json"])).stdout);
    expect(withAdapter.metrics["ndcg@10"]).toBeCloseTo(trained.best["ndcg@10"], 10);
    expect(base.metrics["ndcg@10"]).toBeCloseTo(trained.before["ndcg@10"], 10);
  });

  it("encodes to .npy and .jsonl with the adapter applied", async () => {
    const input = badFile("texts.txt", "a text editor for programmers\nlibrary for parsing XML\n");
    const npy = path.join(work, "v.npy");
    const jsonl = path.join(work, "v.jsonl");
    expect((await runCli(["encode", "--input", input, "--output", npy, "--adapter", adapterDir])).code).toBe(0);
    expect((await runCli(["encode", "--input", input, "--output", jsonl, "--adapter", adapterDir])).code).toBe(0);
    const m = decodeNpyMatrix(readFileSync(npy), npy);
    expect([m.rows, m.cols]).toEqual([2, 512]);
    const rows = readJsonl<{ id: string; vector: number[] }>(jsonl);
    expect(rows.map((r) => r.id)).toEqual(["1", "2"]);
    for (let j = 0; j < 512; j++) expect(rows[1].vector[j]).toBeCloseTo(m.data[512 + j], 6);
  });

  it("prints a readable table without --json", async () => {
    const { stdout } = await runCli(["eval", "--data", evalFile, "--cache-dir", cacheDir]);
    expect(stdout).toMatch(/ndcg@10\s+0\.\d{4}\s+<- primary/);
  });
});
