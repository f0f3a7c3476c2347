/**
 * Exports round-trip: the sentence-transformers folder read back by our own loader, the
 * single ONNX model run by onnxruntime, and the merged adapter, each against the adapter
 * applied the normal way (max abs diff <= 1e-5). Also vectors out as .safetensors.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

import * as ort from "onnxruntime-node";
import { beforeAll, describe, expect, it } from "vitest";

import { writeTinyBert } from "../scripts/make-tiny-bert.js";
import { Encoder } from "../src/embed.js";
import { padBatch } from "../src/encoder/batching.js";
import { HfEncoder } from "../src/encoder/hf/index.js";
import { UseLiteEncoder } from "../src/encoder/use-lite/index.js";
import { exportAdapter } from "../src/export/index.js";
import { readAdapter } from "../src/io/adapter-folder.js";
import { decodeSafetensors } from "../src/io/safetensors.js";
import { train } from "../src/train/train.js";
import { readJsonl, repoRoot, runCli, tempDir } from "./helpers.js";

const work = tempDir();
const cacheDir = path.join(work, "cache");
const tiny = path.join(work, "tiny-bert");
const pairs = readJsonl<{ query: string; positive: string }>(path.join(repoRoot, "data/debian-train.jsonl"));
const texts = pairs.slice(0, 12).map((p) => p.query).concat(["", "a text editor for programmers"]);
const adapters = { both: path.join(work, "tiny-both"), query: path.join(work, "tiny-query") };
const defaultAdapter = path.join(repoRoot, "adapters/debian-use-lite");

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Runs an exported model.onnx on token ids the way any onnxruntime user would. */
async function runExported(file: string, tokens: number[][]): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(file);
  const L = Math.max(1, ...tokens.map((t) => t.length));
  const { ids, mask } = padBatch(tokens, L);
  const dims = [tokens.length, L];
  const feeds: Record<string, ort.Tensor> = { input_ids: new ort.Tensor("int64", ids, dims), attention_mask: new ort.Tensor("int64", mask, dims) };
  if (session.inputNames.includes("token_type_ids")) feeds.token_type_ids = new ort.Tensor("int64", new BigInt64Array(ids.length), dims);
  expect(session.outputNames).toEqual(["sentence_embedding"]);
  const out = (await session.run(feeds)).sentence_embedding;
  expect(out.dims).toEqual([tokens.length, out.dims[1]]);
  const data = out.data as Float32Array;
  await session.release();
  return data;
}

beforeAll(async () => {
  writeTinyBert(tiny, { seed: 11 });
  const data = path.join(work, "pairs.jsonl");
  writeFileSync(data, pairs.slice(0, 300).map((p) => JSON.stringify(p)).join("\n") + "\n");
  await train({ data, model: tiny, out: adapters.both, cacheDir, epochs: 1, offline: true });
  await train({ data, model: tiny, out: adapters.query, cacheDir, epochs: 1, offline: true, applyTo: "query" });
});

describe("export --format sentence-transformers", () => {
  it("writes the folder sentence-transformers expects, and our loader gives the adapted vectors", async () => {
    const out = path.join(work, "st-both");
    const files = await exportAdapter(adapters.both, "sentence-transformers", { out, cacheDir, offline: true });
    expect(files).toEqual(expect.arrayContaining(["modules.json", "1_Pooling/config.json", "2_Dense/config.json", "2_Dense/model.safetensors", "onnx/model.onnx", "tokenizer.json", "config.json", "README.md"]));
    const dense = JSON.parse(readFileSync(path.join(out, "2_Dense/config.json"), "utf8"));
    expect(dense).toEqual({ in_features: 32, out_features: 32, bias: false, activation_function: "torch.nn.modules.linear.Identity" });
    const { tensors } = decodeSafetensors(readFileSync(path.join(out, "2_Dense/model.safetensors")), "x");
    expect(tensors.get("linear.weight")!.shape).toEqual([32, 32]);
    expect(existsSync(path.join(out, "3_Normalize"))).toBe(true);

    const exported = await HfEncoder.load(out, { offline: true, cacheRoot: cacheDir });
    const reference = await Encoder.load({ adapter: adapters.both, cacheDir, offline: true });
    const diff = maxAbsDiff(await exported.encode(texts), await reference.encode(texts));
    console.log(`sentence-transformers export vs adapter: max abs diff ${diff.toExponential(2)}`);
    expect(diff).toBeLessThanOrEqual(1e-5);
    await exported.close();
    await reference.close();
  });

  it("exports the query side of a query-only adapter and says so", async () => {
    const out = path.join(work, "st-query");
    await exportAdapter(adapters.query, "sentence-transformers", { out, cacheDir, offline: true });
    expect(readFileSync(path.join(out, "README.md"), "utf8")).toMatch(/Queries only/);
    const exported = await HfEncoder.load(out, { offline: true, cacheRoot: cacheDir });
    const reference = await Encoder.load({ adapter: adapters.query, cacheDir, offline: true });
    expect(maxAbsDiff(await exported.encode(texts), await reference.encodeQueries(texts))).toBeLessThanOrEqual(1e-5);
    await exported.close();
    await reference.close();
  });

  it("refuses the default encoder with a pointer to --format onnx", async () => {
    await expect(exportAdapter(defaultAdapter, "sentence-transformers", { out: path.join(work, "st-default") })).rejects.toThrow(/not a BERT-family model .*--format onnx/);
  });
});

describe("export --format onnx", () => {
  it("tiny BERT: onnxruntime on the exported model gives the adapted vectors", async () => {
    const out = path.join(work, "onnx-tiny");
    const files = await exportAdapter(adapters.both, "onnx", { out, cacheDir, offline: true });
    expect(files).toEqual(expect.arrayContaining(["onnx/model.onnx", "tokenizer.json", "tokenizer_config.json", "config.json"]));
    const encoder = await HfEncoder.load(tiny, { offline: true, cacheRoot: cacheDir });
    const reference = await Encoder.load({ adapter: adapters.both, cacheDir, offline: true });
    const got = await runExported(path.join(out, "onnx/model.onnx"), texts.map((t) => encoder.tokenize(t)));
    const diff = maxAbsDiff(got, await reference.encode(texts));
    console.log(`ONNX export (tiny BERT) vs adapter: max abs diff ${diff.toExponential(2)}`);
    expect(diff).toBeLessThanOrEqual(1e-5);
    await encoder.close();
    await reference.close();
  });

  it("default encoder (USE-Lite): the same", async () => {
    const out = path.join(work, "onnx-default");
    const files = await exportAdapter(defaultAdapter, "onnx", { out });
    expect(files).toEqual(expect.arrayContaining(["onnx/model.onnx", "vocab.json", "README.md"]));
    const useLite = await UseLiteEncoder.load();
    const reference = await Encoder.load({ adapter: defaultAdapter });
    const got = await runExported(path.join(out, "onnx/model.onnx"), texts.map((t) => useLite.tokenize(t)));
    const diff = maxAbsDiff(got, await reference.encode(texts));
    console.log(`ONNX export (USE-Lite) vs adapter: max abs diff ${diff.toExponential(2)}`);
    expect(diff).toBeLessThanOrEqual(1e-5);
    await useLite.close();
    await reference.close();
  });
});

describe("export --format merged", () => {
  it("stores W = I + s·B·A once; loading it gives the same vectors", async () => {
    const out = path.join(work, "merged");
    const { code, stdout } = await runCli(["export", "--adapter", defaultAdapter, "--format", "merged", "--out", out, "--json"]);
    expect(code).toBe(0);
    expect(JSON.parse(stdout.trim().split("\n").pop()!).files).toEqual(["adapter_config.json", "adapter_model.safetensors"]);
    const merged = await readAdapter(out);
    expect(merged.kind).toBe("merged");
    const a = await Encoder.load({ adapter: out });
    const b = await Encoder.load({ adapter: defaultAdapter });
    expect(maxAbsDiff(await a.encode(texts), await b.encode(texts))).toBeLessThanOrEqual(1e-5);
    await a.close();
    await b.close();
    const evalMerged = await runCli(["eval", "--data", path.join(repoRoot, "data/debian-eval.jsonl"), "--adapter", out, "--cache-dir", cacheDir, "--json"]);
    const { metrics } = JSON.parse(readFileSync(path.join(defaultAdapter, "adapter_config.json"), "utf8"));
    const expected = (metrics.best ?? metrics.after)["ndcg@10"]; // the saved adapter is the best evaluation
    expect(JSON.parse(evalMerged.stdout.trim().split("\n").pop()!).metrics["ndcg@10"]).toBeCloseTo(expected, 4);
  });
});

describe("encode --output .safetensors", () => {
  it("writes embeddings [N, dim] with the ids in the metadata", async () => {
    const input = path.join(work, "texts.jsonl");
    writeFileSync(input, '{"id": "a", "text": "text editor"}\n{"id": "b", "text": "XML parser"}\n');
    const output = path.join(work, "vectors.safetensors");
    expect((await runCli(["encode", "--input", input, "--output", output, "--as", "document"])).code).toBe(0);
    const { tensors, metadata } = decodeSafetensors(readFileSync(output), output);
    expect(tensors.get("embeddings")!.shape).toEqual([2, 512]);
    expect(JSON.parse(metadata.ids)).toEqual(["a", "b"]);
  });
});
