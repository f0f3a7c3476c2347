/**
 * Small inline-SVG charts for the training report: no library, no script, no network. Every
 * chart is a fixed-size <svg> with its axes, so the page renders the same in any browser
 * and in a headless one. Colours are constants so a test can find each chart's pixels.
 */

export const COLORS = {
  loss: "#93c5fd", // raw loss per step
  lossSmooth: "#1d4ed8", // moving average
  metric: "#15803d", // eval metric per evaluation
  best: "#dc2626", // the best evaluation
  positive: "#0f766e", // histogram: positive pairs
  negative: "#b45309", // histogram: in-batch negatives
  axis: "#4b5563",
  grid: "#e5e7eb",
} as const;

export interface Series {
  points: Array<[number, number]>; // (x, y), x increasing
  color: string;
  width?: number;
  markers?: boolean; // a dot on every point
  label: string;
}

export interface ChartBox {
  width: number;
  height: number;
  xLabel: string;
  yLabel: string;
}

const M = { left: 58, right: 16, top: 14, bottom: 44 }; // margins inside the svg, px

/** A line chart of one or more series on shared axes; `highlight` rings one point. */
export function lineChart(series: Series[], box: ChartBox, highlight?: [number, number]): string {
  const all = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  if (all.length === 0) return emptyChart(box, "no data");
  const xs = niceRange(Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0])));
  const ys = niceRange(Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1])));
  const frame = axes(box, xs, ys);
  const body: string[] = [];
  for (const s of series) {
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    if (pts.length === 0) continue;
    const d = pts.map(([x, y], i) => `${i === 0 ? "M" : "L"}${fmt(frame.x(x))},${fmt(frame.y(y))}`).join("");
    body.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="${s.width ?? 2}" stroke-linejoin="round" data-series="${esc(s.label)}"/>`);
    if (s.markers || pts.length === 1) {
      for (const [x, y] of pts) body.push(`<circle cx="${fmt(frame.x(x))}" cy="${fmt(frame.y(y))}" r="4.5" fill="${s.color}"/>`);
    }
  }
  if (highlight && Number.isFinite(highlight[1])) {
    body.push(`<circle cx="${fmt(frame.x(highlight[0]))}" cy="${fmt(frame.y(highlight[1]))}" r="8" fill="none" stroke="${COLORS.best}" stroke-width="3"/>`);
  }
  const legend = series.map((s, i) => legendItem(M.left + 8 + i * 150, M.top + 4, s.color, s.label)).join("");
  return svg(box, frame.svg + body.join("") + legend);
}

export interface HistogramSet {
  values: ArrayLike<number>;
  color: string;
  label: string;
}

/**
 * Histograms of several sets over the same bins, side by side within each bin, as the share
 * of each set (so 300 positives and 20,000 negatives compare). `range` fixes the bins so two
 * charts (before / after) share their x axis.
 */
export function histogram(sets: HistogramSet[], box: ChartBox, range: [number, number], bins = HISTOGRAM_BINS, yMax = 0): string {
  const [lo, hi] = range;
  const width = (hi - lo) / bins;
  const shares = sets.map((s) => binShares(s.values, range, bins));
  const top = Math.max(0.01, yMax, ...shares.flatMap((c) => [...c]));
  const ys = niceRange(0, top);
  const frame = axes(box, [lo, hi, niceStep(hi - lo)], ys);
  const bars: string[] = [];
  const slot = (frame.x(lo + width) - frame.x(lo)) / sets.length;
  shares.forEach((counts, k) => {
    counts.forEach((share, b) => {
      if (share <= 0) return;
      const x = frame.x(lo + b * width) + k * slot;
      const y = frame.y(share);
      bars.push(`<rect x="${fmt(x)}" y="${fmt(y)}" width="${fmt(Math.max(1, slot - 0.5))}" height="${fmt(frame.y(0) - y)}" fill="${sets[k].color}"/>`);
    });
  });
  const legend = sets.map((s, i) => legendItem(M.left + 8 + i * 190, M.top + 4, s.color, `${s.label} (${s.values.length.toLocaleString("en-US")})`)).join("");
  return svg(box, frame.svg + `<g data-bars="${bars.length}">${bars.join("")}</g>` + legend);
}

export const HISTOGRAM_BINS = 30;

/** The share of `values` in each of `bins` equal bins over `range` (values outside go to the end bins). */
export function binShares(values: ArrayLike<number>, range: [number, number], bins = HISTOGRAM_BINS): Float64Array {
  const [lo, hi] = range;
  const width = (hi - lo) / bins;
  const counts = new Float64Array(bins);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) continue;
    counts[Math.min(bins - 1, Math.max(0, Math.floor((v - lo) / width)))]++;
  }
  return counts.map((c) => (values.length > 0 ? c / values.length : 0));
}

interface Frame {
  svg: string;
  x: (v: number) => number;
  y: (v: number) => number;
}

function axes(box: ChartBox, xs: [number, number, number], ys: [number, number, number]): Frame {
  const [x0, x1, xStep] = xs;
  const [y0, y1, yStep] = ys;
  const pw = box.width - M.left - M.right;
  const ph = box.height - M.top - M.bottom;
  const x = (v: number): number => M.left + ((v - x0) / (x1 - x0 || 1)) * pw;
  const y = (v: number): number => M.top + ph - ((v - y0) / (y1 - y0 || 1)) * ph;
  const parts: string[] = [];
  for (const v of ticks(y0, y1, yStep)) {
    parts.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${fmt(y(v))}" y2="${fmt(y(v))}" stroke="${COLORS.grid}"/>`);
    parts.push(`<text x="${M.left - 6}" y="${fmt(y(v) + 4)}" text-anchor="end">${tickLabel(v, yStep)}</text>`);
  }
  for (const v of ticks(x0, x1, xStep)) {
    parts.push(`<line x1="${fmt(x(v))}" x2="${fmt(x(v))}" y1="${M.top + ph}" y2="${M.top + ph + 5}" stroke="${COLORS.axis}"/>`);
    parts.push(`<text x="${fmt(x(v))}" y="${M.top + ph + 18}" text-anchor="middle">${tickLabel(v, xStep)}</text>`);
  }
  parts.push(`<path d="M${M.left},${M.top}V${M.top + ph}H${M.left + pw}" fill="none" stroke="${COLORS.axis}"/>`);
  parts.push(`<text x="${M.left + pw / 2}" y="${box.height - 6}" text-anchor="middle" class="label">${esc(box.xLabel)}</text>`);
  parts.push(`<text transform="translate(14 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle" class="label">${esc(box.yLabel)}</text>`);
  return { svg: parts.join(""), x, y };
}

function svg(box: ChartBox, inner: string): string {
  return `<svg class="chart" width="${box.width}" height="${box.height}" viewBox="0 0 ${box.width} ${box.height}" role="img" aria-label="${esc(box.yLabel)} by ${esc(box.xLabel)}">${inner}</svg>`;
}

function emptyChart(box: ChartBox, message: string): string {
  return svg(box, `<text x="${box.width / 2}" y="${box.height / 2}" text-anchor="middle">${esc(message)}</text>`);
}

function legendItem(x: number, y: number, color: string, label: string): string {
  return `<rect x="${x}" y="${y}" width="12" height="12" fill="${color}"/><text x="${x + 17}" y="${y + 10}">${esc(label)}</text>`;
}

/** [lo, hi, step] widened to round numbers, about 5 ticks. */
export function niceRange(min: number, max: number): [number, number, number] {
  if (min === max) {
    const pad = Math.abs(min) > 0 ? Math.abs(min) * 0.1 : 1;
    [min, max] = [min - pad, max + pad];
  }
  const step = niceStep(max - min);
  return [Math.floor(min / step + 1e-9) * step, Math.ceil(max / step - 1e-9) * step, step];
}

function niceStep(span: number): number {
  const raw = span / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

function ticks(lo: number, hi: number, step: number): number[] {
  const out: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

function tickLabel(v: number, step: number): string {
  const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toFixed(decimals);
}

function fmt(v: number): string {
  return (Math.round(v * 10) / 10).toString();
}

export function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}
