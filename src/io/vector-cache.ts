import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import type { ModelIdentity } from "../encoder/types.js";
import { writeFileAtomic } from "./atomic.js";

/**
 * On-disk cache of base vectors, so each distinct text is encoded once per model.
 *
 * Layout: <root>/vectors/<model key>/seg-<time>-<rand>.etvc, one segment per batch of new
 * texts. A segment is
 *   "ETVC" | u32 version | u32 dim | u32 count | count x 16-byte key | count x dim float32 | sha256
 * (little-endian), where key = first 16 bytes of sha256(text) and the trailing sha256 covers
 * everything before it. A segment whose size or checksum is wrong is deleted and its texts
 * are encoded again: a corrupt cache is never used.
 */
const MAGIC = 0x43565445; // "ETVC" read as little-endian u32
const VERSION = 1;
const KEY_BYTES = 16;
const HEADER_BYTES = 16;
const CHECKSUM_BYTES = 32;

export function defaultCacheRoot(): string {
  if (process.env.EMBEDTUNE_CACHE_DIR) return process.env.EMBEDTUNE_CACHE_DIR;
  const base = process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), ".cache");
  return path.join(base, "embedtune");
}

export class VectorCache {
  private readonly rows = new Map<string, Float32Array>(); // text key (hex) -> (D) row
  /** Segments found corrupt and removed when the cache was opened. */
  readonly discarded: string[] = [];

  private constructor(readonly dir: string, readonly dim: number) {}

  static async open(root: string, model: ModelIdentity, dim: number): Promise<VectorCache> {
    const modelKey = createHash("sha256").update(`${model.name}\n${model.source}\n${model.sha256}`).digest("hex").slice(0, 24);
    const cache = new VectorCache(path.join(root, "vectors", modelKey), dim);
    await mkdir(cache.dir, { recursive: true });
    for (const name of (await readdir(cache.dir)).sort()) {
      if (!name.endsWith(".etvc")) continue;
      const file = path.join(cache.dir, name);
      if (!cache.loadSegment(await readFile(file))) {
        cache.discarded.push(file);
        await rm(file, { force: true });
      }
    }
    return cache;
  }

  get size(): number {
    return this.rows.size;
  }

  /** Copies cached rows into `out` (N, D); returns the indices of texts not in the cache. */
  lookup(texts: readonly string[], out: Float32Array): number[] {
    const missing: number[] = [];
    texts.forEach((text, i) => {
      const row = this.rows.get(textKey(text));
      if (row) out.set(row, i * this.dim);
      else missing.push(i);
    });
    return missing;
  }

  /** Adds rows (N, D) for texts and writes them as one new segment. */
  async add(texts: readonly string[], vectors: Float32Array): Promise<void> {
    if (texts.length === 0) return;
    const D = this.dim;
    const N = texts.length;
    const body = new Uint8Array(HEADER_BYTES + N * KEY_BYTES + N * D * 4);
    const view = new DataView(body.buffer);
    view.setUint32(0, MAGIC, true);
    view.setUint32(4, VERSION, true);
    view.setUint32(8, D, true);
    view.setUint32(12, N, true);
    const vectorStart = HEADER_BYTES + N * KEY_BYTES;
    texts.forEach((text, i) => {
      const key = textKey(text);
      body.set(Buffer.from(key, "hex"), HEADER_BYTES + i * KEY_BYTES);
      this.rows.set(key, vectors.slice(i * D, (i + 1) * D));
    });
    body.set(new Uint8Array(vectors.buffer, vectors.byteOffset, N * D * 4), vectorStart);
    const checksum = createHash("sha256").update(body).digest();
    const name = `seg-${Date.now().toString(36)}-${process.pid}-${Math.floor(performance.now() * 1000).toString(36)}.etvc`;
    await writeFileAtomic(path.join(this.dir, name), Buffer.concat([body, checksum]));
  }

  private loadSegment(bytes: Buffer): boolean {
    if (bytes.length < HEADER_BYTES + CHECKSUM_BYTES) return false;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const D = view.getUint32(8, true);
    const N = view.getUint32(12, true);
    if (view.getUint32(0, true) !== MAGIC || view.getUint32(4, true) !== VERSION || D !== this.dim) return false;
    if (bytes.length !== HEADER_BYTES + N * KEY_BYTES + N * D * 4 + CHECKSUM_BYTES) return false;
    const body = bytes.subarray(0, bytes.length - CHECKSUM_BYTES);
    const expected = bytes.subarray(bytes.length - CHECKSUM_BYTES);
    if (!createHash("sha256").update(body).digest().equals(expected)) return false;
    const vectorStart = HEADER_BYTES + N * KEY_BYTES;
    const vectors = new Float32Array(N * D);
    new Uint8Array(vectors.buffer).set(body.subarray(vectorStart));
    for (let i = 0; i < N; i++) {
      const key = body.subarray(HEADER_BYTES + i * KEY_BYTES, HEADER_BYTES + (i + 1) * KEY_BYTES).toString("hex");
      this.rows.set(key, vectors.subarray(i * D, (i + 1) * D));
    }
    return true;
  }
}

function textKey(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex").slice(0, KEY_BYTES * 2);
}
