// Public API: re-exports only.
export { Encoder, type EncoderLoadOptions } from "./embed.js";
export { train, type TrainEvent, type TrainOptions, type TrainResult } from "./train/train.js";
export { evaluateFile, type EvaluateOptions } from "./evaluate.js";
export { TRAIN_DEFAULTS, resolveTrainConfig, type TrainConfig } from "./config.js";
export { EmbedtuneError, type ErrorCode } from "./errors.js";
export { loadAdapter, saveAdapter, type AdapterConfig, type ApplyTo, type LoadedAdapter } from "./io/adapter-folder.js";
export { applyAdapter, initOutputLora, type OutputLora } from "./lora/output-adapter.js";
export { readDataset } from "./data/read.js";
export { loadEvalData, loadTrainingData, type LoadOptions } from "./data/load.js";
export { holdoutSplit } from "./data/holdout.js";
export type { AnyDataset, Dataset, PairExample, RetrievalDataset, ScoredExample } from "./data/types.js";
export { mineHardNegatives, MINE_DEFAULTS, type MineOptions, type MineResult } from "./mine.js";
export type { Evaluation } from "./train/validation.js";
export type { FrozenEncoder, ModelIdentity } from "./encoder/types.js";
export { VERSION } from "./version.js";
