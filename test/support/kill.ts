/**
 * Helpers for tests that kill a training run mid-way and resume it: the CLI as a child
 * process (test/support/cli-child.ts), polling its checkpoint, and waiting for its exit.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";

import { repoRoot } from "../helpers.js";

/** `embedtune <args>` as a child process with piped output. */
export function spawnCli(args: string[]): ChildProcess {
  return spawn(process.execPath, ["--import", "tsx", path.join(repoRoot, "test/support/cli-child.ts"), ...args], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
}

/** Resolves with the checkpoint's step and kind once the run writing `<out>.checkpoint` has reached `step`. */
export async function checkpointReaches(out: string, step: number, proc: ChildProcess): Promise<{ step: number; kind?: string }> {
  const file = path.join(`${out}.checkpoint`, "checkpoint.json");
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`the run ended (code ${proc.exitCode}) before step ${step}`);
    let saved: { step: number; kind?: string } | null = null;
    try {
      saved = JSON.parse(readFileSync(file, "utf8")) as { step: number; kind?: string };
    } catch {
      // not written yet
    }
    if (saved && saved.step >= step) return saved;
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The child's exit code (-1 when a signal ended it). */
export const exited = (proc: ChildProcess) => new Promise<number | null>((resolve) => proc.on("exit", (code, signal) => resolve(code ?? (signal ? -1 : null))));
