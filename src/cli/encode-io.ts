import { readFile } from "node:fs/promises";
import path from "node:path";

import { EmbedtuneError } from "../errors.js";
import { writeFileAtomic } from "../io/atomic.js";
import { encodeNpyMatrix } from "../io/npy.js";
import { encodeSafetensors } from "../io/safetensors.js";

export interface InputTexts {
  ids: string[];
  texts: string[];
}

/**
 * Texts to encode: .txt (one text per non-empty line, id = line number) or .jsonl
 * (objects with "text" and optional "id").
 */
export async function readInputTexts(file: string): Promise<InputTexts> {
  let content: string;
  try {
    content = new TextDecoder("utf-8", { fatal: true }).decode(await readFile(file));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new EmbedtuneError("FILE_NOT_FOUND", "file does not exist", { file });
    if (code === "EISDIR") throw new EmbedtuneError("INVALID_ARGUMENT", "is a directory, expected a file", { file });
    throw new EmbedtuneError("INVALID_DATA", code ? `cannot read (${code})` : "is not valid UTF-8 text", { file });
  }
  const ids: string[] = [];
  const texts: string[] = [];
  const jsonl = /\.jsonl?$/i.test(file);
  content.split(/\r?\n/).forEach((line, i) => {
    if (line.trim().length === 0) return;
    if (!jsonl) {
      ids.push(String(i + 1));
      texts.push(line);
      return;
    }
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch {
      throw new EmbedtuneError("INVALID_DATA", "not valid JSON", { file, line: i + 1 });
    }
    const rec = obj as { text?: unknown; id?: unknown };
    if (typeof rec !== "object" || rec === null || typeof rec.text !== "string") {
      throw new EmbedtuneError("INVALID_DATA", "expected an object with a string \"text\"", { file, line: i + 1, field: "text" });
    }
    ids.push(rec.id === undefined ? String(i + 1) : String(rec.id));
    texts.push(rec.text);
  });
  if (texts.length === 0) throw new EmbedtuneError("INVALID_DATA", "holds no texts", { file });
  return { ids, texts };
}

/**
 * Writes vectors (N, D) by the output's extension: .jsonl ({id, vector} per line), .npy
 * (float32 [N, D]) or .safetensors (tensor "embeddings" [N, D]; the ids as JSON in the
 * metadata entry "ids").
 */
export async function writeVectors(file: string, ids: string[], vectors: Float32Array, dim: number): Promise<void> {
  const ext = path.extname(file).toLowerCase();
  const n = ids.length;
  if (ext === ".npy") return writeFileAtomic(file, encodeNpyMatrix(vectors, n, dim));
  if (ext === ".safetensors") {
    return writeFileAtomic(file, encodeSafetensors({ embeddings: { shape: [n, dim], data: vectors } }, { format: "pt", ids: JSON.stringify(ids) }));
  }
  if (ext === ".jsonl") {
    const lines = ids.map((id, i) => JSON.stringify({ id, vector: Array.from(vectors.subarray(i * dim, (i + 1) * dim)) }));
    return writeFileAtomic(file, lines.join("\n") + "\n");
  }
  throw new EmbedtuneError("INVALID_ARGUMENT", `unknown output extension "${ext}"`, { file }, "use .jsonl, .npy or .safetensors");
}
