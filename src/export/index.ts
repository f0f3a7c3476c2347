import { EmbedtuneError } from "../errors.js";
import { readAdapter } from "../io/adapter-folder.js";
import type { ExportOptions } from "./base.js";
import { exportMerged } from "./merged.js";
import { exportOnnx } from "./onnx.js";
import { exportWeightAdapter } from "./peft.js";
import { exportSentenceTransformers } from "./sentence-transformers.js";

export type ExportFormat = "sentence-transformers" | "onnx" | "merged" | "peft";
export const EXPORT_FORMATS: ExportFormat[] = ["sentence-transformers", "onnx", "merged", "peft"];

/** Writes an adapter in a form other tools read; returns the files written (relative to `out`). */
export async function exportAdapter(adapterDir: string, format: ExportFormat, options: ExportOptions): Promise<string[]> {
  const adapter = await readAdapter(adapterDir);
  if (adapter.kind === "weights") return exportWeightAdapter(adapter, adapterDir, format, options);
  if (format === "peft") throw new EmbedtuneError("INVALID_ARGUMENT", `--format peft needs a weight-space adapter (train with --adapter-kind weights); this one is kind "${adapter.kind}"`, { field: "format" });
  switch (format) {
    case "sentence-transformers":
      return exportSentenceTransformers(adapter, adapterDir, options);
    case "onnx":
      return exportOnnx(adapter, adapterDir, options);
    case "merged":
      return exportMerged(adapter, options);
    default:
      throw new EmbedtuneError("INVALID_ARGUMENT", `unknown export format "${String(format)}"`, { field: "format" }, `use one of ${EXPORT_FORMATS.join(", ")}`);
  }
}
