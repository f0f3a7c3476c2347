import { saveMergedAdapter, type AnyAdapter } from "../io/adapter-folder.js";
import { adapterMatrix, type ExportOptions } from "./base.js";

/** An adapter folder of kind "merged": W = I + s·B·A stored once, (D, D), for one-matmul callers. */
export async function exportMerged(adapter: AnyAdapter, options: ExportOptions): Promise<string[]> {
  await saveMergedAdapter(options.out, { config: { ...adapter.config, kind: "merged" }, weight: adapterMatrix(adapter), applyTo: adapter.applyTo }, options.overwrite ?? false);
  return ["adapter_config.json", "adapter_model.safetensors"];
}
