/**
 * Checks the hand-written maths against PyTorch reference values (../shared/fixtures, beside
 * the repository; see its README for the exact formulas). Every tensor is compared with
 * |got − want| ≤ REL · max|want| + ABS, and the worst difference of each is printed at the end.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import {
  type OutputLora, adapterBackward, adapterForward, createAdapterCache, normalizeForward,
} from "../src/lora/output-adapter.js";
import { cosentForwardBackward, createCosentWork } from "../src/losses/cosent.js";
import { createInfoNceWork, infoNceForwardBackward, type InfoNceParts } from "../src/losses/infonce.js";
import { AdamW } from "../src/optim/adamw.js";
import { clipGradNorm } from "../src/optim/clip.js";
import { linearWarmupDecay, warmupSteps } from "../src/optim/schedule.js";
import { matmulABt } from "../src/tensor/ops.js";

const REL = 1e-5; // ten times tighter than the README's suggested 1e-4
const ABS = 1e-7;

// ---- locating and loading the fixtures -------------------------------------------------------

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const candidates = [
  process.env.EMBEDTUNE_FIXTURES,
  path.resolve(repoRoot, "../shared/fixtures"),
  path.resolve(repoRoot, "shared/fixtures"),
].filter((p): p is string => !!p);
const fixtureDir = candidates.find((d) => existsSync(path.join(d, "manifest.json")));
if (!fixtureDir) {
  throw new Error(
    `PyTorch fixtures not found: looked for manifest.json in ${candidates.join(", ")}. ` +
      "They live in shared/fixtures beside the repository (or set EMBEDTUNE_FIXTURES).",
  );
}

interface Tensor { shape: number[]; data: number[] }
type Json = any;

function load(name: string): Json {
  return JSON.parse(readFileSync(path.join(fixtureDir!, name), "utf8"));
}
function f32(t: Tensor): Float32Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  if (t.data.length !== n) throw new Error(`tensor of shape [${t.shape}] has ${t.data.length} values`);
  return Float32Array.from(t.data);
}

const manifest: { files: { file: string; kind: string; bytes: number; sha256: string }[] } = load("manifest.json");
const byKind = (kind: string) => manifest.files.filter((f) => f.kind === kind).map((f) => f.file);

// ---- comparison ------------------------------------------------------------------------------

const worst: string[] = [];
let worstRel = 0;

/** A scalar `got` goes in as num(x). A NaN anywhere counts as an infinite difference. */
function close(label: string, got: ArrayLike<number>, want: ArrayLike<number> | Tensor | number): void {
  const w = typeof want === "number" ? [want] : "data" in want ? want.data : want;
  expect(got.length, `${label}: length`).toBe(w.length);
  let maxDiff = 0;
  let maxWant = 0;
  for (let e = 0; e < w.length; e++) {
    const d = Math.abs(got[e] - w[e]);
    maxDiff = Number.isNaN(d) ? Infinity : Math.max(maxDiff, d);
    maxWant = Math.max(maxWant, Math.abs(w[e]));
  }
  const tol = REL * maxWant + ABS;
  const rel = maxDiff / (maxWant || 1);
  worst.push(`${label}: max diff ${maxDiff.toExponential(2)} (${rel.toExponential(2)} of max|want| ${maxWant.toPrecision(3)})`);
  worstRel = Math.max(worstRel, rel);
  expect(maxDiff <= tol, `${label}: max |got - want| = ${maxDiff} > tolerance ${tol} (max |want| ${maxWant})`).toBe(true);
}
const num = (x: number): number[] => [x];

afterAll(() => {
  console.log(`fixture comparisons (worst relative ${worstRel.toExponential(2)}):\n  ${worst.join("\n  ")}`);
});

// ---- tests -----------------------------------------------------------------------------------

describe("fixture files", () => {
  it("match the manifest (size and sha256) and every JSON file is listed", () => {
    const listed = new Set(manifest.files.map((f) => f.file));
    for (const f of readdirSync(fixtureDir!)) {
      if (f.endsWith(".json") && f !== "manifest.json") expect(listed.has(f), `${f} not in manifest`).toBe(true);
    }
    for (const f of manifest.files) {
      const bytes = readFileSync(path.join(fixtureDir!, f.file));
      expect(bytes.length, f.file).toBe(f.bytes);
      expect(createHash("sha256").update(bytes).digest("hex"), f.file).toBe(f.sha256);
    }
    for (const kind of ["infonce", "cosent", "adamw", "clip", "lr_schedule", "train_steps"]) {
      expect(byKind(kind).length, `fixtures of kind ${kind}`).toBeGreaterThan(0);
    }
  });
});

/** Adapter forward on anchors (and positives when `on` is "both", else just normalise them), InfoNCE, backward. */
function infoNceStep(p: OutputLora, anchors: Float32Array, positives: Float32Array, b: number, scale: number, on: string) {
  const { dim: d, r } = p;
  const ca = createAdapterCache(b, d, r);
  const cp = createAdapterCache(b, d, r);
  const [za, zp, dza, dzp] = [0, 1, 2, 3].map(() => new Float32Array(b * d));
  adapterForward(za, ca, anchors, b, p);
  if (on === "both") adapterForward(zp, cp, positives, b, p);
  else normalizeForward(zp, new Float32Array(b), positives, b, d); // query-only mode: documents just normalised
  const work = createInfoNceWork(b);
  const parts: InfoNceParts = { lossAnchorToPositive: NaN, lossPositiveToAnchor: NaN };
  const loss = infoNceForwardBackward(dza, dzp, null, za, zp, null, b, d, scale, work, parts);
  const dA = new Float32Array(r * d);
  const dB = new Float32Array(d * r);
  adapterBackward(dA, dB, null, dza, ca, anchors, b, p);
  if (on === "both") adapterBackward(dA, dB, null, dzp, cp, positives, b, p);
  return { loss, parts, work, ca, cp, za, zp, dza, dzp, dA, dB };
}

describe("InfoNCE through the output adapter", () => {
  for (const file of byKind("infonce")) {
    it(file, () => {
      const fx = load(file);
      const { d, r, batch: b, alpha, scale, adapter_on: on } = fx.config;
      const p = { dim: d, r, loraAlpha: alpha, A: f32(fx.inputs.A), B: f32(fx.inputs.B) };
      const positives = f32(fx.inputs.positives);
      const s = infoNceStep(p, f32(fx.inputs.anchors), positives, b, scale, on);
      const logits = new Float32Array(b * b);
      matmulABt(logits, s.za, s.zp, b, d, b, scale);

      const im = fx.intermediates;
      const o = fx.outputs;
      close(`${file} ua`, s.ca.U, im.ua);
      if (on === "both") close(`${file} up`, s.cp.U, im.up);
      close(`${file} ha`, s.ca.H, im.ha);
      close(`${file} hp`, on === "both" ? s.cp.H : positives, im.hp);
      close(`${file} za`, s.za, o.za);
      close(`${file} zp`, s.zp, o.zp);
      close(`${file} logits`, logits, im.logits);
      close(`${file} loss`, num(s.loss), o.loss);
      close(`${file} loss_anchor_to_positive`, num(s.parts.lossAnchorToPositive), im.loss_anchor_to_positive);
      close(`${file} loss_positive_to_anchor`, num(s.parts.lossPositiveToAnchor), im.loss_positive_to_anchor);
      close(`${file} dlogits`, s.work.Sp.subarray(0, b * b), im.dlogits);
      close(`${file} dza`, s.dza, im.dza);
      close(`${file} dzp`, s.dzp, im.dzp);
      close(`${file} dA`, s.dA, o.dA);
      close(`${file} dB`, s.dB, o.dB);
      if (o.dA.data.every((v: number) => v === 0)) {
        expect(s.dA.every((v) => v === 0), `${file}: dA must be exactly 0 when B = 0`).toBe(true);
      }
    });
  }
});

describe("CoSENT through the output adapter", () => {
  for (const file of byKind("cosent")) {
    it(file, () => {
      const fx = load(file);
      const { d, r, n_pairs: n, alpha, scale } = fx.config;
      const p = { dim: d, r, loraAlpha: alpha, A: f32(fx.inputs.A), B: f32(fx.inputs.B) };
      const x1 = f32(fx.inputs.x1);
      const x2 = f32(fx.inputs.x2);
      const scores = f32(fx.inputs.scores);
      const c1 = createAdapterCache(n, d, r);
      const c2 = createAdapterCache(n, d, r);
      const z1 = new Float32Array(n * d);
      const z2 = new Float32Array(n * d);
      adapterForward(z1, c1, x1, n, p);
      adapterForward(z2, c2, x2, n, p);
      const dz1 = new Float32Array(n * d);
      const dz2 = new Float32Array(n * d);
      const work = createCosentWork(n);
      const loss = cosentForwardBackward(dz1, dz2, z1, z2, scores, n, d, scale, work);
      const dA = new Float32Array(r * d);
      const dB = new Float32Array(d * r);
      adapterBackward(dA, dB, null, dz1, c1, x1, n, p);
      adapterBackward(dA, dB, null, dz2, c2, x2, n, p);

      close(`${file} h1`, c1.H, fx.intermediates.h1);
      close(`${file} h2`, c2.H, fx.intermediates.h2);
      close(`${file} z1`, z1, fx.outputs.z1);
      close(`${file} z2`, z2, fx.outputs.z2);
      close(`${file} cos`, work.cos, fx.intermediates.cos);
      close(`${file} loss`, num(loss), fx.outputs.loss);
      close(`${file} dcos`, work.dcos, fx.intermediates.dcos);
      close(`${file} dA`, dA, fx.outputs.dA);
      close(`${file} dB`, dB, fx.outputs.dB);
    });
  }
});

describe("AdamW", () => {
  for (const file of byKind("adamw")) {
    for (const c of load(file).cases) {
      it(`${file} ${c.name}`, () => {
        const h = c.hyper;
        const A = f32(c.params0.A);
        const B = f32(c.params0.B);
        const opt = new AdamW([A, B], { lr: h.lr, betas: [h.beta1, h.beta2], eps: h.eps, weightDecay: h.weight_decay });
        const steps = [[c.grads_step1, c.after_step1], [c.grads_step2, c.after_step2]];
        steps.forEach(([grads, after], k) => {
          opt.step([f32(grads.A), f32(grads.B)], h.lr);
          const st = opt.state();
          ["A", "B"].forEach((name, i) => {
            const label = `${c.name} step ${k + 1} ${name}`;
            close(`${label} param`, i === 0 ? A : B, after[name].param);
            close(`${label} exp_avg`, st.m[i], after[name].exp_avg);
            close(`${label} exp_avg_sq`, st.v[i], after[name].exp_avg_sq);
            expect(st.step, label).toBe(after[name].step);
          });
        });
      });
    }
  }
});

describe("gradient clipping", () => {
  for (const file of byKind("clip")) {
    for (const c of load(file).cases) {
      it(`${file} ${c.name}`, () => {
        const gA = f32(c.grads.A);
        const gB = f32(c.grads.B);
        const res = clipGradNorm([gA, gB], c.max_norm);
        close(`clip ${c.name} total_norm`, num(res.totalNorm), c.total_norm);
        expect(res.clipped).toBe(c.clipped);
        close(`clip ${c.name} A`, gA, c.clipped_grads.A);
        close(`clip ${c.name} B`, gB, c.clipped_grads.B);
      });
    }
  }
});

describe("learning-rate schedule", () => {
  for (const file of byKind("lr_schedule")) {
    for (const c of load(file).cases) {
      it(`${file} total ${c.total_steps} ratio ${c.warmup_ratio}`, () => {
        expect(warmupSteps(c.total_steps, c.warmup_ratio)).toBe(c.warmup_steps);
        const lr = linearWarmupDecay(c.base_lr, c.total_steps, c.warmup_ratio);
        const got = Array.from({ length: c.total_steps }, (_, k) => lr(k));
        expect(got, "float64 lr per step (same operation order as transformers)").toEqual(c.lr_per_step_float64);
        expect(got.map(Math.fround), "float32-rounded lr per step").toEqual(c.lr_per_step);
      });
    }
  }
});

describe("two training steps: forward, InfoNCE, backward, clip, AdamW", () => {
  for (const file of byKind("train_steps")) {
    it(file, () => {
      const fx = load(file);
      const cfg = fx.config;
      const b = cfg.batch;
      const p = { dim: cfg.d, r: cfg.r, loraAlpha: cfg.alpha, A: f32(fx.inputs.A0), B: f32(fx.inputs.B0) };
      const hyper = { lr: cfg.lr, betas: [cfg.beta1, cfg.beta2] as [number, number], eps: cfg.eps, weightDecay: cfg.weight_decay };
      const opt = new AdamW([p.A, p.B], hyper);
      fx.steps.forEach((want: Json, k: number) => {
        const batch = fx.inputs.batches[k];
        const label = `${file} step ${k + 1}`;
        const { loss, dA, dB } = infoNceStep(p, f32(batch.anchors), f32(batch.positives), b, cfg.scale, "both");
        close(`${label} loss`, num(loss), want.loss);
        close(`${label} dA`, dA, want.dA);
        close(`${label} dB`, dB, want.dB);
        const clip = clipGradNorm([dA, dB], cfg.max_grad_norm);
        close(`${label} grad_norm`, num(clip.totalNorm), want.grad_norm);
        expect(clip.clipped, `${label} clipped`).toBe(want.clipped);
        close(`${label} dA_clipped`, dA, want.dA_clipped);
        close(`${label} dB_clipped`, dB, want.dB_clipped);
        opt.step([dA, dB], cfg.lr);
        close(`${label} A_after`, p.A, want.A_after);
        close(`${label} B_after`, p.B, want.B_after);
      });
    });
  }
});
