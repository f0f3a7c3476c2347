import { binShares, COLORS, esc, histogram, lineChart, type Series } from "./charts.js";

/**
 * The training report: one self-contained HTML page (inline CSS and SVG; no script, no
 * font, image or style sheet from anywhere) that `train --out` writes beside the adapter as
 * report.html. It shows the loss per step, the eval metric per evaluation, the metrics
 * before / at the best evaluation / at the end, and how the cosine similarities of positive
 * pairs and of in-batch negatives moved apart.
 */
export interface CosineSample {
  positive: Float64Array; // cosine of each positive pair
  negative: Float64Array; // cosine of in-batch negatives: (left of pair i, right of pair j), j != i, same batch
}

export interface ReportInput {
  title: string;
  createdAt: string;
  /** Rows of the settings table: what was trained on, how. */
  summary: Array<[string, string]>;
  losses: Array<{ step: number; loss: number }>;
  /** The primary metric at each evaluation (step 0 = the base encoder). */
  evals: Array<{ step: number; value: number }>;
  primary?: string;
  bestStep?: number;
  metrics: { before?: Record<string, number>; best?: Record<string, number>; after?: Record<string, number> };
  /** Cosine histograms of the base encoder (before) and with the saved adapter (after). */
  cosines?: { source: string; before: CosineSample; after: CosineSample };
  /** Why the cosine histograms are left out, when they are (one line in their place). */
  cosinesNote?: string;
}

const WIDE = { width: 960, height: 300 };
const HALF = { width: 470, height: 280 };

export function renderReport(r: ReportInput): string {
  const sections: string[] = [];
  sections.push(`<section><h2>Training loss</h2>${lossChart(r.losses)}</section>`);
  if (r.evals.length > 0 && r.primary) {
    const points: Array<[number, number]> = r.evals.map((e) => [e.step, e.value]);
    const best = r.evals.find((e) => e.step === r.bestStep);
    const chart = lineChart([{ points, color: COLORS.metric, markers: true, label: `${r.primary} on the eval set` }],
      { ...WIDE, xLabel: "step (0 = base encoder)", yLabel: r.primary }, best ? [best.step, best.value] : undefined);
    const note = best ? `<p class="note">Ringed: the best evaluation (step ${best.step}), the adapter that was saved.</p>` : "";
    sections.push(`<section><h2>Eval metric per evaluation</h2>${chart}${note}</section>`);
  }
  if (r.metrics.before || r.metrics.after) sections.push(`<section><h2>Metrics</h2>${metricsTable(r.metrics, r.primary, r.bestStep)}</section>`);
  if (r.cosines) sections.push(`<section><h2>Cosine similarity: positive pairs vs in-batch negatives</h2>${cosineCharts(r.cosines)}</section>`);
  else if (r.cosinesNote) sections.push(`<section><h2>Cosine similarity: positive pairs vs in-batch negatives</h2><p class="note">${esc(r.cosinesNote)}</p></section>`);
  sections.push(`<section><h2>Run</h2><table class="kv">${r.summary.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join("")}</table></section>`);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(r.title)} - embedtune training report</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1>${esc(r.title)}</h1><p>embedtune training report, ${esc(r.createdAt)}</p></header>
${sections.join("\n")}
</body>
</html>
`;
}

function lossChart(losses: ReportInput["losses"]): string {
  const raw: Array<[number, number]> = losses.map((h) => [h.step, h.loss]);
  const series: Series[] = [{ points: thin(raw, 1500), color: COLORS.loss, width: 1, label: "loss per step" }];
  const window = Math.max(1, Math.round(losses.length / 40));
  if (window > 1) series.push({ points: thin(movingAverage(raw, window), 600), color: COLORS.lossSmooth, width: 2.5, label: `mean of ${window} steps` });
  return lineChart(series, { ...WIDE, xLabel: "step", yLabel: "training loss" });
}

function cosineCharts(c: NonNullable<ReportInput["cosines"]>): string {
  const all = [c.before.positive, c.before.negative, c.after.positive, c.after.negative];
  let lo = Infinity;
  let hi = -Infinity;
  for (const a of all) for (const v of a) if (Number.isFinite(v)) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  if (!Number.isFinite(lo)) [lo, hi] = [0, 1];
  lo = Math.max(-1, Math.floor(lo * 20) / 20);
  hi = Math.min(1, Math.ceil(hi * 20) / 20);
  if (hi <= lo) hi = lo + 0.05;
  const yMax = Math.max(...all.map((a) => Math.max(...binShares(a, [lo, hi])))); // one y axis for both charts
  const chart = (s: CosineSample, when: string): string => histogram([
    { values: s.positive, color: COLORS.positive, label: "positive pairs" },
    { values: s.negative, color: COLORS.negative, label: "in-batch negatives" },
  ], { ...HALF, xLabel: `cosine similarity, ${when}`, yLabel: "share of pairs" }, [lo, hi], undefined, yMax);
  const gap = (s: CosineSample): string => (mean(s.positive) - mean(s.negative)).toFixed(3);
  return `<div class="row"><figure>${chart(c.before, "base encoder")}<figcaption>Before: mean gap ${gap(c.before)}</figcaption></figure>` +
    `<figure>${chart(c.after, "with the adapter")}<figcaption>After: mean gap ${gap(c.after)}</figcaption></figure></div>` +
    `<p class="note">${esc(c.source)}</p>`;
}

function metricsTable(m: ReportInput["metrics"], primary?: string, bestStep?: number): string {
  const cols: Array<[string, Record<string, number> | undefined]> = [["before", m.before], [bestStep !== undefined ? `best (step ${bestStep})` : "best", m.best], ["final", m.after]];
  const shown = cols.filter(([, v]) => v !== undefined) as Array<[string, Record<string, number>]>;
  const names = Object.keys(shown[0]?.[1] ?? {});
  const saved = m.best ?? m.after;
  const head = `<tr><th>metric</th>${shown.map(([h]) => `<th>${esc(h)}</th>`).join("")}${m.before && saved ? "<th>change</th>" : ""}</tr>`;
  const rows = names.map((name) => {
    const cells = shown.map(([, v]) => `<td>${num(v[name])}</td>`).join("");
    const delta = m.before && saved ? saved[name] - m.before[name] : Number.NaN;
    const change = m.before && saved ? `<td class="${delta > 0 ? "up" : delta < 0 ? "down" : ""}">${Number.isFinite(delta) ? (delta >= 0 ? "+" : "") + delta.toFixed(4) : "-"}</td>` : "";
    return `<tr${name === primary ? ' class="primary"' : ""}><th>${esc(name)}${name === primary ? " (primary)" : ""}</th>${cells}${change}</tr>`;
  });
  return `<table class="metrics">${head}${rows.join("")}</table>`;
}

function num(v: number | undefined): string {
  return v === undefined || !Number.isFinite(v) ? "-" : v.toFixed(4);
}

function mean(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  return a.length > 0 ? s / a.length : Number.NaN;
}

function movingAverage(points: Array<[number, number]>, window: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let sum = 0;
  for (let i = 0; i < points.length; i++) {
    sum += points[i][1];
    if (i >= window) sum -= points[i - window][1];
    if (i >= window - 1) out.push([points[i][0], sum / window]);
  }
  return out;
}

/** At most `max` points, evenly spaced, first and last kept. */
function thin<T>(points: T[], max: number): T[] {
  if (points.length <= max) return points;
  const out: T[] = [];
  for (let i = 0; i < max; i++) out.push(points[Math.round((i * (points.length - 1)) / (max - 1))]);
  return out;
}

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#111827;background:#fff;margin:0 auto;padding:16px 24px;max-width:980px}
header h1{font-size:20px;margin:0}header p{color:#6b7280;margin:2px 0 8px}
h2{font-size:15px;margin:18px 0 6px;border-bottom:1px solid #e5e7eb;padding-bottom:3px}
svg.chart{display:block;font-size:11px;fill:#374151}svg.chart .label{font-size:12px;fill:#111827}
.row{display:flex;gap:16px}figure{margin:0}figcaption{color:#374151;font-size:13px;margin:2px 0 0 58px}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}td,th{padding:2px 10px;text-align:right;border-bottom:1px solid #f3f4f6}
th:first-child{text-align:left;font-weight:500}tr.primary{font-weight:700;background:#f0fdf4}
td.up{color:#15803d}td.down{color:#b91c1c}table.kv td{text-align:left}
.note{color:#6b7280;font-size:12px;margin:4px 0}
`;
