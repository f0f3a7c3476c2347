/**
 * The optimiser's per-element loops (AdamW update, sum of squares, scaling) as WebAssembly
 * SIMD, two float64 lanes at a time. The arithmetic is the JavaScript loops' exactly: each
 * float32 value is widened to float64, the same operations run in the same order (IEEE
 * add, mul, div and sqrt give the same bits in any lane), and results are rounded to float32
 * once on store; the sum of squares keeps the same four partial sums (s0..s3 over indices
 * ≡ 0..3 mod 4). So the results are bitwise those of src/optim/adamw.ts and clip.ts (tested),
 * about twice as fast: the loops are bound by float64 sqrt and division throughput.
 *
 * The module (~300 bytes) is assembled here, not shipped as a binary. Memory layout is the
 * caller's: byte offsets into the instance's memory.
 */

// Opcodes (WebAssembly core + SIMD, prefix 0xfd with a LEB128 sub-opcode).
const I32 = 0x7f;
const F64 = 0x7c;
const V128 = 0x7b;
const LOCAL_GET = 0x20;
const LOCAL_SET = 0x21;
const LOCAL_TEE = 0x22;
const I32_CONST = 0x41;
const I32_ADD = 0x6a;
const BLOCK = 0x02;
const LOOP = 0x03;
const BR_IF = 0x0d;
const BR = 0x0c;
const END = 0x0b;
const I32_EQZ = 0x45;
const simd = (op: number): number[] => [0xfd, ...leb(op)];
const LOAD64_ZERO = (offset: number) => [...simd(0x5d), 3, ...leb(offset)]; // align 2^3
const STORE64_LANE0 = (offset: number) => [...simd(0x5b), 3, ...leb(offset), 0];
const V128_STORE = (offset: number) => [...simd(0x0b), 4, ...leb(offset)];
const PROMOTE = simd(0x5f); // f64x2.promote_low_f32x4
const DEMOTE = simd(0x5e); // f32x4.demote_f64x2_zero
const SPLAT = simd(0x14); // f64x2.splat
const ADD = simd(0xf0);
const SUB = simd(0xf1);
const MUL = simd(0xf2);
const DIV = simd(0xf3);
const SQRT = simd(0xef);

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

const get = (i: number) => [LOCAL_GET, i];
const set = (i: number) => [LOCAL_SET, i];
const load = (ptrLocal: number, offset = 0) => [...get(ptrLocal), ...LOAD64_ZERO(offset), ...PROMOTE]; // two float32 -> f64x2
const store = (ptrLocal: number, body: number[]) => [...get(ptrLocal), ...body, ...DEMOTE, ...STORE64_LANE0(0)];
const bump = (ptrLocal: number, bytes: number) => [...get(ptrLocal), I32_CONST, ...leb(bytes), I32_ADD, ...set(ptrLocal)];
/** `for (; n != 0; n--) body` over local `n`. */
const countdown = (n: number, body: number[]) => [
  BLOCK, 0x40, LOOP, 0x40,
  ...get(n), I32_EQZ, BR_IF, 1,
  ...body,
  ...get(n), I32_CONST, 1, 0x6b /* i32.sub */, ...set(n),
  BR, 0, END, END,
];

/**
 * adamw(p, g, m, v, pairs, b1, b2, c1, c2, stepSize, invBc2Sqrt, eps, decay): for 2·pairs
 * float32 elements at byte offsets p, g, m, v:
 *   m = b1 m + c1 g;  v = b2 v + (c2 g) g;  p = p decay − (stepSize m) / (√v invBc2Sqrt + eps)
 */
function adamwBody(): { locals: number[]; code: number[] } {
  // params 0..4 i32 (p, g, m, v, pairs), 5..12 f64; locals 13..20 v128 splats, 21 me, 22 ve
  const [P, G, M, V, N] = [0, 1, 2, 3, 4];
  const splat = (from: number, to: number) => [...get(from), ...SPLAT, ...set(to)];
  const [b1, b2, c1, c2, st, inv, eps, dec] = [13, 14, 15, 16, 17, 18, 19, 20];
  const ME = 21;
  const VE = 22;
  const body = [
    // m[e] = me  (address, then value)
    ...get(M), ...get(b1), ...load(M), ...MUL, ...get(c1), ...load(G), ...MUL, ...ADD, LOCAL_TEE, ME, ...DEMOTE, ...STORE64_LANE0(0),
    // v[e] = ve = b2 v + (c2 g) g
    ...get(V), ...get(b2), ...load(V), ...MUL, ...get(c2), ...load(G), ...MUL, ...load(G), ...MUL, ...ADD, LOCAL_TEE, VE, ...DEMOTE, ...STORE64_LANE0(0),
    // p[e] = p decay − (stepSize me) / (√ve invBc2Sqrt + eps)
    ...store(P, [...load(P), ...get(dec), ...MUL, ...get(st), ...get(ME), ...MUL, ...get(VE), ...SQRT, ...get(inv), ...MUL, ...get(eps), ...ADD, ...DIV, ...SUB]),
    ...bump(P, 8), ...bump(G, 8), ...bump(M, 8), ...bump(V, 8),
  ];
  return {
    locals: [10, V128],
    code: [...splat(5, b1), ...splat(6, b2), ...splat(7, c1), ...splat(8, c2), ...splat(9, st), ...splat(10, inv), ...splat(11, eps), ...splat(12, dec), ...countdown(N, body), END],
  };
}

/**
 * sumsq(x, quads, out): four partial sums of x² over 4·quads float32 at byte offset x,
 * s_j over indices ≡ j (mod 4), written as four float64 at byte offset out.
 */
function sumsqBody(): { locals: number[]; code: number[] } {
  const [X, N, OUT, A, B] = [0, 1, 2, 3, 4];
  const body = [
    ...get(A), ...load(X), LOCAL_TEE, 5, ...get(5), ...MUL, ...ADD, ...set(A),
    ...get(B), ...load(X, 8), LOCAL_TEE, 5, ...get(5), ...MUL, ...ADD, ...set(B),
    ...bump(X, 16),
  ];
  return {
    locals: [3, V128],
    code: [...countdown(N, body), ...get(OUT), ...get(A), ...V128_STORE(0), ...get(OUT), ...get(B), ...V128_STORE(16), END],
  };
}

/** scale(x, pairs, coef): x = float32(x · coef) for 2·pairs float32 at byte offset x. */
function scaleBody(): { locals: number[]; code: number[] } {
  const [X, N, C, K] = [0, 1, 2, 3];
  const body = [...store(X, [...load(X), ...get(K), ...MUL]), ...bump(X, 8)];
  return { locals: [1, V128], code: [...get(C), ...SPLAT, ...set(K), ...countdown(N, body), END] };
}

function assemble(): Uint8Array {
  const fns = [
    { name: "adamw", params: [I32, I32, I32, I32, I32, F64, F64, F64, F64, F64, F64, F64, F64], ...adamwBody() },
    { name: "sumsq", params: [I32, I32, I32], ...sumsqBody() },
    { name: "scale", params: [I32, I32, F64], ...scaleBody() },
  ];
  const vec = (items: number[][]) => [...leb(items.length), ...items.flat()];
  const section = (id: number, bytes: number[]) => [id, ...leb(bytes.length), ...bytes];
  const name = (s: string) => [...leb(s.length), ...Buffer.from(s, "utf8")];
  const types = vec(fns.map((f) => [0x60, ...vec(f.params.map((p) => [p])), 0]));
  const funcs = vec(fns.map((_, i) => leb(i)));
  const memory = vec([[0x00, ...leb(1)]]); // one page, grown by the caller
  const exports = vec([...fns.map((f, i) => [...name(f.name), 0x00, ...leb(i)]), [...name("memory"), 0x02, 0]]);
  const codes = vec(fns.map((f) => {
    const body = [...leb(f.locals.length / 2), ...f.locals.flatMap((v, i) => (i % 2 === 0 ? leb(v) : [v])), ...f.code];
    return [...leb(body.length), ...body];
  }));
  return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0, ...section(1, types), ...section(3, funcs), ...section(5, memory), ...section(7, exports), ...section(10, codes)]);
}

/** The parts of the WebAssembly JS API used here (not in this project's TypeScript libs). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}
const wasm = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

export interface SimdKernels {
  memory: { buffer: ArrayBuffer; grow(pages: number): number };
  adamw(p: number, g: number, m: number, v: number, pairs: number, b1: number, b2: number, c1: number, c2: number, stepSize: number, invBc2Sqrt: number, eps: number, decay: number): void;
  sumsq(x: number, quads: number, out: number): void;
  scale(x: number, pairs: number, coef: number): void;
}

let compiled: object | null | undefined;

/** A fresh instance with its own memory of at least `bytes`, or null where SIMD is unavailable. */
export function simdKernels(bytes: number): SimdKernels | null {
  if (compiled === undefined) {
    try {
      compiled = wasm ? new wasm.Module(assemble()) : null;
    } catch {
      compiled = null;
    }
  }
  if (!compiled || !wasm) return null;
  const instance = new wasm.Instance(compiled, {});
  const k = instance.exports as unknown as SimdKernels;
  const pages = Math.ceil(bytes / 65536);
  if (pages > 1) k.memory.grow(pages - 1);
  return k;
}
