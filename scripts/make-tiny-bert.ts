#!/usr/bin/env -S npx tsx
/**
 * Writes a tiny BERT-architecture model folder in the Hugging Face Hub layout, so the real
 * loading, tokenising, pooling and training paths run offline in tests:
 *
 *   config.json, tokenizer.json (WordPiece), tokenizer_config.json, special_tokens_map.json,
 *   modules.json + 1_Pooling/config.json (sentence-transformers, mean pooling),
 *   onnx/model.onnx (written through the ONNX protobuf schema)
 *
 * Weights are random with a fixed seed; the vocabulary is the most frequent words of the
 * Debian sample in data/ plus every character and its "##" continuation, so any text
 * tokenises without unknowns for ASCII. Usage: npx tsx scripts/make-tiny-bert.ts <out dir> [seed]
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { buildBertGraph, type BertConfig, type BertWeights } from "../src/encoder/bert/graph.js";
import { Rng } from "../src/util/rng.js";

const SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

export interface TinyBertOptions {
  seed?: number;
  hidden?: number;
  layers?: number;
  maxLength?: number; // model_max_length: small, so truncation is exercised
  words?: number;
  // The rest default to the tiny shape; set them for a real model's shape with random weights
  // (the benchmark's all-MiniLM-L6-v2 stand-in: 12 heads, intermediate 1536, 512 positions).
  heads?: number;
  intermediate?: number; // default 2 * hidden
  maxPositions?: number; // max_position_embeddings, >= maxLength
}

export function writeTinyBert(dir: string, options: TinyBertOptions = {}): BertConfig {
  const { seed = 7, hidden = 32, layers = 2, maxLength = 48, words = 600, heads = 4, intermediate = hidden * 2, maxPositions = 64 } = options;
  const vocab = buildVocab(words);
  const config: BertConfig & Record<string, unknown> = {
    architectures: ["BertModel"],
    model_type: "bert",
    vocab_size: vocab.length,
    hidden_size: hidden,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    intermediate_size: intermediate,
    max_position_embeddings: maxPositions,
    type_vocab_size: 2,
    layer_norm_eps: 1e-12,
    hidden_act: "gelu",
    pad_token_id: 0,
  };
  mkdirSync(path.join(dir, "onnx"), { recursive: true });
  mkdirSync(path.join(dir, "1_Pooling"), { recursive: true });
  const json = (file: string, value: unknown) => writeFileSync(path.join(dir, file), JSON.stringify(value, null, 2) + "\n");
  json("config.json", config);
  json("tokenizer.json", tokenizerJson(vocab));
  json("tokenizer_config.json", {
    tokenizer_class: "BertTokenizer", do_lower_case: true, model_max_length: maxLength,
    cls_token: "[CLS]", sep_token: "[SEP]", pad_token: "[PAD]", unk_token: "[UNK]", mask_token: "[MASK]",
  });
  json("special_tokens_map.json", { cls_token: "[CLS]", sep_token: "[SEP]", pad_token: "[PAD]", unk_token: "[UNK]", mask_token: "[MASK]" });
  json("modules.json", [
    { idx: 0, name: "0", path: "", type: "sentence_transformers.models.Transformer" },
    { idx: 1, name: "1", path: "1_Pooling", type: "sentence_transformers.models.Pooling" },
    { idx: 2, name: "2", path: "2_Normalize", type: "sentence_transformers.models.Normalize" },
  ]);
  json("1_Pooling/config.json", { word_embedding_dimension: hidden, pooling_mode_cls_token: false, pooling_mode_mean_tokens: true, pooling_mode_max_tokens: false, pooling_mode_lasttoken: false });
  writeFileSync(path.join(dir, "onnx/model.onnx"), buildBertGraph(config, randomWeights(config, Rng.seeded(seed))));
  return config;
}

/** Special tokens, characters and their continuations, then the most frequent words. */
function buildVocab(words: number): string[] {
  const chars = "abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'\"()[]{}-_/+*=<>@#$%&|~`^\\";
  const vocab = [...SPECIAL, ...chars, ...[...chars].map((c) => `##${c}`)];
  const here = path.dirname(fileURLToPath(import.meta.url));
  const text = readFileSync(path.join(here, "../data/debian-train.jsonl"), "utf8").toLowerCase();
  const counts = new Map<string, number>();
  for (const word of text.match(/[a-z]{3,}/g) ?? []) counts.set(word, (counts.get(word) ?? 0) + 1);
  const frequent = [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, words).map(([w]) => w);
  return [...vocab, ...frequent.filter((w) => !vocab.includes(w))];
}

function tokenizerJson(vocab: string[]): unknown {
  const id = (t: string) => vocab.indexOf(t);
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: SPECIAL.map((content) => ({ id: id(content), content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: "BertNormalizer", clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "[CLS]", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "[SEP]", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: "[CLS]", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "[SEP]", type_id: 0 } },
        { Sequence: { id: "B", type_id: 1 } }, { SpecialToken: { id: "[SEP]", type_id: 1 } },
      ],
      special_tokens: {
        "[CLS]": { id: "[CLS]", ids: [id("[CLS]")], tokens: ["[CLS]"] },
        "[SEP]": { id: "[SEP]", ids: [id("[SEP]")], tokens: ["[SEP]"] },
      },
    },
    decoder: { type: "WordPiece", prefix: "##", cleanup: true },
    model: { type: "WordPiece", unk_token: "[UNK]", continuing_subword_prefix: "##", max_input_chars_per_word: 100, vocab: Object.fromEntries(vocab.map((t, i) => [t, i])) },
  };
}

/** Normal(0, std) weights (Box-Muller over the seeded generator); LayerNorm scale near 1. */
function randomWeights(c: BertConfig, rng: Rng): BertWeights {
  const weights: BertWeights = new Map();
  const normal = (n: number, std: number, mean = 0) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = mean + std * Math.sqrt(-2 * Math.log(1 - rng.uniform())) * Math.cos(2 * Math.PI * rng.uniform());
    return out;
  };
  const add = (name: string, shape: number[], std: number, mean = 0) => weights.set(name, { shape, data: normal(shape.reduce((a, b) => a * b, 1), std, mean) });
  const H = c.hidden_size;
  const F = c.intermediate_size;
  add("embeddings.word_embeddings.weight", [c.vocab_size, H], 0.5);
  add("embeddings.position_embeddings.weight", [c.max_position_embeddings, H], 0.1);
  add("embeddings.token_type_embeddings.weight", [c.type_vocab_size, H], 0.1);
  const layerNorm = (name: string) => {
    add(`${name}.weight`, [H], 0.1, 1);
    add(`${name}.bias`, [H], 0.1);
  };
  layerNorm("embeddings.LayerNorm");
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `encoder.layer.${l}`;
    const linear = (name: string, inDim: number, outDim: number) => {
      add(`${name}.weight`, [inDim, outDim], 1 / Math.sqrt(inDim));
      add(`${name}.bias`, [outDim], 0.02);
    };
    for (const m of ["query", "key", "value"]) linear(`${p}.attention.self.${m}`, H, H);
    linear(`${p}.attention.output.dense`, H, H);
    layerNorm(`${p}.attention.output.LayerNorm`);
    linear(`${p}.intermediate.dense`, H, F);
    linear(`${p}.output.dense`, F, H);
    layerNorm(`${p}.output.LayerNorm`);
  }
  return weights;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = process.argv[2];
  if (!out) {
    console.error("usage: npx tsx scripts/make-tiny-bert.ts <out dir> [seed]");
    process.exit(2);
  }
  writeTinyBert(out, { seed: Number(process.argv[3] ?? 7) });
  console.log(`wrote a tiny BERT model folder to ${out}`);
}
