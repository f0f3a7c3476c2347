import { NO_PREFIXES, resolvePrefixes, type Prefixes } from "./encoder/hf/prefixes.js";
import { DEFAULT_MODEL, loadFrozenEncoder } from "./encoder/load.js";
import type { FrozenEncoder, ModelIdentity } from "./encoder/types.js";
import { checkBaseModel, readAdapter, type AnyAdapter } from "./io/adapter-folder.js";
import { adapterTransform } from "./lora/merged.js";
import { WeightAdapterEncoder } from "./engine/merged-encoder.js";
import { defaultCacheRoot } from "./io/vector-cache.js";

export interface EncoderLoadOptions {
  /** "default" (the embedded USE-Lite encoder), a Hub-layout folder, or a Hub id owner/name[@revision]. Default: the adapter's model. */
  model?: string;
  /** An adapter folder (adapter_config.json + adapter_model.safetensors). */
  adapter?: string;
  /** Never touch the network (also EMBEDTUNE_OFFLINE=1). */
  offline?: boolean;
  /** Where Hub models are cached (default: $EMBEDTUNE_CACHE_DIR or ~/.cache/embedtune). */
  cacheDir?: string;
  /** Override the prefixes recorded in the adapter (or the model's known defaults). */
  queryPrefix?: string;
  docPrefix?: string;
}

/**
 * A frozen encoder with an optional output-space adapter: what applications use to embed.
 *
 * Every encode method returns one Float32Array of N x dim values, row-major: row i
 * (text i) is `out.subarray(i * dim, (i + 1) * dim)`, unit length, so cosine similarity is a
 * dot product. Use `rows(out)` for an array of per-text views.
 */
export class Encoder {
  private constructor(
    private readonly frozen: FrozenEncoder,
    readonly adapter: AnyAdapter | null,
    readonly prefixes: Prefixes,
  ) {
    this.transform = adapter && adapter.kind !== "weights" ? adapterTransform(adapter) : null;
  }

  private readonly transform: ((x: Float32Array, N: number) => Float32Array) | null;
  /** A weight-space adapter: the encoder with the LoRA merged into its weights. */
  private weights: FrozenEncoder | null = null;

  static async load(options: EncoderLoadOptions = {}): Promise<Encoder> {
    const adapter = options.adapter ? await readAdapter(options.adapter) : null;
    const model = options.model ?? (adapter && adapter.config.base_model.name !== "vectors" ? adapter.config.base_model.name : DEFAULT_MODEL);
    const frozen = await loadFrozenEncoder(model, { offline: options.offline, cacheRoot: options.cacheDir });
    try {
      if (adapter && options.adapter) checkBaseModel(adapter.config, frozen.identity, frozen.dim, options.adapter);
    } catch (err) {
      await frozen.close();
      throw err;
    }
    const prefixes = resolvePrefixes(adapter ? (adapter.config.prefixes ?? NO_PREFIXES) : frozen.defaultPrefixes, options.queryPrefix, options.docPrefix);
    const encoder = new Encoder(frozen, adapter, prefixes);
    if (adapter?.kind === "weights" && options.adapter) {
      try {
        encoder.weights = await WeightAdapterEncoder.load(frozen, model, adapter, options.adapter, { offline: options.offline, cacheRoot: options.cacheDir || defaultCacheRoot() });
      } catch (err) {
        await frozen.close();
        throw err;
      }
    }
    return encoder;
  }

  get dim(): number {
    return this.frozen.dim;
  }

  get model(): ModelIdentity {
    return this.frozen.identity;
  }

  /** Symmetric use (similarity, clustering): the adapter, if any, on every text; the symmetric prefix. */
  async encode(texts: readonly string[]): Promise<Float32Array> {
    return this.run(texts, this.prefixes.symmetric, true);
  }

  /** Search queries: the query prefix and the adapter (for both kinds of adapter). */
  async encodeQueries(texts: readonly string[]): Promise<Float32Array> {
    return this.run(texts, this.prefixes.query, true);
  }

  /** Documents: the document prefix; a query-only adapter leaves them as base vectors, so an existing index stays valid. */
  async encodeDocuments(texts: readonly string[]): Promise<Float32Array> {
    return this.run(texts, this.prefixes.document, this.adapter?.applyTo !== "query");
  }

  /** Per-text views into an encode result. */
  rows(vectors: Float32Array): Float32Array[] {
    const D = this.dim;
    return Array.from({ length: vectors.length / D }, (_, i) => vectors.subarray(i * D, (i + 1) * D));
  }

  /** Texts cut to the model's maximum length so far. */
  get truncated(): number {
    return this.frozen.truncated;
  }

  async close(): Promise<void> {
    await this.weights?.close();
    await this.frozen.close();
  }

  private async run(texts: readonly string[], prefix: string, adapt: boolean): Promise<Float32Array> {
    if (adapt && this.weights) return this.weights.encode(prefix ? texts.map((t) => prefix + t) : texts);
    const base = await this.frozen.encode(prefix ? texts.map((t) => prefix + t) : texts);
    return this.transform && adapt ? this.transform(base, texts.length) : base;
  }
}
