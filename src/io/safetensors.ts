import { EmbedtuneError } from "../errors.js";

/**
 * safetensors (Hugging Face's tensor format): 8-byte little-endian header length N, then
 * N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {..}},
 * then the raw little-endian data; offsets are relative to the end of the header.
 * We read and write float32 ("F32") tensors, and check every claim of the header against
 * the bytes before trusting it.
 */
export interface Tensor {
  shape: number[];
  data: Float32Array;
}

const MAX_HEADER_BYTES = 16 * 1024 * 1024;

export function encodeSafetensors(tensors: Record<string, Tensor>, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const bytes = t.data.length * 4;
    if (t.shape.reduce((a, b) => a * b, 1) !== t.data.length) throw new Error(`tensor ${name}: shape ${JSON.stringify(t.shape)} does not match ${t.data.length} values`);
    header[name] = { dtype: "F32", shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8); // align the data to 8 bytes
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const t of Object.values(tensors)) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

export function decodeSafetensors(bytes: Uint8Array, file: string): { tensors: Map<string, Tensor>; metadata: Record<string, string> } {
  const fail = (what: string): never => {
    throw new EmbedtuneError("INVALID_FILE", `not a valid safetensors file: ${what}`, { file });
  };
  if (bytes.length < 8) fail(`${bytes.length} bytes is shorter than the 8-byte header length`);
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(0, true);
  if (headerLength > BigInt(Math.min(MAX_HEADER_BYTES, bytes.length - 8))) fail(`header length ${headerLength} exceeds the file size or the ${MAX_HEADER_BYTES}-byte cap`);
  const n = Number(headerLength);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch {
    fail("header is not UTF-8 JSON");
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) fail("header is not a JSON object");
  const dataStart = 8 + n;
  const dataLength = bytes.length - dataStart;
  const tensors = new Map<string, Tensor>();
  let metadata: Record<string, string> = {};
  const ranges: Array<[number, number, string]> = [];
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      metadata = parseMetadata(entry, fail);
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== "object" || e === null) fail(`entry "${name}" is not an object`);
    if (e.dtype !== "F32") fail(`tensor "${name}" has dtype ${JSON.stringify(e.dtype)}; only F32 is supported`);
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`tensor "${name}" has an invalid shape`);
    const offsets = e.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) fail(`tensor "${name}" has invalid data_offsets`);
    const [begin, end] = offsets as [number, number];
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    if (end < begin || end > dataLength) fail(`tensor "${name}" data_offsets [${begin}, ${end}] lie outside the ${dataLength} data bytes`);
    if (end - begin !== count * 4) fail(`tensor "${name}" has shape ${JSON.stringify(shape)} (${count * 4} bytes) but ${end - begin} data bytes`);
    ranges.push([begin, end, name]);
    // Copy so the tensor is 4-byte aligned and independent of the file buffer.
    const data = new Float32Array(count);
    new Uint8Array(data.buffer).set(bytes.subarray(dataStart + begin, dataStart + end));
    tensors.set(name, { shape: shape as number[], data });
  }
  ranges.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i][0] < ranges[i - 1][1]) fail(`tensors "${ranges[i - 1][2]}" and "${ranges[i][2]}" overlap`);
  }
  return { tensors, metadata };
}

function parseMetadata(entry: unknown, fail: (what: string) => never): Record<string, string> {
  if (typeof entry !== "object" || entry === null || Array.isArray(entry)) fail("__metadata__ is not an object");
  const out: Record<string, string> = Object.create(null);
  for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
    if (typeof v !== "string") fail(`__metadata__ value "${k}" is not a string`);
    out[k] = v as string;
  }
  return out;
}
