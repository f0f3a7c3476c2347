import { EmbedtuneError, type ErrorLocation } from "../errors.js";
import type { Dataset, PairExample, ScoredExample } from "./types.js";

/** A record as a reader found it, before validation. */
export interface Row {
  line: number; // 1-based line where the record starts
  fields: Record<string, unknown>; // by column / key name
  headerLine?: number; // CSV/TSV: the line that names the columns (where a missing column is reported)
  labels?: Record<string, string>; // headerless CSV/TSV: how errors name a field ("column 3 (score)")
  columns?: string[]; // headerless CSV/TSV: the names given to the columns by position
}

/**
 * sentence-transformers' column conventions. A row fits a convention when it has all its
 * required fields; every row of a file must fit the same one (with or without `negative`).
 */
interface Convention {
  kind: "pairs" | "scored";
  texts: readonly [string, string];
  score?: string; // scored conventions: the gold similarity field
  name: string;
}

const CONVENTIONS: readonly Convention[] = [
  { kind: "pairs", texts: ["anchor", "positive"], name: "anchor,positive[,negative]" },
  { kind: "pairs", texts: ["query", "positive"], name: "query,positive[,negative]" },
  { kind: "scored", texts: ["sentence1", "sentence2"], score: "score", name: "sentence1,sentence2,score" },
  { kind: "scored", texts: ["text1", "text2"], score: "label", name: "text1,text2,label" },
];

const ACCEPTED = CONVENTIONS.map((c) => c.name).join(" | ");
const NEGATIVE = "negative";

function required(c: Convention): string[] {
  return c.score === undefined ? [...c.texts] : [...c.texts, c.score];
}

/** Which convention a row follows; errors name the closest one's first missing field. */
function detect(file: string, row: Row): Convention {
  const keys = new Set(Object.keys(row.fields));
  const fits = CONVENTIONS.filter((c) => required(c).every((f) => keys.has(f)));
  const line = row.headerLine ?? row.line;
  if (fits.length > 1) {
    throw new EmbedtuneError("INVALID_DATA",
      `ambiguous fields: fits both ${fits[0].name} and ${fits[1].name}`, { file, line },
      "keep the fields of one convention");
  }
  if (fits.length === 1) return fits[0];
  let best = CONVENTIONS[0];
  let bestOverlap = -1;
  for (const c of CONVENTIONS) {
    const overlap = required(c).filter((f) => keys.has(f)).length;
    if (overlap > bestOverlap) [best, bestOverlap] = [c, overlap];
  }
  const found = keys.size > 0 ? [...keys].join(",") : "none";
  const what = `${bestOverlap > 0 ? "missing" : "no known fields"} (found: ${found}; accepted: ${ACCEPTED})`;
  const field = bestOverlap > 0 ? required(best).find((f) => !keys.has(f)) : undefined;
  throw new EmbedtuneError("INVALID_DATA", what, { file, line, field });
}

/** Validates rows into a Dataset: one convention throughout, non-empty texts, scores in range. */
export function buildDataset(file: string, rows: Row[]): Dataset {
  if (rows.length === 0) throw new EmbedtuneError("INVALID_DATA", "no examples (the file is empty)", { file });
  const first = detect(file, rows[0]);
  const firstHasNegative = first.kind === "pairs" && NEGATIVE in rows[0].fields;
  const pairs: PairExample[] = [];
  const scored: ScoredExample[] = [];
  let maxScore = 0;
  let firstOver5: { line: number; value: unknown } | undefined;

  for (const row of rows) {
    const at = (field?: string): ErrorLocation => ({ file, line: row.line, field: field === undefined ? undefined : (row.labels?.[field] ?? field) });
    const conv = detect(file, row);
    if (conv !== first) {
      throw new EmbedtuneError("INVALID_DATA",
        `mixed conventions: this line has ${conv.name} but line ${rows[0].line} has ${first.name}`, at(),
        "use one set of field names for the whole file");
    }
    const [t1, t2] = conv.texts;
    if (conv.kind === "pairs") {
      const hasNegative = NEGATIVE in row.fields;
      if (hasNegative !== firstHasNegative) {
        const what = hasNegative ? "present here but absent" : "absent here but present";
        throw new EmbedtuneError("INVALID_DATA", `${what} on line ${rows[0].line}`, at(NEGATIVE),
          "give every example a negative, or none");
      }
      const example: PairExample = { anchor: text(row.fields[t1], at(t1)), positive: text(row.fields[t2], at(t2)) };
      if (hasNegative) example.negative = text(row.fields[NEGATIVE], at(NEGATIVE));
      pairs.push(example);
    } else {
      const field = conv.score as string;
      const raw = row.fields[field];
      const score = parseScore(raw, at(field));
      if (score > 5 && firstOver5 === undefined) firstOver5 = { line: row.line, value: raw };
      maxScore = Math.max(maxScore, score);
      scored.push({ sentence1: text(row.fields[t1], at(t1)), sentence2: text(row.fields[t2], at(t2)), score });
    }
  }

  if (rows.length < 2) {
    throw new EmbedtuneError("INVALID_DATA", "only 1 example; at least 2 are needed", { file });
  }
  const columns = rows[0].columns ? { columns: rows[0].columns } : {};
  if (first.kind === "pairs") return { kind: "pairs", file, examples: pairs, hasNegatives: firstHasNegative, ...columns };
  if (firstOver5 !== undefined) {
    throw new EmbedtuneError("INVALID_DATA", `score ${String(firstOver5.value)} is out of range`,
      { file, line: firstOver5.line, field: rows[0].labels?.[first.score as string] ?? first.score },
      "scores must all lie in [0, 1] or all in [0, 5]");
  }
  // The scale is the smallest range that holds every score: a file of 0-1 scores stays as is,
  // STSb-style 0-5 scores are divided by 5.
  const scoreScale: 1 | 5 = maxScore <= 1 ? 1 : 5;
  if (scoreScale !== 1) for (const e of scored) e.score /= scoreScale;
  return { kind: "scored", file, examples: scored, scoreScale, ...columns };
}

function text(value: unknown, where: ErrorLocation): string {
  if (typeof value !== "string") {
    throw new EmbedtuneError("INVALID_DATA", `expected a string, found ${describe(value)}`, where);
  }
  if (value.trim() === "") throw new EmbedtuneError("INVALID_DATA", "empty text", where);
  return value; // kept as is: no trimming or normalisation
}

// A plain decimal number, as a CSV cell or a JSON string may hold it ("4.75", "1e-3").
const DECIMAL = /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/;

function parseScore(value: unknown, where: ErrorLocation): number {
  let x = Number.NaN;
  if (typeof value === "number") x = value;
  else if (typeof value === "string" && DECIMAL.test(value)) x = Number(value);
  if (!Number.isFinite(x)) {
    throw new EmbedtuneError("INVALID_DATA", `expected a finite number, found ${describe(value)}`, where);
  }
  if (x < 0) {
    throw new EmbedtuneError("INVALID_DATA", `negative score ${String(value).trim()}`, where,
      "scores must all lie in [0, 1] or all in [0, 5]");
  }
  return x;
}

/** A value as a message shows it: `number 3`, `null`, `an array`, `"text"`. */
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  return `${typeof value} ${String(value)}`;
}
