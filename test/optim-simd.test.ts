/**
 * AdamW's WebAssembly SIMD path (src/optim/simd-kernels.ts) against its JavaScript loops:
 * bitwise the same parameters and moments, step after step, for even and odd sizes.
 */
import { afterEach, describe, expect, it } from "vitest";

import { AdamW } from "../src/optim/adamw.js";
import { clipGradNorm } from "../src/optim/clip.js";
import { Rng } from "../src/util/rng.js";

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

afterEach(() => {
  delete process.env.EMBEDTUNE_SIMD;
});

describe("AdamW SIMD update", () => {
  it("is bitwise the JavaScript update over many steps (sizes 12288, 7, 1)", () => {
    const rng = Rng.seeded(9);
    const sizes = [12288, 7, 1];
    const init = sizes.map((n) => Float32Array.from({ length: n }, () => (rng.uniform() - 0.5) * 0.1));
    const simdParams = init.map((a) => a.slice());
    const jsParams = init.map((a) => a.slice());
    const opts = { lr: 0.01, betas: [0.9, 0.999] as [number, number], eps: 1e-8, weightDecay: 0.01 };
    const simd = new AdamW(simdParams, opts);
    process.env.EMBEDTUNE_SIMD = "0";
    const js = new AdamW(jsParams, opts);
    for (let step = 0; step < 25; step++) {
      const grads = sizes.map((n) => Float32Array.from({ length: n }, () => (rng.uniform() - 0.5) * (step % 3 === 0 ? 1e-3 : 2)));
      grads[0][5] = 0; // exact zeros and tiny values take the same path
      grads[0][6] = 1e-30;
      const lr = step === 0 ? 0 : 0.01 / (1 + step);
      simd.step(grads.map((g) => g.slice()), lr);
      js.step(grads, lr);
      simdParams.forEach((p, k) => expect(bits(p).equals(bits(jsParams[k])), `param ${k} after step ${step}`).toBe(true));
    }
    const [a, b] = [simd.state(), js.state()];
    a.m.forEach((m, k) => expect(bits(m).equals(bits(b.m[k]))).toBe(true));
    a.v.forEach((v, k) => expect(bits(v).equals(bits(b.v[k]))).toBe(true));
  });

  it("continues from a saved state exactly (loadState writes into the SIMD memory)", () => {
    const p = new Float32Array(10).map((_, i) => 0.1 * i);
    const opt = new AdamW([p]);
    opt.step([new Float32Array(10).fill(0.1)]);
    const q = p.slice();
    const resumed = new AdamW([q]);
    resumed.loadState(opt.state());
    const g = new Float32Array(10).map((_, i) => Math.sin(i));
    opt.step([g]);
    resumed.step([g]);
    expect(bits(q).equals(bits(p))).toBe(true);
    expect(resumed.stepCount).toBe(2);
  });

  it.each([
    ["clipped", 2, 0.5],
    ["not clipped", 1e-4, 1.0],
    ["non-finite (step skipped)", Number.NaN, 1.0],
  ])("clipAndStep = clipGradNorm + step, bitwise (%s)", (_name, scale, maxNorm) => {
    const rng = Rng.seeded(4);
    const sizes = [3 * 17, 18, 5];
    const init = sizes.map((n) => Float32Array.from({ length: n }, () => rng.uniform() - 0.5));
    const grads = sizes.map((n) => Float32Array.from({ length: n }, () => (rng.uniform() - 0.5) * scale));
    const fast = init.map((a) => a.slice());
    const ref = init.map((a) => a.slice());
    const opt = new AdamW(fast, { lr: 0.05 });
    process.env.EMBEDTUNE_SIMD = "0";
    const refOpt = new AdamW(ref, { lr: 0.05 });
    for (let step = 0; step < 3; step++) {
      const got = opt.clipAndStep(grads.map((g) => g.slice()), maxNorm, 0.05);
      const refGrads = grads.map((g) => g.slice());
      const want = clipGradNorm(refGrads, maxNorm);
      if (Number.isFinite(want.totalNorm)) refOpt.step(refGrads, 0.05);
      expect(Object.is(got.totalNorm, want.totalNorm) || got.totalNorm === want.totalNorm).toBe(true);
      expect(got.clipped).toBe(want.clipped);
      fast.forEach((p, k) => expect(bits(p).equals(bits(ref[k])), `param ${k}, step ${step}`).toBe(true));
    }
  });
});
