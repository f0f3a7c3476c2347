import { readFile } from "node:fs/promises";
import path from "node:path";

import { EmbedtuneError } from "../errors.js";
import type { Prefixes } from "../encoder/hf/prefixes.js";
import type { ModelIdentity } from "../encoder/types.js";
import type { OutputLora } from "../lora/output-adapter.js";
import { writeFolderAtomic } from "./atomic.js";
import { decodeSafetensors, encodeSafetensors } from "./safetensors.js";
import { parseWeightAdapter, type WeightAdapterFile } from "./weight-adapter.js";

/**
 * An adapter folder, named like PEFT's:
 *   adapter_config.json        what the adapter is, what it was trained on and how well it did
 *   adapter_model.safetensors  lora_A.weight (r, d) and lora_B.weight (d, r), float32
 */
export const ADAPTER_FORMAT = "embedtune-adapter";
export const ADAPTER_FORMAT_VERSION = 1;
export const CONFIG_FILE = "adapter_config.json";
export const WEIGHTS_FILE = "adapter_model.safetensors";

/** Which texts the adapter is applied to: both sides, or queries only (documents keep base vectors). */
export type ApplyTo = "both" | "query";

export interface AdapterConfig {
  format: typeof ADAPTER_FORMAT;
  format_version: number;
  /** "output": lora_A/lora_B on the pooled vector; "merged": the same map stored once as W = I + s·B·A. */
  kind: AdapterKind;
  r: number;
  lora_alpha: number;
  dim: number;
  apply_to: ApplyTo;
  base_model: ModelIdentity;
  /** Prefixes put before queries, documents and symmetric texts when the adapter was trained; encoding applies the same. */
  prefixes?: Prefixes;
  /** The training settings that produced it (TrainConfig, as JSON). */
  training?: Record<string, unknown>;
  /**
   * Eval-set metrics (name -> value) of the base encoder (`before`), of these weights (`best`,
   * the best evaluation, at step `best_step`; 0 = the base encoder was never beaten) and of
   * the adapter at the last step (`after`).
   */
  metrics?: { before?: Record<string, number>; best?: Record<string, number>; best_step?: number; after?: Record<string, number> };
  created_at?: string;
  embedtune_version?: string;
}

/** "weights": LoRA pairs inside the encoder's linear layers (src/io/weight-adapter.ts). */
export type AdapterKind = "output" | "merged" | "weights";

/** A merged output adapter: z = normalize(W x), W (D, D) row-major, [out, in]. */
export interface MergedAdapter {
  config: AdapterConfig;
  weight: Float32Array; // (D, D)
  applyTo: ApplyTo;
}

/** Any adapter folder, by kind. */
export type AnyAdapter = ({ kind: "output" } & LoadedAdapter) | ({ kind: "merged" } & MergedAdapter) | ({ kind: "weights" } & WeightAdapterFile);

export interface LoadedAdapter {
  config: AdapterConfig;
  lora: OutputLora;
  applyTo: ApplyTo;
}

export async function saveAdapter(dir: string, adapter: LoadedAdapter, overwrite: boolean): Promise<void> {
  const { lora } = adapter;
  assertFinite(lora, path.join(dir, WEIGHTS_FILE));
  const weights = encodeSafetensors(
    {
      "lora_A.weight": { shape: [lora.r, lora.dim], data: lora.A },
      "lora_B.weight": { shape: [lora.dim, lora.r], data: lora.B },
    },
    { format: "pt" },
  );
  const config: AdapterConfig = { ...adapter.config, r: lora.r, lora_alpha: lora.loraAlpha, dim: lora.dim, apply_to: adapter.applyTo };
  await writeFolderAtomic(dir, { [CONFIG_FILE]: `${JSON.stringify(config, null, 2)}\n`, [WEIGHTS_FILE]: weights }, overwrite);
}

/** Loads an output adapter (lora_A, lora_B); other kinds are refused with their name. */
export async function loadAdapter(dir: string): Promise<LoadedAdapter> {
  const adapter = await readAdapter(dir);
  if (adapter.kind !== "output") {
    throw new EmbedtuneError("INVALID_ADAPTER", `expected an output adapter (lora_A, lora_B), found kind "${adapter.kind}"`, { file: path.join(dir, CONFIG_FILE), field: "kind" });
  }
  return adapter;
}

/** Saves a merged adapter: adapter_model.safetensors holds "weight" (D, D). */
export async function saveMergedAdapter(dir: string, adapter: MergedAdapter, overwrite: boolean): Promise<void> {
  const D = adapter.config.dim;
  if (!adapter.weight.every(Number.isFinite)) throw new EmbedtuneError("INVALID_ADAPTER", "weight holds a non-finite value", { file: path.join(dir, WEIGHTS_FILE) });
  const weights = encodeSafetensors({ weight: { shape: [D, D], data: adapter.weight } }, { format: "pt" });
  const config: AdapterConfig = { ...adapter.config, kind: "merged", apply_to: adapter.applyTo };
  await writeFolderAtomic(dir, { [CONFIG_FILE]: `${JSON.stringify(config, null, 2)}\n`, [WEIGHTS_FILE]: weights }, overwrite);
}

/** Loads an adapter folder of any kind, checking every tensor against the config. */
export async function readAdapter(dir: string): Promise<AnyAdapter> {
  const configBytes = await readOrFail(path.join(dir, CONFIG_FILE), dir);
  parseConfig(configBytes, path.join(dir, CONFIG_FILE)); // a bad config is reported before the weights are read
  const weightsBytes = await readOrFail(path.join(dir, WEIGHTS_FILE), dir);
  return parseAdapter(configBytes, weightsBytes, dir);
}

/**
 * An adapter from the bytes of its two files, trusting nothing: strict UTF-8 JSON, every
 * field checked, tensors checked against the config. Any flaw is an EmbedtuneError naming
 * the file (the fuzz test feeds this mutated files).
 */
export function parseAdapter(configBytes: Uint8Array, weightsBytes: Uint8Array, dir: string): AnyAdapter {
  const configPath = path.join(dir, CONFIG_FILE);
  const weightsPath = path.join(dir, WEIGHTS_FILE);
  const config = parseConfig(configBytes, configPath);
  const { tensors } = decodeSafetensors(weightsBytes, weightsPath);
  if (config.kind === "weights") return { kind: "weights", ...parseWeightAdapter(config, tensors, configPath, weightsPath) };
  if (config.kind === "merged") {
    const W = tensors.get("weight");
    if (!W || W.shape.join() !== `${config.dim},${config.dim}`) {
      throw new EmbedtuneError("INVALID_ADAPTER", `weight must have shape [${config.dim}, ${config.dim}], found ${W ? JSON.stringify(W.shape) : "none"}`, { file: weightsPath });
    }
    if (!W.data.every(Number.isFinite)) throw new EmbedtuneError("INVALID_ADAPTER", "weight holds a non-finite value", { file: weightsPath });
    return { kind: "merged", config, weight: W.data, applyTo: config.apply_to };
  }
  const A = tensors.get("lora_A.weight");
  const B = tensors.get("lora_B.weight");
  const { r, dim } = config;
  if (!A || A.shape.join() !== `${r},${dim}`) {
    throw new EmbedtuneError("INVALID_ADAPTER", `lora_A.weight must have shape [${r}, ${dim}] (from ${CONFIG_FILE}), found ${A ? JSON.stringify(A.shape) : "none"}`, { file: weightsPath });
  }
  if (!B || B.shape.join() !== `${dim},${r}`) {
    throw new EmbedtuneError("INVALID_ADAPTER", `lora_B.weight must have shape [${dim}, ${r}] (from ${CONFIG_FILE}), found ${B ? JSON.stringify(B.shape) : "none"}`, { file: weightsPath });
  }
  const lora: OutputLora = { dim, r, loraAlpha: config.lora_alpha, A: A.data, B: B.data };
  assertFinite(lora, weightsPath);
  return { kind: "output", config, lora, applyTo: config.apply_to };
}

/** The base_model.sha256 of adapters trained on precomputed vectors. */
export const UNKNOWN_SHA256 = "unknown";

/** Refuses an adapter trained on another encoder, naming both. */
export function checkBaseModel(config: AdapterConfig, model: ModelIdentity, dim: number, where: string): void {
  const trained = config.base_model;
  // Adapters trained on user-supplied vectors name no encoder: only the dimension can be checked.
  if (trained.sha256 !== model.sha256 && trained.sha256 !== UNKNOWN_SHA256) {
    throw new EmbedtuneError(
      "INVALID_ADAPTER",
      `adapter was trained on ${trained.name} [${trained.source}, sha256 ${trained.sha256.slice(0, 12)}] but the encoder is ${model.name} [${model.source}, sha256 ${model.sha256.slice(0, 12)}]`,
      { file: path.join(where, CONFIG_FILE) },
      `use --model ${trained.name}`,
    );
  }
  if (config.dim !== dim) {
    throw new EmbedtuneError("INVALID_ADAPTER", `adapter dim ${config.dim} does not match the encoder's ${dim}`, { file: path.join(where, CONFIG_FILE) });
  }
}

/** adapter_config.json's bytes as a checked AdapterConfig. */
function parseConfig(bytes: Uint8Array, file: string): AdapterConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err) {
    throw new EmbedtuneError("INVALID_ADAPTER", `not valid UTF-8 JSON (${(err as Error).message.split("\n")[0]})`, { file });
  }
  return validateConfig(raw, file);
}

function validateConfig(raw: unknown, file: string): AdapterConfig {
  const bad = (field: string, what: string): never => {
    throw new EmbedtuneError("INVALID_ADAPTER", what, { file, field });
  };
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) bad("(root)", "must be a JSON object");
  const c = raw as Record<string, unknown>;
  if (c.format !== ADAPTER_FORMAT) bad("format", `expected "${ADAPTER_FORMAT}", found ${shown(c.format)}`);
  if (c.format_version !== ADAPTER_FORMAT_VERSION) bad("format_version", `this embedtune reads version ${ADAPTER_FORMAT_VERSION}, found ${shown(c.format_version)}`);
  if (c.kind !== "output" && c.kind !== "merged" && c.kind !== "weights") bad("kind", `expected "output", "merged" or "weights", found ${shown(c.kind)}`);
  for (const f of ["r", "dim"] as const) {
    if (!Number.isSafeInteger(c[f]) || (c[f] as number) < 1) bad(f, `must be a positive integer, found ${shown(c[f])}`);
  }
  if (typeof c.lora_alpha !== "number" || !Number.isFinite(c.lora_alpha) || c.lora_alpha <= 0) bad("lora_alpha", `must be a positive number, found ${shown(c.lora_alpha)}`);
  if (c.apply_to !== "both" && c.apply_to !== "query") bad("apply_to", `must be "both" or "query", found ${shown(c.apply_to)}`);
  const base = c.base_model as Record<string, unknown> | undefined;
  if (typeof base !== "object" || base === null || typeof base.name !== "string" || typeof base.sha256 !== "string" || typeof base.source !== "string") {
    bad("base_model", "must be an object with name, source and sha256");
  }
  const prefixes = c.prefixes as Record<string, unknown> | undefined;
  if (prefixes !== undefined && (typeof prefixes !== "object" || prefixes === null || !["query", "document", "symmetric"].every((k) => typeof prefixes[k] === "string"))) {
    bad("prefixes", "must be an object with string query, document and symmetric");
  }
  return c as unknown as AdapterConfig;
}

/** A value for an error message: JSON, cut to 60 characters. */
function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function assertFinite(lora: OutputLora, file: string): void {
  for (const [name, t] of [["lora_A.weight", lora.A], ["lora_B.weight", lora.B]] as const) {
    for (let i = 0; i < t.length; i++) {
      if (!Number.isFinite(t[i])) throw new EmbedtuneError("INVALID_ADAPTER", `${name} holds a non-finite value at index ${i}`, { file });
    }
  }
}

async function readOrFail(file: string, dir: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new EmbedtuneError(code === "ENOENT" ? "FILE_NOT_FOUND" : "INVALID_ADAPTER", `cannot read ${path.basename(file)} (${code ?? err})`, { file }, `is ${dir} an adapter folder?`);
  }
}
