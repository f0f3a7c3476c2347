import { AutoTokenizer, type PreTrainedTokenizer } from "@xenova/transformers";

import { EmbedtuneError } from "../../errors.js";
import { lengthBuckets, padBatch } from "../batching.js";
import { OnnxSession } from "../runtime.js";
import { MAX_TEXT_CHARS, type EncodeOptions, type FrozenEncoder, type ModelIdentity } from "../types.js";
import { readModelFolder, type DenseLayer, type ModelFolder, type Pooling } from "./folder.js";
import { resolveModel, type ResolveOptions } from "./hub.js";
import { knownPrefixes, type Prefixes } from "./prefixes.js";
import { poolInto } from "./pooling.js";
import { prefixTokenizable, TruncatingTokenizer } from "./truncate.js";

/** Outputs we can pool, in order of preference. */
const TOKEN_OUTPUTS = ["last_hidden_state", "token_embeddings"];
const KNOWN_INPUTS = new Set(["input_ids", "attention_mask", "token_type_ids"]);

/**
 * A BERT-family encoder from a Hub-layout folder or Hub id: the tokenizer from
 * transformers.js (tokenizer.json), the ONNX graph on onnxruntime, pooling as the model's
 * sentence-transformers config says (mean by default), then L2 normalisation. Texts longer
 * than the model's maximum are truncated (with the end token kept) and counted.
 */
export class HfEncoder implements FrozenEncoder {
  /** Texts truncated to the model's maximum length so far. */
  truncated = 0;

  private constructor(
    readonly identity: ModelIdentity,
    readonly dim: number,
    readonly pooling: Pooling,
    private readonly dense: readonly DenseLayer[],
    private readonly hidden: number,
    readonly maxLength: number,
    readonly defaultPrefixes: Prefixes,
    private readonly tokenizer: TruncatingTokenizer,
    private readonly session: OnnxSession,
    private readonly output: string,
    private readonly needsTokenTypes: boolean,
  ) {}

  static async load(spec: string, options: ResolveOptions): Promise<HfEncoder> {
    const resolved = await resolveModel(spec, options);
    const folder = await readModelFolder(resolved.dir, resolved.id);
    const session = await OnnxSession.create(folder.onnxBytes);
    try {
      const { output, needsTokenTypes } = checkEncoderGraph(session, folder);
      const dim = hiddenSize(folder);
      const identity: ModelIdentity = { name: resolved.id, source: resolved.source, sha256: folder.onnxSha256, revision: resolved.revision };
      return new HfEncoder(identity, folder.dense.length > 0 ? folder.dense[folder.dense.length - 1].outFeatures : dim, folder.pooling, folder.dense, dim, folder.maxLength, prefixesOf(folder, resolved.id), truncatingTokenizer(folder), session, output, needsTokenTypes);
    } catch (err) {
      await session.close();
      throw err;
    }
  }

  /** Token ids with special tokens, cut to the model's maximum (the end token stays last). */
  tokenize(text: string): number[] {
    const { ids, truncated } = this.tokenizer.tokenize(text.length > MAX_TEXT_CHARS ? text.slice(0, MAX_TEXT_CHARS) : text);
    if (truncated) this.truncated++;
    return ids;
  }

  async encode(texts: readonly string[], options: EncodeOptions = {}): Promise<Float32Array> {
    const H = this.hidden; // token vectors (B, L, H); text vectors are (N, dim) after Dense modules
    const tokens = texts.map((t) => this.tokenize(t));
    const out = new Float32Array(texts.length * this.dim); // (N, dim)
    let done = 0;
    for (const batch of lengthBuckets(tokens.map((t) => t.length))) {
      const B = batch.indices.length;
      const L = batch.length;
      const { ids, mask } = padBatch(batch.indices.map((i) => tokens[i]), L);
      const inputs: Record<string, { data: BigInt64Array; dims: number[] }> = { input_ids: { data: ids, dims: [B, L] }, attention_mask: { data: mask, dims: [B, L] } };
      if (this.needsTokenTypes) inputs.token_type_ids = { data: new BigInt64Array(B * L), dims: [B, L] };
      const hidden = await this.session.runInt64(inputs, this.output); // (B, L, H) or (B, H)
      if (this.output === "sentence_embedding") poolInto(out, batch.indices, hidden, new BigInt64Array(B).fill(1n), B, 1, H, "cls", this.dense);
      else poolInto(out, batch.indices, hidden, mask, B, L, H, this.pooling, this.dense);
      done += B;
      options.onProgress?.(done);
    }
    return out;
  }

  async close(): Promise<void> {
    await this.session.close();
  }
}

/** The folder's sentence-transformers prompts when it has them, else the family's known prefixes. */
function prefixesOf(folder: ModelFolder, id: string): Prefixes {
  const p = folder.prompts;
  if (!p) return knownPrefixes(id);
  return { query: p.query ?? "", document: p.document ?? p.passage ?? "", symmetric: "" };
}

/** The graph must take input_ids + attention_mask (token_type_ids optional) and give token vectors. */
function checkEncoderGraph(session: OnnxSession, folder: ModelFolder): { output: string; needsTokenTypes: boolean } {
  const inputs = session.inputNames;
  const outputs = session.outputNames;
  const unknown = inputs.filter((n) => !KNOWN_INPUTS.has(n));
  if (!inputs.includes("input_ids") || !inputs.includes("attention_mask") || unknown.length > 0) {
    throw new EmbedtuneError(
      "INVALID_FILE",
      `ONNX graph is not a text encoder: inputs are [${inputs.join(", ")}], expected input_ids, attention_mask and optionally token_type_ids`,
      { file: folder.onnxFile },
    );
  }
  const output = TOKEN_OUTPUTS.find((o) => outputs.includes(o)) ?? (outputs.includes("sentence_embedding") ? "sentence_embedding" : undefined);
  if (!output) {
    throw new EmbedtuneError(
      "INVALID_FILE",
      `ONNX graph is not a text encoder: outputs are [${outputs.join(", ")}], expected last_hidden_state, token_embeddings or sentence_embedding`,
      { file: folder.onnxFile },
    );
  }
  return { output, needsTokenTypes: inputs.includes("token_type_ids") };
}

function hiddenSize(folder: ModelFolder): number {
  const h = folder.config.hidden_size ?? folder.config.d_model ?? folder.config.dim;
  if (typeof h !== "number" || !Number.isSafeInteger(h) || h < 1) {
    throw new EmbedtuneError("INVALID_FILE", "config.json has no hidden_size", { file: `${folder.dir}/config.json`, field: "hidden_size" });
  }
  return h;
}

function truncatingTokenizer(folder: ModelFolder): TruncatingTokenizer {
  const tokenizer = makeTokenizer(folder);
  return new TruncatingTokenizer((text) => tokenizer.encode(text), folder.maxLength, prefixTokenizable(folder.tokenizerJson));
}

/** transformers.js' tokenizer class for the folder's tokenizer_config.json (as AutoTokenizer picks it). */
export function makeTokenizer(folder: ModelFolder): PreTrainedTokenizer {
  const name = String(folder.tokenizerConfig.tokenizer_class ?? "PreTrainedTokenizer").replace(/Fast$/, "");
  const mapping = (AutoTokenizer as unknown as { TOKENIZER_CLASS_MAPPING: Record<string, new (json: unknown, config: unknown) => PreTrainedTokenizer> }).TOKENIZER_CLASS_MAPPING;
  const Tokenizer = mapping[name] ?? mapping.PreTrainedTokenizer;
  if (!Tokenizer) throw new EmbedtuneError("INVALID_FILE", `unknown tokenizer class ${name}`, { file: `${folder.dir}/tokenizer_config.json`, field: "tokenizer_class" });
  return new Tokenizer(folder.tokenizerJson, folder.tokenizerConfig);
}
