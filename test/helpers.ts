import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { main } from "../src/cli.js";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
/** Datasets beside the repository (../shared/data); tests fail, never skip, without them. */
export const sharedData = path.resolve(repoRoot, "../shared/data");

export function tempDir(prefix = "embedtune-test-"): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function readJsonl<T = Record<string, unknown>>(file: string): T[] {
  return readFileSync(file, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as T);
}

/** Runs the CLI in-process and captures what it prints. */
export async function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const log = console.log;
  const errWrite = process.stderr.write.bind(process.stderr);
  const outWrite = process.stdout.write.bind(process.stdout);
  console.log = (...parts: unknown[]) => void (stdout += parts.join(" ") + "\n");
  process.stdout.write = ((chunk: string | Uint8Array) => ((stdout += String(chunk)), true)) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => ((stderr += String(chunk)), true)) as typeof process.stderr.write;
  try {
    const code = await main(args);
    return { code, stdout, stderr };
  } finally {
    console.log = log;
    process.stderr.write = errWrite;
    process.stdout.write = outWrite;
  }
}

/** The last line of output, parsed: what --json promises. */
export function lastJson(stdout: string): Record<string, any> {
  const lines = stdout.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]);
}
