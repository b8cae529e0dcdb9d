#!/usr/bin/env python3
"""Cross-check the dense CPU kernels against PyTorch.

Runs moert-dense-reference-dump, which writes the inputs, outputs and
gradients of every dense kernel, recomputes them with torch (float64, autograd
for the gradients) and asserts closeness. Exits 77 (ctest SKIP) when this
interpreter has no torch; run it with Debian's /usr/bin/python3.

Tolerance: our kernels compute in fp32 and torch here in fp64, so the
difference is the kernels' own rounding error: a few ulps of the fp32 values
involved (unit scale here), accumulated over reductions of at most a few dozen
terms, i.e. ~1e-7 to 1e-6 (measured: at most 5e-7). We accept
|ours - torch| <= 1e-5 + 1e-5 * |torch|: ten to a hundred times that, and far
below the size of any formula error (a wrong scale, a missed mask, a wrong
smoothing term are all >= 1e-3 on these inputs).
"""
import argparse
import json
import math
import os
import subprocess
import sys

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as error:  # pragma: no cover - depends on the machine
    print(f"SKIP: {error} (use Debian's /usr/bin/python3 with python3-torch)")
    sys.exit(77)

ABS_TOL = 1e-5
REL_TOL = 1e-5

failures = []


def load(directory):
    with open(os.path.join(directory, "manifest.json")) as handle:
        manifest = json.load(handle)
    tensors = {}
    for name, entry in manifest["tensors"].items():
        data = np.fromfile(os.path.join(directory, name + ".bin"),
                           dtype=np.dtype(entry["dtype"]).newbyteorder("<"))
        tensors[name] = torch.from_numpy(data.reshape(entry["shape"]).copy())
    return tensors, manifest["params"]


def expect_close(name, ours, reference):
    ours = ours.double()
    reference = reference.detach().double()
    if ours.shape != reference.shape:
        failures.append(f"{name}: shape {tuple(ours.shape)} vs "
                        f"{tuple(reference.shape)}")
        return
    error = (ours - reference).abs()
    allowed = ABS_TOL + REL_TOL * reference.abs()
    worst = (error - allowed).max().item() if error.numel() else -1.0
    status = "ok" if worst <= 0 else "FAIL"
    print(f"{status:4} {name}: max abs error "
          f"{error.max().item() if error.numel() else 0.0:.2e}")
    if worst > 0:
        failures.append(name)


def leaf(tensor):
    return tensor.double().clone().requires_grad_(True)


def check_linear(t, prefix, transposed):
    x, w, b = leaf(t[prefix + "x"]), leaf(t[prefix + "w"]), leaf(t[prefix + "b"])
    y = F.linear(x, w if transposed else w.t(), b)
    y.backward(t[prefix + "dy"].double())
    expect_close(prefix + "y", t[prefix + "y"], y)
    expect_close(prefix + "dx", t[prefix + "dx"], x.grad)
    expect_close(prefix + "dw", t[prefix + "dw"], w.grad)
    expect_close(prefix + "db", t[prefix + "db"], b.grad)


def check_layer_norm(t, params):
    x, g, b = (leaf(t["layer_norm." + n]) for n in ("x", "gamma", "beta"))
    y = F.layer_norm(x, (x.shape[-1],), g, b, eps=params["layer_norm.eps"])
    y.backward(t["layer_norm.dy"].double())
    expect_close("layer_norm.y", t["layer_norm.y"], y)
    expect_close("layer_norm.dx", t["layer_norm.dx"], x.grad)
    expect_close("layer_norm.dgamma", t["layer_norm.dgamma"], g.grad)
    expect_close("layer_norm.dbeta", t["layer_norm.dbeta"], b.grad)


def check_activations(t):
    functions = {
        "relu": F.relu,
        "gelu": F.gelu,
        "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
        "silu": F.silu,
    }
    for name, function in functions.items():
        x = leaf(t["activation.x"])
        y = function(x)
        y.backward(t["activation.dy"].double())
        expect_close(f"activation.{name}.y", t[f"activation.{name}.y"], y)
        expect_close(f"activation.{name}.dx", t[f"activation.{name}.dx"],
                     x.grad)


def sinusoidal(seq_len, dim):
    pe = torch.zeros(seq_len, dim, dtype=torch.float64)
    for pos in range(seq_len):
        for i in range(0, dim, 2):
            angle = pos / (10000.0 ** (i / dim))
            pe[pos, i] = math.sin(angle)
            if i + 1 < dim:
                pe[pos, i + 1] = math.cos(angle)
    return pe


def check_embedding(t):
    tokens = t["embedding.tokens"].long()
    seq_len = tokens.shape[-1]
    dy = t["embedding.dy"].double()

    table = leaf(t["embedding.table"])
    dim = table.shape[1]
    y = F.embedding(tokens, table) * math.sqrt(dim) + sinusoidal(seq_len, dim)
    y.backward(dy)
    expect_close("embedding.sinusoidal_scaled.y",
                 t["embedding.sinusoidal_scaled.y"], y)
    expect_close("embedding.sinusoidal_scaled.dtable",
                 t["embedding.sinusoidal_scaled.dtable"], table.grad)

    table, positions = leaf(t["embedding.table"]), leaf(t["embedding.positions"])
    y = F.embedding(tokens, table) + positions[:seq_len]
    y.backward(dy)
    expect_close("embedding.learned.y", t["embedding.learned.y"], y)
    expect_close("embedding.learned.dtable", t["embedding.learned.dtable"],
                 table.grad)
    expect_close("embedding.learned.dpositions",
                 t["embedding.learned.dpositions"], positions.grad)


def check_attention(t, params, name):
    q, k, v = (leaf(t[f"{name}.{n}"]) for n in ("q", "k", "v"))
    heads = int(params[f"{name}.num_heads"])
    causal = params[f"{name}.causal"] != 0
    key_mask = t[f"{name}.key_mask"].bool()
    batch, sq, dim = q.shape
    sk = k.shape[1]
    dh = dim // heads

    def split(x, length):  # [B, S, D] -> [B, H, S, dh]
        return x.view(batch, length, heads, dh).transpose(1, 2)

    scores = split(q, sq) @ split(k, sk).transpose(-1, -2) / math.sqrt(dh)
    visible = key_mask[:, None, None, :].expand(batch, heads, sq, sk)
    if causal:
        visible = visible & torch.ones(sq, sk, dtype=torch.bool).tril()
    probs = torch.softmax(scores.masked_fill(~visible, float("-inf")), dim=-1)
    y = (probs @ split(v, sk)).transpose(1, 2).reshape(batch, sq, dim)
    y.backward(t[f"{name}.dy"].double())
    expect_close(f"{name}.y", t[f"{name}.y"], y)
    expect_close(f"{name}.dq", t[f"{name}.dq"], q.grad)
    expect_close(f"{name}.dk", t[f"{name}.dk"], k.grad)
    expect_close(f"{name}.dv", t[f"{name}.dv"], v.grad)


def check_cross_entropy(t, params):
    logits = leaf(t["cross_entropy.logits"])
    labels = t["cross_entropy.labels"].long()
    vocab = logits.shape[-1]
    loss = F.cross_entropy(logits.reshape(-1, vocab), labels.reshape(-1),
                           ignore_index=int(params["cross_entropy.ignore_index"]),
                           label_smoothing=params["cross_entropy.label_smoothing"])
    (loss * params["cross_entropy.loss_grad"]).backward()
    expect_close("cross_entropy.loss", t["cross_entropy.loss"], loss)
    expect_close("cross_entropy.dlogits", t["cross_entropy.dlogits"],
                 logits.grad)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dump-tool", required=True,
                        help="path of moert-dense-reference-dump")
    parser.add_argument("--work-dir", required=True,
                        help="directory for the dumped tensors")
    args = parser.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    subprocess.run([args.dump_tool, args.work_dir], check=True)
    tensors, params = load(args.work_dir)

    check_linear(tensors, "linear.", transposed=False)
    check_linear(tensors, "linear_t.", transposed=True)
    check_layer_norm(tensors, params)
    check_activations(tensors)
    check_embedding(tensors)
    check_attention(tensors, params, "attention_causal")
    check_attention(tensors, params, "attention_cross")
    check_cross_entropy(tensors, params)

    if failures:
        print(f"{len(failures)} mismatches: {', '.join(failures)}")
        return 1
    print("all dense kernels match torch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
