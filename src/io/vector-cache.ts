import { createHash } from "node:crypto";
import { closeSync, fstatSync, openSync, readSync, statSync } from "node:fs";
import { mkdir, open, readdir, rm } from "node:fs/promises";
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
 *
 * Memory: vectors are not held here. Opening streams each segment through the checksum in
 * fixed-size chunks and keeps only an index (key -> segment, row); `lookup` reads the rows
 * it needs from the files straight into the caller's (N, D) array, so a warm cache costs one
 * copy of the vectors (the caller's), whatever its size. Segments are written in chunks of
 * at most SEGMENT_BYTES, so no segment is ever held whole in memory either.
 */
const MAGIC = 0x43565445; // "ETVC" read as little-endian u32
const VERSION = 1;
const KEY_BYTES = 16;
const HEADER_BYTES = 16;
const CHECKSUM_BYTES = 32;
const SEGMENT_BYTES = 32 << 20; // vectors per segment file, at most
const READ_CHUNK = 4 << 20; // bytes per read while checksumming or copying rows

export function defaultCacheRoot(): string {
  if (process.env.EMBEDTUNE_CACHE_DIR) return process.env.EMBEDTUNE_CACHE_DIR;
  const base = process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), ".cache");
  return path.join(base, "embedtune");
}

/** A verified segment file: where its vectors start, and what it looked like when verified. */
interface Segment {
  file: string;
  count: number;
  size: number;
  mtimeMs: number;
}

export class VectorCache {
  /** text key (hex) -> segment * 2^32 + row of the segment that holds its vector. */
  private readonly index = new Map<string, number>();
  private readonly segments: Segment[] = [];
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
      if (!(await cache.verifySegment(file))) {
        cache.discarded.push(file);
        await rm(file, { force: true });
      }
    }
    return cache;
  }

  get size(): number {
    return this.index.size;
  }

  /**
   * Copies cached rows into `out` (N, D), read from the segment files; returns the indices of
   * texts not in the cache. A segment changed on disk since it was verified counts as missing.
   */
  lookup(texts: readonly string[], out: Float32Array): number[] {
    const missing: number[] = [];
    const wanted: Array<Array<[row: number, outRow: number]>> = this.segments.map(() => []);
    texts.forEach((text, i) => {
      const where = this.index.get(textKey(text));
      if (where === undefined) missing.push(i);
      else wanted[Math.floor(where / 2 ** 32)].push([where % 2 ** 32, i]);
    });
    wanted.forEach((rows, s) => {
      if (rows.length > 0 && !this.readRows(this.segments[s], rows, out)) for (const [, i] of rows) missing.push(i);
    });
    return missing.sort((a, b) => a - b);
  }

  /** Adds rows (N, D) for texts, written as new segments of at most SEGMENT_BYTES of vectors. */
  async add(texts: readonly string[], vectors: Float32Array): Promise<void> {
    const D = this.dim;
    const perSegment = Math.max(1, Math.floor(SEGMENT_BYTES / (D * 4)));
    for (let start = 0; start < texts.length; start += perSegment) {
      const N = Math.min(perSegment, texts.length - start);
      const bytes = new Uint8Array(HEADER_BYTES + N * KEY_BYTES + N * D * 4 + CHECKSUM_BYTES);
      const view = new DataView(bytes.buffer);
      view.setUint32(0, MAGIC, true);
      view.setUint32(4, VERSION, true);
      view.setUint32(8, D, true);
      view.setUint32(12, N, true);
      const keys: string[] = [];
      for (let i = 0; i < N; i++) {
        keys.push(textKey(texts[start + i]));
        bytes.set(Buffer.from(keys[i], "hex"), HEADER_BYTES + i * KEY_BYTES);
      }
      const rows = vectors.subarray(start * D, (start + N) * D);
      const vectorStart = HEADER_BYTES + N * KEY_BYTES;
      bytes.set(new Uint8Array(rows.buffer, rows.byteOffset, rows.byteLength), vectorStart);
      const bodyEnd = bytes.length - CHECKSUM_BYTES;
      bytes.set(createHash("sha256").update(bytes.subarray(0, bodyEnd)).digest(), bodyEnd);
      const name = `seg-${Date.now().toString(36)}-${process.pid}-${Math.floor(performance.now() * 1000).toString(36)}-${start.toString(36)}.etvc`;
      const file = path.join(this.dir, name);
      await writeFileAtomic(file, bytes);
      const { size, mtimeMs } = statSync(file);
      this.register({ file, count: N, size, mtimeMs }, keys);
    }
  }

  /** Streams a segment through its checksum; registers its keys when it is whole. */
  private async verifySegment(file: string): Promise<boolean> {
    const handle = await open(file, "r");
    try {
      const { size, mtimeMs } = await handle.stat();
      if (size < HEADER_BYTES + CHECKSUM_BYTES) return false;
      const header = Buffer.alloc(HEADER_BYTES);
      await handle.read(header, 0, HEADER_BYTES, 0);
      const D = header.readUInt32LE(8);
      const N = header.readUInt32LE(12);
      if (header.readUInt32LE(0) !== MAGIC || header.readUInt32LE(4) !== VERSION || D !== this.dim) return false;
      if (size !== HEADER_BYTES + N * KEY_BYTES + N * D * 4 + CHECKSUM_BYTES) return false;
      const hash = createHash("sha256");
      const chunk = Buffer.alloc(Math.min(READ_CHUNK, size));
      const bodyEnd = size - CHECKSUM_BYTES;
      for (let at = 0; at < bodyEnd; ) {
        const { bytesRead } = await handle.read(chunk, 0, Math.min(chunk.length, bodyEnd - at), at);
        if (bytesRead === 0) return false;
        hash.update(chunk.subarray(0, bytesRead));
        at += bytesRead;
      }
      const expected = Buffer.alloc(CHECKSUM_BYTES);
      await handle.read(expected, 0, CHECKSUM_BYTES, bodyEnd);
      if (!hash.digest().equals(expected)) return false;
      const keyBytes = Buffer.alloc(N * KEY_BYTES);
      await handle.read(keyBytes, 0, keyBytes.length, HEADER_BYTES);
      const keys = Array.from({ length: N }, (_, i) => keyBytes.toString("hex", i * KEY_BYTES, (i + 1) * KEY_BYTES));
      this.register({ file, count: N, size, mtimeMs }, keys);
      return true;
    } finally {
      await handle.close();
    }
  }

  private register(segment: Segment, keys: string[]): void {
    const s = this.segments.length;
    this.segments.push(segment);
    keys.forEach((key, row) => this.index.set(key, s * 2 ** 32 + row));
  }

  /**
   * Reads `rows` ([row in segment, row of out]) of a segment into out, in segment order, a
   * chunk of the file at a time. False when the file is no longer the one verified.
   */
  private readRows(segment: Segment, rows: Array<[number, number]>, out: Float32Array): boolean {
    let fd: number;
    try {
      fd = openSync(segment.file, "r");
    } catch {
      return false;
    }
    try {
      const { size, mtimeMs } = fstatSync(fd);
      if (size !== segment.size || mtimeMs !== segment.mtimeMs) return false;
      const rowBytes = this.dim * 4;
      const vectorStart = HEADER_BYTES + segment.count * KEY_BYTES;
      const chunkRows = Math.max(1, Math.floor(READ_CHUNK / rowBytes));
      const chunk = Buffer.alloc(Math.min(chunkRows, segment.count) * rowBytes);
      const bytesOut = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
      rows.sort((a, b) => a[0] - b[0]);
      for (let k = 0; k < rows.length; ) {
        const first = rows[k][0]; // read rows [first, first + n) of the segment in one call
        const n = Math.min(chunkRows, segment.count - first);
        const got = readSync(fd, chunk, 0, n * rowBytes, vectorStart + first * rowBytes);
        if (got !== n * rowBytes) return false;
        for (; k < rows.length && rows[k][0] < first + n; k++) {
          const [row, i] = rows[k];
          bytesOut.set(chunk.subarray((row - first) * rowBytes, (row - first + 1) * rowBytes), i * rowBytes);
        }
      }
      return true;
    } finally {
      closeSync(fd);
    }
  }
}

function textKey(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex").slice(0, KEY_BYTES * 2);
}
