/**
 * Training of a weight-space adapter (--adapter-kind weights): LoRA pairs inside the encoder,
 * trained by backpropagation through the frozen transformer (src/engine/). The data, losses,
 * sampler, AdamW, validation rules (best adapter kept, patience), metrics and the step loop
 * with its checkpoints (loop.ts) are those of the output adapter (train.ts); what differs:
 *
 *   - every text is tokenised once (token ids kept in memory); each step runs the engine on
 *     the batch's texts (WeightLoraStep), with LoRA on the top `loraLayers` layers only the
 *     hidden states below are computed once per text and cached (StartCache, capped);
 *   - evaluations encode the eval texts with the LoRA merged into a copy of the weights, on
 *     onnxruntime (MergedSession), at the base model's speed;
 *   - the adapter folder holds kind "weights" with PEFT's tensor keys (io/weight-adapter.ts);
 *   - a checkpoint also holds the LoRA dropout RNG, every module's pair, and the eval texts'
 *     vectors at the best evaluation (the report's histograms need them after a resume).
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
import { Rng } from "../util/rng.js";
import { VERSION } from "../version.js";
import { evaluate } from "./evaluate.js";
import { writeReport, type ReportContext } from "./report.js";
import { fingerprintRun, TrainingLoop } from "./loop.js";
import { trainingRecord } from "./prepare.js";
import type { TrainEvent, TrainOptions, TrainResult } from "./train.js";
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

export async function trainWeightAdapter(input: WeightTrainInput, emit: (e: TrainEvent) => void, options: Pick<TrainOptions, "shouldStop"> = {}): Promise<TrainResult> {
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
  const named = lora.modules.flatMap((m): Array<[string, Float32Array]> => [[`${m.name}.lora_A`, m.pair.A as Float32Array], [`${m.name}.lora_B`, m.pair.B as Float32Array]]);
  const params = named.map(([, p]) => p);
  const validator = evalData ? new WeightValidator(evalData, base.vectors, model.dim, config.applyTo, config.patience, named, source, lora, tokens) : null;
  const validate = async (when: "before" | "step" | "after", step: number, epoch: number): Promise<void> => {
    const e = await validator!.run(step, epoch);
    emit({ phase: "eval", when, step, metrics: e.metrics, best: validator!.best === e });
  };
  if (validator) await validate("before", 0, 0);
  const optimizer = new AdamW(params, { lr: config.lr, betas: config.betas, eps: config.eps, weightDecay: config.weightDecay });
  const sampler = new NoDuplicatesBatchSampler(textColumns(trainData), input.batchSize, rng);
  const dropoutRng = Rng.seeded(config.seed + 1);
  const loop = new TrainingLoop({
    kind: "weights", config, epochs: Array.from({ length: config.epochs }, () => sampler.epoch()), params: named, optimizer, rngs: [rng, dropoutRng],
    validator, validate, fingerprint: fingerprintRun(config, { loss, batchSize: input.batchSize }, table, trainData, base), emit, shouldStop: options.shouldStop,
  });
  await loop.resume();
  const { totalSteps } = loop;
  const step = new WeightLoraStep(model, lora, optimizer, trainData, tokens, base.vectors, {
    applyTo: config.applyTo, scale: config.scale, maxGradNorm: config.maxGradNorm, rng: dropoutRng, startCacheBytes: config.loraCacheMb * 1024 * 1024,
  }, sampler.batchSize);
  await loop.run(step);
  const { history, skippedSteps, stoppedAt, resumedFrom } = loop;
  const metrics = loop.metrics();
  validator?.restoreBest(); // the adapter returned and saved is the best one
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
    history, skippedSteps, texts: { distinct: table.size, encoded: base.encoded, truncated: base.truncated }, out: config.out, resumedFrom,
  };
  if (config.out) {
    await saveWeightAdapter(config.out, adapterConfig, lora, config.overwrite || resumedFrom !== null);
    // The histograms' "after" needs the trained encoder's vectors: the validator holds them
    // for the eval texts (of the kept evaluation). Without an eval set there are none, and
    // encoding a sample of training texts through the merged model only for the report
    // would cost another pass, so the section says why it is missing instead.
    const weightVectors: ReportContext["weightVectors"] = validator
      ? { map: validator.bestVectors() }
      : { missing: "Not drawn: a weight-space adapter changes the encoder, and without an eval set no texts were encoded by the trained encoder." };
    result.report = await writeReport(result, { trainData, evalData, vectors: base.vectors, batchSize: sampler.batchSize, loss, weightVectors });
  }
  await loop.discardCheckpoint();
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

/**
 * Validation for weight-space adapters, with the rules of Validator (validation.ts): step 0 is
 * the base encoder; the best evaluation's weights are kept; `patience` evaluations in a row
 * without a gain say stop. Eval texts are encoded by the merged model on onnxruntime.
 */
class WeightValidator extends BestKeeper {
  private readonly best_: Float32Array[];
  private readonly ids: number[]; // text ids the adapter applies to in evaluation
  private readonly adapted: Float32Array; // (T, D): rows at `ids` hold the adapted vectors
  private readonly bestRows: Float32Array; // (ids, D): the adapted vectors at the best evaluation (for the report)
  private readonly params: Float32Array[];

  constructor(
    private readonly data: IndexedEvalData,
    private readonly vectors: Float32Array,
    private readonly D: number,
    private readonly applyTo: ApplyTo,
    patience: number,
    private readonly named: Array<[string, Float32Array]>, // the LoRA tensors, A then B of each module
    private readonly source: Parameters<typeof MergedSession.create>[0],
    private readonly lora: WeightLora,
    private readonly tokens: readonly Int32Array[],
  ) {
    super(patience);
    this.params = named.map(([, p]) => p);
    this.best_ = this.params.map((p) => p.slice());
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
      if (step > 0) this.ids.forEach((t, i) => this.bestRows.set(this.adapted.subarray(t * this.D, (t + 1) * this.D), i * this.D));
    });
  }

  /**
   * The kept adapter's vectors of the eval texts, as evaluate() takes them (null: the base
   * encoder was kept). Reuses the evaluation buffer, so call it after the last evaluation.
   */
  bestVectors(): { vectors: Float32Array } | null {
    if (this.best!.step === 0) return null; // the base encoder was kept: nothing adapted
    this.ids.forEach((t, i) => this.adapted.set(this.bestRows.subarray(i * this.D, (i + 1) * this.D), t * this.D));
    return { vectors: this.adapted };
  }

  restoreBest(): void {
    this.params.forEach((p, i) => p.set(this.best_[i]));
  }

  checkpointTensors(): Map<string, Float32Array> {
    return new Map([...this.named.map(([name], i): [string, Float32Array] => [`best.${name}`, this.best_[i]]), ["best.eval_vectors", this.bestRows]]);
  }
}

/** Text ids on the query side and the document side of an eval set. */
function evalSides(data: IndexedEvalData): { queries: Int32Array; documents: number[] } {
  if (data.kind === "retrieval") return { queries: data.queries, documents: Array.from(data.corpus) };
  if (data.kind === "scored") return { queries: data.s1, documents: Array.from(data.s2) };
  return { queries: data.anchors, documents: [...data.positives, ...(data.negatives ?? [])] };
}
