/**
 * Element-wise layers, forward and backward side by side. n = number of entries.
 *
 *   residual  y = a + b                             da += dy, db += dy
 *   GELU      y = u/2 · (1 + erf(u/√2))             du += dy · (Φ(u) + u φ(u)),  Φ(u) = (1 + erf(u/√2))/2, φ(u) = e^{−u²/2}/√(2π)
 *   ReLU      y = max(u, 0)                          du += dy · [u > 0]
 *   tanh      y = tanh(u)                            du += dy · (1 − y²)
 *
 * GELU is the exact (erf) form, as BERT's config "gelu" and the ONNX graph compute it.
 */
import type { Float } from "../tensor/ops.js";
import { erf } from "./erf.js";

const INV_SQRT2 = 1 / Math.SQRT2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** y = a + b; OVERWRITES y (which may be a or b). */
export function residualForward(y: Float, a: Float, b: Float, n: number): void {
  for (let e = 0; e < n; e++) y[e] = a[e] + b[e];
}

/** da += dy and db += dy (either may be null). */
export function residualBackward(da: Float | null, db: Float | null, dy: Float, n: number): void {
  if (da) for (let e = 0; e < n; e++) da[e] += dy[e];
  if (db) for (let e = 0; e < n; e++) db[e] += dy[e];
}

export type Activation = "gelu" | "relu";

/** y = act(u); OVERWRITES y (which may be u only for ReLU: GELU's backward needs u). */
export function activationForward(y: Float, u: Float, n: number, act: Activation): void {
  if (act === "relu") {
    for (let e = 0; e < n; e++) y[e] = u[e] > 0 ? u[e] : 0;
    return;
  }
  for (let e = 0; e < n; e++) {
    const x = u[e];
    y[e] = 0.5 * x * (1 + erf(x * INV_SQRT2));
  }
}

/** du += dy · act'(u), for the u of the forward. */
export function activationBackward(du: Float, dy: Float, u: Float, n: number, act: Activation): void {
  if (act === "relu") {
    for (let e = 0; e < n; e++) if (u[e] > 0) du[e] += dy[e];
    return;
  }
  for (let e = 0; e < n; e++) {
    const x = u[e];
    du[e] += dy[e] * (0.5 * (1 + erf(x * INV_SQRT2)) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x));
  }
}

/** y = tanh(u); OVERWRITES y (which may be u). */
export function tanhForward(y: Float, u: Float, n: number): void {
  for (let e = 0; e < n; e++) y[e] = Math.tanh(u[e]);
}

/** du += dy · (1 − y²), given the forward's output y. */
export function tanhBackward(du: Float, dy: Float, y: Float, n: number): void {
  for (let e = 0; e < n; e++) du[e] += dy[e] * (1 - y[e] * y[e]);
}
