import type { IndexedEvalData } from "../data/texts.js";
import type { ApplyTo } from "../io/adapter-folder.js";
import type { OutputLora } from "../lora/output-adapter.js";
import { evaluate } from "./evaluate.js";

export interface Evaluation {
  step: number; // optimizer steps done (0 = the base encoder)
  epoch: number; // epochs done, fractional between epoch ends
  metrics: Record<string, number>;
}

/** A validator's progress as a checkpoint stores it (checkpoint.ts). */
export interface ValidationState {
  history: Evaluation[];
  bestIndex: number;
  sinceBest: number;
  primary: string;
}

/**
 * The bookkeeping every validator shares: the evaluations so far, which one is best by the
 * primary metric (a non-finite value never wins; ties keep the earlier), and how many in a
 * row have brought no gain (for --patience). Subclasses evaluate and keep the weights.
 */
export abstract class BestKeeper {
  readonly history: Evaluation[] = [];
  primary = "";
  protected bestIndex = -1;
  protected sinceBest = 0;

  constructor(protected readonly patience: number) {} // 0 = never stop early

  /** Records an evaluation; calls `keep` when it is the best so far. */
  protected record(evaluation: Evaluation, primary: string, keep: () => void): Evaluation {
    this.primary = primary;
    this.history.push(evaluation);
    const value = evaluation.metrics[primary];
    const best = this.best?.metrics[primary];
    if (this.bestIndex < 0 || (Number.isFinite(value) && !(Number.isFinite(best) && value <= (best as number)))) {
      this.bestIndex = this.history.length - 1;
      keep();
      this.sinceBest = 0;
    } else {
      this.sinceBest++;
    }
    return evaluation;
  }

  get best(): Evaluation | undefined {
    return this.history[this.bestIndex];
  }

  get last(): Evaluation | undefined {
    return this.history[this.history.length - 1];
  }

  /** True when the last `patience` evaluations brought no gain over the best. */
  get exhausted(): boolean {
    return this.patience > 0 && this.sinceBest >= this.patience;
  }

  /** Everything but the kept weights needed to continue validating after a resume. */
  state(): ValidationState {
    return { history: this.history.slice(), bestIndex: this.bestIndex, sinceBest: this.sinceBest, primary: this.primary };
  }

  /**
   * The tensors a checkpoint must hold besides the state (names start with "best."): the
   * kept weights, and whatever else the validator keeps of the best evaluation.
   */
  abstract checkpointTensors(): Map<string, Float32Array>;

  /** Continues from a checkpoint: `tensor` returns the named tensor of checkpointTensors(). */
  restore(state: ValidationState, tensor: (name: string, length: number) => Float32Array): void {
    this.history.length = 0;
    this.history.push(...state.history);
    this.bestIndex = state.bestIndex;
    this.sinceBest = state.sinceBest;
    this.primary = state.primary;
    for (const [name, kept] of this.checkpointTensors()) kept.set(tensor(name, kept.length));
  }
}

/**
 * Validation during training: evaluates the adapter on the eval set, keeps a copy of the
 * weights at the best value of the primary metric (ndcg@10 for retrieval, spearman_cosine for
 * similarity), and says when `patience` evaluations in a row have brought no gain. The base
 * encoder (step 0, lora_B = 0) is the first candidate: if training never beats it, the best
 * adapter is the untouched one, which returns the base vectors.
 */
export class Validator extends BestKeeper {
  private readonly bestA: Float32Array;
  private readonly bestB: Float32Array;

  constructor(
    private readonly data: IndexedEvalData,
    private readonly vectors: Float32Array,
    private readonly D: number,
    private readonly applyTo: ApplyTo,
    patience: number, // 0 = never stop early
    lora: OutputLora,
  ) {
    super(patience);
    this.bestA = new Float32Array(lora.A.length);
    this.bestB = new Float32Array(lora.B.length);
  }

  /** Evaluates `lora` (at step 0: the base encoder) and keeps it if it is the best so far. */
  run(step: number, epoch: number, lora: OutputLora): Evaluation {
    const result = evaluate(this.data, this.vectors, this.D, step === 0 ? null : lora, this.applyTo);
    return this.record({ step, epoch, metrics: result.metrics }, result.primary, () => {
      this.bestA.set(lora.A);
      this.bestB.set(step === 0 ? new Float32Array(lora.B.length) : lora.B);
    });
  }

  checkpointTensors(): Map<string, Float32Array> {
    return new Map([["best.lora_A", this.bestA], ["best.lora_B", this.bestB]]);
  }

  /** Puts the best weights back into `lora`. */
  restoreBest(lora: OutputLora): void {
    lora.A.set(this.bestA);
    lora.B.set(this.bestB);
  }
}
