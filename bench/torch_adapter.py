#!/usr/bin/python3
"""PyTorch side of the adapter-training benchmark (`npm run bench`; not part of the package).

Trains the same output-space LoRA adapter as embedtune on the same cached vectors, batches
and initial weights, on the CPU with a fixed thread count:

    h = x + s * B (A x),  z = h / max(||h||, 1e-12),  S = scale * za zp^T
    loss = (CE over rows of S + CE over columns of S) / 2    (symmetric InfoNCE)
    clip_grad_norm_(max_norm), AdamW (torch.optim.AdamW), constant lr

Three variants, all timed; the driver compares against the fastest:
  autograd  the loss written in torch, gradients by loss.backward() (what a user writes)
  manual    the direct hand-derived backward (forms h, then dH = G Hc, ...; no autograd)
  factored  embedtune's own order (src/train/step-graph.ts): the raw Gram xa·xc plus rank-R
            terms through M = B^T B, half the arithmetic of the direct form

Input: --dir holding anchors.npy, positives.npy (N, D) float32, A0.npy (R, D) float32 and
batches.npy (steps, B) int32 (pair indices of each step). Output: one JSON line on stdout.
"""
import argparse
import json
import os
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from torch_common import blas_libraries


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--alpha", type=float, default=32.0)
    ap.add_argument("--scale", type=float, default=20.0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--max-norm", type=float, default=1.0)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--variants", default="autograd,manual,factored")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    load = lambda name: torch.from_numpy(np.load(os.path.join(args.dir, name)))
    anchors, positives = load("anchors.npy"), load("positives.npy")
    A0, batches = load("A0.npy"), load("batches.npy").long()
    R, D = A0.shape
    s = args.alpha / R
    results = {}
    for variant in args.variants.split(","):
        step = {"autograd": autograd_step, "manual": manual_step, "factored": factored_step}[variant]
        A = A0.clone().requires_grad_(variant == "autograd")
        B = torch.zeros(D, R, requires_grad=variant == "autograd")
        opt = torch.optim.AdamW([A, B], lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
        steps = batches.shape[0]
        losses = []

        def run(k):
            idx = batches[k % steps]
            return step(anchors[idx], positives[idx], A, B, s, args.scale, args.max_norm, opt)

        for k in range(args.warmup):
            run(k)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for k in range(steps):
                loss = run(k)
            times.append(time.perf_counter() - t0)
            losses.append(loss)
        # The loss trajectory from the shared initial weights, for the equal-work check.
        A.data.copy_(A0)
        B.data.zero_()
        opt = torch.optim.AdamW([A, B], lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
        trajectory = [run(k) for k in range(steps)]
        results[variant] = {
            "steps_per_s": [steps / t for t in times],
            "median_steps_per_s": statistics.median(steps / t for t in times),
            "first_loss": trajectory[0],
            "final_loss": trajectory[-1],
        }
    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "blas": blas_libraries(),
        "config": torch.__config__.show().splitlines()[-1][:400],
        "D": D, "R": R, "B": int(batches.shape[1]), "steps": int(batches.shape[0]),
        "variants": results,
    }))


def autograd_step(xa, xp, A, B, s, scale, max_norm, opt):
    za = F.normalize(xa + s * (xa @ A.t()) @ B.t(), dim=1)
    zp = F.normalize(xp + s * (xp @ A.t()) @ B.t(), dim=1)
    S = scale * za @ zp.t()
    labels = torch.arange(S.shape[0])
    loss = (F.cross_entropy(S, labels) + F.cross_entropy(S.t(), labels)) / 2
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([A, B], max_norm)
    opt.step()
    return loss.item()


def manual_step(xa, xp, A, B, s, scale, max_norm, opt):
    """The hand-derived forward/backward of src/train/step-graph.ts, in torch ops."""
    n = xa.shape[0]
    X = torch.cat([xa, xp])  # (2B, D)
    U = X @ A.t()  # (2B, R)
    H = torch.addmm(X, U, B.t(), alpha=s)  # x + s B u
    nrm = H.norm(dim=1, keepdim=True).clamp_min(1e-12)
    Z = H / nrm
    za, zp = Z[:n], Z[n:]
    S = scale * za @ zp.t()
    lsr = torch.log_softmax(S, dim=1)
    lsc = torch.log_softmax(S, dim=0)
    loss = -(lsr.diagonal().sum() + lsc.diagonal().sum()) / (2 * n)
    G = (lsr.exp() + lsc.exp()) / (2 * n)
    G.diagonal().sub_(1.0 / n)
    dZ = torch.cat([scale * G @ zp, scale * G.t() @ za])  # (2B, D)
    dH = (dZ - Z * (Z * dZ).sum(dim=1, keepdim=True)) / nrm
    B.grad = s * dH.t() @ U  # (D, R)
    A.grad = (s * dH @ B).t() @ X  # (R, D)
    torch.nn.utils.clip_grad_norm_([A, B], max_norm)
    opt.step()
    return loss.item()


def factored_step(xa, xp, A, B, s, scale, max_norm, opt):
    """The factored forward/backward of src/train/step-graph.ts, in torch ops: no h is formed.

    u = A x, w = B^T x, M = B^T B, v = w + s M u;  ha.hp = xa.xp + s (va.up + ua.wp),
    |h|^2 = |x|^2 + s u.(w + v); gradients flow to (u, w) of each row and to M.
    """
    n = xa.shape[0]
    R = A.shape[0]
    AB = torch.cat([A, B.t()])  # (2R, D)
    M = B.t() @ B  # (R, R)
    uwa, uwp = xa @ AB.t(), xp @ AB.t()  # (n, 2R)
    ua, wa = uwa[:, :R], uwa[:, R:]
    up, wp = uwp[:, :R], uwp[:, R:]
    va = torch.addmm(wa, ua, M, alpha=s)
    vp = torch.addmm(wp, up, M, alpha=s)
    qa = ((xa * xa).sum(1) + s * (ua * (wa + va)).sum(1)).clamp_min(1e-24).rsqrt()
    qp = ((xp * xp).sum(1) + s * (up * (wp + vp)).sum(1)).clamp_min(1e-24).rsqrt()
    Fa, Fp = torch.cat([va, ua], 1), uwp  # (n, 2R): P = Gram + s Fa Fp^T
    P = torch.addmm(xa @ xp.t(), Fa, Fp.t(), alpha=s)
    S = P * qa[:, None] * (scale * qp)[None, :]
    lsr = torch.log_softmax(S, dim=1)
    lsc = torch.log_softmax(S, dim=0)
    loss = -(lsr.diagonal().sum() + lsc.diagonal().sum()) / (2 * n)
    G = (lsr.exp() + lsc.exp()) / (2 * n)
    G.diagonal().sub_(1.0 / n)
    GS = G * S
    na = -0.5 * s * GS.sum(1) * qa * qa  # s dL/d|ha|^2
    npn = -0.5 * s * GS.sum(0) * qp * qp
    Gt = G * qa[:, None] * (scale * qp)[None, :]  # dL/dP
    Ya = s * Gt @ Fp  # [pVa pUa]
    Yp = s * Gt.t() @ Fa  # [pUp pWp]

    def side(u, w, v, pU, pV, pW, nn):
        nU = u * nn[:, None]
        dV = nU if pV is None else pV + nU
        dU = torch.addmm(pU + (w + v) * nn[:, None], dV, M, alpha=s)
        dW = nU + dV if pW is None else pW + nU + dV
        return torch.cat([dU, dW], 1), s * u.t() @ dV

    dUWa, dMa = side(ua, wa, va, Ya[:, R:], Ya[:, :R], None, na)
    dUWp, dMp = side(up, wp, vp, Yp[:, :R], None, Yp[:, R:], npn)
    dAB = dUWa.t() @ xa + dUWp.t() @ xp  # (2R, D) = [dA; dB^T]
    dM = dMa + dMp
    A.grad = dAB[:R].contiguous()
    B.grad = torch.addmm(dAB[R:].t(), B, dM + dM.t())
    torch.nn.utils.clip_grad_norm_([A, B], max_norm)
    opt.step()
    return loss.item()


if __name__ == "__main__":
    main()
