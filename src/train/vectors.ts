import type { TextTable, IndexedEvalData } from "../data/texts.js";
import { encodeWithCache } from "../encoder/cached.js";
import type { FrozenEncoder, ModelIdentity } from "../encoder/types.js";
import { EmbedtuneError } from "../errors.js";
import { UNKNOWN_SHA256 } from "../io/adapter-folder.js";
import { streamNpyMatrix } from "../io/npy.js";
import { defaultCacheRoot } from "../io/vector-cache.js";

export interface BaseVectors {
  vectors: Float32Array; // (T, D): row t is the base vector of text id t
  dim: number;
  model: ModelIdentity;
  encoded: number; // texts the encoder ran on this time (0 when all came from the cache)
  truncated: number; // of those, texts longer than the model's maximum, cut to it
}

/** Base vectors of every text in `table`, from the frozen encoder through the on-disk cache. */
export async function encodeTexts(encoder: FrozenEncoder, table: TextTable, cacheDir: string | null, onProgress?: (done: number, total: number) => void): Promise<BaseVectors> {
  const cacheRoot = cacheDir === null ? null : cacheDir || defaultCacheRoot();
  const truncatedBefore = encoder.truncated;
  const { vectors, encoded } = await encodeWithCache(encoder, table.texts(), { cacheRoot, onProgress });
  return { vectors, dim: encoder.dim, model: encoder.identity, encoded, truncated: encoder.truncated - truncatedBefore };
}

/**
 * Base vectors supplied by the user (any encoder, an embeddings API included) as float32
 * .npy files whose rows align with the pairs of each dataset. Fills rows of `vectors` (T, D)
 * by text id; a text seen twice keeps its first row.
 */
export async function vectorsFromNpy(
  table: TextTable,
  sets: Array<{ data: IndexedEvalData; files: { anchors: string; positives: string }; dataFile: string }>,
): Promise<BaseVectors> {
  let D = 0;
  let vectors = new Float32Array(0);
  const filled = new Uint8Array(table.size);
  for (const { data, files, dataFile } of sets) {
    if (data.kind !== "pairs") throw new EmbedtuneError("INVALID_ARGUMENT", "precomputed vectors are supported for (anchor, positive) pairs only", { file: dataFile });
    for (const [column, file] of [[data.anchors, files.anchors], [data.positives, files.positives]] as const) {
      // Streamed a block of rows at a time straight into `vectors`: the file is never held whole.
      const shape = (rows: number, cols: number): void => {
        if (rows !== column.length) throw new EmbedtuneError("INVALID_FILE", `has ${rows} rows but ${dataFile} has ${column.length} pairs`, { file });
        if (D === 0) {
          D = cols;
          vectors = new Float32Array(table.size * D);
        } else if (cols !== D) {
          throw new EmbedtuneError("INVALID_FILE", `has ${cols} columns, other vector files have ${D}`, { file });
        }
      };
      await streamNpyMatrix(file, shape, (first, block, n) => {
        for (let r = 0; r < n; r++) {
          const t = column[first + r];
          if (filled[t]) continue;
          filled[t] = 1;
          vectors.set(block.subarray(r * D, (r + 1) * D), t * D);
        }
      });
    }
  }
  const model: ModelIdentity = { name: "vectors", source: "precomputed .npy vectors", sha256: UNKNOWN_SHA256 };
  return { vectors, dim: D, model, encoded: 0, truncated: 0 };
}
