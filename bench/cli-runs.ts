/**
 * Benchmarks that run the real command line (node bin/embedtune.js, built by `npm run
 * build`) as a user would, under /usr/bin/time -v for wall time and peak resident memory:
 * end to end on the Debian data from a cold and a warm vector cache, and training from
 * 200,000 precomputed 768-d vectors (--vectors .npy files).
 */
import { closeSync, openSync, writeSync } from "node:fs";
import path from "node:path";

import { Rng } from "../src/util/rng.js";
import { lastJson, repoRoot, runChild, tempDir, type ChildResult } from "./common.js";

const CLI = path.join(repoRoot, "bin/embedtune.js");

export interface CliRun {
  wall_seconds: number;
  peak_rss_mb: number;
  steps?: number;
  texts?: { distinct: number; encoded: number };
  ndcg_before?: number;
  ndcg_after?: number;
}

function cliRun(r: ChildResult, what: string): CliRun {
  const out = lastJson<{ steps?: number; texts?: { distinct: number; encoded: number }; metrics?: { before?: Record<string, number>; after?: Record<string, number> } }>(r, what);
  return {
    wall_seconds: r.wallSeconds,
    peak_rss_mb: r.peakRssMB,
    steps: out.steps,
    texts: out.texts,
    ndcg_before: out.metrics?.before?.["ndcg@10"],
    ndcg_after: out.metrics?.after?.["ndcg@10"],
  };
}

/**
 * `embedtune train` on the Debian pairs (full: all 18,875 before the held-out slice; quick:
 * the 4,719-pair sample), 3 epochs, evaluated on the 1,000 held-out pairs before and after;
 * first with an empty cache (every text encoded), then again with the cache warm.
 */
export async function endToEnd(quick: boolean, log: (s: string) => void): Promise<{ data: string; pairs: number; cold: CliRun; warm: CliRun }> {
  const work = tempDir("e2e");
  const full = path.join(work, "debian-full.jsonl");
  const made = await runChild("node", [path.join(repoRoot, "scripts/make-debian-sample.mjs"), "--full", full]);
  if (made.code !== 0) throw new Error(`make-debian-sample failed: ${made.stderr}`);
  const data = quick ? path.join(repoRoot, "data/debian-train.jsonl") : full;
  const env = { ...process.env, EMBEDTUNE_CACHE_DIR: path.join(work, "cache") };
  const args = [CLI, "train", "--data", data, "--eval", path.join(repoRoot, "data/debian-eval.jsonl"), "--epochs", "3", "--out", path.join(work, "adapter"), "--overwrite", "--json"];
  log(`  cold cache: ${path.basename(data)} ...`);
  const cold = cliRun(await runChild("node", args, { env, measure: true }), "embedtune train (cold cache)");
  log(`  warm cache ...`);
  const warm = cliRun(await runChild("node", args, { env, measure: true }), "embedtune train (warm cache)");
  return { data: quick ? "data/debian-train.jsonl (sample)" : "all pairs before the held-out slice", pairs: quick ? 4719 : 18875, cold, warm };
}

/**
 * Writes P synthetic pairs (distinct texts) and their anchor/positive vectors as float32
 * .npy files (P, D), a block at a time so the writer itself stays small.
 */
function writeSyntheticVectors(dir: string, P: number, D: number): { data: string; anchors: string; positives: string } {
  const data = path.join(dir, "pairs.jsonl");
  const fd = openSync(data, "w");
  for (let i = 0; i < P; i += 10_000) {
    const lines: string[] = [];
    for (let j = i; j < Math.min(P, i + 10_000); j++) lines.push(JSON.stringify({ query: `query ${j}`, positive: `document ${j}` }));
    writeSync(fd, lines.join("\n") + "\n");
  }
  closeSync(fd);
  const files = { anchors: path.join(dir, "anchors.npy"), positives: path.join(dir, "positives.npy") };
  const rng = Rng.seeded(3);
  for (const file of [files.anchors, files.positives]) {
    let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${P}, ${D}), }`;
    header += " ".repeat((64 - ((10 + header.length + 1) % 64)) % 64) + "\n";
    const head = Buffer.alloc(10 + header.length);
    head.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
    head.writeUInt16LE(header.length, 8);
    head.write(header, 10, "latin1");
    const out = openSync(file, "w");
    writeSync(out, head);
    const block = new Float32Array(4096 * D);
    for (let i = 0; i < P; i += 4096) {
      const n = Math.min(4096, P - i);
      for (let e = 0; e < n * D; e++) block[e] = rng.uniform() - 0.5;
      writeSync(out, new Uint8Array(block.buffer, 0, n * D * 4));
    }
    closeSync(out);
  }
  return { data, ...files };
}

/**
 * Peak memory training from T = 2P cached vectors of D dims (target: <= 1.3x their raw size
 * + 200 MiB): `embedtune train --vectors` on P synthetic pairs, one epoch.
 */
export async function memoryAtScale(texts: number, D: number, log: (s: string) => void): Promise<{ texts: number; dim: number; raw_mb: number; limit_mb: number; cli: CliRun }> {
  const work = tempDir("memory");
  const P = texts / 2;
  log(`  writing ${P} synthetic pairs and their ${D}-d vectors ...`);
  const f = writeSyntheticVectors(work, P, D);
  const args = [CLI, "train", "--data", f.data, "--vectors", `${f.anchors},${f.positives}`, "--epochs", "1", "--out", path.join(work, "adapter"), "--json"];
  log(`  embedtune train --vectors (${texts} texts) ...`);
  const cli = cliRun(await runChild("node", args, { measure: true }), "embedtune train --vectors");
  const raw = (texts * D * 4) / 2 ** 20;
  return { texts, dim: D, raw_mb: raw, limit_mb: 1.3 * raw + 200, cli };
}
