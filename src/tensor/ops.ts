/**
 * Dense kernels on flat row-major arrays. Element [i][j] of an (M, N) matrix is x[i * N + j].
 *
 * Every kernel takes its dimensions explicitly and works on Float32Array or Float64Array
 * alike (`Float`), so training runs in float32 while the gradient checks run the very same
 * code in float64. Sums are carried in JS numbers (float64) and rounded once on store.
 *
 * Dimension legend used across the project: B batch, D embedding dim, R LoRA rank,
 * N rows (any count of examples).
 *
 * Each docstring says whether `out` is OVERWRITTEN or ACCUMULATED into (`+=`). Kernels never
 * allocate per call: the float64 accumulators live in one module-level scratch that only
 * grows (`scratch`). `out` must not alias an input.
 */

/** Either precision; the kernels are written once for both. */
export type Float = Float32Array | Float64Array;

let scratchBuf = new Float64Array(256);

/** A float64 scratch of at least n entries (contents undefined); grows, never shrinks. */
function scratch(n: number): Float64Array {
  if (scratchBuf.length < n) scratchBuf = new Float64Array(Math.max(n, 2 * scratchBuf.length));
  return scratchBuf;
}

/** Σ_t a[ao + t] · b[bo + t] for t < n, accumulated in float64 with 4 independent sums. */
export function dotAt(a: Float, ao: number, b: Float, bo: number, n: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let t = 0;
  for (; t + 3 < n; t += 4) {
    s0 += a[ao + t] * b[bo + t];
    s1 += a[ao + t + 1] * b[bo + t + 1];
    s2 += a[ao + t + 2] * b[bo + t + 2];
    s3 += a[ao + t + 3] * b[bo + t + 3];
  }
  for (; t < n; t++) s0 += a[ao + t] * b[bo + t];
  return s0 + s1 + (s2 + s3);
}

/** a · b over the first n entries (n defaults to a.length). */
export function dot(a: Float, b: Float, n: number = a.length): number {
  return dotAt(a, 0, b, 0, n);
}

/**
 * out (M, N) = alpha · a (M, K) b (K, N), OVERWRITING out; with `accumulate` it is
 * out += alpha · a b instead.
 *
 * Loop order i-k-j: row i of the result is Σ_k a[i][k] · (row k of b), so the inner loop
 * streams contiguous rows of b into float64 row accumulators. Two rows of a share every
 * load of b, and four rows of b are consumed per pass over the accumulators.
 */
export function matmul(
  out: Float, a: Float, b: Float, M: number, K: number, N: number,
  alpha = 1, accumulate = false,
): void {
  const acc = scratch(2 * N); // (2, N) rows i and i+1 of a b, in float64
  for (let i = 0; i < M; i += 2) {
    const two = i + 1 < M;
    const a0 = i * K;
    const a1 = two ? a0 + K : a0; // a lone last row is computed twice, stored once
    acc.fill(0, 0, 2 * N);
    let k = 0;
    for (; k + 3 < K; k += 4) {
      const x0 = a[a0 + k], x1 = a[a0 + k + 1], x2 = a[a0 + k + 2], x3 = a[a0 + k + 3];
      const y0 = a[a1 + k], y1 = a[a1 + k + 1], y2 = a[a1 + k + 2], y3 = a[a1 + k + 3];
      const b0 = k * N, b1 = b0 + N, b2 = b1 + N, b3 = b2 + N;
      for (let j = 0; j < N; j++) {
        const c0 = b[b0 + j], c1 = b[b1 + j], c2 = b[b2 + j], c3 = b[b3 + j];
        acc[j] += x0 * c0 + x1 * c1 + x2 * c2 + x3 * c3;
        acc[N + j] += y0 * c0 + y1 * c1 + y2 * c2 + y3 * c3;
      }
    }
    for (; k < K; k++) {
      const x = a[a0 + k];
      const y = a[a1 + k];
      const bo = k * N;
      for (let j = 0; j < N; j++) {
        acc[j] += x * b[bo + j];
        acc[N + j] += y * b[bo + j];
      }
    }
    storeRows(out, i * N, acc, 0, two ? 2 * N : N, alpha, accumulate);
  }
}

/** out[o + e] (+)= alpha · acc[c + e] for e < n. */
function storeRows(
  out: Float, o: number, acc: Float64Array, c: number, n: number, alpha: number, accumulate: boolean,
): void {
  if (accumulate) for (let e = 0; e < n; e++) out[o + e] += alpha * acc[c + e];
  else for (let e = 0; e < n; e++) out[o + e] = alpha * acc[c + e];
}

/**
 * out (M, N) = alpha · a (M, K) b (N, K)ᵀ, OVERWRITING out; with `accumulate`,
 * out += alpha · a bᵀ. Entry [i][j] is the dot product of row i of a and row j of b, both
 * contiguous, so this is the kernel for "every row against every row" (U = X Aᵀ, logits).
 * Blocks of 2 rows of a × 4 rows of b keep eight sums in registers and reuse every load.
 */
export function matmulABt(
  out: Float, a: Float, b: Float, M: number, K: number, N: number,
  alpha = 1, accumulate = false,
): void {
  const acc = scratch(8); // (2, 4) one block of results
  for (let i = 0; i < M; i += 2) {
    const two = i + 1 < M;
    const a0 = i * K;
    const a1 = two ? a0 + K : a0;
    const o0 = i * N;
    let j = 0;
    for (; j + 3 < N; j += 4) {
      const b0 = j * K, b1 = b0 + K, b2 = b1 + K, b3 = b2 + K;
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      for (let t = 0; t < K; t++) {
        const x0 = a[a0 + t], x1 = a[a1 + t];
        const y0 = b[b0 + t], y1 = b[b1 + t], y2 = b[b2 + t], y3 = b[b3 + t];
        s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2; s03 += x0 * y3;
        s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2; s13 += x1 * y3;
      }
      acc[0] = s00; acc[1] = s01; acc[2] = s02; acc[3] = s03;
      acc[4] = s10; acc[5] = s11; acc[6] = s12; acc[7] = s13;
      storeRows(out, o0 + j, acc, 0, 4, alpha, accumulate);
      if (two) storeRows(out, o0 + N + j, acc, 4, 4, alpha, accumulate);
    }
    for (; j < N; j++) {
      acc[0] = dotAt(a, a0, b, j * K, K);
      acc[1] = dotAt(a, a1, b, j * K, K);
      storeRows(out, o0 + j, acc, 0, 1, alpha, accumulate);
      if (two) storeRows(out, o0 + N + j, acc, 1, 1, alpha, accumulate);
    }
  }
}

/**
 * out (M, N) += alpha · a (K, M)ᵀ b (K, N). Always ACCUMULATES (it is the weight-gradient
 * kernel: dW += dYᵀ X summed over the K rows of a batch).
 *
 * Order t-m-n: each batch row t adds the outer product a[t]ᵀ b[t] into a float64 (M, N)
 * accumulator, four batch rows and two output rows at a time, so every inner loop is
 * contiguous and each load of b serves two output rows. The sum is added to out once.
 */
export function matmulAtB(
  out: Float, a: Float, b: Float, K: number, M: number, N: number, alpha = 1,
): void {
  const MN = M * N;
  const acc = scratch(MN); // (M, N) Σ_t a[t][m] b[t][n], in float64
  acc.fill(0, 0, MN);
  let t = 0;
  for (; t + 3 < K; t += 4) {
    const a0 = t * M, a1 = a0 + M, a2 = a1 + M, a3 = a2 + M;
    const b0 = t * N, b1 = b0 + N, b2 = b1 + N, b3 = b2 + N;
    let m = 0;
    for (; m + 1 < M; m += 2) {
      const x0 = a[a0 + m], x1 = a[a1 + m], x2 = a[a2 + m], x3 = a[a3 + m];
      const y0 = a[a0 + m + 1], y1 = a[a1 + m + 1], y2 = a[a2 + m + 1], y3 = a[a3 + m + 1];
      const o = m * N;
      for (let n = 0; n < N; n++) {
        const c0 = b[b0 + n], c1 = b[b1 + n], c2 = b[b2 + n], c3 = b[b3 + n];
        acc[o + n] += x0 * c0 + x1 * c1 + x2 * c2 + x3 * c3;
        acc[o + N + n] += y0 * c0 + y1 * c1 + y2 * c2 + y3 * c3;
      }
    }
    if (m < M) {
      const x0 = a[a0 + m], x1 = a[a1 + m], x2 = a[a2 + m], x3 = a[a3 + m];
      const o = m * N;
      for (let n = 0; n < N; n++) {
        acc[o + n] += x0 * b[b0 + n] + x1 * b[b1 + n] + x2 * b[b2 + n] + x3 * b[b3 + n];
      }
    }
  }
  for (; t < K; t++) {
    const ao = t * M;
    const bo = t * N;
    for (let m = 0; m < M; m++) {
      const x = a[ao + m];
      const o = m * N;
      for (let n = 0; n < N; n++) acc[o + n] += x * b[bo + n];
    }
  }
  for (let e = 0; e < MN; e++) out[e] += alpha * acc[e];
}

/** The floor F.normalize puts under a norm: z = x / max(‖x‖, NORM_EPS). */
export const NORM_EPS = 1e-12;

/**
 * out (N, D) = x / max(‖x‖₂, 1e-12) row by row (torch.nn.functional.normalize), OVERWRITING
 * out (which may be x itself). Writes the raw row norms ‖x_i‖ into `norms` (N) and returns it;
 * a fresh Float64Array is allocated only when `norms` is not given.
 */
export function l2NormalizeRows(
  out: Float, x: Float, N: number, D: number, norms: Float = new Float64Array(N),
): Float {
  for (let i = 0; i < N; i++) {
    const o = i * D;
    const n = Math.sqrt(dotAt(x, o, x, o, D));
    norms[i] = n;
    const inv = 1 / Math.max(n, NORM_EPS);
    for (let j = 0; j < D; j++) out[o + j] = x[o + j] * inv;
  }
  return norms;
}

/** y[0..n) += alpha · x[0..n). */
export function axpy(y: Float, alpha: number, x: Float, n: number = x.length): void {
  for (let t = 0; t < n; t++) y[t] += alpha * x[t];
}

/** Σ x² over all entries, in float64. */
export function sumSquares(x: Float, n: number = x.length): number {
  return dotAt(x, 0, x, 0, n);
}
