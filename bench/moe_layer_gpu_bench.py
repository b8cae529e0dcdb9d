#!/usr/bin/env python3
"""PyTorch eager baseline of one MoE layer on a GPU (forward + backward).

    python3 bench/moe_layer_gpu_bench.py [--tokens 16384] [--model 4096]
        [--ffn 14336] [--experts 8] [--top-k 2] [--capacity-factor 1.25]
        [--dtype bf16|fp32] [--repeats 5] [--json OUT.json]

The index-based formulation (the strongest eager one): an fp32 router
(softmax, top-k, capacity with positional dropping), each kept token copied
once into its expert's [C, M] block with index_copy, the experts as batched
matrix products over [E, C, M] with SiLU, the outputs gathered back with
index_add weighted by the gate. The default shape is one Mixtral-8x7B layer.
Times the median of `repeats` runs after two warm-ups with CUDA events and
prints one JSON line; scripts/gpu-check.sh sets it against
moe-bench-layer-device, run on the same GPU in the same check.
"""

import argparse
import json
import statistics

import torch


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=int, default=16384)
    p.add_argument("--model", type=int, default=4096)
    p.add_argument("--ffn", type=int, default=14336)
    p.add_argument("--experts", type=int, default=8)
    p.add_argument("--top-k", type=int, default=2)
    p.add_argument("--capacity-factor", type=float, default=1.25)
    p.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json")
    return p.parse_args()


def moe_layer(x, wg, w1, w2, top_k, capacity):
    S, M = x.shape
    E = wg.shape[1]
    logits = x.float() @ wg.float()
    gates = torch.softmax(logits, dim=-1)
    weights, experts = torch.topk(gates, top_k, dim=-1)  # [S, k]
    weights = weights / weights.sum(-1, keepdim=True).clamp_min(1e-9)
    # Slots in token order, choices of rank r behind all of rank < r.
    flat_experts = experts.t().reshape(-1)  # choice-major
    one_hot = torch.nn.functional.one_hot(flat_experts, E)
    slots = (torch.cumsum(one_hot, 0) - 1).gather(1, flat_experts[:, None])[:, 0]
    kept = slots < capacity
    token = torch.arange(S, device=x.device).repeat(top_k)
    dest = flat_experts * capacity + slots
    buf = x.new_zeros(E * capacity, M)
    buf = buf.index_copy(0, dest[kept], x[token[kept]])
    h = torch.nn.functional.silu(torch.bmm(buf.view(E, capacity, M), w1))
    out = torch.bmm(h, w2).view(E * capacity, M)
    w = weights.t().reshape(-1)[kept].to(x.dtype)
    y = x.new_zeros(S, M).index_add(0, token[kept], out[dest[kept]] * w[:, None])
    return y


def main():
    a = parse_args()
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    dev = "cuda"
    torch.manual_seed(0)
    S, M, H, E = a.tokens, a.model, a.ffn, a.experts
    capacity = max(4, int(-(-S // E * a.capacity_factor * a.top_k // 1)))
    capacity = min(capacity, S)
    x = torch.randn(S, M, device=dev, dtype=dtype, requires_grad=True)
    wg = (torch.randn(M, E, device=dev) / M ** 0.5).requires_grad_()
    w1 = (torch.randn(E, M, H, device=dev, dtype=dtype) / M ** 0.5).requires_grad_()
    w2 = (torch.randn(E, H, M, device=dev, dtype=dtype) / H ** 0.5).requires_grad_()
    dy = torch.randn(S, M, device=dev, dtype=dtype)
    times = []
    for r in range(a.repeats + 2):
        start, end = torch.cuda.Event(True), torch.cuda.Event(True)
        start.record()
        y = moe_layer(x, wg, w1, w2, a.top_k, capacity)
        y.backward(dy)
        end.record()
        torch.cuda.synchronize()
        if r >= 2:
            times.append(start.elapsed_time(end))
        for t in (x, wg, w1, w2):
            t.grad = None
    # The dense GEMM rate of this GPU in this dtype, measured in this run.
    n = 8192
    p = torch.randn(n, n, device=dev, dtype=dtype)
    q = torch.randn(n, n, device=dev, dtype=dtype)
    for _ in range(3):
        p @ q
    start, end = torch.cuda.Event(True), torch.cuda.Event(True)
    start.record()
    for _ in range(10):
        p @ q
    end.record()
    torch.cuda.synchronize()
    gemm_tflops = 10 * 2 * n ** 3 / (start.elapsed_time(end) / 1e3) / 1e12
    result = {"torch": torch.__version__, "device": torch.cuda.get_device_name(),
              "dtype": a.dtype, "capacity": capacity,
              "layer_ms": statistics.median(times),
              "gemm_tflops_8192": gemm_tflops}
    print(json.dumps(result))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f)


if __name__ == "__main__":
    main()
