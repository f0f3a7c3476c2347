import { EmbedtuneError } from "../errors.js";
import { readModelFolder, type ModelFolder } from "../encoder/hf/folder.js";
import { isOffline, resolveModel } from "../encoder/hf/hub.js";
import { defaultCacheRoot } from "../io/vector-cache.js";
import type { AnyAdapter } from "../io/adapter-folder.js";
import { mergeOutputLora } from "../lora/merged.js";

export interface ExportOptions {
  out: string;
  overwrite?: boolean;
  offline?: boolean;
  cacheDir?: string;
}

/** The adapter as one matrix W = I + s·B·A (D, D). */
export function adapterMatrix(adapter: AnyAdapter): Float32Array {
  if (adapter.kind === "weights") throw new EmbedtuneError("INVALID_ARGUMENT", "a weight-space adapter is not one matrix on the pooled vector", { field: "format" }, "export it with --format peft or --format onnx");
  return adapter.kind === "merged" ? adapter.weight : mergeOutputLora(adapter.lora);
}

/** The BERT-family model folder an adapter was trained on, checked against its recorded hash. */
export async function baseModelFolder(adapter: AnyAdapter, adapterDir: string, options: ExportOptions): Promise<ModelFolder> {
  const base = adapter.config.base_model;
  if (base.name === "default" || base.name === "vectors") {
    throw new EmbedtuneError(
      "INVALID_ARGUMENT",
      base.name === "default"
        ? "the default encoder (USE-Lite) is not a BERT-family model that sentence-transformers can load"
        : "this adapter was trained on precomputed vectors: there is no encoder to export",
      { file: adapterDir },
      base.name === "default" ? "use --format onnx or --format merged" : "use --format merged",
    );
  }
  const spec = base.revision ? `${base.name}@${base.revision}` : base.name;
  const resolved = await resolveModel(spec, { offline: isOffline(options.offline), cacheRoot: options.cacheDir || defaultCacheRoot() });
  const folder = await readModelFolder(resolved.dir, resolved.id);
  if (folder.onnxSha256 !== base.sha256) {
    throw new EmbedtuneError("INVALID_ADAPTER", `the model at ${resolved.dir} (onnx sha256 ${folder.onnxSha256.slice(0, 12)}) is not the one the adapter was trained on (${base.sha256.slice(0, 12)})`, { file: adapterDir });
  }
  return folder;
}
