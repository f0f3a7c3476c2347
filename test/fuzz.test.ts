/**
 * Hostile files: valid adapter files, .npy files and safetensors mutated 12,000 ways (seeded
 * bit flips, byte overwrites, truncation, extension, huge header lengths, hostile JSON). Each
 * parse must return a consistent result or throw an EmbedtuneError: never another exception,
 * a hang, or a huge allocation.
 */
import { describe, expect, it } from "vitest";

import { EmbedtuneError } from "../src/errors.js";
import { parseAdapter, type AdapterConfig } from "../src/io/adapter-folder.js";
import { decodeNpyMatrix, encodeNpyMatrix } from "../src/io/npy.js";
import { decodeSafetensors, encodeSafetensors } from "../src/io/safetensors.js";
import { Rng } from "../src/util/rng.js";

const rng = Rng.seeded(20261204);
const D = 16;
const R = 4;
const config: AdapterConfig = {
  format: "embedtune-adapter", format_version: 1, kind: "output", r: R, lora_alpha: 8, dim: D, apply_to: "both",
  base_model: { name: "default", source: "fuzz", sha256: "f".repeat(64) }, prefixes: { query: "", document: "", symmetric: "" },
};
const configBytes = new TextEncoder().encode(JSON.stringify(config));
const weightsBytes = encodeSafetensors({
  "lora_A.weight": { shape: [R, D], data: Float32Array.from({ length: R * D }, (_, i) => Math.sin(i)) },
  "lora_B.weight": { shape: [D, R], data: Float32Array.from({ length: D * R }, (_, i) => Math.cos(i)) },
});
const npyBytes = encodeNpyMatrix(Float32Array.from({ length: 24 }, (_, i) => i), 6, 4);

/** One random mutation of `bytes`. */
function mutate(bytes: Uint8Array): Uint8Array {
  const out = Uint8Array.from(bytes);
  switch (rng.int(7)) {
    case 0: { // flip 1-8 bits
      for (let k = 1 + rng.int(8); k > 0; k--) out[rng.int(out.length)] ^= 1 << rng.int(8);
      return out;
    }
    case 1: // truncate
      return out.subarray(0, rng.int(out.length));
    case 2: { // append garbage
      const extra = Uint8Array.from({ length: 1 + rng.int(64) }, () => rng.int(256));
      return Uint8Array.from([...out, ...extra]);
    }
    case 3: { // huge or odd little-endian length in the first 8 bytes (safetensors header length)
      const view = new DataView(out.buffer);
      const choices = [0n, 1n, 7n, BigInt(out.length), BigInt(out.length) * 2n, 1n << 40n, (1n << 64n) - 1n];
      if (out.length >= 8) view.setBigUint64(0, choices[rng.int(choices.length)], true);
      return out;
    }
    case 4: { // overwrite a run of bytes with one value
      const start = rng.int(out.length);
      out.fill([0, 0xff, 0x22, 0x7b, 0x30][rng.int(5)], start, Math.min(out.length, start + 1 + rng.int(16)));
      return out;
    }
    case 5: { // swap a digit inside the text, e.g. shapes and offsets
      const digits = [...out.keys()].filter((i) => out[i] >= 0x30 && out[i] <= 0x39);
      if (digits.length > 0) out[digits[rng.int(digits.length)]] = 0x30 + rng.int(10);
      return out;
    }
    default: // empty
      return new Uint8Array(0);
  }
}

/** Hostile JSON configs, written by hand: the mutations above rarely produce these. */
const hostileConfigs = [
  '{"__proto__": {"polluted": true}, "format": "embedtune-adapter"}',
  JSON.stringify({ ...config, r: 1e300 }),
  JSON.stringify({ ...config, dim: -3 }),
  JSON.stringify({ ...config, r: "4" }),
  JSON.stringify({ ...config, lora_alpha: null }),
  JSON.stringify({ ...config, kind: "weights" }),
  JSON.stringify({ ...config, prefixes: { query: 1 } }),
  JSON.stringify({ ...config, base_model: [] }),
  "[]",
  "null",
  '"a string"',
  `{"format": "${"x".repeat(100000)}"}`,
  "{".repeat(10000),
];

function expectOnlyEmbedtuneErrors(run: () => unknown): "ok" | "rejected" {
  try {
    run();
    return "ok";
  } catch (err) {
    if (!(err instanceof EmbedtuneError)) throw new Error(`uncaught ${(err as Error).name}: ${(err as Error).message}`);
    expect(err.message).not.toMatch(/\n/);
    return "rejected";
  }
}

describe("fuzzing the file readers", () => {
  it("adapter folders: 6,000 mutated config/weights pairs", () => {
    const seen = { ok: 0, rejected: 0 };
    for (let i = 0; i < 6000; i++) {
      const c = i % 3 === 0 ? mutate(configBytes) : configBytes;
      const w = i % 3 === 0 ? weightsBytes : mutate(weightsBytes);
      const result = expectOnlyEmbedtuneErrors(() => {
        const adapter = parseAdapter(c, w, "fuzz");
        if (adapter.kind === "output") {
          expect(adapter.lora.A.length).toBe(adapter.lora.r * adapter.lora.dim);
          expect(adapter.lora.B.length).toBe(adapter.lora.r * adapter.lora.dim);
          expect(adapter.lora.A.every(Number.isFinite) && adapter.lora.B.every(Number.isFinite)).toBe(true);
        }
      });
      seen[result]++;
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(seen.rejected).toBeGreaterThan(3000);
  });

  it("hostile adapter configs", () => {
    for (const text of hostileConfigs) {
      expect(expectOnlyEmbedtuneErrors(() => parseAdapter(new TextEncoder().encode(text), weightsBytes, "fuzz"))).toBe("rejected");
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("safetensors: 3,000 mutated files", () => {
    for (let i = 0; i < 3000; i++) {
      expectOnlyEmbedtuneErrors(() => {
        const { tensors } = decodeSafetensors(mutate(weightsBytes), "fuzz.safetensors");
        for (const t of tensors.values()) expect(t.data.length).toBe(t.shape.reduce((a, b) => a * b, 1));
      });
    }
  });

  it(".npy: 3,000 mutated files", () => {
    for (let i = 0; i < 3000; i++) {
      expectOnlyEmbedtuneErrors(() => {
        const m = decodeNpyMatrix(mutate(npyBytes), "fuzz.npy");
        expect(m.data.length).toBe(m.rows * m.cols);
      });
    }
  });
});
