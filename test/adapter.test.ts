/** The output adapter's free checks: PEFT init, identity at B = 0, chunked inference, += semantics. */
import { describe, expect, it } from "vitest";
import {
  adapterBackward, adapterForward, applyAdapter, createAdapterCache, initOutputLora, normalizeBackward,
  normalizeForward, scaling,
} from "../src/lora/output-adapter.js";
import { Rng } from "../src/util/rng.js";

function randRows(rng: Rng, n: number): Float32Array {
  const x = new Float32Array(n);
  for (let e = 0; e < n; e++) x[e] = 2 * rng.uniform() - 1;
  return x;
}

describe("initOutputLora", () => {
  it("draws A within ±1/sqrt(d) (PEFT kaiming_uniform_(a=sqrt(5))), B = 0, reproducibly", () => {
    const d = 384;
    const r = 8;
    const p = initOutputLora(d, r, 16, Rng.seeded(42));
    expect(p.A.length).toBe(r * d);
    expect(p.B.length).toBe(d * r);
    expect(scaling(p)).toBe(2);
    const bound = 1 / Math.sqrt(d);
    let maxAbs = 0;
    let sum = 0;
    for (const v of p.A) {
      maxAbs = Math.max(maxAbs, Math.abs(v));
      sum += v;
    }
    expect(maxAbs).toBeLessThanOrEqual(Math.fround(bound));
    expect(maxAbs).toBeGreaterThan(0.95 * bound); // 3072 draws reach close to the bound
    expect(Math.abs(sum / p.A.length)).toBeLessThan(0.1 * bound); // centred
    expect(p.B.every((v) => v === 0)).toBe(true);
    expect(initOutputLora(d, r, 16, Rng.seeded(42)).A).toEqual(p.A);
    expect(initOutputLora(d, r, 16, Rng.seeded(43)).A).not.toEqual(p.A);
  });

  it("rejects bad shapes with a typed error", () => {
    expect(() => initOutputLora(0, 4, 8, Rng.seeded(1))).toThrow(/dim must be a positive integer/);
    expect(() => initOutputLora(8, 2.5, 8, Rng.seeded(1))).toThrow(/r must be a positive integer/);
    expect(() => initOutputLora(8, 2, Number.NaN, Rng.seeded(1))).toThrow(/lora_alpha/);
  });
});

describe("a fresh adapter (B = 0)", () => {
  it("returns exactly the normalised base vectors, and dA = 0 exactly", () => {
    const rng = Rng.seeded(7);
    const N = 10;
    const d = 32;
    const r = 4;
    const p = initOutputLora(d, r, 8, rng);
    const x = randRows(rng, N * d);
    const z = new Float32Array(N * d);
    const cache = createAdapterCache(N, d, r);
    adapterForward(z, cache, x, N, p);
    const base = new Float32Array(N * d);
    normalizeForward(base, new Float32Array(N), x, N, d);
    expect(z).toEqual(base);
    expect(applyAdapter(x, N, p)).toEqual(base);

    const dA = new Float32Array(r * d);
    const dB = new Float32Array(d * r);
    adapterBackward(dA, dB, null, randRows(rng, N * d), cache, x, N, p);
    expect(dA.every((v) => v === 0)).toBe(true);
    expect(dB.some((v) => v !== 0)).toBe(true);
  });
});

describe("adapter forward/backward mechanics", () => {
  it("applyAdapter over many chunks equals one adapterForward", () => {
    const rng = Rng.seeded(9);
    const N = 600; // > the 256-row chunk, with a ragged last chunk
    const d = 16;
    const r = 2;
    const p = initOutputLora(d, r, 4, rng);
    for (let e = 0; e < p.B.length; e++) p.B[e] = 0.3 * (2 * rng.uniform() - 1);
    const x = randRows(rng, N * d);
    const z = new Float32Array(N * d);
    adapterForward(z, createAdapterCache(N, d, r), x, N, p);
    expect(applyAdapter(x, N, p)).toEqual(z);
  });

  it("backward accumulates (+=) into dA, dB and dx", () => {
    const rng = Rng.seeded(10);
    const N = 5;
    const d = 12;
    const r = 3;
    const p = initOutputLora(d, r, 6, rng);
    for (let e = 0; e < p.B.length; e++) p.B[e] = 2 * rng.uniform() - 1;
    const x = randRows(rng, N * d);
    const dz = randRows(rng, N * d);
    const cache = createAdapterCache(N, d, r);
    adapterForward(new Float32Array(N * d), cache, x, N, p);
    const once = [new Float32Array(r * d), new Float32Array(d * r), new Float32Array(N * d)];
    const twice = [new Float32Array(r * d), new Float32Array(d * r), new Float32Array(N * d)];
    adapterBackward(once[0], once[1], once[2], dz, cache, x, N, p);
    adapterBackward(twice[0], twice[1], twice[2], dz, cache, x, N, p);
    adapterBackward(twice[0], twice[1], twice[2], dz, cache, x, N, p);
    for (let k = 0; k < 3; k++) {
      for (let e = 0; e < once[k].length; e++) expect(twice[k][e]).toBeCloseTo(2 * once[k][e], 6);
    }
  });

  it("a zero row normalises to zero with a finite gradient (F.normalize's eps)", () => {
    const d = 4;
    const x = new Float32Array([0, 0, 0, 0, 3, 4, 0, 0]);
    const z = new Float32Array(2 * d);
    const norms = new Float32Array(2);
    normalizeForward(z, norms, x, 2, d);
    expect(Array.from(z)).toEqual([0, 0, 0, 0, 0.6, 0.8, 0, 0].map(Math.fround));
    const dx = new Float32Array(2 * d);
    normalizeBackward(dx, new Float32Array(2 * d).fill(1e-13), z, norms, 2, d);
    expect(dx.every(Number.isFinite)).toBe(true);
  });

  it("refuses a cache that is too small or shaped for another adapter", () => {
    const p = initOutputLora(8, 2, 4, Rng.seeded(1));
    const x = new Float32Array(5 * 8);
    expect(() => adapterForward(new Float32Array(5 * 8), createAdapterCache(4, 8, 2), x, 5, p)).toThrow(/does not fit/);
    expect(() => adapterForward(new Float32Array(5 * 8), createAdapterCache(5, 8, 3), x, 5, p)).toThrow(/does not fit/);
  });
});
