import { EmbedtuneError } from "../errors.js";
import { readAdapter } from "../io/adapter-folder.js";
import type { ExportOptions } from "./base.js";
import { exportMerged } from "./merged.js";
import { exportOnnx } from "./onnx.js";
import { exportSentenceTransformers } from "./sentence-transformers.js";

export type ExportFormat = "sentence-transformers" | "onnx" | "merged";
export const EXPORT_FORMATS: ExportFormat[] = ["sentence-transformers", "onnx", "merged"];

/** Writes an adapter in a form other tools read; returns the files written (relative to `out`). */
export async function exportAdapter(adapterDir: string, format: ExportFormat, options: ExportOptions): Promise<string[]> {
  const adapter = await readAdapter(adapterDir);
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
