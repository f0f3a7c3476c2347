/**
 * Crash safety: a training run killed with SIGKILL at several points and resumed with
 * --resume ends with bitwise the same adapter as an uninterrupted run; SIGTERM saves a
 * checkpoint and exits 130.
 */
import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

import { beforeAll, describe, expect, it } from "vitest";

import { encodeNpyMatrix } from "../src/io/npy.js";
import { Rng } from "../src/util/rng.js";
import { repoRoot, runCli, tempDir } from "./helpers.js";
import { checkpointReaches, exited, spawnCli } from "./support/kill.js";

const work = tempDir();
const D = 384;
const N = 6000;
const EVAL = 300;
let args: string[];
let reference: Buffer;

function vectors(rows: number, rng: Rng, shared?: Float32Array): Float32Array {
  // Positives are their anchor plus noise, so there is something to learn.
  return Float32Array.from({ length: rows * D }, (_, i) => (shared ? shared[i] + 0.8 * (rng.uniform() - 0.5) : rng.uniform() - 0.5));
}

beforeAll(async () => {
  const rng = Rng.seeded(99);
  const write = (name: string, content: string | Uint8Array) => {
    writeFileSync(path.join(work, name), content);
    return path.join(work, name);
  };
  const pairs = (n: number, tag: string) => Array.from({ length: n }, (_, i) => JSON.stringify({ query: `${tag} q${i}`, positive: `${tag} p${i}` })).join("\n") + "\n";
  const a = vectors(N, rng);
  const ea = vectors(EVAL, rng);
  args = [
    "train", "--data", write("train.jsonl", pairs(N, "t")), "--eval", write("eval.jsonl", pairs(EVAL, "e")),
    "--vectors", `${write("a.npy", encodeNpyMatrix(a, N, D))},${write("p.npy", encodeNpyMatrix(vectors(N, rng, a), N, D))}`,
    "--eval-vectors", `${write("ea.npy", encodeNpyMatrix(ea, EVAL, D))},${write("ep.npy", encodeNpyMatrix(vectors(EVAL, rng, ea), EVAL, D))}`,
    "--epochs", "3", "--batch-size", "64", "--eval-steps", "40", "--checkpoint-every", "5", "--seed", "7",
  ];
  const out = path.join(work, "reference");
  const { code, stderr } = await runCli([...args, "--out", out]);
  expect(stderr).toBe("");
  expect(code).toBe(0);
  reference = readFileSync(path.join(out, "adapter_model.safetensors"));
  expect(existsSync(`${out}.checkpoint`)).toBe(false); // removed once the adapter is whole
});

const child = (out: string) => spawnCli([...args, "--out", out]);
/** The step of the run's checkpoint once it has reached `step`. */
const checkpointAt = async (out: string, step: number, proc: ChildProcess) => (await checkpointReaches(out, step, proc)).step;

describe("kill and resume", () => {
  it.each([20, 110, 230])("SIGKILL after the checkpoint at step %i, then --resume: bitwise the same adapter", async (target) => {
    const out = path.join(work, `killed-${target}`);
    const proc = child(out);
    const done = exited(proc);
    const saved = await checkpointAt(out, target, proc);
    proc.kill("SIGKILL");
    await done;
    expect(existsSync(out)).toBe(false); // nothing half-written that looks like an adapter
    const resumed = await runCli([...args, "--out", out, "--resume", "--json"]);
    expect(resumed.stderr).toBe("");
    const result = JSON.parse(resumed.stdout.trim().split("\n").pop()!);
    expect(result.resumed_from).toBeGreaterThanOrEqual(saved);
    expect(readFileSync(path.join(out, "adapter_model.safetensors")).equals(reference)).toBe(true);
  });

  it("SIGTERM saves a checkpoint and exits 130; --resume finishes the same", async () => {
    const out = path.join(work, "terminated");
    const proc = child(out);
    let stderr = "";
    proc.stderr!.on("data", (d) => (stderr += String(d)));
    const done = exited(proc);
    await checkpointAt(out, 60, proc);
    proc.kill("SIGTERM");
    expect(await done).toBe(130);
    expect(stderr).toMatch(/embedtune: interrupted at step \d+ of \d+; checkpoint saved in .*terminated\.checkpoint \(run the same command with --resume to continue\)/);
    const resumed = await runCli([...args, "--out", out, "--resume"]);
    expect(resumed.code).toBe(0);
    expect(readFileSync(path.join(out, "adapter_model.safetensors")).equals(reference)).toBe(true);
  });

  it("refuses a checkpoint made with other settings", async () => {
    const out = path.join(work, "other-settings");
    const proc = child(out);
    const done = exited(proc);
    await checkpointAt(out, 10, proc);
    proc.kill("SIGKILL");
    await done;
    const { code, stderr } = await runCli([...args.map((a) => (a === "7" ? "8" : a)), "--out", out, "--resume"]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/checkpoint\.json: this checkpoint belongs to another run/);
  });
});
