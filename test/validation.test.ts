/**
 * Training with validation on the real default encoder: evaluations before training and
 * every N steps, the best adapter kept (and saved), --patience stopping early; and the
 * report written beside the adapter, rendered by headless Chromium with its charts drawn.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

import { beforeAll, describe, expect, it } from "vitest";

import { evaluateFile } from "../src/evaluate.js";
import { COLORS } from "../src/report/charts.js";
import { train, type TrainEvent, type TrainResult } from "../src/train/train.js";
import { chromiumPath, colourRows, decodePng, screenshot } from "./chromium.js";
import { readJsonl, repoRoot, tempDir } from "./helpers.js";

const work = tempDir();
const cacheDir = path.join(work, "cache");
const pairs = readJsonl<{ query: string; positive: string }>(path.join(repoRoot, "data/debian-train.jsonl"));
const evalPairs = readJsonl<{ query: string; positive: string }>(path.join(repoRoot, "data/debian-eval.jsonl"));
const trainFile = path.join(work, "train.jsonl");
const evalFile = path.join(work, "eval.jsonl");
const out = path.join(work, "adapter");

let run: TrainResult;
const events: TrainEvent[] = [];

beforeAll(async () => {
  writeFileSync(trainFile, pairs.slice(0, 1000).map((p) => JSON.stringify(p)).join("\n") + "\n");
  writeFileSync(evalFile, evalPairs.slice(0, 300).map((p) => JSON.stringify(p)).join("\n") + "\n");
  run = await train({ data: trainFile, eval: evalFile, out, cacheDir, epochs: 3, batchSize: 32, evalSteps: 10 }, { onEvent: (e) => events.push(e) });
});

describe("train --eval with --eval-steps", () => {
  it("evaluates the base encoder, then every 10 steps, then at the last step", () => {
    const steps = run.evaluations.map((e) => e.step);
    const expected = [0];
    for (let s = 10; s < run.totalSteps; s += 10) expected.push(s);
    expected.push(run.totalSteps);
    expect(run.totalSteps).toBe(96); // 1000 pairs / 32 -> 31 full batches and one of 8, 3 epochs
    expect(steps).toEqual(expected);
    const evalEvents = events.filter((e) => e.phase === "eval");
    expect(evalEvents.map((e) => e.phase === "eval" && e.when)).toEqual(["before", ...expected.slice(1, -1).map(() => "step"), "after"]);
  });

  it("keeps the best evaluation's adapter: saved, recorded in adapter_config.json, reproduced by eval", async () => {
    const values = run.evaluations.map((e) => e.metrics["ndcg@10"]);
    const bestIndex = values.indexOf(Math.max(...values));
    expect(run.bestStep).toBe(run.evaluations[bestIndex].step);
    expect(run.metrics.best).toEqual(run.evaluations[bestIndex].metrics);
    expect(run.metrics.before).toEqual(run.evaluations[0].metrics);
    expect(run.metrics.after).toEqual(run.evaluations[run.evaluations.length - 1].metrics);
    expect(run.metrics.best!["ndcg@10"]).toBeGreaterThan(run.metrics.before!["ndcg@10"] + 0.01);
    const config = JSON.parse(readFileSync(path.join(out, "adapter_config.json"), "utf8"));
    expect(config.metrics.best_step).toBe(run.bestStep);
    expect(config.metrics.best).toEqual(run.metrics.best);
    expect(config.metrics.after).toEqual(run.metrics.after);
    expect(config.training.eval_steps).toBe(10);
    const again = await evaluateFile({ data: evalFile, adapter: out, cacheDir });
    for (const name of ["ndcg@10", "mrr@10", "recall@10"]) expect(again.metrics[name], name).toBeCloseTo(run.metrics.best![name], 10);
  });

  it("--patience stops after evaluations without gain and keeps the base encoder if it was never beaten", async () => {
    // lr 1 wrecks the adapter at once: no evaluation beats the base encoder
    const wrecked = await train({ data: trainFile, eval: evalFile, cacheDir, epochs: 3, batchSize: 32, lr: 1, evalSteps: 5, patience: 2 });
    expect(wrecked.stoppedAt).toBe(10);
    expect(wrecked.evaluations.map((e) => e.step)).toEqual([0, 5, 10]);
    expect(wrecked.history).toHaveLength(10);
    expect(wrecked.bestStep).toBe(0);
    expect(wrecked.metrics.best).toEqual(wrecked.metrics.before);
    expect(wrecked.metrics.after!["ndcg@10"]).toBeLessThan(wrecked.metrics.before!["ndcg@10"]);
    expect(wrecked.adapter.lora.B.every((v) => v === 0)).toBe(true); // the untouched adapter: base vectors
    expect(wrecked.adapter.config.training?.stopped_at).toBe(10);
  });

  it("refuses validation flags without an eval set, and an eval on the training queries", async () => {
    await expect(train({ data: trainFile, patience: 2 })).rejects.toThrow(/patience.*validation needs an eval set/);
    await expect(train({ data: trainFile, evalSteps: 3 })).rejects.toThrow(/validation needs an eval set/);
  });
});

describe("report.html", () => {
  const report = path.join(out, "report.html");

  it("is written beside the adapter, self-contained: no script, no external reference", () => {
    expect(run.report).toBe(report);
    const html = readFileSync(report, "utf8");
    expect(html).toMatch(/^<!DOCTYPE html>/);
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).not.toMatch(/<script|<link|<img|<iframe|\ssrc=|\shref=|url\(|@import/i);
    expect(html.match(/<svg /g)).toHaveLength(4); // loss, eval metric, cosines before and after
    expect(html).toContain(`ringed: the best evaluation (step ${run.bestStep})`.replace(/^r/, "R"));
    expect(html).toMatch(/<tr class="primary"><th>ndcg@10 \(primary\)<\/th>/);
    for (const [, bars] of html.matchAll(/data-bars="(\d+)"/g)) expect(Number(bars)).toBeGreaterThan(10);
  });

  it("renders in headless Chromium: every chart's colour is drawn where its chart is", () => {
    const png = path.join(work, "report.png");
    screenshot(report, png, 1000, 2000);
    const img = decodePng(png);
    expect([img.width, img.height]).toEqual([1000, 2000]);
    const rows = (hex: string) => colourRows(img, hex);
    const total = (bands: number[]) => bands.reduce((a, b) => a + b, 0);
    const firstBand = (bands: number[]) => bands.findIndex((n) => n > 50);
    const smooth = rows(COLORS.lossSmooth);
    const metric = rows(COLORS.metric);
    const positive = rows(COLORS.positive);
    const negative = rows(COLORS.negative);
    // Each legend square alone is 144 pixels; the data need far more.
    expect(total(smooth)).toBeGreaterThan(800);
    expect(total(metric)).toBeGreaterThan(800);
    expect(total(positive)).toBeGreaterThan(2000);
    expect(total(negative)).toBeGreaterThan(2000);
    expect(total(rows(COLORS.best))).toBeGreaterThan(40); // the ring around the best evaluation
    // loss chart above the eval chart above the histograms
    expect(firstBand(smooth)).toBeGreaterThanOrEqual(0);
    expect(firstBand(smooth)).toBeLessThan(firstBand(metric));
    expect(firstBand(metric)).toBeLessThan(firstBand(positive));
    expect(firstBand(positive)).toBe(firstBand(negative));
  });

  it("Chromium's DOM holds the drawn elements", () => {
    const dom = execFileSync(chromiumPath(), ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--no-first-run", `--user-data-dir=${tempDir("embedtune-chromium-")}`, "--dump-dom", `file://${report}`], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 60_000 });
    expect(dom.match(/<svg /g)).toHaveLength(4);
    expect((dom.match(/<rect /g) ?? []).length).toBeGreaterThan(50);
    expect(dom).toMatch(/<path d="M[\d.]+,[\d.]+(L[\d.]+,[\d.]+){50,}"/); // the loss line, point by point
  });

  it("without an eval set: loss and cosines of a sample of training pairs", async () => {
    const noEval = path.join(work, "no-eval");
    const result = await train({ data: trainFile, out: noEval, cacheDir, epochs: 1, batchSize: 32 });
    const html = readFileSync(result.report!, "utf8");
    expect(html.match(/<svg /g)).toHaveLength(3);
    expect(html).toContain("training data (no eval set): 1,000 positive pairs");
    expect(existsSync(path.join(noEval, "adapter_model.safetensors"))).toBe(true);
  });
});
