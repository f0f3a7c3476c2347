import { loadFrozenEncoder, DEFAULT_MODEL } from "./encoder/load.js";
import type { FrozenEncoder, ModelIdentity } from "./encoder/types.js";
import { checkBaseModel, loadAdapter, type LoadedAdapter } from "./io/adapter-folder.js";
import { applyAdapter } from "./lora/output-adapter.js";

export interface EncoderLoadOptions {
  /** "default" (the embedded USE-Lite encoder) unless given. */
  model?: string;
  /** An adapter folder (adapter_config.json + adapter_model.safetensors). */
  adapter?: string;
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
    readonly adapter: LoadedAdapter | null,
  ) {}

  static async load(options: EncoderLoadOptions = {}): Promise<Encoder> {
    const adapter = options.adapter ? await loadAdapter(options.adapter) : null;
    const frozen = await loadFrozenEncoder(options.model ?? adapter?.config.base_model.name ?? DEFAULT_MODEL);
    if (adapter && options.adapter) {
      try {
        checkBaseModel(adapter.config, frozen.identity, frozen.dim, options.adapter);
      } catch (err) {
        await frozen.close();
        throw err;
      }
    }
    return new Encoder(frozen, adapter);
  }

  get dim(): number {
    return this.frozen.dim;
  }

  get model(): ModelIdentity {
    return this.frozen.identity;
  }

  /** Symmetric use: the adapter, if any, is applied to every text. */
  async encode(texts: readonly string[]): Promise<Float32Array> {
    return this.transform(await this.frozen.encode(texts), texts.length, true);
  }

  /** Queries: the adapter is applied (for both kinds of adapter). */
  async encodeQueries(texts: readonly string[]): Promise<Float32Array> {
    return this.encode(texts);
  }

  /** Documents: a query-only adapter leaves them as base vectors, so an existing index stays valid. */
  async encodeDocuments(texts: readonly string[]): Promise<Float32Array> {
    return this.transform(await this.frozen.encode(texts), texts.length, this.adapter?.applyTo !== "query");
  }

  /** Per-text views into an encode result. */
  rows(vectors: Float32Array): Float32Array[] {
    const D = this.dim;
    return Array.from({ length: vectors.length / D }, (_, i) => vectors.subarray(i * D, (i + 1) * D));
  }

  async close(): Promise<void> {
    await this.frozen.close();
  }

  private transform(base: Float32Array, n: number, adapt: boolean): Float32Array {
    return this.adapter && adapt ? applyAdapter(base, n, this.adapter.lora) : base;
  }
}
