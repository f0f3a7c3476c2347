import { EmbedtuneError } from "../errors.js";
import type { FrozenEncoder } from "./types.js";
import { UseLiteEncoder } from "./use-lite/index.js";

/** The model names `--model` and `Encoder.load` accept for the embedded encoder. */
export const DEFAULT_MODEL = "default";

/** Resolves a model name to a loaded frozen encoder. */
export async function loadFrozenEncoder(model: string = DEFAULT_MODEL): Promise<FrozenEncoder> {
  if (model === DEFAULT_MODEL || model === "use-lite" || model === "use-lite-en") return UseLiteEncoder.load();
  throw new EmbedtuneError(
    "INVALID_ARGUMENT",
    `unknown model "${model}": this version runs the embedded default encoder (USE-Lite) only`,
    { field: "model" },
    "use --model default",
  );
}
