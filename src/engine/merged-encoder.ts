/**
 * Inference with a weight-space adapter: the LoRA product folded into a copy of the weights
 * (src/export/merged-weights-onnx.ts) and run by onnxruntime exactly as the base model runs,
 * so encoding with the adapter costs what encoding without it costs.
 *
 * MergedSession encodes token ids (used by training's evaluations, which hold token ids
 * already); WeightAdapterEncoder is the FrozenEncoder the public Encoder / eval use, with the
 * base encoder's tokenizer and an identity of its own (so no cache mixes its vectors with the
 * base model's).
 */
import { createHash } from "node:crypto";

import { lengthBuckets, padBatch } from "../encoder/batching.js";
import { encodeWithCache } from "../encoder/cached.js";
import { defaultCacheRoot } from "../io/vector-cache.js";
import { isOffline } from "../encoder/hf/hub.js";
import { poolInto } from "../encoder/hf/pooling.js";
import { OnnxSession } from "../encoder/runtime.js";
import type { EncodeOptions, FrozenEncoder, ModelIdentity } from "../encoder/types.js";
import { EmbedtuneError } from "../errors.js";
import { mergedOnnx } from "../export/merged-weights-onnx.js";
import { bindWeightAdapter, type WeightAdapterFile } from "../io/weight-adapter.js";
import type { EngineSource } from "./load.js";
import { loadEngineModel } from "./load.js";
import type { WeightLora } from "./lora.js";

export class MergedSession {
  private constructor(
    private readonly session: OnnxSession,
    private readonly source: EngineSource,
    readonly dim: number,
    readonly sha256: string,
  ) {}

  static async create(source: EngineSource, lora: WeightLora, dim: number): Promise<MergedSession> {
    const bytes = mergedOnnx(source, lora);
    const session = await OnnxSession.create(bytes);
    return new MergedSession(session, source, dim, createHash("sha256").update(bytes).digest("hex"));
  }

  /** Unit vectors (N, dim) of token-id lists (already cut to the model's maximum). */
  async encodeTokens(tokens: ArrayLike<ArrayLike<number>>, onProgress?: (done: number) => void): Promise<Float32Array> {
    const D = this.dim;
    const N = tokens.length;
    const rows = Array.from({ length: N }, (_, i) => Array.from(tokens[i]));
    const out = new Float32Array(N * D);
    const bert = this.source.arch === "bert";
    const withTypes = this.session.inputNames.includes("token_type_ids");
    let done = 0;
    for (const batch of lengthBuckets(rows.map((t) => t.length))) {
      const B = batch.indices.length;
      const L = batch.length;
      const { ids, mask } = padBatch(batch.indices.map((i) => rows[i]), L);
      const inputs: Record<string, { data: BigInt64Array; dims: number[] }> = { input_ids: { data: ids, dims: [B, L] }, attention_mask: { data: mask, dims: [B, L] } };
      if (withTypes) inputs.token_type_ids = { data: new BigInt64Array(B * L), dims: [B, L] };
      if (bert) {
        const hidden = await this.session.runInt64(inputs, "last_hidden_state"); // (B, L, D)
        poolInto(out, batch.indices, hidden, mask, B, L, D, this.source.arch === "bert" ? this.source.folder.pooling : "mean");
      } else {
        const vectors = await this.session.runInt64(inputs, "sentence_embedding"); // (B, D)
        batch.indices.forEach((row, b) => out.set(vectors.subarray(b * D, (b + 1) * D), row * D));
      }
      done += B;
      onProgress?.(done);
    }
    return out;
  }

  async close(): Promise<void> {
    await this.session.close();
  }
}

/** What the base encoders offer beyond FrozenEncoder: their tokenizer, cut to the model's maximum. */
type Tokenizing = FrozenEncoder & { tokenize(text: string): number[] };

export class WeightAdapterEncoder implements FrozenEncoder {
  private constructor(
    private readonly base: Tokenizing,
    private readonly merged: MergedSession,
    readonly identity: ModelIdentity,
  ) {}

  /** The base encoder `base` (already loaded from `model`) with the adapter merged in. */
  static async load(base: FrozenEncoder, model: string, adapter: WeightAdapterFile, where: string, options: { offline?: boolean; cacheRoot: string }): Promise<WeightAdapterEncoder> {
    if (!("tokenize" in base) || typeof (base as Tokenizing).tokenize !== "function") {
      throw new EmbedtuneError("INVALID_ADAPTER", `encoder ${base.identity.name} cannot run a weight-space adapter`);
    }
    const { model: engineModel, source } = await loadEngineModel(model, { offline: isOffline(options.offline), cacheRoot: options.cacheRoot });
    const sourceSha = source.arch === "bert" ? source.folder.onnxSha256 : source.files.sha256;
    if (sourceSha !== base.identity.sha256) throw new EmbedtuneError("INVALID_ADAPTER", `the engine read other weights (sha256 ${sourceSha.slice(0, 12)}) than the encoder (${base.identity.sha256.slice(0, 12)})`);
    const lora = bindWeightAdapter(engineModel, adapter, where);
    const merged = await MergedSession.create(source, lora, engineModel.dim);
    const identity: ModelIdentity = { ...base.identity, source: `${base.identity.source} + weight adapter`, sha256: merged.sha256 };
    return new WeightAdapterEncoder(base as Tokenizing, merged, identity);
  }

  get dim(): number {
    return this.merged.dim;
  }

  get truncated(): number {
    return this.base.truncated;
  }

  get defaultPrefixes() {
    return this.base.defaultPrefixes;
  }

  async encode(texts: readonly string[], options: EncodeOptions = {}): Promise<Float32Array> {
    return this.merged.encodeTokens(texts.map((t) => this.base.tokenize(t)), options.onProgress);
  }

  /** Closes the merged session; the base encoder belongs to the caller. */
  async close(): Promise<void> {
    await this.merged.close();
  }
}

/** Vectors (T, D) of every text of `table` from the encoder with a weight adapter merged in, through the vector cache. */
export async function weightAdapterVectors(
  base: FrozenEncoder, model: string, adapter: WeightAdapterFile, where: string,
  table: { texts(): string[] }, options: { offline?: boolean; cacheDir?: string | null },
): Promise<Float32Array> {
  const cacheRoot = options.cacheDir === null ? null : options.cacheDir || defaultCacheRoot();
  const merged = await WeightAdapterEncoder.load(base, model, adapter, where, { offline: options.offline, cacheRoot: cacheRoot ?? defaultCacheRoot() });
  try {
    return (await encodeWithCache(merged, table.texts(), { cacheRoot })).vectors;
  } finally {
    await merged.close();
  }
}
