import { EmbedtuneError } from "./errors.js";
import type { ApplyTo } from "./io/adapter-folder.js";

/**
 * Everything a training run needs, with defaults in one place (grouped as nanoGPT does).
 * Names follow PEFT (r, lora_alpha) and sentence-transformers (scale, batch size) where
 * those exist. `resolveTrainConfig` fills defaults, rejects unknown keys and checks ranges.
 */
export interface TrainConfig {
  // --- data ---
  /** Training pairs: JSONL or CSV with query|anchor/positive[/negative] or sentence1/sentence2/score. */
  data: string;
  /** Evaluation file in the same formats; evaluated before and after training. */
  eval?: string;
  /** Adapter folder to write; omitted = train and report without saving. */
  out?: string;
  /** Replace an existing non-empty `out` folder. */
  overwrite: boolean;
  /** Precomputed base vectors for `data`: float32 .npy files (N, d), rows aligned with the pairs. */
  vectors?: { anchors: string; positives: string };
  /** Same for `eval`. */
  evalVectors?: { anchors: string; positives: string };
  /** BEIR folder given as `data`: the qrels split to train on; "" = the only one, else "train". */
  split: string;
  /** BEIR folder given as `eval`: the qrels split; "" = the only one, else "test". */
  evalSplit: string;
  /**
   * BEIR folders: hold out this percentage of the queries, grouped by shared relevant
   * documents (data/holdout.ts): `data` trains on the rest, `eval` evaluates on them. 0 = none.
   */
  holdout: number;

  // --- validation (needs `eval`) ---
  /** Evaluate every this many steps; 0 = after every epoch. The best evaluation's adapter is kept. */
  evalSteps: number;
  /** Save a checkpoint (adapter, optimizer, position, RNG) every N steps; 0 = only on SIGINT/SIGTERM. */
  checkpointEvery: number;
  /** Continue from the checkpoint of an interrupted run with the same settings and data. */
  resume: boolean;
  /** Where checkpoints go; "" = beside the adapter folder, <out>.checkpoint. */
  checkpointDir: string;
  /** Stop after this many evaluations in a row without a gain in the primary metric; 0 = never. */
  patience: number;

  // --- frozen encoder ---
  /** "default" = the embedded USE-Lite encoder. */
  model: string;
  /** Vector (and Hub model) cache folder; "" = the default, null disables the vector cache. */
  cacheDir: string | null;
  /** Never touch the network: Hub models must already be cached. */
  offline: boolean;
  /** Text put before every query (anchor); default: the model's known prefix, else none. */
  queryPrefix?: string;
  /** Text put before every document (positive, negative); default as for queryPrefix. */
  docPrefix?: string;

  // --- adapter (output-space LoRA) ---
  /** Rank of lora_A (r, d) and lora_B (d, r). */
  r: number;
  /** scaling = lora_alpha / r multiplies B A. */
  loraAlpha: number;
  /** "both": queries and documents pass through the adapter; "query": documents keep base vectors. */
  applyTo: ApplyTo;

  // --- adapter kind (weight-space LoRA: src/engine/, src/train/weight-train.ts) ---
  /** "output": LoRA on the pooled vector (trains in seconds, any encoder); "weights": LoRA pairs inside the encoder's linear layers. */
  adapterKind: "output" | "weights";
  /**
   * Weight-space LoRA targets: BERT query, key, value, attention.output.dense, intermediate.dense,
   * output.dense (PEFT's names; aliases attention_output, ffn_in, ffn_out); USE-Lite query, key,
   * value, attention_output, ffn_in, ffn_out, residual_projection; or all-linear.
   */
  loraTargets: string[];
  /** Adapt only the top k transformer layers (0 = all); the frozen layers below run once per text. */
  loraLayers: number;
  /** lora_dropout on the LoRA branch's input (PEFT's), in [0, 1). */
  loraDropout: number;
  /** Memory cap in MB for the cached hidden states below the adapted layers (with loraLayers). */
  loraCacheMb: number;

  // --- loss ---
  /** "mnrl" (symmetric InfoNCE, in-batch negatives) for pairs, "cosent" for scored pairs; "auto" picks by data. */
  loss: "auto" | "mnrl" | "cosent";
  /** Logit scale = 1 / temperature (20 = 0.05), for both losses. */
  scale: number;

  // --- optimisation ---
  epochs: number;
  /** Examples per batch; "all" = full batch, 1 = online, "auto" = 64 for mnrl (more in-batch negatives), 16 for cosent. */
  batchSize: number | "all" | "auto";
  lr: number;
  weightDecay: number;
  betas: [number, number];
  eps: number;
  /** Linear warm-up over this fraction of the steps, then linear decay to 0. */
  warmupRatio: number;
  /** Clip the global gradient norm of (lora_A, lora_B) to this. */
  maxGradNorm: number;
  /** Stop after this many consecutive steps with a non-finite loss or gradient. */
  maxBadSteps: number;
  seed: number;
}

export const TRAIN_DEFAULTS: Omit<TrainConfig, "data"> = {
  overwrite: false,
  split: "",
  evalSplit: "",
  holdout: 0,
  evalSteps: 0,
  checkpointEvery: 0,
  resume: false,
  checkpointDir: "",
  patience: 0,
  model: "default",
  cacheDir: "", // "" = the default cache root (see defaultCacheRoot)
  offline: false,
  r: 16,
  loraAlpha: 32,
  applyTo: "both",
  adapterKind: "output",
  loraTargets: ["query", "value"], // PEFT's default for BERT
  loraLayers: 0,
  loraDropout: 0,
  loraCacheMb: 1024,
  loss: "auto",
  scale: 20,
  epochs: 3,
  batchSize: "auto",
  lr: 1e-3,
  weightDecay: 0.01,
  betas: [0.9, 0.999],
  eps: 1e-8,
  warmupRatio: 0.1,
  maxGradNorm: 1.0,
  maxBadSteps: 10,
  seed: 42,
};

/** The batch size "auto" stands for, per loss (measured: see README, "Choosing settings"). */
export const AUTO_BATCH_SIZE = { mnrl: 64, cosent: 16 } as const;

const KNOWN_KEYS = new Set<string>(["data", "eval", "out", "vectors", "evalVectors", "queryPrefix", "docPrefix", ...Object.keys(TRAIN_DEFAULTS)]);

export function resolveTrainConfig(input: Partial<TrainConfig> & { data: string }): TrainConfig {
  for (const key of Object.keys(input)) {
    if (!KNOWN_KEYS.has(key)) throw invalid(key, `unknown training option "${key}"`);
  }
  const defined = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
  const c = { ...TRAIN_DEFAULTS, ...defined } as TrainConfig;
  if (typeof c.data !== "string" || c.data.length === 0) throw invalid("data", "a training data file is required");
  positiveInt(c.r, "r", "rank");
  positiveInt(c.epochs, "epochs");
  if (c.batchSize !== "all" && c.batchSize !== "auto") positiveInt(c.batchSize, "batchSize", "batch size");
  positive(c.loraAlpha, "loraAlpha", "lora_alpha");
  positive(c.scale, "scale");
  nonNegative(c.lr, "lr", "learning rate");
  nonNegative(c.weightDecay, "weightDecay", "weight decay");
  nonNegative(c.eps, "eps");
  positive(c.maxGradNorm, "maxGradNorm", "max gradient norm");
  positiveInt(c.maxBadSteps, "maxBadSteps");
  if (!(c.warmupRatio >= 0 && c.warmupRatio < 1)) throw invalid("warmupRatio", `warm-up ratio must be in [0, 1), got ${c.warmupRatio}`);
  if (!c.betas.every((b) => b >= 0 && b < 1)) throw invalid("betas", `betas must lie in [0, 1), got ${c.betas.join(", ")}`);
  if (c.applyTo !== "both" && c.applyTo !== "query") throw invalid("applyTo", `apply_to must be "both" or "query", got ${String(c.applyTo)}`);
  if (c.adapterKind !== "output" && c.adapterKind !== "weights") throw invalid("adapterKind", `adapter kind must be "output" or "weights", got ${String(c.adapterKind)}`);
  if (!Array.isArray(c.loraTargets) || c.loraTargets.length === 0 || !c.loraTargets.every((t) => typeof t === "string" && t.length > 0)) throw invalid("loraTargets", "lora targets must be a non-empty list of module names");
  if (!Number.isSafeInteger(c.loraLayers) || c.loraLayers < 0) throw invalid("loraLayers", `lora layers must be a non-negative integer (0 = all), got ${c.loraLayers}`);
  if (!(c.loraDropout >= 0 && c.loraDropout < 1)) throw invalid("loraDropout", `lora dropout must be in [0, 1), got ${c.loraDropout}`);
  nonNegative(c.loraCacheMb, "loraCacheMb", "lora cache MB");
  if (c.adapterKind === "weights" && c.vectors) throw invalid("vectors", "--adapter-kind weights trains inside the encoder: it cannot use precomputed --vectors");
  if (!["auto", "mnrl", "cosent"].includes(c.loss)) throw invalid("loss", `loss must be mnrl or cosent, got ${String(c.loss)}`);
  if (!Number.isSafeInteger(c.seed)) throw invalid("seed", `seed must be an integer, got ${c.seed}`);
  if (!(Number.isFinite(c.holdout) && c.holdout >= 0 && c.holdout < 100)) throw invalid("holdout", `holdout must be a percentage in [0, 100), got ${c.holdout}`);
  if (!Number.isSafeInteger(c.checkpointEvery) || c.checkpointEvery < 0) throw invalid("checkpointEvery", `checkpoint interval must be a non-negative integer, got ${c.checkpointEvery}`);
  if (!Number.isSafeInteger(c.evalSteps) || c.evalSteps < 0) throw invalid("evalSteps", `eval steps must be a non-negative integer, got ${c.evalSteps}`);
  if (!Number.isSafeInteger(c.patience) || c.patience < 0) throw invalid("patience", `patience must be a non-negative integer, got ${c.patience}`);
  if ((c.evalSteps > 0 || c.patience > 0) && !c.eval) throw invalid(c.patience > 0 ? "patience" : "evalSteps", "validation needs an eval set (--eval)");
  return c;
}

function invalid(field: string, what: string): EmbedtuneError {
  return new EmbedtuneError("INVALID_ARGUMENT", what, { field });
}

function positiveInt(v: number, field: string, label = field): void {
  if (!Number.isSafeInteger(v) || v < 1) throw invalid(field, `${label} must be a positive integer, got ${v}`);
}

function positive(v: number, field: string, label = field): void {
  if (!(Number.isFinite(v) && v > 0)) throw invalid(field, `${label} must be a positive number, got ${v}`);
}

function nonNegative(v: number, field: string, label = field): void {
  if (!(Number.isFinite(v) && v >= 0)) throw invalid(field, `${label} must be a non-negative number, got ${v}`);
}
