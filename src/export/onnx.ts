import { readFile } from "node:fs/promises";
import path from "node:path";

import { GraphBuilder } from "../encoder/onnx-graph.js";
import { buildUseLiteGraph, USE_LITE_DIM } from "../encoder/use-lite/graph.js";
import { loadUseLiteFiles, useLiteDir } from "../encoder/use-lite/weights.js";
import type { AnyAdapter } from "../io/adapter-folder.js";
import { writeFolderAtomic } from "../io/atomic.js";
import { adapterMatrix, baseModelFolder, type ExportOptions } from "./base.js";
import { appendSentenceHead } from "./head.js";

const TOKEN_OUTPUTS = ["last_hidden_state", "token_embeddings"];
const TOKENIZER_FILES = ["config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"];

/**
 * One ONNX model: the frozen encoder's graph, pooling, the adapter matrix and the
 * normalisation, with output sentence_embedding [batch, dim]; the tokenizer files beside it.
 * Inputs are the encoder's own (input_ids, attention_mask[, token_type_ids], int64).
 * For a query-only adapter this is the query side (documents: the base model).
 */
export async function exportOnnx(adapter: AnyAdapter, adapterDir: string, options: ExportOptions): Promise<string[]> {
  const D = adapter.config.dim;
  const W = adapterMatrix(adapter);
  const files: Record<string, Uint8Array | string> = {};
  if (adapter.config.base_model.name === "default") {
    const weights = await loadUseLiteFiles();
    files["onnx/model.onnx"] = appendSentenceHead(buildUseLiteGraph(weights), { source: "sentence_embedding", pooling: "none", weight: W, inDim: USE_LITE_DIM, outDim: D });
    files["vocab.json"] = await readFile(path.join(useLiteDir(), "vocab.json"));
    files["README.md"] = `USE-Lite with an embedtune adapter. Inputs: input_ids and attention_mask, int64 [batch, sequence],
at most 128 tokens from USE-Lite's SentencePiece vocabulary (vocab.json: [piece, score] by id; the
tokenizer's exact rules are those of @energetic-ai/embeddings). Output: sentence_embedding [batch, ${D}].
${adapter.applyTo === "query" ? "Query side only: documents keep their base vectors.\n" : ""}`;
  } else {
    const folder = await baseModelFolder(adapter, adapterDir, options);
    const outputs = GraphBuilder.fromModel(folder.onnxBytes).outputNames;
    const source = TOKEN_OUTPUTS.find((o) => outputs.includes(o)) ?? "sentence_embedding";
    // An output adapter maps the encoder's own D-dim vectors to D dims: in = out = D.
    files["onnx/model.onnx"] = appendSentenceHead(folder.onnxBytes, { source, pooling: source === "sentence_embedding" ? "none" : folder.pooling, weight: W, inDim: D, outDim: D });
    for (const name of TOKENIZER_FILES) {
      const bytes = await readFile(path.join(folder.dir, name)).catch(() => null);
      if (bytes) files[name] = bytes;
    }
  }
  await writeFolderAtomic(options.out, files, options.overwrite ?? false);
  return Object.keys(files).sort();
}
