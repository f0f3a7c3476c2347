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

/** Texts encoded per call to the encoder: bounds the memory beside `vectors` to one chunk. */
export const ENCODE_CHUNK = 8192;

/**
 * Base vectors of distinct texts: from the cache where present, encoded (and cached)
 * otherwise. The result is the only (N, D) array: cached rows are read into it from disk,
 * and missing texts are encoded ENCODE_CHUNK at a time, each chunk copied into place and
 * written to the cache before the next, so peak memory is about N·D floats plus one chunk.
 */
export async function encodeWithCache(encoder: FrozenEncoder, texts: readonly string[], options: CachedEncodeOptions): Promise<CachedEncodeResult> {
  const D = encoder.dim;
  const vectors = new Float32Array(texts.length * D); // (N, D)
  const cache = options.cacheRoot === null ? null : await VectorCache.open(options.cacheRoot, encoder.identity, D);
  const missing = cache ? cache.lookup(texts, vectors) : texts.map((_, i) => i);
  const hits = texts.length - missing.length;
  options.onProgress?.(hits, texts.length);
  for (let start = 0; start < missing.length; start += ENCODE_CHUNK) {
    const rows = missing.slice(start, start + ENCODE_CHUNK);
    const chunkTexts = rows.map((i) => texts[i]);
    const done = hits + start;
    const fresh = await encoder.encode(chunkTexts, { onProgress: (n) => options.onProgress?.(done + n, texts.length) }); // (n, D)
    rows.forEach((row, i) => vectors.set(fresh.subarray(i * D, (i + 1) * D), row * D));
    await cache?.add(chunkTexts, fresh);
  }
  return { vectors, encoded: missing.length, discardedSegments: cache?.discarded.length ?? 0 };
}
