/**
 * Training of a weight-space adapter (--adapter-kind weights): LoRA pairs inside the encoder,
 * trained by backpropagation through the frozen transformer (src/engine/). The data, losses,
 * sampler, schedule, AdamW, validation rules (best adapter kept, patience) and metrics are
 * those of the output adapter (train.ts); what differs:
 *
 *   - every text is tokenised once (token ids kept in memory); each step runs the engine on
 *     the batch's texts (WeightLoraStep), with LoRA on the top `loraLayers` layers only the
 *     hidden states below are computed once per text and cached (StartCache, capped);
 *   - evaluations encode the eval texts with the LoRA merged into a copy of the weights, on
 *     onnxruntime (MergedSession), at the base model's speed;
 *   - the adapter folder holds kind "weights" with PEFT's tensor keys (io/weight-adapter.ts).
 */
import type { AnyDataset, Dataset } from "../data/types.js";
import type { IndexedEvalData, TextTable } from "../data/texts.js";
import { NoDuplicatesBatchSampler } from "../data/sampler.js";
import { textColumns, type IndexedDataset } from "../data/texts.js";
import type { TrainConfig } from "../config.js";
import { loadEngineModel } from "../engine/load.js";
import { initWeightLora, type WeightLora } from "../engine/lora.js";
import { MergedSession } from "../engine/merged-encoder.js";
import { setGemmBackend } from "../engine/kernels.js";
import { isOffline } from "../encoder/hf/hub.js";
import type { Prefixes } from "../encoder/hf/prefixes.js";
import { loadFrozenEncoder } from "../encoder/load.js";
import { createSyncGemm } from "../encoder/sync-gemm.js";
import { EmbedtuneError } from "../errors.js";
import { ADAPTER_FORMAT, ADAPTER_FORMAT_VERSION, type ApplyTo } from "../io/adapter-folder.js";
import { defaultCacheRoot } from "../io/vector-cache.js";
import { saveWeightAdapter, type WeightAdapterFile } from "../io/weight-adapter.js";
import { AdamW } from "../optim/adamw.js";
import { linearWarmupDecay } from "../optim/schedule.js";
import { Rng } from "../util/rng.js";
import { VERSION } from "../version.js";
import { evaluate } from "./evaluate.js";
import { writeReport, type ReportContext } from "./report.js";
import type { TrainEvent, TrainResult } from "./train.js";
import { BestKeeper, type Evaluation } from "./validation.js";
import type { BaseVectors } from "./vectors.js";
import { WeightLoraStep } from "./weight-step.js";

/** The GEMM backend, created once per process (four one-node onnxruntime sessions). */
let gemm: ReturnType<typeof createSyncGemm> | null = null;

/** What train.ts has prepared when it hands over: data read, checked and indexed, base vectors encoded. */
export interface WeightTrainInput {
  config: TrainConfig;
  dataset: Dataset;
  evalSet: AnyDataset | null;
  loss: "mnrl" | "cosent";
  batchSize: number | "all";
  table: TextTable;
  trainData: IndexedDataset;
  evalData: IndexedEvalData | null;
  base: BaseVectors;
  prefixes: Prefixes;
  dataInfo: { train: string; eval?: string };
}

/** The trained adapter as train() returns it (TrainResult.adapter for --adapter-kind weights). */
export interface TrainedWeightAdapter {
  kind: "weights";
  config: WeightAdapterFile["config"];
  lora: WeightLora;
  applyTo: ApplyTo;
}

export async function trainWeightAdapter(input: WeightTrainInput, emit: (e: TrainEvent) => void): Promise<TrainResult> {
  const { config, loss, table, trainData, evalData, base } = input;
  if (config.vectors) throw new EmbedtuneError("INVALID_ARGUMENT", "--adapter-kind weights trains inside the encoder, so it needs the encoder: --vectors cannot be used", { field: "vectors" });
  const cacheRoot = config.cacheDir || defaultCacheRoot();
  const { model, source } = await loadEngineModel(config.model, { offline: isOffline(config.offline), cacheRoot });
  const sha = source.arch === "bert" ? source.folder.onnxSha256 : source.files.sha256;
  if (sha !== base.model.sha256) throw new EmbedtuneError("INVALID_FILE", `the engine read other weights (sha256 ${sha.slice(0, 12)}) than the frozen encoder (${base.model.sha256.slice(0, 12)})`);
  const tokens = await tokenizeAll(config, table.texts());
  setGemmBackend(await (gemm ??= createSyncGemm(1))); // onnxruntime's GEMM for the large products; JavaScript kernels when unavailable

  const rng = Rng.seeded(config.seed);
  const lora = initWeightLora(model, { r: config.r, loraAlpha: config.loraAlpha, dropout: config.loraDropout, targets: config.loraTargets, topLayers: config.loraLayers }, rng);
  const params = lora.modules.flatMap((m) => [m.pair.A, m.pair.B]) as Float32Array[];
  const validator = evalData ? new WeightValidator(evalData, base.vectors, model.dim, config.applyTo, config.patience, params, source, lora, tokens) : null;
  const validate = async (when: "before" | "step" | "after", step: number, epoch: number): Promise<void> => {
    const e = await validator!.run(step, epoch);
    emit({ phase: "eval", when, step, metrics: e.metrics, best: validator!.best === e });
  };
  if (validator) await validate("before", 0, 0);
  const optimizer = new AdamW(params, { lr: config.lr, betas: config.betas, eps: config.eps, weightDecay: config.weightDecay });
  const sampler = new NoDuplicatesBatchSampler(textColumns(trainData), input.batchSize, rng);
  const epochs = Array.from({ length: config.epochs }, () => sampler.epoch());
  const totalSteps = epochs.reduce((s, batches) => s + batches.length, 0);
  if (totalSteps === 0) throw new EmbedtuneError("INVALID_DATA", "no batch of at least 2 distinct examples could be formed", { file: config.data });
  const lrAt = linearWarmupDecay(config.lr, totalSteps, config.warmupRatio);
  const step = new WeightLoraStep(model, lora, optimizer, trainData, tokens, base.vectors, {
    applyTo: config.applyTo, scale: config.scale, maxGradNorm: config.maxGradNorm, rng: Rng.seeded(config.seed + 1), startCacheBytes: config.loraCacheMb * 1024 * 1024,
  }, sampler.batchSize);

  const history: TrainResult["history"] = [];
  let k = 0;
  let skippedSteps = 0;
  let badInARow = 0;
  let stoppedAt: number | undefined;
  const evalNow = (epoch: number, i: number): boolean =>
    validator !== null && k < totalSteps && (config.evalSteps > 0 ? k % config.evalSteps === 0 : i === epochs[epoch].length - 1);
  training: for (let epoch = 0; epoch < epochs.length; epoch++) {
    for (let i = 0; i < epochs[epoch].length; i++) {
      const lr = lrAt(k);
      const result = step.run(epochs[epoch][i], lr);
      k++;
      if (result.skipped) {
        skippedSteps++;
        if (++badInARow >= config.maxBadSteps) {
          throw new EmbedtuneError("DIVERGED", `training diverged: ${badInARow} steps in a row had a non-finite loss or gradient (at step ${k})`, {}, `try a lower --lr than ${config.lr}`);
        }
      } else {
        badInARow = 0;
        history.push({ step: k, epoch: epoch + 1, loss: result.loss, lr });
        emit({ phase: "train", step: k, totalSteps, epoch: epoch + 1, loss: result.loss, lr });
      }
      if (evalNow(epoch, i)) {
        await validate("step", k, epoch + (i + 1) / epochs[epoch].length);
        if (validator!.exhausted) {
          stoppedAt = k;
          break training;
        }
      }
    }
  }

  const metrics: TrainResult["metrics"] = {};
  if (validator) {
    if (stoppedAt === undefined) await validate("after", k, epochs.length);
    metrics.before = validator.history[0].metrics;
    metrics.after = validator.last!.metrics;
    metrics.best = validator.best!.metrics;
    validator.restoreBest();
  }
  const bestStep = validator?.best?.step;
  const layers = [...new Set(lora.modules.map((m) => m.layer))].sort((a, b) => a - b);
  const extra = {
    loss, batchSize: input.batchSize, steps: totalSteps, stoppedAt: stoppedAt ?? null, skippedSteps, examples: input.dataset.examples.length,
    distinctTexts: table.size, cachedStarts: step.startCache?.size ?? 0, cachedStartMb: (step.startCache?.usedBytes ?? 0) / 2 ** 20,
  };
  const adapterConfig: WeightAdapterFile["config"] = {
    format: ADAPTER_FORMAT, format_version: ADAPTER_FORMAT_VERSION, kind: "weights", r: config.r, lora_alpha: config.loraAlpha, dim: model.dim,
    apply_to: config.applyTo, base_model: base.model, prefixes: input.prefixes,
    lora_dropout: config.loraDropout, target_modules: config.loraTargets, layers_to_transform: config.loraLayers > 0 ? layers : null, arch: model.arch,
    training: trainingRecord(config, extra), metrics: validator ? { ...metrics, best_step: bestStep } : metrics,
    created_at: new Date().toISOString(), embedtune_version: VERSION,
  };
  const adapter: TrainedWeightAdapter = { kind: "weights", config: adapterConfig, lora, applyTo: config.applyTo };
  const result: TrainResult = {
    adapter, config, metrics, primaryMetric: validator?.primary, bestStep, evaluations: validator?.history ?? [], stoppedAt, totalSteps, dataInfo: input.dataInfo,
    history, skippedSteps, texts: { distinct: table.size, encoded: base.encoded, truncated: base.truncated }, out: config.out, resumedFrom: null,
  };
  if (config.out) {
    await saveWeightAdapter(config.out, adapterConfig, lora, config.overwrite);
    // The histograms' "after" needs the trained encoder's vectors: the validator holds them
    // for the eval texts (of the kept evaluation). Without an eval set there are none, and
    // encoding a sample of training texts through the merged model only for the report
    // would cost another pass, so the section says why it is missing instead.
    const weightVectors: ReportContext["weightVectors"] = validator
      ? { map: validator.bestVectors() }
      : { missing: "Not drawn: a weight-space adapter changes the encoder, and without an eval set no texts were encoded by the trained encoder." };
    result.report = await writeReport(result, { trainData, evalData, vectors: base.vectors, batchSize: sampler.batchSize, loss, weightVectors });
  }
  return result;
}

/** Token ids of every text, as the frozen encoder cuts them (its tokenizer, its maximum length). */
async function tokenizeAll(config: TrainConfig, texts: string[]): Promise<Int32Array[]> {
  const encoder = await loadFrozenEncoder(config.model, { offline: config.offline, cacheRoot: config.cacheDir ?? undefined });
  try {
    const tokenize = (encoder as unknown as { tokenize?: (t: string) => number[] }).tokenize;
    if (typeof tokenize !== "function") throw new EmbedtuneError("INVALID_ARGUMENT", `encoder ${config.model} exposes no tokenizer for weight-space training`, { field: "model" });
    return texts.map((t) => Int32Array.from(tokenize.call(encoder, t)));
  } finally {
    await encoder.close();
  }
}

/** The run's settings in snake_case, without machine-specific ones (as train.ts records them). */
function trainingRecord(config: TrainConfig, extra: Record<string, unknown>): Record<string, unknown> {
  const { cacheDir: _cache, overwrite: _overwrite, out: _out, ...settings } = config;
  const snake = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  return Object.fromEntries(Object.entries({ ...settings, ...extra }).map(([k, v]) => [snake(k), v]));
}

/**
 * Validation for weight-space adapters, with the rules of Validator (validation.ts): step 0 is
 * the base encoder; the best evaluation's weights are kept; `patience` evaluations in a row
 * without a gain say stop. Eval texts are encoded by the merged model on onnxruntime.
 */
class WeightValidator extends BestKeeper {
  private readonly best_: Float32Array[];
  private readonly ids: number[]; // text ids the adapter applies to in evaluation
  private readonly adapted: Float32Array; // (T, D): rows at `ids` hold the adapted vectors
  private readonly bestRows: Float32Array; // (ids, D): the adapted vectors at the best evaluation
  private bestIsBase = true; // step 0 is best: the base encoder's vectors, nothing adapted

  constructor(
    private readonly data: IndexedEvalData,
    private readonly vectors: Float32Array,
    private readonly D: number,
    private readonly applyTo: ApplyTo,
    patience: number,
    private readonly params: Float32Array[],
    private readonly source: Parameters<typeof MergedSession.create>[0],
    private readonly lora: WeightLora,
    private readonly tokens: readonly Int32Array[],
  ) {
    super(patience);
    this.best_ = params.map((p) => p.slice());
    const sides = evalSides(data);
    this.ids = [...new Set([...sides.queries, ...(applyTo === "both" ? sides.documents : [])])];
    this.adapted = new Float32Array(vectors.length);
    this.bestRows = new Float32Array(this.ids.length * D);
  }

  async run(step: number, epoch: number): Promise<Evaluation> {
    let map: { vectors: Float32Array } | null = null;
    if (step > 0) {
      const session = await MergedSession.create(this.source, this.lora, this.D);
      try {
        const z = await session.encodeTokens(this.ids.map((t) => this.tokens[t]));
        this.ids.forEach((t, i) => this.adapted.set(z.subarray(i * this.D, (i + 1) * this.D), t * this.D));
      } finally {
        await session.close();
      }
      map = { vectors: this.adapted };
    }
    const result = evaluate(this.data, this.vectors, this.D, map, this.applyTo);
    return this.record({ step, epoch, metrics: result.metrics }, result.primary, () => {
      // Step 0 is the base encoder: lora_B = 0 there.
      this.params.forEach((p, i) => (step === 0 && i % 2 === 1 ? this.best_[i].fill(0) : this.best_[i].set(p)));
      this.bestIsBase = step === 0;
      if (step > 0) this.ids.forEach((t, i) => this.bestRows.set(this.adapted.subarray(t * this.D, (t + 1) * this.D), i * this.D));
    });
  }

  /**
   * The kept adapter's vectors of the eval texts, as evaluate() takes them (null: the base
   * encoder was kept). Reuses the evaluation buffer, so call it after the last evaluation.
   */
  bestVectors(): { vectors: Float32Array } | null {
    if (this.bestIsBase) return null;
    this.ids.forEach((t, i) => this.adapted.set(this.bestRows.subarray(i * this.D, (i + 1) * this.D), t * this.D));
    return { vectors: this.adapted };
  }

  restoreBest(): void {
    this.params.forEach((p, i) => p.set(this.best_[i]));
  }
}

/** Text ids on the query side and the document side of an eval set. */
function evalSides(data: IndexedEvalData): { queries: Int32Array; documents: number[] } {
  if (data.kind === "retrieval") return { queries: data.queries, documents: Array.from(data.corpus) };
  if (data.kind === "scored") return { queries: data.s1, documents: Array.from(data.s2) };
  return { queries: data.anchors, documents: [...data.positives, ...(data.negatives ?? [])] };
}
