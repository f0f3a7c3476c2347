/**
 * erf(x) to float64 precision, fast enough for GELU on every activation.
 *
 * JavaScript has no Math.erf. We tabulate erf and its derivatives on a grid and evaluate a
 * Taylor polynomial around the nearest grid point:
 *
 *   erf(x0 + h) = Σ_{k=0..K} c_k h^k,   c_0 = erf(x0),   c_k = erf^(k)(x0) / k!
 *   erf'(x) = (2/√π) e^{-x²},   erf^(n+1)(x) = (2/√π) (−1)^n H_n(x) e^{-x²}
 *   H_0 = 1, H_1 = 2x, H_{n+1} = 2x H_n − 2n H_{n−1}          (physicists' Hermite)
 *
 * erf(x0) itself comes from the all-positive series (no cancellation, so full precision):
 *
 *   erf(x) = (2/√π) e^{-x²} Σ_{n≥0} 2^n x^{2n+1} / (1·3·5···(2n+1))
 *
 * Grid step 1/64 on [0, 6], K = 8: the remainder is below h^9/9! · max|erf^(9)| ~ 1e-20.
 * Beyond 6, erf = ±1 in float64 (erfc(6) ≈ 2e-17). erf is odd.
 */
const STEP = 1 / 64;
const XMAX = 6;
const K = 8; // Taylor order
const POINTS = Math.round(XMAX / STEP) + 1;
const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

/** (POINTS, K + 1) Taylor coefficients c_k at x0 = i · STEP. */
const coef = new Float64Array(POINTS * (K + 1));

function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x; // 2^n x^{2n+1} / (2n+1)!!
  let sum = 0;
  for (let n = 0; n < 1000 && term > sum * 1e-18; n++) {
    sum += term;
    term *= (2 * x2) / (2 * n + 3);
  }
  if (x === 0) return 0;
  return TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
}

for (let i = 0; i < POINTS; i++) {
  const x0 = i * STEP;
  const o = i * (K + 1);
  const g = TWO_OVER_SQRT_PI * Math.exp(-x0 * x0);
  coef[o] = erfSeries(x0);
  let hPrev = 0; // H_{n-1}
  let h = 1; // H_n
  let factorial = 1; // k!
  for (let k = 1; k <= K; k++) {
    const n = k - 1; // erf^(k) = g (−1)^n H_n
    factorial *= k;
    coef[o + k] = (g * (n % 2 === 0 ? 1 : -1) * h) / factorial;
    const next = 2 * x0 * h - 2 * n * hPrev;
    hPrev = h;
    h = next;
  }
}

export function erf(x: number): number {
  const a = Math.abs(x);
  if (!(a < XMAX)) return Number.isNaN(x) ? NaN : Math.sign(x);
  const i = Math.round(a / STEP);
  const h = a - i * STEP;
  const o = i * (K + 1);
  let s = coef[o + K];
  for (let k = K - 1; k >= 0; k--) s = s * h + coef[o + k];
  return x < 0 ? -s : s;
}
