/**
 * BERT-family encoders from a Hub-layout folder or a Hub id, on a tiny generated model
 * (scripts/make-tiny-bert.ts): parity with transformers.js, pooling, truncation, prefixes,
 * errors, the Hub download path (against a local HTTP server), offline mode, and train/eval/
 * encode end to end with --model <folder>.
 */
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import path from "node:path";

import { env, pipeline } from "@xenova/transformers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { writeTinyBert } from "../scripts/make-tiny-bert.js";
import { Encoder } from "../src/embed.js";
import { saveAdapter } from "../src/io/adapter-folder.js";
import { initOutputLora } from "../src/lora/output-adapter.js";
import { Rng } from "../src/util/rng.js";
import { encodeWithCache } from "../src/encoder/cached.js";
import { GraphBuilder, FLOAT, INT64 } from "../src/encoder/onnx-graph.js";
import { HfEncoder, makeTokenizer } from "../src/encoder/hf/index.js";
import { readModelFolder } from "../src/encoder/hf/folder.js";
import { prefixTokenizable, TruncatingTokenizer } from "../src/encoder/hf/truncate.js";
import { knownPrefixes } from "../src/encoder/hf/prefixes.js";
import { resolveModel } from "../src/encoder/hf/hub.js";
import { lastJson, readJsonl, repoRoot, runCli, tempDir } from "./helpers.js";

const work = tempDir();
const tiny = path.join(work, "tiny-bert");
const other = path.join(work, "tiny-bert-other");
const cacheRoot = path.join(work, "cache");
const debian = readJsonl<{ query: string; positive: string }>(path.join(repoRoot, "data/debian-eval.jsonl"));
// Texts within the tiny model's 48-token limit (the long descriptions are truncation's test).
const texts = [...debian.slice(0, 40).map((p) => p.query), "", "Ünïcödé and 漢字 😀", "short", "a b c d e f g h i j k l m n o p"];
const long = debian.slice(0, 10).map((p) => p.positive);

beforeAll(() => {
  writeTinyBert(tiny, { seed: 7 });
  writeTinyBert(other, { seed: 8 });
});

const load = (dir: string) => HfEncoder.load(dir, { offline: true, cacheRoot });

async function transformersJs(dir: string, pooling: "mean" | "cls"): Promise<Float32Array> {
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = path.dirname(dir) + "/";
  const extractor = await pipeline("feature-extraction", path.basename(dir), { quantized: false });
  const out = await extractor(texts, { pooling, normalize: true });
  return out.data as Float32Array;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe("HfEncoder on a tiny BERT folder", () => {
  it("matches transformers.js feature-extraction (mean pooling, normalize) to 1e-5", async () => {
    const encoder = await load(tiny);
    const ours = await encoder.encode(texts);
    const theirs = await transformersJs(tiny, "mean");
    expect(encoder.pooling).toBe("mean");
    expect(encoder.dim).toBe(32);
    expect(ours.length).toBe(theirs.length);
    const diff = maxAbsDiff(ours, theirs);
    console.log(`tiny BERT vs transformers.js: max abs diff ${diff.toExponential(2)} over ${texts.length} texts`);
    expect(diff).toBeLessThanOrEqual(1e-5);
    expect(encoder.truncated).toBe(0);
    await encoder.close();
  });

  it("truncates long texts to the model's maximum, keeping [CLS] ... [SEP], and counts them", async () => {
    // sentence-transformers (Python tokenizers) keep the end token; transformers.js 2.x cuts it
    // off, so on truncated texts we follow the model's training convention, not transformers.js.
    const encoder = await load(tiny);
    for (const text of long) {
      const ids = encoder.tokenize(text);
      expect(ids).toHaveLength(48);
      expect([ids[0], ids[47]]).toEqual([2, 3]); // [CLS], [SEP]
    }
    expect(encoder.truncated).toBe(long.length);
    const vectors = await encoder.encode(long);
    expect(vectors.every(Number.isFinite)).toBe(true);
    await encoder.close();
  });

  it("tokenises only a long text's prefix, with the same ids as cutting the whole text's", async () => {
    const encoder = await load(tiny);
    const tokenizer = makeTokenizer(await readModelFolder(tiny));
    const whole = new TruncatingTokenizer((t) => tokenizer.encode(t), 48, false);
    const edges = [
      `${"word ".repeat(60)}end`, `a  b\t\tc \n d ${"x".repeat(400)} tail`, `${"ünïcödé  漢字 ".repeat(30)}`,
      ` ${"lead ".repeat(80)}`, `${"y".repeat(500)} z`, `${"many   spaces ".repeat(40)}`, `${"[SEP] [MASK] ".repeat(40)}`,
    ];
    let read = 0; // characters the prefix path hands the tokenizer: the shortcut must be taken
    const prefix = new TruncatingTokenizer((t) => ((read += t.length), tokenizer.encode(t)), 48, true);
    const all = [...long, ...debian.slice(10, 60).map((p) => p.positive), ...edges];
    let cut = 0;
    for (const text of all) {
      const want = whole.tokenize(text);
      expect(encoder.tokenize(text)).toEqual(want.ids);
      expect(prefix.tokenize(text)).toEqual(want);
      if (want.truncated) cut++;
    }
    expect(cut).toBeGreaterThan(50);
    expect(encoder.truncated).toBe(cut);
    expect(read).toBeLessThan(0.75 * all.reduce((n, t) => n + t.length, 0)); // 60% here, with the edge cases read whole
    await encoder.close();
    // Only tokenizers that end words at spaces before anything looks across them qualify.
    const bert = JSON.parse(readFileSync(path.join(tiny, "tokenizer.json"), "utf8"));
    expect(prefixTokenizable(bert)).toBe(true);
    expect(prefixTokenizable({ ...bert, pre_tokenizer: { type: "Metaspace", replacement: "▁" } })).toBe(false);
    expect(prefixTokenizable({ ...bert, pre_tokenizer: { type: "Sequence", pretokenizers: [{ type: "Punctuation" }] } })).toBe(false);
    expect(prefixTokenizable({ ...bert, pre_tokenizer: { type: "Sequence", pretokenizers: [{ type: "WhitespaceSplit" }, { type: "Digits" }] }, normalizer: null })).toBe(true);
    expect(prefixTokenizable({ ...bert, pre_tokenizer: { type: "ByteLevel", use_regex: true } })).toBe(false);
    expect(prefixTokenizable({ ...bert, normalizer: { type: "Sequence", normalizers: [{ type: "NFC" }, { type: "Replace" }] } })).toBe(false);
  });

  it("pools with the CLS token when 1_Pooling/config.json says so", async () => {
    const cls = path.join(work, "tiny-cls");
    cpSync(tiny, cls, { recursive: true });
    const config = JSON.parse(readFileSync(path.join(cls, "1_Pooling/config.json"), "utf8"));
    writeFileSync(path.join(cls, "1_Pooling/config.json"), JSON.stringify({ ...config, pooling_mode_mean_tokens: false, pooling_mode_cls_token: true }));
    const encoder = await load(cls);
    expect(encoder.pooling).toBe("cls");
    expect(maxAbsDiff(await encoder.encode(texts), await transformersJs(cls, "cls"))).toBeLessThanOrEqual(1e-5);
    await encoder.close();
  });

  it("pools BGE-family models with CLS when the folder has no pooling config", async () => {
    const bge = path.join(work, "bge-small-en-tiny");
    cpSync(tiny, bge, { recursive: true });
    rmSync(path.join(bge, "1_Pooling"), { recursive: true });
    rmSync(path.join(bge, "modules.json"));
    const encoder = await load(bge);
    expect(encoder.pooling).toBe("cls");
    await encoder.close();
    const plain = path.join(work, "plain-tiny");
    cpSync(bge, plain, { recursive: true });
    const meanEncoder = await load(plain);
    expect(meanEncoder.pooling).toBe("mean");
    await meanEncoder.close();
  });

  it("keeps two models' cached vectors apart", async () => {
    const a = await load(tiny);
    const b = await load(other);
    const root = path.join(work, "vector-cache");
    const fromA = (await encodeWithCache(a, ["shared text"], { cacheRoot: root })).vectors;
    const fromB = await encodeWithCache(b, ["shared text"], { cacheRoot: root });
    expect(fromB.encoded).toBe(1); // not served from a's entry
    expect(maxAbsDiff(fromB.vectors, await b.encode(["shared text"]))).toBe(0);
    expect(maxAbsDiff(fromA, fromB.vectors)).toBeGreaterThan(1e-3);
    await a.close();
    await b.close();
  });

  it("knows E5 and BGE prefixes and applies them on the right side", async () => {
    expect(knownPrefixes("intfloat/e5-small-v2")).toEqual({ query: "query: ", document: "passage: ", symmetric: "query: " });
    expect(knownPrefixes("Xenova/bge-small-en-v1.5").query).toBe("Represent this sentence for searching relevant passages: ");
    expect(knownPrefixes("Xenova/all-MiniLM-L6-v2").query).toBe("");
    const e5 = path.join(work, "e5-tiny");
    cpSync(tiny, e5, { recursive: true });
    const encoder = await Encoder.load({ model: e5, offline: true });
    const raw = await load(e5);
    expect(maxAbsDiff(await encoder.encodeQueries(["text editor"]), await raw.encode(["query: text editor"]))).toBe(0);
    expect(maxAbsDiff(await encoder.encodeDocuments(["text editor"]), await raw.encode(["passage: text editor"]))).toBe(0);
    await encoder.close();
    await raw.close();
  });
});

describe("HfEncoder errors", () => {
  it("names a folder without tokenizer.json or ONNX file", async () => {
    const noTokenizer = path.join(work, "no-tokenizer");
    cpSync(tiny, noTokenizer, { recursive: true });
    rmSync(path.join(noTokenizer, "tokenizer.json"));
    await expect(load(noTokenizer)).rejects.toThrow(/no-tokenizer\/tokenizer\.json: model folder has no tokenizer\.json/);
    const noOnnx = path.join(work, "no-onnx");
    cpSync(tiny, noOnnx, { recursive: true });
    rmSync(path.join(noOnnx, "onnx"), { recursive: true });
    await expect(load(noOnnx)).rejects.toThrow(/model folder has no onnx\/model\.onnx/);
  });

  it("names the inputs it found in a graph that is not a text encoder", async () => {
    const notEncoder = path.join(work, "not-encoder");
    cpSync(tiny, notEncoder, { recursive: true });
    const g = new GraphBuilder("image");
    g.input("pixel_values", FLOAT, ["batch", 3]);
    g.output("logits", FLOAT, ["batch", 3]);
    g.opNamed("Identity", ["pixel_values"], ["logits"]);
    writeFileSync(path.join(notEncoder, "onnx/model.onnx"), g.toBytes());
    await expect(load(notEncoder)).rejects.toThrow(/not a text encoder: inputs are \[pixel_values\]/);
    const noHidden = new GraphBuilder("ids");
    noHidden.input("input_ids", INT64, ["batch", "sequence"]);
    noHidden.input("attention_mask", INT64, ["batch", "sequence"]);
    noHidden.output("logits", INT64, ["batch", "sequence"]);
    noHidden.opNamed("Identity", ["input_ids"], ["logits"]);
    writeFileSync(path.join(notEncoder, "onnx/model.onnx"), noHidden.toBytes());
    await expect(load(notEncoder)).rejects.toThrow(/outputs are \[logits\], expected last_hidden_state/);
  });
});

describe("embedtune with --model <folder>", () => {
  const trainFile = path.join(work, "train.jsonl");
  const evalFile = path.join(work, "eval.jsonl");
  const adapter = path.join(work, "tiny-adapter");

  it("trains, evaluates and encodes end to end", async () => {
    const pairs = readJsonl<{ query: string; positive: string }>(path.join(repoRoot, "data/debian-train.jsonl"));
    writeFileSync(trainFile, pairs.slice(0, 200).map((p) => JSON.stringify(p)).join("\n") + "\n");
    writeFileSync(evalFile, debian.slice(0, 60).map((p) => JSON.stringify(p)).join("\n") + "\n");
    const trained = await runCli(["train", "--model", tiny, "--data", trainFile, "--eval", evalFile, "--out", adapter, "--cache-dir", cacheRoot, "--offline", "--epochs", "2", "--json"]);
    expect(trained.stderr).toBe("");
    const result = lastJson(trained.stdout);
    expect(result.texts.truncated).toBeGreaterThan(0);
    const config = JSON.parse(readFileSync(path.join(adapter, "adapter_config.json"), "utf8"));
    expect(config.dim).toBe(32);
    expect(config.base_model).toMatchObject({ name: tiny, revision: null });
    expect(config.base_model.sha256).toMatch(/^[0-9a-f]{64}$/);

    const evaluated = lastJson((await runCli(["eval", "--data", evalFile, "--adapter", adapter, "--cache-dir", cacheRoot, "--json"])).stdout);
    expect(evaluated.metrics["ndcg@10"]).toBeCloseTo(result.metrics.after["ndcg@10"], 10);

    const input = path.join(work, "texts.txt");
    writeFileSync(input, "a text editor\nXML parser\n");
    const output = path.join(work, "vectors.jsonl");
    expect((await runCli(["encode", "--input", input, "--output", output, "--adapter", adapter])).code).toBe(0);
    expect(readJsonl<{ vector: number[] }>(output)[0].vector).toHaveLength(32);
  });

  it("refuses the adapter on a different model, naming both", async () => {
    const { code, stderr } = await runCli(["eval", "--data", evalFile, "--adapter", adapter, "--model", other, "--cache-dir", cacheRoot]);
    expect(code).toBe(1);
    expect(stderr).toMatch(new RegExp(`adapter was trained on ${tiny.replace(/[/.]/g, "\\$&")} .* but the encoder is ${other.replace(/[/.]/g, "\\$&")}`));
  });

  it("refuses a dimension mismatch", async () => {
    // An adapter trained on precomputed 8-d vectors names no encoder, so only its dim is checked.
    const lora = initOutputLora(8, 2, 4, Rng.seeded(1));
    const small = path.join(work, "vectors-adapter");
    await saveAdapter(small, { lora, applyTo: "both", config: { format: "embedtune-adapter", format_version: 1, kind: "output", r: 2, lora_alpha: 4, dim: 8, apply_to: "both", base_model: { name: "vectors", source: "precomputed .npy vectors", sha256: "unknown" } } }, false);
    const { code, stderr } = await runCli(["eval", "--data", evalFile, "--adapter", small, "--model", tiny, "--cache-dir", cacheRoot]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/adapter dim 8 does not match the encoder's 32/);
  });
});

describe("Hub models", () => {
  const sha = "0123456789abcdef0123456789abcdef01234567";
  let server: Server;
  let requests: string[] = [];

  beforeAll(async () => {
    // A local stand-in for the Hub: the revision API and resolve/<sha>/<file> downloads.
    server = createServer((req, res) => {
      requests.push(req.url ?? "");
      const url = decodeURIComponent(req.url ?? "");
      if (url === "/api/models/tiny-org/tiny-bert/revision/main") {
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ id: "tiny-org/tiny-bert", sha }));
        return;
      }
      const m = /^\/tiny-org\/tiny-bert\/resolve\/([^/]+)\/(.+)$/.exec(url);
      if (m && m[1] === sha) {
        try {
          res.end(readFileSync(path.join(tiny, m[2])));
          return;
        } catch {
          /* fall through to 404 */
        }
      }
      res.statusCode = 404;
      res.end("not found");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address() as { port: number };
    process.env.HF_ENDPOINT = `http://127.0.0.1:${address.port}`;
  });

  afterAll(() => {
    server.close();
    delete process.env.HF_ENDPOINT;
  });

  it("downloads once, pinned to the resolved commit, then works offline", async () => {
    const root = path.join(work, "hub-cache");
    const resolved = await resolveModel("tiny-org/tiny-bert", { offline: false, cacheRoot: root });
    expect(resolved.revision).toBe(sha);
    expect(resolved.dir).toBe(path.join(root, "hub", "tiny-org/tiny-bert", sha));
    expect(readFileSync(path.join(root, "hub/refs/tiny-org/tiny-bert/main"), "utf8").trim()).toBe(sha);
    expect(requests.some((r) => r.includes(`/resolve/${sha}/onnx/model.onnx`))).toBe(true);

    requests = [];
    const encoder = await Encoder.load({ model: "tiny-org/tiny-bert", offline: true, cacheDir: root });
    expect(requests).toEqual([]); // offline: no request at all
    expect(encoder.model).toMatchObject({ name: "tiny-org/tiny-bert", revision: sha });
    const local = await load(tiny);
    expect(maxAbsDiff(await encoder.encode(texts), await local.encode(texts))).toBe(0);
    await encoder.close();
    await local.close();
  });

  it("checks the downloaded files' hashes at every load", async () => {
    const root = path.join(work, "hub-cache");
    const dir = path.join(root, "hub", "tiny-org/tiny-bert", sha);
    const tokenizer = path.join(dir, "tokenizer.json");
    const original = readFileSync(tokenizer);
    writeFileSync(tokenizer, Buffer.concat([original, Buffer.from(" ")]));
    await expect(resolveModel("tiny-org/tiny-bert", { offline: true, cacheRoot: root })).rejects.toThrow(/tokenizer\.json of tiny-org\/tiny-bert changed since it was downloaded .*delete .* to download it again/);
    writeFileSync(tokenizer, original);
    await expect(resolveModel("tiny-org/tiny-bert", { offline: true, cacheRoot: root })).resolves.toMatchObject({ revision: sha });
  });

  it("offline, a model not in the cache gets an error naming it, where it looked and the fix", async () => {
    const root = path.join(work, "empty-cache");
    mkdirSync(root, { recursive: true });
    await expect(resolveModel("tiny-org/other-model", { offline: true, cacheRoot: root })).rejects.toThrow(
      /model tiny-org\/other-model is not in the local cache .*looked in .*refs\/tiny-org\/other-model\/main.*embedtune fetch --model tiny-org\/other-model/,
    );
  });

  it("`embedtune fetch` pre-fetches a model for offline machines", async () => {
    const root = path.join(work, "fetch-cache");
    const { code, stdout } = await runCli(["fetch", "--model", "tiny-org/tiny-bert", "--cache-dir", root, "--json"]);
    expect(code).toBe(0);
    expect(lastJson(stdout)).toMatchObject({ model: "tiny-org/tiny-bert", revision: sha, dim: 32 });
  });
});
