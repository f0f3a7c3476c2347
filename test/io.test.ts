import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

import { describe, expect, it } from "vitest";

import { EmbedtuneError } from "../src/errors.js";
import { checkBaseModel, loadAdapter, saveAdapter, type LoadedAdapter } from "../src/io/adapter-folder.js";
import { decodeNpyMatrix, encodeNpyMatrix, streamNpyMatrix } from "../src/io/npy.js";
import { decodeSafetensors, encodeSafetensors } from "../src/io/safetensors.js";
import { VectorCache } from "../src/io/vector-cache.js";
import { initOutputLora } from "../src/lora/output-adapter.js";
import { Rng } from "../src/util/rng.js";
import { tempDir } from "./helpers.js";

const model = { name: "default", source: "test", sha256: "a".repeat(64) };

function adapter(dim = 8, r = 2): LoadedAdapter {
  const lora = initOutputLora(dim, r, 4, Rng.seeded(1));
  lora.B.forEach((_, i) => (lora.B[i] = Math.sin(i)));
  return {
    lora,
    applyTo: "query",
    config: { format: "embedtune-adapter", format_version: 1, kind: "output", r, lora_alpha: 4, dim, apply_to: "query", base_model: model },
  };
}

describe("safetensors", () => {
  it("round-trips float32 tensors and metadata, with 8-byte aligned data", () => {
    const bytes = encodeSafetensors({ x: { shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) }, y: { shape: [1], data: new Float32Array([7]) } }, { format: "pt" });
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + headerLength) % 8).toBe(0);
    const { tensors, metadata } = decodeSafetensors(bytes, "t.safetensors");
    expect(Array.from(tensors.get("x")!.data)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(tensors.get("y")!.shape).toEqual([1]);
    expect(metadata.format).toBe("pt");
  });

  it.each([
    ["truncated", (b: Uint8Array) => b.subarray(0, b.length - 4), /data_offsets|outside/],
    ["huge header length", (b: Uint8Array) => { const c = b.slice(); new DataView(c.buffer).setBigUint64(0, 1n << 40n, true); return c; }, /header length/],
    ["too short", () => new Uint8Array(3), /shorter than/],
    ["not JSON", (b: Uint8Array) => { const c = b.slice(); c[8] = 0x7b + 1; return c; }, /JSON/],
  ])("rejects a %s file with a clear error", (_name, mutate, message) => {
    const bytes = encodeSafetensors({ x: { shape: [4], data: new Float32Array(4) } });
    expect(() => decodeSafetensors(mutate(bytes), "bad.safetensors")).toThrow(message);
  });
});

describe("adapter folder", () => {
  it("round-trips weights and config, writing only the two files", async () => {
    const dir = path.join(tempDir(), "adapter");
    const a = adapter();
    await saveAdapter(dir, a, false);
    expect(readdirSync(dir).sort()).toEqual(["adapter_config.json", "adapter_model.safetensors"]);
    expect(readdirSync(path.dirname(dir))).toEqual(["adapter"]); // no temporary folder left
    const back = await loadAdapter(dir);
    expect(back.applyTo).toBe("query");
    expect(Array.from(back.lora.A)).toEqual(Array.from(a.lora.A));
    expect(Array.from(back.lora.B)).toEqual(Array.from(a.lora.B));
    const { tensors } = decodeSafetensors(readFileSync(path.join(dir, "adapter_model.safetensors")), "x");
    expect(tensors.get("lora_A.weight")!.shape).toEqual([2, 8]);
    expect(tensors.get("lora_B.weight")!.shape).toEqual([8, 2]);
  });

  it("refuses to replace a non-empty folder without overwrite, and replaces it with", async () => {
    const dir = path.join(tempDir(), "adapter");
    await saveAdapter(dir, adapter(), false);
    await expect(saveAdapter(dir, adapter(), false)).rejects.toThrow(/already exists.*--overwrite/);
    await saveAdapter(dir, adapter(16, 4), true);
    expect((await loadAdapter(dir)).lora.dim).toBe(16);
  });

  it("never writes a non-finite adapter", async () => {
    const a = adapter();
    a.lora.B[3] = Number.NaN;
    const dir = path.join(tempDir(), "adapter");
    await expect(saveAdapter(dir, a, false)).rejects.toThrow(/non-finite/);
    expect(existsSync(dir)).toBe(false);
  });

  it("checks the format version and names the field", async () => {
    const dir = path.join(tempDir(), "adapter");
    await saveAdapter(dir, adapter(), false);
    const file = path.join(dir, "adapter_config.json");
    const config = JSON.parse(readFileSync(file, "utf8"));
    writeFileSync(file, JSON.stringify({ ...config, format_version: 99 }));
    await expect(loadAdapter(dir)).rejects.toThrow(/adapter_config\.json: field "format_version": this embedtune reads version 1, found 99/);
  });

  it("checks the tensors' shapes against the config", async () => {
    const dir = path.join(tempDir(), "adapter");
    await saveAdapter(dir, adapter(), false);
    const file = path.join(dir, "adapter_config.json");
    writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, "utf8")), r: 3 }));
    await expect(loadAdapter(dir)).rejects.toThrow(/lora_A\.weight must have shape \[3, 8\]/);
  });

  it("says which model an adapter belongs to when loaded against another", () => {
    const other = { name: "other", source: "elsewhere", sha256: "b".repeat(64) };
    expect(() => checkBaseModel(adapter().config, other, 8, "dir")).toThrow(/trained on default .* but the encoder is other/);
    expect(() => checkBaseModel(adapter().config, model, 16, "dir")).toThrow(/dim 8 does not match the encoder's 16/);
  });

  it("reports a folder that is not an adapter", async () => {
    await expect(loadAdapter(tempDir())).rejects.toThrow(EmbedtuneError);
  });
});

describe("vector cache", () => {
  it("returns what was added, across reopenings, and only for the same model", async () => {
    const root = tempDir();
    const cache = await VectorCache.open(root, model, 3);
    await cache.add(["a", "b"], new Float32Array([1, 2, 3, 4, 5, 6]));
    const again = await VectorCache.open(root, model, 3);
    const out = new Float32Array(9);
    expect(again.lookup(["b", "zzz", "a"], out)).toEqual([1]);
    expect(Array.from(out)).toEqual([4, 5, 6, 0, 0, 0, 1, 2, 3]);
    const otherModel = await VectorCache.open(root, { ...model, sha256: "c".repeat(64) }, 3);
    expect(otherModel.lookup(["a"], new Float32Array(3))).toEqual([0]);
  });

  it("detects a corrupted segment, drops it and never returns its vectors", async () => {
    const root = tempDir();
    const cache = await VectorCache.open(root, model, 2);
    await cache.add(["a"], new Float32Array([1, 2]));
    const [segment] = readdirSync(cache.dir);
    const file = path.join(cache.dir, segment);
    const bytes = readFileSync(file);
    bytes[bytes.length - 40] ^= 0x01; // flip one bit of a stored vector
    writeFileSync(file, bytes);
    const reopened = await VectorCache.open(root, model, 2);
    expect(reopened.discarded).toEqual([file]);
    expect(reopened.lookup(["a"], new Float32Array(2))).toEqual([0]);
    expect(existsSync(file)).toBe(false);
  });
});

describe("vector cache at size", () => {
  it("splits large adds into bounded segments and reads rows back into place; a corrupt segment loses only its rows", async () => {
    const root = tempDir();
    const D = 1024; // 8192 rows per 32 MB segment
    const N = 9000;
    const texts = Array.from({ length: N }, (_, i) => `text ${i}`);
    const vectors = new Float32Array(N * D).map((_, e) => Math.sin(e * 0.37));
    const cache = await VectorCache.open(root, model, D);
    await cache.add(texts, vectors);
    const segments = readdirSync(cache.dir).sort();
    expect(segments).toHaveLength(2);
    const order = texts.map((_, i) => (i * 7919) % N); // a permutation: rows land by position
    const out = new Float32Array(N * D);
    const again = await VectorCache.open(root, model, D);
    expect(again.size).toBe(N);
    expect(again.lookup(order.map((i) => texts[i]), out)).toEqual([]);
    order.forEach((t, i) => expect(out.subarray(i * D, (i + 1) * D)).toEqual(vectors.subarray(t * D, (t + 1) * D)));
    // Corrupt the second segment (rows 8192..8999): only those are missing after reopening.
    const file = path.join(cache.dir, segments[1]);
    const bytes = readFileSync(file);
    bytes[bytes.length - 100] ^= 0x10;
    writeFileSync(file, bytes);
    const reopened = await VectorCache.open(root, model, D);
    expect(reopened.discarded).toEqual([file]);
    const missing = reopened.lookup(texts, new Float32Array(N * D));
    expect(missing).toEqual(texts.map((_, i) => i).filter((i) => i >= 8192));
  });
});

describe("npy", () => {
  it("round-trips a float32 (N, d) matrix with a 64-byte aligned header", () => {
    const data = new Float32Array([1.5, -2, 3, 4, 5, 6]);
    const bytes = encodeNpyMatrix(data, 3, 2);
    expect((10 + new DataView(bytes.buffer).getUint16(8, true)) % 64).toBe(0);
    const back = decodeNpyMatrix(bytes, "x.npy");
    expect([back.rows, back.cols]).toEqual([3, 2]);
    expect(Array.from(back.data)).toEqual(Array.from(data));
  });

  it("streams a file in blocks of rows (streamNpyMatrix), the same rows as decoding it whole", async () => {
    const rows = 25;
    const cols = 100_000; // 400 KB a row: blocks of 10 rows
    const data = new Float32Array(rows * cols).map((_, e) => e % 977);
    const file = path.join(tempDir(), "big.npy");
    writeFileSync(file, encodeNpyMatrix(data, rows, cols));
    const got = new Float32Array(rows * cols);
    const firsts: number[] = [];
    const shape = await streamNpyMatrix(file, (r, c) => expect([r, c]).toEqual([rows, cols]), (first, block, n) => {
      firsts.push(first);
      got.set(block.subarray(0, n * cols), first * cols);
    });
    expect(shape).toEqual({ rows, cols });
    expect(firsts).toEqual([0, 10, 20]);
    expect(got).toEqual(data);
  });

  it("rejects a float64 file", () => {
    const bytes = encodeNpyMatrix(new Float32Array(4), 2, 2);
    const text = Buffer.from(bytes).toString("latin1").replace("<f4", "<f8");
    expect(() => decodeNpyMatrix(Buffer.from(text, "latin1"), "v.npy")).toThrow(/v\.npy: .*dtype <f8/);
  });
});
