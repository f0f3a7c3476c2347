/**
 * Memory and time of retrieval evaluation on a large corpus: random unit vectors stand in
 * for a 100k-document corpus (D = 512) and 1,000 queries, evaluated through an adapter as
 * `embedtune eval` does (blocked exact search; the nq x nc score matrix is never built).
 *   npx tsx scripts/eval-memory.ts [docs] [queries]
 * Run under /usr/bin/time -v to see the peak resident memory.
 */
import { initOutputLora } from "../src/lora/output-adapter.js";
import { evaluate } from "../src/train/evaluate.js";
import { Rng } from "../src/util/rng.js";

const nc = Number(process.argv[2] ?? 100_000);
const nq = Number(process.argv[3] ?? 1_000);
const D = 512;
const rng = Rng.seeded(1);
const vectors = new Float32Array((nc + nq) * D); // (T, D) base vectors: corpus rows, then queries
for (let i = 0; i < vectors.length; i++) vectors[i] = rng.uniform() - 0.5;
const lora = initOutputLora(D, 16, 32, rng);
lora.B.forEach((_, i) => (lora.B[i] = (rng.uniform() - 0.5) * 0.01));
const corpus = Int32Array.from({ length: nc }, (_, i) => i);
const queries = Int32Array.from({ length: nq }, (_, i) => nc + i);
const relevant = Array.from({ length: nq }, () => [rng.int(nc), rng.int(nc)]);
const started = Date.now();
const result = evaluate({ kind: "retrieval", queries, corpus, relevant }, vectors, D, lora, "both");
const seconds = (Date.now() - started) / 1000;
const mb = (b: number) => (b / 2 ** 20).toFixed(0);
console.log(`${nc} docs x ${nq} queries, D ${D}: ${seconds.toFixed(1)} s; ndcg@10 ${result.metrics["ndcg@10"].toFixed(4)}; ` +
  `base vectors ${mb(vectors.byteLength)} MiB; rss now ${mb(process.memoryUsage().rss)} MiB`);
