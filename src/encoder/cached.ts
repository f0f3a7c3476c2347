import { VectorCache } from "../io/vector-cache.js";
import type { FrozenEncoder } from "./types.js";

export interface CachedEncodeOptions {
  /** Cache root folder, or null to encode without a cache. */
  cacheRoot: string | null;
  onProgress?: (done: number, total: number) => void;
}

export interface CachedEncodeResult {
  vectors: Float32Array; // (N, D), unit rows
  encoded: number; // texts the encoder ran on (the rest came from the cache)
  discardedSegments: number; // corrupt cache segments found and removed
}

/** Base vectors of distinct texts: from the cache where present, encoded (and cached) otherwise. */
export async function encodeWithCache(encoder: FrozenEncoder, texts: readonly string[], options: CachedEncodeOptions): Promise<CachedEncodeResult> {
  const D = encoder.dim;
  const vectors = new Float32Array(texts.length * D); // (N, D)
  const cache = options.cacheRoot === null ? null : await VectorCache.open(options.cacheRoot, encoder.identity, D);
  const missing = cache ? cache.lookup(texts, vectors) : texts.map((_, i) => i);
  const hits = texts.length - missing.length;
  options.onProgress?.(hits, texts.length);
  if (missing.length > 0) {
    const missingTexts = missing.map((i) => texts[i]);
    const fresh = await encoder.encode(missingTexts, { onProgress: (done) => options.onProgress?.(hits + done, texts.length) });
    missing.forEach((row, i) => vectors.set(fresh.subarray(i * D, (i + 1) * D), row * D));
    await cache?.add(missingTexts, fresh);
  }
  return { vectors, encoded: missing.length, discardedSegments: cache?.discarded.length ?? 0 };
}
