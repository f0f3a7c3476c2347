/**
 * --adapter-kind weights end to end on the tiny BERT: train (CLI and library), the adapter
 * folder and its report.html, eval and encode through the merged model, and the cache of
 * frozen lower layers (--lora-layers) giving the very same training as recomputing them.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

import { beforeAll, describe, expect, it, vi } from "vitest";

import { writeTinyBert } from "../scripts/make-tiny-bert.js";
import { Encoder } from "../src/embed.js";
import { evaluateFile } from "../src/evaluate.js";
import { readAdapter } from "../src/io/adapter-folder.js";
import { writeFileAtomic } from "../src/io/atomic.js";
import { train } from "../src/train/train.js";
import { chromiumPath } from "./chromium.js";
import { lastJson, readJsonl, repoRoot, runCli, tempDir } from "./helpers.js";

// The real atomic writer, watched: the report must go through it, as the output run's does.
vi.mock("../src/io/atomic.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("../src/io/atomic.js")>();
  return { ...real, writeFileAtomic: vi.fn(real.writeFileAtomic) };
});

/** The page as headless Chromium parsed it (its DOM, serialised). */
function parsedDom(file: string): string {
  return execFileSync(chromiumPath(), ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", `--user-data-dir=${tempDir("embedtune-chromium-")}`, "--dump-dom", `file://${file}`], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 60_000 });
}

const work = tempDir();
const modelDir = path.join(work, "tiny-bert");
const trainFile = path.join(work, "train.jsonl");
const evalFile = path.join(work, "eval.jsonl");
const cacheDir = path.join(work, "cache");

beforeAll(() => {
  writeTinyBert(modelDir, { seed: 7 });
  const pairs = readJsonl<{ query: string; positive: string }>(path.join(repoRoot, "data/debian-train.jsonl"));
  writeFileSync(trainFile, pairs.slice(0, 96).map((p) => JSON.stringify({ query: p.query, positive: p.positive })).join("\n") + "\n");
  const held = readJsonl<{ query: string; positive: string }>(path.join(repoRoot, "data/debian-eval.jsonl"));
  writeFileSync(evalFile, held.slice(0, 60).map((p) => JSON.stringify({ query: p.query, positive: p.positive })).join("\n") + "\n");
});

const base = { data: trainFile, eval: evalFile, model: modelDir, adapterKind: "weights" as const, epochs: 2, batchSize: 16, cacheDir, offline: true, lr: 2e-3 };

describe("--adapter-kind weights on the tiny BERT", () => {
  it("trains, saves a weights adapter, and eval reproduces the kept adapter's metrics", async () => {
    const out = path.join(work, "adapter");
    const result = await train({ ...base, out });
    expect(result.history.length).toBe(12);
    expect(result.history.every((h) => Number.isFinite(h.loss))).toBe(true);
    const adapter = await readAdapter(out);
    expect(adapter.kind).toBe("weights");
    expect(adapter.config.training?.adapter_kind).toBe("weights");
    const again = await evaluateFile({ data: evalFile, adapter: out, cacheDir, offline: true });
    expect(again.metrics["ndcg@10"]).toBeCloseTo(result.metrics.best!["ndcg@10"], 6);
    if (result.bestStep! > 0) expect(result.metrics.best!["ndcg@10"]).toBeGreaterThan(result.metrics.before!["ndcg@10"]);
    const encoder = await Encoder.load({ adapter: out, cacheDir, offline: true });
    const v = await encoder.encode(["text editor", "xml parser"]);
    expect(v.length).toBe(2 * 32);
    await encoder.close();

    const report = path.join(out, "report.html");
    expect(result.report).toBe(report);
    expect(vi.mocked(writeFileAtomic).mock.calls.map(([file]) => file)).toContain(report);
    expect(readdirSync(out).filter((f) => f.includes(".tmp-"))).toEqual([]);
    const html = readFileSync(report, "utf8");
    expect(html).not.toMatch(/<script|<link|<img|<iframe|\ssrc=|\shref=|url\(|@import/i);
    const dom = parsedDom(report);
    expect(dom.match(/<svg /g)).toHaveLength(4); // loss, eval metric, cosines before and after
    const cell = (m: Record<string, number>) => `<td>${m["ndcg@10"].toFixed(4)}</td>`;
    const { before, best, after } = result.metrics;
    expect(dom).toContain(`<tr class="primary"><th>ndcg@10 (primary)</th>${cell(before!)}${cell(best!)}${cell(after!)}`);
    expect(dom).toContain(`weights: r ${adapter.config.r}`);
    // "After" comes from the kept encoder's vectors: unlike the base's unless step 0 was kept.
    const gaps = [...dom.matchAll(/(Before|After): mean gap (-?[\d.]+)/g)].map((m) => m[2]);
    expect(gaps).toHaveLength(2);
    if (result.bestStep! > 0) expect(gaps[1]).not.toBe(gaps[0]);
    else expect(gaps[1]).toBe(gaps[0]);
  });

  it("--lora-layers 1 with the lower layer cached trains exactly as without the cache", async () => {
    const cached = await train({ ...base, loraLayers: 1, loraTargets: ["all-linear"] });
    const uncached = await train({ ...base, loraLayers: 1, loraTargets: ["all-linear"], loraCacheMb: 0 });
    expect(cached.history.map((h) => h.loss)).toEqual(uncached.history.map((h) => h.loss));
    expect(cached.metrics.after).toEqual(uncached.metrics.after);
    const modules = cached.adapter.kind === "weights" ? cached.adapter.lora.modules.map((m) => m.name) : [];
    expect(modules).toEqual(["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"].map((s) => `encoder.layer.1.${s.startsWith("attention.output") || s.startsWith("intermediate") || s === "output.dense" ? s : `attention.self.${s}`}`));
  });

  it("query-only: documents keep the base encoder's vectors, queries go through the adapter", async () => {
    const out = path.join(work, "query-only");
    const result = await train({ ...base, eval: undefined, applyTo: "query", out }); // no eval: the last step's adapter is saved
    expect(result.history.every((h) => Number.isFinite(h.loss))).toBe(true);
    const html = readFileSync(result.report!, "utf8");
    expect(html.match(/<svg /g)).toHaveLength(1); // the loss; no trained-encoder vectors for histograms
    expect(html).toMatch(/Not drawn: a weight-space adapter changes the encoder, and without an eval set/);
    const adapted = await Encoder.load({ adapter: out, cacheDir, offline: true });
    const plain = await Encoder.load({ model: modelDir, cacheDir, offline: true });
    const docs = ["text editor for programmers", "library to parse XML files"];
    expect(await adapted.encodeDocuments(docs)).toEqual(await plain.encodeDocuments(docs));
    expect(await adapted.encodeQueries(docs)).not.toEqual(await plain.encodeQueries(docs));
    await adapted.close();
    await plain.close();
  });

  it("CLI: --adapter-kind weights --lora-targets --lora-layers --lora-dropout, then export --format peft", async () => {
    const out = path.join(work, "cli-adapter");
    const run = await runCli(["train", "--data", trainFile, "--eval", evalFile, "--model", modelDir, "--adapter-kind", "weights", "--lora-targets", "query,value,output.dense", "--lora-layers", "1", "--lora-dropout", "0.1", "--epochs", "1", "--batch-size", "16", "--cache-dir", cacheDir, "--offline", "--out", out, "--json"]);
    expect(run.code, run.stderr).toBe(0);
    expect(lastJson(run.stdout).adapter).toBe(out);
    expect(lastJson(run.stdout).report).toBe(path.join(out, "report.html"));
    const text = await runCli(["train", "--data", trainFile, "--model", modelDir, "--adapter-kind", "weights", "--epochs", "1", "--batch-size", "16", "--cache-dir", cacheDir, "--offline", "--out", path.join(work, "cli-text")]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(`report: ${path.join(work, "cli-text", "report.html")}`);
    const cfg = JSON.parse(readFileSync(path.join(out, "adapter_config.json"), "utf8"));
    expect(cfg).toMatchObject({ kind: "weights", lora_dropout: 0.1, target_modules: ["query", "value", "output.dense"], layers_to_transform: [1], arch: "bert" });
    const peft = path.join(work, "cli-peft");
    const exp = await runCli(["export", "--adapter", out, "--format", "peft", "--out", peft]);
    expect(exp.code, exp.stderr).toBe(0);
    expect(JSON.parse(readFileSync(path.join(peft, "adapter_config.json"), "utf8"))).toMatchObject({ peft_type: "LORA", layers_to_transform: [1], layers_pattern: "layer" });
    const bad = await runCli(["train", "--data", trainFile, "--model", modelDir, "--adapter-kind", "weights", "--lora-targets", "qkv", "--cache-dir", cacheDir, "--offline"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/unknown LoRA target "qkv".*accepted: query, key, value/);
  });
});
