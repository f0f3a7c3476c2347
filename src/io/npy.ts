import { open, readFile } from "node:fs/promises";

import { EmbedtuneError } from "../errors.js";

/**
 * NumPy .npy (format 1.0-3.0): magic "\x93NUMPY", version, header length (u16 for 1.x,
 * u32 for 2.x/3.x), a Python-dict header {'descr', 'fortran_order', 'shape'}, then the data.
 * We read and write little-endian float32 ('<f4') 2-D arrays in C order: (N, d) vectors.
 */
export async function readNpyMatrix(file: string): Promise<{ rows: number; cols: number; data: Float32Array }> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new EmbedtuneError("FILE_NOT_FOUND", `cannot read vectors file (${(err as NodeJS.ErrnoException).code ?? err})`, { file });
  }
  return decodeNpyMatrix(bytes, file);
}

export function decodeNpyMatrix(bytes: Uint8Array, file: string): { rows: number; cols: number; data: Float32Array } {
  const { rows, cols, dataStart } = parseNpyHeader(bytes, file);
  if (bytes.length - dataStart !== rows * cols * 4) badNpy(file, `shape (${rows}, ${cols}) needs ${rows * cols * 4} data bytes, file has ${bytes.length - dataStart}`);
  const data = new Float32Array(rows * cols);
  new Uint8Array(data.buffer).set(bytes.subarray(dataStart));
  return { rows, cols, data };
}

/** Largest header we read before the data: the format caps it at 4 GiB, real files use < 1 KiB. */
const MAX_HEADER = 1 << 16;

/**
 * Streams a float32 (N, d) .npy file: `onShape(rows, cols)` once, then `onRows(first, data, n)`
 * for consecutive blocks of n rows, `data` holding them row-major (a view reused between
 * calls: copy what you keep). Memory is one block (~4 MB), whatever the file's size.
 */
export async function streamNpyMatrix(
  file: string,
  onShape: (rows: number, cols: number) => void,
  onRows: (first: number, data: Float32Array, n: number) => void,
): Promise<{ rows: number; cols: number }> {
  let handle;
  try {
    handle = await open(file, "r");
  } catch (err) {
    throw new EmbedtuneError("FILE_NOT_FOUND", `cannot read vectors file (${(err as NodeJS.ErrnoException).code ?? err})`, { file });
  }
  try {
    const { size } = await handle.stat();
    const head = new Uint8Array(Math.min(size, MAX_HEADER));
    await handle.read(head, 0, head.length, 0);
    const { rows, cols, dataStart } = parseNpyHeader(head, file);
    if (size - dataStart !== rows * cols * 4) badNpy(file, `shape (${rows}, ${cols}) needs ${rows * cols * 4} data bytes, file has ${size - dataStart}`);
    onShape(rows, cols);
    const blockRows = Math.max(1, Math.floor((4 << 20) / Math.max(1, cols * 4)));
    const block = new Float32Array(Math.min(blockRows, rows) * cols);
    const bytes = new Uint8Array(block.buffer);
    for (let first = 0; first < rows; first += blockRows) {
      const n = Math.min(blockRows, rows - first);
      const { bytesRead } = await handle.read(bytes, 0, n * cols * 4, dataStart + first * cols * 4);
      if (bytesRead !== n * cols * 4) badNpy(file, "file ended early");
      onRows(first, block, n);
    }
    return { rows, cols };
  } finally {
    await handle.close();
  }
}

function badNpy(file: string, what: string): never {
  throw new EmbedtuneError("INVALID_FILE", `not a float32 (N, d) .npy file: ${what}`, { file });
}

/** Parses the magic, version and header dict; `dataStart` is the byte offset of the data. */
function parseNpyHeader(bytes: Uint8Array, file: string): { rows: number; cols: number; dataStart: number } {
  const fail = (what: string): never => badNpy(file, what);
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (bytes.length < 10 || !magic.every((b, i) => bytes[i] === b)) fail("missing the \\x93NUMPY magic");
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = major === 1 ? 10 : 12;
  if (headerStart + headerLength > bytes.length) fail("header runs past the end of the file");
  const header = new TextDecoder().decode(bytes.subarray(headerStart, headerStart + headerLength));
  const descr = /'descr':\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr !== "<f4") fail(`dtype ${descr ?? "?"} (expected '<f4', float32 little-endian)`);
  if (fortran !== "False") fail("fortran_order must be False");
  const dims = (shape ?? "").split(",").map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
  if (dims.length !== 2 || !dims.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`shape (${shape ?? ""}) is not 2-D`);
  return { rows: dims[0], cols: dims[1], dataStart: headerStart + headerLength };
}

export function encodeNpyMatrix(data: Float32Array, rows: number, cols: number): Uint8Array {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows}, ${cols}), }`;
  const unpadded = 10 + header.length + 1;
  header += " ".repeat((64 - (unpadded % 64)) % 64) + "\n"; // data starts on a 64-byte boundary
  const out = new Uint8Array(10 + header.length + data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 10 + header.length);
  return out;
}
