/**
 * Disk full: writing the adapter onto a 48 KB file system fails with one line naming the
 * folder and the cause, and leaves nothing behind (no adapter, no temporary folder).
 * Needs root to mount a tmpfs, as the CI and development machines run.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { encodeNpyMatrix } from "../src/io/npy.js";
import { Rng } from "../src/util/rng.js";
import { runCli, tempDir } from "./helpers.js";

const work = tempDir();
const small = path.join(work, "small-disk");

beforeAll(() => {
  mkdirSync(small);
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=48k", "tmpfs", small]);
  } catch (err) {
    throw new Error(`this test mounts a 48 KB tmpfs and needs root: ${(err as Error).message}`);
  }
});

afterAll(() => {
  execFileSync("umount", [small]);
});

describe("disk full", () => {
  it("the adapter does not fit: one line, nothing left on the disk", async () => {
    const rows = 32;
    const D = 512; // lora_A + lora_B at r 16: 64 KB, more than the disk holds
    const rng = Rng.seeded(1);
    const random = () => Float32Array.from({ length: rows * D }, () => rng.uniform() - 0.5);
    writeFileSync(path.join(work, "pairs.jsonl"), Array.from({ length: rows }, (_, i) => JSON.stringify({ query: `q${i}`, positive: `p${i}` })).join("\n") + "\n");
    writeFileSync(path.join(work, "a.npy"), encodeNpyMatrix(random(), rows, D));
    writeFileSync(path.join(work, "p.npy"), encodeNpyMatrix(random(), rows, D));
    const out = path.join(small, "adapter");
    const { code, stderr } = await runCli(["train", "--data", path.join(work, "pairs.jsonl"), "--vectors", `${path.join(work, "a.npy")},${path.join(work, "p.npy")}`, "--out", out, "--batch-size", "8"]);
    expect(code).toBe(1);
    expect(stderr.trim()).toMatch(new RegExp(`^embedtune: error: cannot write ${out.replace(/[/.]/g, "\\$&")}: no space left on the device \\(ENOSPC\\); nothing was changed$`));
    expect(readdirSync(small)).toEqual([]);
  });
});
