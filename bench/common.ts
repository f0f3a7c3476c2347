/**
 * Helpers shared by the benchmark scripts (npm run bench): child processes with their wall
 * time and peak resident memory, medians, .npy files the PyTorch side reads too, and the
 * synthetic data (seeded, so both sides and every run see the same numbers).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { Rng } from "../src/util/rng.js";

export const benchDir = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(benchDir, "..");
export const sharedData = path.resolve(repoRoot, "../shared/data");

export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `embedtune-bench-${prefix}-`));
}

export interface ChildResult {
  code: number;
  stdout: string;
  stderr: string;
  wallSeconds: number;
  /** Peak resident set size of the child in MB (from /usr/bin/time -v), NaN when unavailable. */
  peakRssMB: number;
}

/**
 * Runs a command to completion. With `measure`, it runs under /usr/bin/time -v for the
 * child's peak RSS; wall time is measured here either way.
 */
export function runChild(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; measure?: boolean; echo?: boolean } = {}): Promise<ChildResult> {
  const [file, argv] = opts.measure ? ["/usr/bin/time", ["-v", cmd, ...args]] : [cmd, args];
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(file, argv, { cwd: opts.cwd ?? repoRoot, env: opts.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
      if (opts.echo) process.stderr.write(d);
    });
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => {
      const wallSeconds = (performance.now() - started) / 1000;
      const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
      resolve({ code: code ?? -1, stdout, stderr, wallSeconds, peakRssMB: rss ? Number(rss[1]) / 1024 : NaN });
    });
  });
}

/** The last line of a child's stdout that parses as JSON. */
export function lastJson<T>(r: ChildResult, what: string): T {
  const lines = r.stdout.trim().split("\n").reverse();
  for (const line of lines) {
    if (!line.startsWith("{")) continue;
    try {
      return JSON.parse(line) as T;
    } catch {
      // not this line
    }
  }
  throw new Error(`${what} failed (exit ${r.code}):\n${r.stderr.slice(-3000)}\n${r.stdout.slice(-2000)}`);
}

/** Writes a little-endian 2-D .npy file of float32 ('<f4') or int32 ('<i4'). */
export function writeNpy(file: string, data: Float32Array | Int32Array, rows: number, cols: number): void {
  const descr = data instanceof Float32Array ? "<f4" : "<i4";
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${rows}, ${cols}), }`;
  header += " ".repeat((64 - ((10 + header.length + 1) % 64)) % 64) + "\n";
  const out = Buffer.alloc(10 + header.length + data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  out.writeUInt16LE(header.length, 8);
  out.write(header, 10, "latin1");
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 10 + header.length);
  writeFileSync(file, out);
}

/** Reads a .npy written by writeNpy (version 1, C order). */
export function readNpy(file: string): { data: Float32Array | Int32Array; rows: number; cols: number } {
  const bytes = readFileSync(file);
  const headerLength = bytes.readUInt16LE(8);
  const header = bytes.toString("latin1", 10, 10 + headerLength);
  const [rows, cols] = /'shape': \((\d+), (\d+)\)/.exec(header)!.slice(1).map(Number);
  const body = bytes.subarray(10 + headerLength);
  const buf = new ArrayBuffer(body.length);
  new Uint8Array(buf).set(body);
  return { data: header.includes("<i4") ? new Int32Array(buf) : new Float32Array(buf), rows, cols };
}

/**
 * Synthetic cached vectors: N anchors around 64 shared topic directions (so in-batch
 * negatives are confusable and the loss stays far from 0 over a benchmark's steps) and
 * positives near their anchors; unit rows of D columns. Deterministic for a seed.
 */
export function syntheticPairs(N: number, D: number, seed: number): { anchors: Float32Array; positives: Float32Array } {
  const rng = Rng.seeded(seed);
  const gauss = () => (rng.uniform() + rng.uniform() + rng.uniform() - 1.5) * 2; // ~unit variance
  const topics = Array.from({ length: 64 }, () => Float32Array.from({ length: D }, gauss));
  const anchors = new Float32Array(N * D);
  const positives = new Float32Array(N * D);
  const normalise = (x: Float32Array, o: number) => {
    let n = 0;
    for (let j = 0; j < D; j++) n += x[o + j] ** 2;
    n = Math.sqrt(n);
    for (let j = 0; j < D; j++) x[o + j] /= n;
  };
  for (let i = 0; i < N; i++) {
    const topic = topics[rng.int(topics.length)];
    for (let j = 0; j < D; j++) anchors[i * D + j] = topic[j] + 0.5 * gauss();
    normalise(anchors, i * D);
    for (let j = 0; j < D; j++) positives[i * D + j] = anchors[i * D + j] + (2.0 * gauss()) / Math.sqrt(D);
    normalise(positives, i * D);
  }
  return { anchors, positives };
}

/** Formats a ratio like "2.31x". */
export const x = (v: number): string => (Number.isFinite(v) ? `${v.toFixed(2)}x` : "n/a");
