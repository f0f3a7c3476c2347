/**
 * Crash safety of --adapter-kind weights runs, on the tiny BERT: killed with SIGKILL at
 * several points and resumed with --resume, a run ends with bitwise the same adapter as an
 * uninterrupted one (LoRA dropout on, so the dropout RNG's position must be restored too);
 * SIGTERM saves a checkpoint and exits 130; a checkpoint of other settings or of the other
 * adapter kind is refused with one line.
 */
import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

import { beforeAll, describe, expect, it } from "vitest";

import { writeTinyBert } from "../scripts/make-tiny-bert.js";
import { readJsonl, repoRoot, runCli, tempDir } from "./helpers.js";
import { checkpointReaches, exited, spawnCli } from "./support/kill.js";

const work = tempDir();
const modelDir = path.join(work, "tiny-bert");
const EPOCHS = 4;
const BATCH = 8;
const PAIRS = 192;
const STEPS = (EPOCHS * PAIRS) / BATCH;
let args: string[];
let reference: Buffer;

beforeAll(async () => {
  writeTinyBert(modelDir, { seed: 7 });
  const pairs = readJsonl<{ query: string; positive: string }>(path.join(repoRoot, "data/debian-train.jsonl"));
  const held = readJsonl<{ query: string; positive: string }>(path.join(repoRoot, "data/debian-eval.jsonl"));
  const write = (name: string, rows: Array<{ query: string; positive: string }>) => {
    writeFileSync(path.join(work, name), rows.map((p) => JSON.stringify({ query: p.query, positive: p.positive })).join("\n") + "\n");
    return path.join(work, name);
  };
  args = [
    "train", "--data", write("train.jsonl", pairs.slice(0, PAIRS)), "--eval", write("eval.jsonl", held.slice(0, 60)), "--model", modelDir,
    "--adapter-kind", "weights", "--lora-dropout", "0.1", "--lr", "2e-3", "--epochs", String(EPOCHS), "--batch-size", String(BATCH),
    "--eval-steps", "10", "--checkpoint-every", "3", "--seed", "7", "--cache-dir", path.join(work, "cache"), "--offline",
  ];
  const out = path.join(work, "reference");
  const { code, stderr } = await runCli([...args, "--out", out]);
  expect(stderr).toBe("");
  expect(code).toBe(0);
  reference = readFileSync(path.join(out, "adapter_model.safetensors"));
  expect(existsSync(`${out}.checkpoint`)).toBe(false); // removed once the adapter is whole
});

const child = (out: string, extra: string[] = []) => spawnCli([...args, ...extra, "--out", out]);

/** The step of the run's checkpoint once it has reached `step`; it must be a weights run's. */
async function checkpointAt(out: string, step: number, proc: ChildProcess): Promise<number> {
  const saved = await checkpointReaches(out, step, proc);
  expect(saved.kind).toBe("weights");
  return saved.step;
}

async function killedAt(out: string, step: number): Promise<number> {
  const proc = child(out);
  const done = exited(proc);
  const saved = await checkpointAt(out, step, proc);
  proc.kill("SIGKILL");
  await done;
  return saved;
}

describe("--adapter-kind weights: kill and resume", () => {
  it.each([6, STEPS / 2, STEPS - 18])("SIGKILL after the checkpoint at step %i, then --resume: bitwise the same adapter", async (target) => {
    const out = path.join(work, `killed-${target}`);
    const saved = await killedAt(out, target);
    expect(existsSync(out)).toBe(false); // nothing half-written that looks like an adapter
    const resumed = await runCli([...args, "--out", out, "--resume", "--json"]);
    expect(resumed.stderr).toBe("");
    const result = JSON.parse(resumed.stdout.trim().split("\n").pop()!);
    expect(result.resumed_from).toBeGreaterThanOrEqual(saved);
    expect(result.resumed_from).toBeLessThan(STEPS);
    expect(readFileSync(path.join(out, "adapter_model.safetensors")).equals(reference)).toBe(true);
    expect(existsSync(path.join(out, "report.html"))).toBe(true);
    expect(existsSync(`${out}.checkpoint`)).toBe(false);
  });

  it("SIGTERM saves a checkpoint and exits 130; --resume finishes the same", async () => {
    const out = path.join(work, "terminated");
    const proc = child(out);
    let stderr = "";
    proc.stderr!.on("data", (d) => (stderr += String(d)));
    const done = exited(proc);
    await checkpointAt(out, 12, proc);
    proc.kill("SIGTERM");
    expect(await done).toBe(130);
    expect(stderr).toMatch(/embedtune: interrupted at step \d+ of \d+; checkpoint saved in .*terminated\.checkpoint \(run the same command with --resume to continue\)/);
    const resumed = await runCli([...args, "--out", out, "--resume"]);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(readFileSync(path.join(out, "adapter_model.safetensors")).equals(reference)).toBe(true);
  });

  it("refuses a checkpoint made with other settings, or by the other adapter kind", async () => {
    const out = path.join(work, "other-settings");
    await killedAt(out, 6);
    const seed = await runCli([...args.map((a) => (a === "7" ? "8" : a)), "--out", out, "--resume"]);
    expect(seed.code).toBe(1);
    expect(seed.stderr).toMatch(/checkpoint\.json: this checkpoint belongs to another run/);
    const outputKind = await runCli([...args.map((a) => (a === "weights" ? "output" : a)).filter((a) => a !== "--lora-dropout" && a !== "0.1"), "--out", out, "--resume"]);
    expect(outputKind.code).toBe(1);
    expect(outputKind.stderr.trim().split("\n")).toHaveLength(1);
    expect(outputKind.stderr).toMatch(/checkpoint\.json: this checkpoint is of an --adapter-kind weights run, not --adapter-kind output/);
  });
});
