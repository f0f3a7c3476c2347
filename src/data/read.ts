import { readFile, stat } from "node:fs/promises";
import { extname } from "node:path";
import { CsvError, parse as parseCsv } from "csv-parse/sync";
import { EmbedtuneError } from "../errors.js";
import { buildDataset, describe, type Row } from "./validate.js";
import type { Dataset } from "./types.js";

/**
 * Reads a training or evaluation file into a validated Dataset. The extension picks the
 * format: .jsonl/.json (JSON Lines: one object per line), .csv, .tsv (header row first).
 * Columns follow sentence-transformers' conventions (see validate.ts); other columns are
 * ignored. Every problem is an EmbedtuneError naming the file, the 1-based line and the
 * field, so a user can open the file at the right place.
 */
export async function readDataset(path: string): Promise<Dataset> {
  const ext = extname(path).toLowerCase();
  const unreadable = (e: unknown): EmbedtuneError => {
    const code = (e as NodeJS.ErrnoException).code;
    const what = code === "ENOENT" || code === "ENOTDIR" ? "file not found" : `cannot read file (${code})`;
    return new EmbedtuneError("FILE_NOT_FOUND", what, { file: path });
  };
  const isDirectory = await stat(path).then((s) => s.isDirectory(), (e: unknown) => { throw unreadable(e); });
  if (isDirectory) {
    throw new EmbedtuneError("INVALID_ARGUMENT", "is a directory, not a data file", { file: path },
      "give the path of a .jsonl, .json, .csv or .tsv file");
  }
  if (!(ext in READERS)) {
    throw new EmbedtuneError("INVALID_ARGUMENT", `unsupported extension "${ext}"`, { file: path },
      "use .jsonl or .json (JSON Lines), .csv or .tsv with a header row");
  }
  const bytes = await readFile(path).catch((e: unknown) => { throw unreadable(e); });
  const text = decodeUtf8(path, bytes); // CSV/TSV parse the bytes, once known to be valid UTF-8
  return buildDataset(path, READERS[ext](path, bytes, text));
}

const READERS: Record<string, (file: string, bytes: Uint8Array, text: string) => Row[]> = {
  ".jsonl": (file, _bytes, text) => readJsonLines(file, text),
  ".json": (file, _bytes, text) => readJsonLines(file, text),
  ".csv": (file, bytes) => readDelimited(file, bytes, ","),
  ".tsv": (file, bytes) => readDelimited(file, bytes, "\t"),
};

/** Decodes strictly (a BOM is dropped); on bad bytes, finds the line that holds them. */
function decodeUtf8(file: string, bytes: Uint8Array): string {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  try {
    return decoder.decode(bytes);
  } catch {
    // 0x0A never occurs inside a multi-byte sequence, so each line decodes on its own.
    let line = 1;
    let start = 0;
    for (let i = 0; i <= bytes.length; i++) {
      if (i < bytes.length && bytes[i] !== 0x0a) continue;
      try {
        decoder.decode(bytes.subarray(start, i));
      } catch {
        break;
      }
      line++;
      start = i + 1;
    }
    throw new EmbedtuneError("INVALID_DATA", "invalid UTF-8", { file, line }, "save the file as UTF-8");
  }
}

/** No training example needs more: encoders read at most a few hundred tokens of a text. */
const MAX_LINE_CHARS = 16 * 1048576;

function readJsonLines(file: string, text: string): Row[] {
  const rows: Row[] = [];
  const lines = text.split("\n");
  // A pretty-printed .json file (one array) is the likely mistake behind most errors here.
  const hint = file.toLowerCase().endsWith(".json") ? "a .json file is read as JSON Lines: one object per line" : undefined;
  for (let i = 0; i < lines.length; i++) {
    const source = lines[i].endsWith("\r") ? lines[i].slice(0, -1) : lines[i];
    const where = { file, line: i + 1 };
    if (source.length > MAX_LINE_CHARS) {
      const mb = (Buffer.byteLength(source) / 1048576).toFixed(1);
      throw new EmbedtuneError("INVALID_DATA", `line is ${mb} MB long; lines over ${MAX_LINE_CHARS / 1048576} MB are refused`, where, "is this a binary or concatenated file?");
    }
    if (source.trim() === "") continue;
    let value: unknown;
    try {
      value = JSON.parse(source);
    } catch (e) {
      throw new EmbedtuneError("INVALID_DATA", `malformed JSON: ${clip((e as Error).message, 100)}`, where, hint);
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw new EmbedtuneError("INVALID_DATA", `expected a JSON object, found ${describe(value)}`, where,
        hint ?? "each line must be one JSON object");
    }
    rows.push({ line: i + 1, fields: value as Record<string, unknown> });
  }
  return rows;
}

/**
 * CSV (RFC 4180 quoting) or TSV (no quoting: a quote is an ordinary character, as in the
 * TSV files sentence-transformers and BEIR ship). Blank lines are skipped; the header names
 * the columns. A row's line is where it starts (a quoted field may span lines).
 */
function readDelimited(file: string, bytes: Uint8Array, delimiter: "," | "\t"): Row[] {
  // Lines are counted here from byte offsets: csv-parse's own count is off by one for each
  // CRLF inside a quoted field. A record starts at the first byte after the previous record
  // that is not a line break (blank lines are skipped).
  let cursor = 0;
  let cursorLine = 1;
  const lineOf = (end: number): number => {
    let pos = end;
    while (pos < bytes.length && (bytes[pos] === 0x0a || bytes[pos] === 0x0d)) pos++;
    for (; cursor < pos; cursor++) if (bytes[cursor] === 0x0a) cursorLine++;
    return cursorLine;
  };
  const records: { fields: string[]; line: number }[] = [];
  let end = 0; // byte offset just after the previous record and its line break
  try {
    parseCsv(bytes, {
      bom: true,
      delimiter,
      quote: delimiter === "," ? '"' : false,
      record_delimiter: ["\r\n", "\n"],
      relax_column_count: true, // checked below, with a clearer message
      max_record_size: MAX_LINE_CHARS, // a runaway quote or a binary file, not a record
      skip_empty_lines: true,
      on_record: (fields: string[], info) => {
        records.push({ fields, line: lineOf(end) });
        end = info.bytes;
        return null;
      },
    });
  } catch (e) {
    if (!(e instanceof CsvError)) throw e;
    const where = { file, line: lineOf(end) }; // the record that failed starts here
    if (e.code === "CSV_QUOTE_NOT_CLOSED") {
      throw new EmbedtuneError("INVALID_DATA", "unclosed quote: a quoted field in the record starting here never ends",
        where, 'inside a quoted field write a quote as ""');
    }
    const message = e.message.replace(/,? (at|on) line \d+/, "");
    throw new EmbedtuneError("INVALID_DATA", `malformed CSV: ${clip(message, 120)}`, where);
  }
  if (records.length === 0) return [];
  if (delimiter === "," && records[0].fields.length === 1 && records[0].fields[0].includes("\t")) {
    throw new EmbedtuneError("INVALID_DATA", `the ${looksLikeHeader(records[0].fields[0].split("\t")) ? "header" : "first row"} has one column containing tabs`,
      { file, line: records[0].line }, "a tab-separated file must be named .tsv");
  }
  if (!looksLikeHeader(records[0].fields)) return headerlessRows(file, records, delimiter);
  const header = records[0].fields.map((name) => name.trim());
  const seen = new Set<string>();
  for (const name of header) {
    if (name !== "" && seen.has(name)) {
      throw new EmbedtuneError("INVALID_DATA", "duplicate column in the header", { file, line: 1, field: name });
    }
    seen.add(name);
  }
  const rows: Row[] = [];
  for (const { fields, line } of records.slice(1)) {
    if (fields.length !== header.length) {
      throw new EmbedtuneError("INVALID_DATA",
        `expected ${header.length} columns as in the header, found ${fields.length}`, { file, line },
        delimiter === "," ? 'quote a text that contains a comma: "a, b"' : undefined);
    }
    const row: Record<string, unknown> = Object.create(null); // a column may be named "__proto__"
    header.forEach((name, j) => (row[name] = fields[j]));
    rows.push({ line, fields: row, headerLine: 1 });
  }
  if (rows.length === 0) {
    throw new EmbedtuneError("INVALID_DATA", "no examples (only a header row)", { file });
  }
  return rows;
}

/** Column names of sentence-transformers' conventions (validate.ts). */
const KNOWN_COLUMNS = new Set(["anchor", "positive", "negative", "query", "sentence1", "sentence2", "score", "text1", "text2", "label"]);
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/**
 * A first row is a header when it names a known column, or when every cell is a bare
 * identifier ("question", "doc_id"): texts and scores almost never are. Anything else
 * (sentences, numbers) is data, and the file is read by position.
 */
function looksLikeHeader(cells: string[]): boolean {
  const names = cells.map((c) => c.trim());
  return names.some((n) => KNOWN_COLUMNS.has(n)) || names.every((n) => IDENTIFIER.test(n));
}

/**
 * A file without a header: two columns are (anchor, positive); three are (sentence1,
 * sentence2, score) when the first row's third cell is a number, else (anchor, positive,
 * negative). Errors then name the field as "column 3 (score)".
 */
function headerlessRows(file: string, records: { fields: string[]; line: number }[], delimiter: "," | "\t"): Row[] {
  const first = records[0];
  const n = first.fields.length;
  let names: string[];
  if (n === 2) names = ["anchor", "positive"];
  else if (n === 3) names = DECIMAL_CELL.test(first.fields[2]) ? ["sentence1", "sentence2", "score"] : ["anchor", "positive", "negative"];
  else {
    throw new EmbedtuneError("INVALID_DATA", `no header row, and ${n} column${n === 1 ? "" : "s"}`, { file, line: first.line },
      "a file without a header has 2 columns (anchor, positive) or 3 (anchor, positive, negative | sentence1, sentence2, score); otherwise add a header row");
  }
  const labels = Object.fromEntries(names.map((name, j) => [name, `column ${j + 1} (${name})`]));
  return records.map(({ fields, line }) => {
    if (fields.length !== n) {
      throw new EmbedtuneError("INVALID_DATA", `expected ${n} columns as on line ${first.line} (no header row), found ${fields.length}`, { file, line },
        delimiter === "," ? 'quote a text that contains a comma: "a, b"' : undefined);
    }
    const row: Record<string, unknown> = Object.create(null);
    names.forEach((name, j) => (row[name] = fields[j]));
    return { line, fields: row, labels, columns: names };
  });
}

const DECIMAL_CELL = /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/;

function clip(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n)}...` : s;
}
