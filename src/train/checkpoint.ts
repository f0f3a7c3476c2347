import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";

import { EmbedtuneError } from "../errors.js";
import { writeFolderAtomic } from "../io/atomic.js";
import { decodeSafetensors, encodeSafetensors } from "../io/safetensors.js";

/**
 * A training checkpoint: everything the step loop needs to continue exactly where it was.
 *
 *   <dir>/checkpoint.json          the adapter kind, progress (steps done, skipped steps, loss
 *                                  history, evaluations), RNG states and optimizer step, and a
 *                                  fingerprint of the run (settings, data, base vectors' model)
 *   <dir>/checkpoint.safetensors   every trained tensor by name (output: lora_A, lora_B;
 *                                  weights: <module>.lora_A / .lora_B of every module), AdamW's
 *                                  exp_avg.<name> / exp_avg_sq.<name> of each, and the
 *                                  validator's best.* tensors when validating
 *
 * The batch plan is a pure function of the seed and the data, so the plan's position is the
 * step count. Written as one folder, atomically: a kill at any moment leaves the previous
 * checkpoint or the new one, never a mix.
 */
export const CHECKPOINT_VERSION = 1;
const STATE_FILE = "checkpoint.json";
const TENSORS_FILE = "checkpoint.safetensors";

export type CheckpointKind = "output" | "weights";

export interface CheckpointState {
  version: number;
  /** The adapter kind that wrote it; absent in checkpoints from before weight-space ones: output. */
  kind?: CheckpointKind;
  fingerprint: string;
  step: number; // optimizer steps done (k), skipped ones included
  skippedSteps: number;
  badInARow: number;
  adamStep: number; // AdamW's t
  rng: number[]; // the sampler's
  /** Further RNGs the steps draw from (weights: LoRA dropout), in the run's order. */
  stepRngs?: number[][];
  history: Array<{ step: number; epoch: number; loss: number; lr: number }>;
  /** Validator state, when the run validates. */
  validation?: { history: Array<{ step: number; epoch: number; metrics: Record<string, number> }>; bestIndex: number; sinceBest: number; primary: string };
}

export interface Checkpoint {
  state: CheckpointState;
  tensors: Map<string, Float32Array>;
}

/** The checkpoint folder of a run: beside the adapter folder. */
export function checkpointDirFor(out: string): string {
  return `${path.resolve(out)}.checkpoint`;
}

/** sha256 over what must not change between a run and its resumption. */
export function runFingerprint(parts: Array<string | Uint8Array | Int32Array | Float32Array>): string {
  const hash = createHash("sha256");
  for (const part of parts) {
    hash.update(typeof part === "string" ? Buffer.from(part, "utf8") : new Uint8Array(part.buffer, part.byteOffset, part.byteLength));
    hash.update("\0");
  }
  return hash.digest("hex");
}

export async function saveCheckpoint(dir: string, checkpoint: Checkpoint): Promise<void> {
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [name, data] of checkpoint.tensors) tensors[name] = { shape: [data.length], data };
  await writeFolderAtomic(dir, { [STATE_FILE]: `${JSON.stringify(checkpoint.state)}\n`, [TENSORS_FILE]: encodeSafetensors(tensors) }, true);
}

/** The checkpoint in `dir`, or null when there is none; refuses one made by another run or another kind. */
export async function loadCheckpoint(dir: string, fingerprint: string, kind: CheckpointKind): Promise<Checkpoint | null> {
  const statePath = path.join(dir, STATE_FILE);
  if (!existsSync(statePath)) return null;
  let state: CheckpointState;
  try {
    state = JSON.parse(await readFile(statePath, "utf8")) as CheckpointState;
  } catch (err) {
    throw new EmbedtuneError("INVALID_FILE", `unreadable checkpoint (${(err as Error).message})`, { file: statePath }, "delete the folder to start over");
  }
  if (state.version !== CHECKPOINT_VERSION || !Number.isSafeInteger(state.step) || state.step < 0) {
    throw new EmbedtuneError("INVALID_FILE", `not a version-${CHECKPOINT_VERSION} checkpoint`, { file: statePath }, "delete the folder to start over");
  }
  // Said before the fingerprint (which covers the kind too), as the likelier mistake's own words.
  const savedKind = state.kind ?? "output";
  if (savedKind !== kind) {
    throw new EmbedtuneError("INVALID_ARGUMENT", `this checkpoint is of an --adapter-kind ${savedKind} run, not --adapter-kind ${kind}`, { file: statePath }, "run with the same options, or delete the folder to start over");
  }
  if (state.fingerprint !== fingerprint) {
    throw new EmbedtuneError("INVALID_ARGUMENT", "this checkpoint belongs to another run: the settings, the data or the model changed", { file: statePath }, "run with the same options, or delete the folder to start over");
  }
  const tensorsPath = path.join(dir, TENSORS_FILE);
  const { tensors } = decodeSafetensors(await readFile(tensorsPath), tensorsPath);
  const out = new Map<string, Float32Array>();
  for (const [name, t] of tensors) {
    if (!t.data.every(Number.isFinite)) throw new EmbedtuneError("INVALID_FILE", `${name} holds a non-finite value`, { file: tensorsPath });
    out.set(name, t.data);
  }
  return { state, tensors: out };
}

/** A tensor of a loaded checkpoint, which must be there with `length` values. */
export function checkpointTensor(checkpoint: Checkpoint, dir: string, name: string, length: number): Float32Array {
  const t = checkpoint.tensors.get(name);
  if (!t || t.length !== length) {
    throw new EmbedtuneError("INVALID_FILE", t ? `${name} has ${t.length} values, expected ${length}` : `tensor ${name} is missing`, { file: path.join(dir, TENSORS_FILE) }, "delete the folder to start over");
  }
  return t;
}
