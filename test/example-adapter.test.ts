/**
 * The committed example adapter (adapters/debian-use-lite) still loads, matches the encoder
 * that ships, and reproduces the held-out metrics recorded in its config.
 */
import { readFileSync } from "node:fs";
import path from "node:path";

import { describe, expect, it } from "vitest";

import { evaluateFile } from "../src/evaluate.js";
import { repoRoot, tempDir } from "./helpers.js";

const adapterDir = path.join(repoRoot, "adapters/debian-use-lite");

describe("adapters/debian-use-lite", () => {
  it("reproduces its recorded metrics on data/debian-eval.jsonl (the saved adapter is the best evaluation)", async () => {
    const config = JSON.parse(readFileSync(path.join(adapterDir, "adapter_config.json"), "utf8"));
    const result = await evaluateFile({ data: path.join(repoRoot, "data/debian-eval.jsonl"), adapter: adapterDir, cacheDir: tempDir() });
    for (const name of ["ndcg@10", "mrr@10", "recall@1", "recall@10"]) {
      expect(result.metrics[name], name).toBeCloseTo(config.metrics.best[name], 3);
    }
    expect(config.metrics.best["ndcg@10"]).toBeGreaterThan(config.metrics.before["ndcg@10"]);
    expect(config.metrics.after["ndcg@10"]).toBeGreaterThan(config.metrics.before["ndcg@10"]);
  });
});
