#!/usr/bin/python3
"""PyTorch reference for one weight-space LoRA training step (test/fixtures/engine-step.json).

Reads the inputs bench/engine-step-case.ts writes (inputs.json, weights.safetensors: the tiny
BERT's state dict with linear weights stored (in, out), and the initial lora_A of each
module), rebuilds the same model in float64 with plain torch ops, and runs two optimisation
steps per case with autograd:

    per text (no padding): x = LN(E_word[ids] + E_pos[0..L) + E_type[0])
    per layer: q = x Wq + bq + s (x Aq^T) Bq^T (LoRA on query and value), k, v likewise without LoRA
               a = softmax(q_h k_h^T / sqrt(dh)) v_h per head; x = LN(x + a Wo + bo)
               x = LN(x + GELU(x Wi + bi) Wf + bf),  GELU(u) = u/2 (1 + erf(u / sqrt 2))
    z = normalize(mean over tokens of x)
    mnrl:   S = scale za zp^T; loss = (CE(S rows) + CE(S columns)) / 2
    cosent: loss = logsumexp([0] + [scale (cos_j - cos_i) for score_i > score_j])
    clip_grad_norm_(max_norm); torch.optim.AdamW(lr, betas, eps, weight_decay)

Writes JSON on stdout: per case and step the loss, the gradient norm before clipping, the
clipped gradients and the parameters after AdamW, by PEFT key. Usage:

    npx tsx bench/engine-step-case.ts /tmp/engine-step
    /usr/bin/python3 bench/torch_tiny_step.py /tmp/engine-step > test/fixtures/engine-step.json
"""
import json
import math
import sys

import numpy as np
import torch

from torch_common import read_safetensors as read_arrays

torch.set_default_dtype(torch.float64)


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def encode(ids, W, lora, cfg, scaling):
    H = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    dh = H // nh
    eps = cfg["layer_norm_eps"]
    L = len(ids)
    t = torch.tensor(ids, dtype=torch.long)
    x = W["embeddings.word_embeddings.weight"][t] + W["embeddings.position_embeddings.weight"][:L] + W["embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(x, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"], eps)

    def linear(inp, name):
        y = inp @ W[name + ".weight"] + W[name + ".bias"]
        if name in lora:
            A, B = lora[name]
            y = y + scaling * (inp @ A.T) @ B.T
        return y

    for l in range(cfg["num_hidden_layers"]):
        p = "encoder.layer.%d" % l
        q = linear(x, p + ".attention.self.query").view(L, nh, dh).transpose(0, 1)
        k = linear(x, p + ".attention.self.key").view(L, nh, dh).transpose(0, 1)
        v = linear(x, p + ".attention.self.value").view(L, nh, dh).transpose(0, 1)
        probs = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(dh), dim=-1)
        ctx = (probs @ v).transpose(0, 1).reshape(L, H)
        x = layer_norm(x + linear(ctx, p + ".attention.output.dense"), W[p + ".attention.output.LayerNorm.weight"], W[p + ".attention.output.LayerNorm.bias"], eps)
        u = linear(x, p + ".intermediate.dense")
        g = 0.5 * u * (1 + torch.erf(u / math.sqrt(2)))
        x = layer_norm(x + linear(g, p + ".output.dense"), W[p + ".output.LayerNorm.weight"], W[p + ".output.LayerNorm.bias"], eps)
    pooled = x.mean(0)
    return pooled / torch.clamp(pooled.norm(), min=1e-12)


def loss_of(kind, za, zp, scores, scale):
    if kind == "mnrl":
        S = scale * za @ zp.T
        target = torch.arange(S.shape[0])
        return (torch.nn.functional.cross_entropy(S, target) + torch.nn.functional.cross_entropy(S.T, target)) / 2
    cos = (za * zp).sum(-1)
    terms = [torch.zeros(())]
    for i in range(len(scores)):
        for j in range(len(scores)):
            if scores[i] > scores[j]:
                terms.append(scale * (cos[j] - cos[i]))
    return torch.logsumexp(torch.stack(terms), 0)


def main():
    d = sys.argv[1]
    inputs = json.load(open(d + "/inputs.json"))
    cfg = inputs["config"]
    st = inputs["settings"]
    tensors = {k: torch.tensor(v.astype(np.float64)) for k, v in read_arrays(d + "/weights.safetensors").items()}
    W = {k: v for k, v in tensors.items() if not k.startswith("lora.")}
    scaling = st["loraAlpha"] / st["r"]
    result = {"settings": st, "modules": inputs["modules"], "cases": []}
    for case in inputs["cases"]:
        lora = {}
        params = []
        for name in inputs["modules"]:
            A = tensors["lora.%s.lora_A" % name].clone().requires_grad_(True)
            out_dim = W[name + ".weight"].shape[1]
            B = torch.zeros(out_dim, st["r"], requires_grad=True)
            lora[name] = (A, B)
            params += [A, B]
        opt = torch.optim.AdamW(params, lr=st["lr"], betas=tuple(st["betas"]), eps=st["eps"], weight_decay=st["weightDecay"])
        steps = []
        for step in range(2):
            rows = range(4 * step, 4 * step + 4)
            za = torch.stack([encode(case["left"][i], W, lora, cfg, scaling) for i in rows])
            zp = torch.stack([encode(case["right"][i], W, lora, cfg, scaling) for i in rows])
            scores = [case["scores"][i] for i in rows] if case["kind"] == "cosent" else []
            opt.zero_grad()
            loss = loss_of(case["kind"], za, zp, scores, st["scale"])
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(params, st["maxGradNorm"])
            grads = {}
            for name in inputs["modules"]:
                A, B = lora[name]
                grads["base_model.model.%s.lora_A.weight" % name] = A.grad.flatten().tolist()
                grads["base_model.model.%s.lora_B.weight" % name] = B.grad.flatten().tolist()
            opt.step()
            after = {}
            for name in inputs["modules"]:
                A, B = lora[name]
                after["base_model.model.%s.lora_A.weight" % name] = A.detach().flatten().tolist()
                after["base_model.model.%s.lora_B.weight" % name] = B.detach().flatten().tolist()
            steps.append({"loss": loss.item(), "grad_norm": norm.item(), "clipped_grads": grads, "params_after": after,
                          "z_left": za.detach().flatten().tolist()})
        result["cases"].append({"kind": case["kind"], "steps": steps})
    result["torch"] = torch.__version__
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
