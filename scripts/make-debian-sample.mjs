#!/usr/bin/env node
// Builds data/ from ../shared/data/debian-pkgs/train.jsonl (Debian package descriptions,
// DFSG-free; see data/README.md). The source is sorted by package name, so a contiguous
// block keeps sibling packages (foo, foo-doc, foo-dev) on one side of the split:
//   held-out slice = the last 1,000 pairs (data/debian-eval.jsonl),
//   training sample = every 4th pair of the rest, 4,719 pairs (data/debian-train.jsonl).
// `--full FILE` also writes all 18,875 pairs before the held-out slice (training on "all").
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const source = path.resolve(root, "../shared/data/debian-pkgs/train.jsonl");
const lines = readFileSync(source, "utf8").split("\n").filter((l) => l.trim().length > 0);
const HELD_OUT = 1000;
const rest = lines.slice(0, lines.length - HELD_OUT);
const heldOut = lines.slice(lines.length - HELD_OUT);
const sample = rest.filter((_, i) => i % 4 === 0);
mkdirSync(path.join(root, "data"), { recursive: true });
writeFileSync(path.join(root, "data/debian-train.jsonl"), sample.join("\n") + "\n");
writeFileSync(path.join(root, "data/debian-eval.jsonl"), heldOut.join("\n") + "\n");
if (process.argv.includes("--full")) {
  const out = process.argv[process.argv.indexOf("--full") + 1];
  writeFileSync(out, rest.join("\n") + "\n");
  console.log(`wrote ${rest.length} pairs to ${out}`);
}
console.log(`data/debian-train.jsonl: ${sample.length} pairs; data/debian-eval.jsonl: ${heldOut.length} pairs (from ${lines.length})`);
