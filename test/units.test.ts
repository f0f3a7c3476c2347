/** Kernels against naive loops, InfoNCE with negatives against the sentence-transformers formula, optimiser edge cases. */
import { describe, expect, it } from "vitest";
import { cosentForwardBackward } from "../src/losses/cosent.js";
import { createInfoNceWork, infoNceForwardBackward } from "../src/losses/infonce.js";
import { AdamW } from "../src/optim/adamw.js";
import { clipGradNorm } from "../src/optim/clip.js";
import { linearWarmupDecay } from "../src/optim/schedule.js";
import { dot, l2NormalizeRows, matmul, matmulABt, matmulAtB } from "../src/tensor/ops.js";
import { Rng } from "../src/util/rng.js";

function rand(rng: Rng, n: number): Float64Array {
  const x = new Float64Array(n);
  for (let e = 0; e < n; e++) x[e] = 2 * rng.uniform() - 1;
  return x;
}
const at = (x: ArrayLike<number>, cols: number, i: number, j: number) => x[i * cols + j];

function expectAllClose(got: ArrayLike<number>, want: ArrayLike<number>, tol = 1e-12): void {
  expect(got.length).toBe(want.length);
  let maxDiff = 0;
  for (let e = 0; e < want.length; e++) maxDiff = Math.max(maxDiff, Math.abs(got[e] - want[e]));
  expect(maxDiff, `max diff ${maxDiff}`).toBeLessThanOrEqual(tol);
}

describe("kernels (odd sizes exercise the unrolled loops' tails)", () => {
  const rng = Rng.seeded(11);
  const [M, K, N] = [5, 7, 6];
  it("matmul: overwrite, alpha and accumulate", () => {
    const a = rand(rng, M * K);
    const b = rand(rng, K * N);
    const want = new Float64Array(M * N);
    for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += at(a, K, i, k) * at(b, N, k, j);
      want[i * N + j] = s;
    }
    const out = new Float64Array(M * N).fill(99);
    matmul(out, a, b, M, K, N);
    expectAllClose(out, want);
    matmul(out, a, b, M, K, N, 2, true); // out = want + 2 want
    expectAllClose(out, want.map((v) => 3 * v));
  });

  it("matmulABt and matmulAtB", () => {
    const a = rand(rng, M * K);
    const b = rand(rng, N * K);
    const want = new Float64Array(M * N);
    for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += at(a, K, i, k) * at(b, K, j, k);
      want[i * N + j] = s;
    }
    const out = new Float64Array(M * N);
    matmulABt(out, a, b, M, K, N, 0.5);
    expectAllClose(out, want.map((v) => 0.5 * v));

    const c = rand(rng, K * M); // (K, M)
    const e = rand(rng, K * N); // (K, N)
    const want2 = new Float64Array(M * N).fill(1);
    for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
      for (let t = 0; t < K; t++) want2[m * N + n] += 3 * at(c, M, t, m) * at(e, N, t, n);
    }
    const out2 = new Float64Array(M * N).fill(1);
    matmulAtB(out2, c, e, K, M, N, 3); // accumulates onto the ones
    expectAllClose(out2, want2);
  });

  it("l2NormalizeRows and dot", () => {
    const x = rand(rng, 3 * 5);
    const z = new Float32Array(15);
    const norms = l2NormalizeRows(z, x, 3, 5);
    for (let i = 0; i < 3; i++) {
      expect(norms[i]).toBeCloseTo(Math.hypot(...x.subarray(i * 5, i * 5 + 5)), 12);
      expect(dot(z.subarray(i * 5, i * 5 + 5), z.subarray(i * 5, i * 5 + 5))).toBeCloseTo(1, 6);
    }
  });
});

describe("InfoNCE with hard negatives", () => {
  it("equals MultipleNegativesSymmetricRankingLoss computed naively", () => {
    const rng = Rng.seeded(12);
    const [B, D, scale] = [4, 6, 20];
    const unit = () => {
      const x = rand(rng, B * D);
      l2NormalizeRows(x, x, B, D);
      return x;
    };
    const [za, zp, zn] = [unit(), unit(), unit()];
    // scores = scale · cos(anchor_i, [positives; negatives]_j): (B, 2B)
    const cand = (j: number) => (j < B ? zp.subarray(j * D, j * D + D) : zn.subarray((j - B) * D, (j - B) * D + D));
    const S = (i: number, j: number) => scale * dot(za.subarray(i * D, i * D + D), cand(j));
    const lse = (v: number[]) => Math.log(v.reduce((s, x) => s + Math.exp(x), 0));
    let forward = 0;
    let backward = 0;
    for (let i = 0; i < B; i++) {
      forward += lse(Array.from({ length: 2 * B }, (_, j) => S(i, j))) - S(i, i); // CE(scores, labels)
      backward += lse(Array.from({ length: B }, (_, k) => S(k, i))) - S(i, i); // CE(scores[:, :B].T, labels)
    }
    const want = (forward / B + backward / B) / 2;
    const g = () => new Float64Array(B * D);
    const got = infoNceForwardBackward(g(), g(), g(), za, zp, zn, B, D, scale, createInfoNceWork(8));
    expect(got).toBeCloseTo(want, 12);
    // and without negatives, the workspace default and a null dzp work too
    const noNeg = infoNceForwardBackward(g(), null, null, za, zp, null, B, D, scale);
    expect(noNeg).toBeLessThan(got); // fewer candidates, easier task
  });
});

describe("CoSENT", () => {
  it("is 0 with zero gradient when every score is tied", () => {
    const z = new Float64Array([1, 0, 0, 1]);
    const dz1 = new Float64Array(4).fill(7);
    const dz2 = new Float64Array(4).fill(7);
    expect(cosentForwardBackward(dz1, dz2, z, z, [0.5, 0.5], 2, 2, 20)).toBe(0);
    expect(Array.from(dz1)).toEqual([0, 0, 0, 0]);
  });
});

describe("optimiser pieces", () => {
  it("clipGradNorm leaves non-finite gradients alone and reports the norm", () => {
    const g = new Float32Array([1, Number.NaN]);
    const res = clipGradNorm([g], 1);
    expect(res.clipped).toBe(false);
    expect(Number.isNaN(res.totalNorm)).toBe(true);
    const h = new Float32Array([3, 4]);
    expect(clipGradNorm([h], 1)).toEqual({ totalNorm: 5, clipped: true });
    expect(Math.hypot(h[0], h[1])).toBeCloseTo(1, 6);
  });

  it("AdamW state round-trips through state()/loadState()", () => {
    const p1 = new Float32Array([0.5, -0.25, 1]);
    const p2 = p1.slice();
    const a = new AdamW([p1]);
    const b = new AdamW([p2]);
    const g = [new Float32Array([0.1, -0.2, 0.3])];
    a.step(g);
    b.loadState(a.state());
    p2.set(p1);
    a.step(g, 5e-4);
    b.step(g, 5e-4);
    expect(p2).toEqual(p1);
    expect(b.state().step).toBe(2);
    expect(() => b.loadState({ step: 1, m: [], v: [] })).toThrow(/moments/);
  });

  it("linearWarmupDecay validates its arguments", () => {
    expect(() => linearWarmupDecay(1e-3, 0, 0.1)).toThrow(/total steps/);
    expect(() => linearWarmupDecay(1e-3, 10, 1.5)).toThrow(/warmup ratio/);
    expect(() => linearWarmupDecay(-1, 10, 0.1)).toThrow(/learning rate/);
    expect(linearWarmupDecay(1e-3, 10, 0)(10)).toBe(0);
  });
});
