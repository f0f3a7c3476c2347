import { defaultCacheRoot } from "../io/vector-cache.js";
import { HfEncoder } from "./hf/index.js";
import { isOffline } from "./hf/hub.js";
import type { FrozenEncoder } from "./types.js";
import { UseLiteEncoder } from "./use-lite/index.js";

/** The model name `--model` and `Encoder.load` accept for the embedded encoder. */
export const DEFAULT_MODEL = "default";

export interface LoadEncoderOptions {
  /** Never touch the network (also EMBEDTUNE_OFFLINE=1 or HF_HUB_OFFLINE=1). */
  offline?: boolean;
  /** Cache root; Hub models go under <root>/hub. Default: defaultCacheRoot(). */
  cacheRoot?: string;
  /** Called with each file name as a Hub model downloads. */
  onDownload?: (file: string) => void;
}

/**
 * Resolves `--model` to a loaded frozen encoder: "default" = the embedded USE-Lite; a folder
 * in the Hugging Face layout; or a Hub id `owner/name[@revision]` (downloaded once, cached).
 */
export async function loadFrozenEncoder(model: string = DEFAULT_MODEL, options: LoadEncoderOptions = {}): Promise<FrozenEncoder> {
  if (model === DEFAULT_MODEL || model === "use-lite" || model === "use-lite-en") return UseLiteEncoder.load();
  return HfEncoder.load(model, { offline: isOffline(options.offline), cacheRoot: options.cacheRoot || defaultCacheRoot(), onFile: options.onDownload });
}
