/**
 * Every failure a user can cause is an EmbedtuneError: it says what was wrong, where
 * (file, line, field) and, when we know, how to fix it. The CLI prints `message` as one
 * line and exits non-zero; library callers can branch on `code`.
 */
export type ErrorCode =
  | "INVALID_DATA" // a data file's content is wrong (line/field given)
  | "FILE_NOT_FOUND"
  | "INVALID_ARGUMENT" // a flag or config value out of range
  | "INVALID_ADAPTER" // adapter folder unreadable, wrong version or wrong base model
  | "INVALID_FILE" // a binary file (safetensors, npy, cache) is malformed
  | "OUTPUT_EXISTS"
  | "WRITE_FAILED" // disk full, read-only, no permission: nothing was changed
  | "DIVERGED"
  | "INTERRUPTED"; // SIGINT/SIGTERM: a checkpoint was saved where possible

export interface ErrorLocation {
  file?: string;
  line?: number; // 1-based
  field?: string;
}

export class EmbedtuneError extends Error {
  readonly code: ErrorCode;
  readonly file?: string;
  readonly line?: number;
  readonly field?: string;

  constructor(code: ErrorCode, what: string, where: ErrorLocation = {}, hint?: string) {
    super(formatMessage(what, where, hint));
    this.name = "EmbedtuneError";
    this.code = code;
    this.file = where.file;
    this.line = where.line;
    this.field = where.field;
  }
}

/** `file:line: field "x": what (hint)`, every part optional but `what`. */
function formatMessage(what: string, where: ErrorLocation, hint?: string): string {
  let place = where.file ?? "";
  if (where.file !== undefined && where.line !== undefined) place += `:${where.line}`;
  const field = where.field !== undefined ? `field "${where.field}": ` : "";
  const head = place ? `${place}: ` : "";
  const tail = hint ? ` (${hint})` : "";
  return `${head}${field}${what}${tail}`.replace(/\s*\n\s*/g, " ");
}
