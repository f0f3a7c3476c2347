/**
 * Finite-difference checks of every hand-written backward, run in float64 through the same
 * kernels used for float32 training. Each check builds a scalar L from random inputs
 * (Rng.seeded), takes the analytic gradient, and compares it with central differences
 * (L(x + ε) − L(x − ε)) / 2ε, ε = 1e-6, entry by entry:
 * max |num − ana| / max(max |ana|, 1e-3) < TOL.
 */
import { describe, expect, it } from "vitest";
import {
  type OutputLora, adapterBackward, adapterForward, createAdapterCache, normalizeBackward, normalizeForward,
} from "../src/lora/output-adapter.js";
import { cosentForwardBackward } from "../src/losses/cosent.js";
import { createInfoNceWork, infoNceForwardBackward } from "../src/losses/infonce.js";
import { Rng } from "../src/util/rng.js";

const EPS = 1e-6;
const TOL = 1e-7;

function rand(rng: Rng, n: number, amp = 1): Float64Array {
  const x = new Float64Array(n);
  for (let e = 0; e < n; e++) x[e] = (2 * rng.uniform() - 1) * amp;
  return x;
}

function unitRows(rng: Rng, N: number, D: number): Float64Array {
  const x = rand(rng, N * D);
  normalizeForward(x, new Float64Array(N), x, N, D);
  return x;
}

/** Central-difference gradient of f with respect to every entry of x (x is restored). */
function numGrad(f: () => number, x: Float64Array): Float64Array {
  const g = new Float64Array(x.length);
  for (let e = 0; e < x.length; e++) {
    const v = x[e];
    x[e] = v + EPS;
    const up = f();
    x[e] = v - EPS;
    const down = f();
    x[e] = v;
    g[e] = (up - down) / (2 * EPS);
  }
  return g;
}

function expectGrad(label: string, analytic: Float64Array, f: () => number, x: Float64Array): void {
  const num = numGrad(f, x);
  let maxDiff = 0;
  let maxAna = 0;
  for (let e = 0; e < num.length; e++) {
    maxDiff = Math.max(maxDiff, Math.abs(num[e] - analytic[e]));
    maxAna = Math.max(maxAna, Math.abs(analytic[e]));
  }
  const rel = maxDiff / Math.max(maxAna, 1e-3);
  expect(rel < TOL, `${label}: max |numeric - analytic| = ${maxDiff} (relative ${rel}, max |analytic| ${maxAna})`).toBe(true);
  expect(maxAna, `${label}: gradient is identically zero, check is vacuous`).toBeGreaterThan(0);
}

/** Weighted sum Σ w ⊙ y: a scalar whose gradient with respect to y is w. */
function wsum(w: Float64Array, y: Float64Array): number {
  let s = 0;
  for (let e = 0; e < w.length; e++) s += w[e] * y[e];
  return s;
}

function randomLora(rng: Rng, D: number, R: number, alpha: number): OutputLora<Float64Array> {
  return { dim: D, r: R, loraAlpha: alpha, A: rand(rng, R * D, 0.5), B: rand(rng, D * R, 0.5) };
}

describe("gradient checks (float64, central differences)", () => {
  it("L2 normalisation", () => {
    const rng = Rng.seeded(1);
    const N = 5;
    const D = 7;
    const x = rand(rng, N * D, 2);
    const w = rand(rng, N * D);
    const z = new Float64Array(N * D);
    const norms = new Float64Array(N);
    const L = () => {
      normalizeForward(z, norms, x, N, D);
      return wsum(w, z);
    };
    L();
    const dx = new Float64Array(N * D);
    normalizeBackward(dx, w, z, norms, N, D);
    expectGrad("normalize dx", dx, L, x);
  });

  it("output adapter: dA, dB, dx", () => {
    const rng = Rng.seeded(2);
    const N = 6;
    const D = 9;
    const R = 3;
    const p = randomLora(rng, D, R, 8);
    const x = rand(rng, N * D);
    const w = rand(rng, N * D);
    const cache = createAdapterCache(N, D, R, 64);
    const z = new Float64Array(N * D);
    const L = () => {
      adapterForward(z, cache, x, N, p);
      return wsum(w, z);
    };
    L();
    const dA = new Float64Array(R * D);
    const dB = new Float64Array(D * R);
    const dx = new Float64Array(N * D);
    adapterBackward(dA, dB, dx, w, cache, x, N, p);
    expectGrad("adapter dA", dA, L, p.A);
    expectGrad("adapter dB", dB, L, p.B);
    expectGrad("adapter dx", dx, L, x);
  });

  for (const withNegatives of [false, true]) {
    it(`InfoNCE ${withNegatives ? "with" : "without"} hard negatives: dza, dzp${withNegatives ? ", dzn" : ""}`, () => {
      const rng = Rng.seeded(withNegatives ? 4 : 3);
      const B = 5;
      const D = 6;
      const scale = 7;
      const za = unitRows(rng, B, D);
      const zp = unitRows(rng, B, D);
      const zn = withNegatives ? unitRows(rng, B, D) : null;
      const dza = new Float64Array(B * D);
      const dzp = new Float64Array(B * D);
      const dzn = withNegatives ? new Float64Array(B * D) : null;
      const work = createInfoNceWork(B);
      const scratch = [new Float64Array(B * D), new Float64Array(B * D), new Float64Array(B * D)];
      const L = () => infoNceForwardBackward(scratch[0], scratch[1], zn && scratch[2], za, zp, zn, B, D, scale, work);
      infoNceForwardBackward(dza, dzp, dzn, za, zp, zn, B, D, scale, work);
      expectGrad("infonce dza", dza, L, za);
      expectGrad("infonce dzp", dzp, L, zp);
      if (zn && dzn) expectGrad("infonce dzn", dzn, L, zn);
    });
  }

  it("CoSENT (scores with ties): dz1, dz2", () => {
    const rng = Rng.seeded(5);
    const N = 7;
    const D = 5;
    const scale = 20;
    const z1 = unitRows(rng, N, D);
    const z2 = unitRows(rng, N, D);
    const scores = [0, 0.2, 0.2, 0.5, 0.8, 1, 0.5];
    const dz1 = new Float64Array(N * D);
    const dz2 = new Float64Array(N * D);
    const s1 = new Float64Array(N * D);
    const s2 = new Float64Array(N * D);
    const L = () => cosentForwardBackward(s1, s2, z1, z2, scores, N, D, scale);
    cosentForwardBackward(dz1, dz2, z1, z2, scores, N, D, scale);
    expectGrad("cosent dz1", dz1, L, z1);
    expectGrad("cosent dz2", dz2, L, z2);
  });

  for (const mode of ["both", "query-only"] as const) {
    it(`end to end: adapter (${mode}) → InfoNCE with negatives → dA, dB`, () => {
      const rng = Rng.seeded(mode === "both" ? 6 : 7);
      const B = 4;
      const D = 8;
      const R = 2;
      const p = randomLora(rng, D, R, 4);
      const [xa, xp, xn] = [rand(rng, B * D), rand(rng, B * D), rand(rng, B * D)];
      const caches = [0, 1, 2].map(() => createAdapterCache(B, D, R, 64));
      const norms = new Float64Array(B);
      const z = [0, 1, 2].map(() => new Float64Array(B * D)); // za, zp, zn
      const dz = [0, 1, 2].map(() => new Float64Array(B * D));
      const work = createInfoNceWork(B);
      const L = () => {
        adapterForward(z[0], caches[0], xa, B, p);
        if (mode === "both") {
          adapterForward(z[1], caches[1], xp, B, p);
          adapterForward(z[2], caches[2], xn, B, p);
        } else {
          normalizeForward(z[1], norms, xp, B, D);
          normalizeForward(z[2], norms, xn, B, D);
        }
        return infoNceForwardBackward(dz[0], dz[1], dz[2], z[0], z[1], z[2], B, D, 20, work);
      };
      L();
      const dA = new Float64Array(R * D);
      const dB = new Float64Array(D * R);
      adapterBackward(dA, dB, null, dz[0], caches[0], xa, B, p);
      if (mode === "both") {
        adapterBackward(dA, dB, null, dz[1], caches[1], xp, B, p);
        adapterBackward(dA, dB, null, dz[2], caches[2], xn, B, p);
      }
      expectGrad(`${mode} dA`, dA, L, p.A);
      expectGrad(`${mode} dB`, dB, L, p.B);
    });
  }

  it("end to end: adapter → CoSENT → dA, dB", () => {
    const rng = Rng.seeded(8);
    const N = 6;
    const D = 8;
    const R = 3;
    const p = randomLora(rng, D, R, 6);
    const x1 = rand(rng, N * D);
    const x2 = rand(rng, N * D);
    const scores = [0.1, 0.9, 0.4, 0.4, 0.7, 0];
    const c1 = createAdapterCache(N, D, R, 64);
    const c2 = createAdapterCache(N, D, R, 64);
    const [z1, z2, dz1, dz2] = [0, 1, 2, 3].map(() => new Float64Array(N * D));
    const L = () => {
      adapterForward(z1, c1, x1, N, p);
      adapterForward(z2, c2, x2, N, p);
      return cosentForwardBackward(dz1, dz2, z1, z2, scores, N, D, 20);
    };
    L();
    const dA = new Float64Array(R * D);
    const dB = new Float64Array(D * R);
    adapterBackward(dA, dB, null, dz1, c1, x1, N, p);
    adapterBackward(dA, dB, null, dz2, c2, x2, N, p);
    expectGrad("cosent dA", dA, L, p.A);
    expectGrad("cosent dB", dB, L, p.B);
  });
});
