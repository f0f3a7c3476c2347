/** A metrics table for the terminal: one row per metric, one column per run (before/after). */
export function metricsTable(columns: Record<string, Record<string, number> | undefined>, primary?: string): string {
  const names = Object.keys(Object.values(columns).find((c) => c !== undefined) ?? {});
  const heads = Object.keys(columns).filter((k) => columns[k] !== undefined);
  const width = Math.max(...names.map((n) => n.length), 6);
  const lines = [`${"metric".padEnd(width)}  ${heads.map((h) => h.padStart(8)).join("  ")}`];
  for (const name of names) {
    const cells = heads.map((h) => formatNumber(columns[h]![name]).padStart(8));
    lines.push(`${name.padEnd(width)}  ${cells.join("  ")}${name === primary ? "  <- primary" : ""}`);
  }
  return lines.join("\n");
}

function formatNumber(v: number | undefined): string {
  return v === undefined || Number.isNaN(v) ? "-" : v.toFixed(4);
}
