#!/usr/bin/python3
"""PyTorch side of the engine benchmark (bench/engine-bench.ts; not part of the package).

Builds USE-Lite from the weights the TypeScript side wrote (the same tensors the engine reads
from the published files) and trains the same LoRA pairs (r 16 on query and value of both
layers) with autograd, on the CPU with a fixed thread count, as a PyTorch user would:

    x = 2 E[ids] + timing[:L]                      padded (B, L) batch with an attention mask
    per layer (pre-LN): h = MHA(LN(x)) W_o + (x W_res | x);  x = h + ReLU(LN(h) W_1) W_2
    z = normalize(tanh(masked mean(x) W_t + b_t))
    loss = symmetric InfoNCE (scale 20); clip_grad_norm_(1.0); torch.optim.AdamW(lr 1e-3)

Prints one JSON line: median ms per step, FLOPs counted on the padded shapes, GFLOP/s, and a
plain float32 matrix multiply's GFLOP/s.
"""
import argparse
import json
import os
import statistics
import sys
import time

# The same threads everywhere: torch's intra-op pool and the BLAS's own pool (OpenBLAS threads
# on its own unless told), set before the libraries load.
_threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "1"
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = _threads

import torch  # noqa: E402

from torch_common import blas_libraries, read_safetensors as read_arrays  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    W = {k: torch.from_numpy(v.copy()) for k, v in read_arrays(args.dir + "/weights.safetensors").items()}
    inp = json.load(open(args.dir + "/inputs.json"))
    P = inp["pairs"]
    s = inp["alpha"] / inp["r"]
    lora = {}
    params = []
    for name in inp["modules"]:
        A = W["lora.%s.A" % name].clone().requires_grad_(True)
        l, slot = name.split(".")[1], name.split(".")[2]
        B = torch.zeros(W["layer.%s.%s.weight" % (l, slot)].shape[1], inp["r"], requires_grad=True)
        lora["layer.%s.%s" % (l, slot)] = (A, B)
        params += [A, B]
    opt = torch.optim.AdamW(params, lr=inp["lr"])

    def pad(rows):
        L = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), L, dtype=torch.long)
        mask = torch.zeros(len(rows), L)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r)
            mask[i, :len(r)] = 1
        return ids, mask

    def linear(x, name):
        y = x @ W[name + ".weight"] + W[name + ".bias"]
        if name in lora:
            A, B = lora[name]
            y = y + s * (x @ A.T) @ B.T
        return y

    def ln(x, name):
        return torch.nn.functional.layer_norm(x, x.shape[-1:], W[name + ".weight"], W[name + ".bias"], eps=1e-6)

    def encode(ids, mask):
        Bn, L = ids.shape
        E = W["embeddings"][ids]
        x = E + (E + W["timing"][:L])
        bias = (1 - mask)[:, None, None, :] * -1e9
        for l in range(2):
            p = "layer.%d" % l
            a = ln(x, p + ".ln1")
            A = W[p + ".query.weight"].shape[1]
            heads, dh = 4, A // 4
            q = linear(a, p + ".query").view(Bn, L, heads, dh).transpose(1, 2)
            k = linear(a, p + ".key").view(Bn, L, heads, dh).transpose(1, 2)
            v = linear(a, p + ".value").view(Bn, L, heads, dh).transpose(1, 2)
            probs = torch.softmax(q @ k.transpose(2, 3) * W[p + ".scale"][0] + bias, dim=-1)
            ctx = (probs @ v).transpose(1, 2).reshape(Bn, L, A)
            res = linear(x, p + ".residual") if (p + ".residual.weight") in W else x
            h = linear(ctx, p + ".attn_out") + res
            x = h + linear(torch.relu(linear(ln(h, p + ".ln2"), p + ".ffn_in")), p + ".ffn_out")
        pooled = (x * mask[:, :, None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        y = torch.tanh(pooled @ W["head.weight"] + W["head.bias"])
        return y / y.norm(dim=-1, keepdim=True).clamp(min=1e-12)

    left = pad(inp["tokens"][:P])
    right = pad(inp["tokens"][P:])

    def step():
        opt.zero_grad()
        za, zp = encode(*left), encode(*right)
        S = inp["scale"] * za @ zp.T
        t = torch.arange(P)
        loss = (torch.nn.functional.cross_entropy(S, t) + torch.nn.functional.cross_entropy(S.T, t)) / 2
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, inp["max_norm"])
        opt.step()
        return loss.item()

    for _ in range(2):
        step()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    ms = statistics.median(times) * 1000

    # FLOPs on the padded shapes (what this implementation computes): forward, dx and LoRA grads.
    flops = 0
    for ids, _ in (left, right):
        T = ids.numel()
        L2 = ids.shape[0] * ids.shape[1] ** 2
        for l in range(2):
            p = "layer.%d" % l
            names = ["query", "key", "value", "attn_out", "ffn_in", "ffn_out"] + (["residual"] if (p + ".residual.weight") in W else [])
            for n in names:
                i, o = W["%s.%s.weight" % (p, n)].shape
                first_input = l == 0 and n in ("query", "key", "value", "residual")
                flops += 2 * T * i * o * (1 if first_input else 2)
            A = W[p + ".query.weight"].shape[1]
            flops += 4 * L2 * A * 3
        for name, (A_, B_) in lora.items():
            flops += 2 * T * A_.shape[0] * (A_.shape[1] + B_.shape[0]) * 3
        flops += 2 * ids.shape[0] * 512 * 512 * 2

    a = torch.randn(2048, 512)
    b = torch.randn(512, 1536)
    a @ b
    t0 = time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < 1.5:
        a @ b
        n += 1
    mm = 2 * 2048 * 512 * 1536 * n / (time.perf_counter() - t0) / 1e9
    print(json.dumps({"ms_per_step": ms, "steps_per_s": 1000 / ms, "padded_tokens": left[0].numel() + right[0].numel(), "gflops": flops / (ms / 1000) / 1e9,
                      "matmul_gflops": mm, "threads": torch.get_num_threads(), "torch": torch.__version__, "blas": blas_libraries()}))


if __name__ == "__main__":
    main()
