import { readFile } from "node:fs/promises";
import path from "node:path";

import type { AnyAdapter } from "../io/adapter-folder.js";
import { writeFolderAtomic } from "../io/atomic.js";
import { encodeSafetensors } from "../io/safetensors.js";
import { adapterMatrix, baseModelFolder, type ExportOptions } from "./base.js";

const BASE_FILES = ["config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"];

/**
 * A sentence-transformers folder for a BERT-family base model with the adapter as a Dense
 * module: Transformer (base files, onnx/model.onnx) -> Pooling -> Dense(W, no bias, Identity)
 * -> Normalize. `SentenceTransformer(path, backend="onnx")` loads it. The Dense weight is
 * linear.weight [out, in] = I + (lora_alpha / r) · B · A. Prefixes become the model's prompts.
 */
export async function exportSentenceTransformers(adapter: AnyAdapter, adapterDir: string, options: ExportOptions): Promise<string[]> {
  const folder = await baseModelFolder(adapter, adapterDir, options);
  const D = adapter.config.dim;
  const files: Record<string, Uint8Array | string> = {};
  for (const name of BASE_FILES) {
    const bytes = await readFile(path.join(folder.dir, name)).catch(() => null);
    if (bytes) files[name] = bytes;
  }
  files["onnx/model.onnx"] = folder.onnxBytes;
  const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;
  files["modules.json"] = json([
    { idx: 0, name: "0", path: "", type: "sentence_transformers.models.Transformer" },
    { idx: 1, name: "1", path: "1_Pooling", type: "sentence_transformers.models.Pooling" },
    { idx: 2, name: "2", path: "2_Dense", type: "sentence_transformers.models.Dense" },
    { idx: 3, name: "3", path: "3_Normalize", type: "sentence_transformers.models.Normalize" },
  ]);
  files["sentence_bert_config.json"] = json({ max_seq_length: folder.maxLength, do_lower_case: false });
  files["1_Pooling/config.json"] = json({
    word_embedding_dimension: D,
    pooling_mode_cls_token: folder.pooling === "cls",
    pooling_mode_mean_tokens: folder.pooling === "mean",
    pooling_mode_max_tokens: false,
    pooling_mode_mean_sqrt_len_tokens: false,
    pooling_mode_weightedmean_tokens: false,
    pooling_mode_lasttoken: folder.pooling === "lasttoken",
  });
  files["2_Dense/config.json"] = json({ in_features: D, out_features: D, bias: false, activation_function: "torch.nn.modules.linear.Identity" });
  files["2_Dense/model.safetensors"] = encodeSafetensors({ "linear.weight": { shape: [D, D], data: adapterMatrix(adapter) } }, { format: "pt" });
  files["3_Normalize/config.json"] = json({});
  const prefixes = adapter.config.prefixes;
  files["config_sentence_transformers.json"] = json({
    prompts: prefixes ? { query: prefixes.query, document: prefixes.document } : {},
    default_prompt_name: null,
    similarity_fn_name: "cosine",
  });
  files["README.md"] = readme(adapter, adapterDir);
  await writeFolderAtomic(options.out, files, options.overwrite ?? false);
  return Object.keys(files).sort();
}

function readme(adapter: AnyAdapter, adapterDir: string): string {
  const base = adapter.config.base_model;
  const queryOnly = adapter.applyTo === "query";
  const side = queryOnly
    ? `**Queries only.** The adapter was trained with \`apply_to: "query"\`: encode queries with this folder and documents with the base model (\`${base.name}\`), so an index built with the base model stays valid.`
    : "Both sides: encode queries and documents with this folder.";
  return `# ${path.basename(path.resolve(adapterDir))} (sentence-transformers export)

Exported by embedtune from the adapter in \`${adapterDir}\`, trained on \`${base.name}\`${base.revision ? ` at ${base.revision}` : ""}
(onnx sha256 ${base.sha256}). Modules: Transformer (ONNX) -> Pooling -> Dense (the adapter as one
matrix, I + (lora_alpha / r) B A) -> Normalize.

${side}

\`\`\`python
from sentence_transformers import SentenceTransformer
model = SentenceTransformer("path/to/this/folder", backend="onnx")
${queryOnly ? 'queries = model.encode(["how do I parse XML?"], prompt_name="query")' : 'vectors = model.encode(["how do I parse XML?", "libxml2: XML parsing library"])'}
\`\`\`
`;
}
