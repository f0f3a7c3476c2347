import cliProgress from "cli-progress";

import type { TrainEvent } from "../train/train.js";

/**
 * Progress bars on standard error (cli-progress): texts encoded, then training steps with
 * the current loss and lr, each with an ETA. Silent when stderr is not a terminal, so logs
 * and --json output stay clean.
 */
export class Progress {
  private bar: cliProgress.SingleBar | null = null;
  private phase = "";
  private readonly enabled: boolean;

  constructor(enabled = process.stderr.isTTY === true) {
    this.enabled = enabled;
  }

  encode(done: number, total: number): void {
    this.update("encode", "encode |{bar}| {value}/{total} texts | {eta_formatted} left", done, total, {});
  }

  onTrainEvent = (e: TrainEvent): void => {
    if (e.phase === "encode") this.encode(e.done, e.total);
    else if (e.phase === "train") {
      this.update("train", "train  |{bar}| step {value}/{total} | epoch {epoch} | loss {loss} | lr {lr} | {eta_formatted} left", e.step, e.totalSteps, {
        epoch: e.epoch,
        loss: e.loss.toFixed(4),
        lr: e.lr.toExponential(2),
      });
    } else if (e.phase === "eval" && e.when === "step") {
      // a periodic evaluation: the training bar goes on
    } else this.stop();
  };

  stop(): void {
    this.bar?.stop();
    this.bar = null;
    this.phase = "";
  }

  private update(phase: string, format: string, value: number, total: number, payload: Record<string, unknown>): void {
    if (!this.enabled) return;
    if (this.phase !== phase) {
      this.stop();
      this.phase = phase;
      this.bar = new cliProgress.SingleBar({ format, stream: process.stderr, hideCursor: true, etaBuffer: 50, fps: 10 }, cliProgress.Presets.shades_classic);
      this.bar.start(total, value, payload);
    } else {
      this.bar?.update(value, payload);
    }
    if (value >= total) this.stop();
  }
}
