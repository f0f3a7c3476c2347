import path from "node:path";

import type { IndexedDataset, IndexedEvalData } from "../data/texts.js";
import { writeFileAtomic } from "../io/atomic.js";
import { renderReport, type ReportInput } from "../report/report.js";
import { pairCosines, planPairs } from "./cosines.js";
import type { AdapterMap } from "./evaluate.js";
import type { TrainResult } from "./train.js";

export const REPORT_FILE = "report.html";

export interface ReportContext {
  trainData: IndexedDataset;
  evalData: IndexedEvalData | null;
  vectors: Float32Array; // (T, D) base vectors by text id
  batchSize: number;
  loss: string;
  /**
   * Weight-space runs only: the saved adapter's vectors, which cannot be computed from the
   * base vectors. `map`: the merged encoder's vectors of the eval texts (null: the base
   * encoder was kept); `missing`: why the cosine histograms are left out.
   */
  weightVectors?: { map: AdapterMap | null } | { missing: string };
}

/**
 * Writes report.html into the adapter folder (atomically) and returns its path. The cosine
 * histograms use the eval set, or a fixed sample of the training pairs when there is none.
 */
export async function writeReport(result: TrainResult, ctx: ReportContext): Promise<string> {
  const out = result.out!;
  const file = path.join(out, REPORT_FILE);
  await writeFileAtomic(file, renderReport(reportInput(result, ctx)));
  return file;
}

export function reportInput(result: TrainResult, ctx: ReportContext): ReportInput {
  const { config } = result;
  const adapter = result.adapter;
  const weights = "kind" in adapter;
  const D = weights ? adapter.config.dim : adapter.lora.dim;
  // What the saved adapter does to a text's vector: an output adapter maps the base vector;
  // a weight-space adapter changes the encoder, so only vectors it encoded can show it.
  const after = weights ? ctx.weightVectors ?? { missing: "no vectors from the trained encoder were given" } : { map: adapter.lora };
  const what = ctx.evalData ? "eval set" : "training data (no eval set)";
  const plan = planPairs(ctx.evalData ?? ctx.trainData, what, Math.min(ctx.batchSize, 64));
  const cosines = plan.left.length > 0 && "map" in after
    ? { source: plan.source, before: pairCosines(plan, ctx.vectors, D, null, adapter.applyTo), after: pairCosines(plan, ctx.vectors, D, after.map, adapter.applyTo) }
    : undefined;
  const cosinesNote = plan.left.length > 0 && "missing" in after ? after.missing : undefined;
  const shape = weights
    ? `weights: r ${adapter.config.r}, lora_alpha ${adapter.config.lora_alpha}, modules ${adapter.config.target_modules.join(", ")}, layers ${adapter.config.layers_to_transform?.join(", ") ?? "all"}, dropout ${adapter.config.lora_dropout}, apply_to ${adapter.applyTo}`
    : `r ${adapter.lora.r}, lora_alpha ${adapter.lora.loraAlpha}, dim ${D}, apply_to ${adapter.applyTo}`;
  const primary = result.primaryMetric;
  const steps = result.stoppedAt !== undefined ? `${result.stoppedAt} of ${result.totalSteps} (stopped early, patience ${config.patience})` : `${result.totalSteps}`;
  const summary: Array<[string, string]> = [
    ["training data", `${config.data}: ${result.dataInfo.train}`],
    ...(config.eval ? [["eval data", `${config.eval}: ${result.dataInfo.eval ?? ""}`] as [string, string]] : []),
    ["encoder", `${adapter.config.base_model.name} (${adapter.config.base_model.source})`],
    ["adapter", shape],
    ["loss", `${ctx.loss}, scale ${config.scale}`],
    ["optimisation", `${config.epochs} epochs, batch ${ctx.batchSize}, lr ${config.lr}, weight decay ${config.weightDecay}, warm-up ${config.warmupRatio}, seed ${config.seed}`],
    ["steps", steps],
    ...(result.bestStep !== undefined ? [["saved adapter", result.bestStep === 0 ? "step 0: training never beat the base encoder" : `the best evaluation, step ${result.bestStep}`] as [string, string]] : []),
  ];
  return {
    title: path.basename(path.resolve(result.out ?? "adapter")),
    createdAt: adapter.config.created_at ?? new Date().toISOString(),
    summary,
    losses: result.history.map((h) => ({ step: h.step, loss: h.loss })),
    evals: primary ? result.evaluations.map((e) => ({ step: e.step, value: e.metrics[primary] })) : [],
    primary,
    bestStep: result.bestStep,
    metrics: result.metrics,
    cosines,
    cosinesNote,
  };
}
