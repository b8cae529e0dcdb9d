#!/usr/bin/python3
"""The fused MoE layer of the runtime against two PyTorch formulations.

    /usr/bin/python3 bench/moe_layer_bench.py --bin BUILD/bin [--tokens 4096]
        [--model 128] [--hidden 512] [--experts 8 32 64] [--repeats 10]
        [--rounds 2] [--threads 2] [--json OUT.json] [--quick]

For each expert count E, times one MoE layer forward + backward (top-2,
capacity factor 1.0, Random Token Selection, exact-GELU experts, DeepSpeed's
defaults) three ways, in the same run:

* moert: the runtime's kernels as a compiled step calls them (gate, dispatch,
  expert FFN, combine and their gradients; ``moe-bench-layer``, a separate
  process);
* einsum: ``moe_layer_einsum`` of tests/reference/moe_reference.py, the
  GShard/DeepSpeed formulation (one-hot dispatch and combine tensors
  [G, S/G, E, C], ``einsum('gsec,gsm->egcm')`` and
  ``einsum('gsec,egcm->gsm')``, here with one gating group);
* indexed: ``moe_layer_indexed`` of the same module (index_select /
  index_add moves each kept token once), the strongest eager baseline here.

Both PyTorch versions share the reference's gate and run under autograd with
``torch.set_num_threads(threads)``; PyTorch and the runtime use the same
OpenBLAS with the same thread count; each side runs with its faster OpenMP
wait policy (--torch-wait-policy, --moert-wait-policy). Each implementation is timed in
``rounds`` rounds (moert, einsum, indexed in turn, so load from other
processes hits all of them) of ``repeats`` runs after warm-up; the table
shows the median over all runs and the ratios of the medians.

With capacity C = k * S / E (factor 1) the one-hot einsums cost 2 * k * S^2 * M
FLOPs each whatever E is (S * E * C = k * S^2), the experts 2 * k * S * M * H
per GEMM: the einsum formulation's overhead grows with S / H. The table
prints both counts.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

import bench_env  # bench/, next to this script

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", default=os.path.join(REPO, "build", "bin"),
                   help="directory holding moe-bench-layer")
    p.add_argument("--tokens", type=int, default=4096)
    p.add_argument("--model", type=int, default=128)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--experts", type=int, nargs="+", default=[8, 32, 64])
    p.add_argument("--top-k", type=int, default=2)
    p.add_argument("--capacity-factor", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--moert-wait-policy", default="",
                   help="OMP_WAIT_POLICY of the runtime's processes "
                        "(default: unset, libgomp's short spin then sleep)")
    p.add_argument("--torch-wait-policy", default="PASSIVE",
                   help="OMP_WAIT_POLICY of PyTorch (default PASSIVE; "
                        "empty: unset)")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--quick", action="store_true",
                   help="tiny shapes, one run each (a smoke test)")
    args = p.parse_args(argv)
    if args.quick:
        args.tokens, args.model, args.hidden = 64, 16, 32
        args.experts, args.repeats, args.rounds = [4, 8], 1, 1
    return args


ARGS = parse_args()
# Before torch loads: threads and each side's OpenMP wait policy.
MOERT_ENV = bench_env.set_up(ARGS.threads, ARGS.moert_wait_policy,
                             ARGS.torch_wait_policy)

import torch  # noqa: E402

sys.path.insert(0, os.path.join(REPO, "tests", "reference"))
import moe_reference as ref  # noqa: E402


def gating_config(args) -> ref.GatingConfig:
    # DeepSpeed's top-2 defaults; the runtime side uses the same GateConfig.
    return ref.GatingConfig(top_k=args.top_k,
                            capacity_factor=args.capacity_factor,
                            min_capacity=4, drop_tokens=True, use_rts=True,
                            noise="none", second_sampling=True)


def torch_layer(formulation: str, args, experts: int):
    """A closure running one forward + backward of the layer."""
    S, M, H, E = args.tokens, args.model, args.hidden, experts
    gen = torch.Generator().manual_seed(1)

    def param(*shape, scale):
        return (torch.randn(*shape, generator=gen) * scale).requires_grad_()

    x = param(S, M, scale=1.0)
    gate_weight = param(M, E, scale=1 / math.sqrt(M))
    w1 = param(E, M, H, scale=1 / math.sqrt(M))
    b1 = param(E, H, scale=0.02)
    w2 = param(E, H, M, scale=1 / math.sqrt(H))
    b2 = param(E, M, scale=0.02)
    dy = torch.randn(S, M, generator=gen)
    aux_grad = torch.tensor(0.01)
    tensors = (x, gate_weight, w1, b1, w2, b2)
    layer = ref.MOE_FORMULATIONS[formulation]
    gating = gating_config(args)

    def run():
        for t in tensors:
            t.grad = None
        y, _, aux, _ = layer(x, gate_weight, w1, b1, w2, b2, gating,
                             activation="gelu", training=True, generator=gen)
        torch.autograd.backward([y, aux], [dy, aux_grad])

    return run


def time_torch(run, repeats: int, warmup: int = 2):
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def time_moert(args, experts: int):
    exe = os.path.join(args.bin, "moe-bench-layer")
    env = dict(MOERT_ENV)
    out = subprocess.run(
        [exe, "--tokens", str(args.tokens), "--model", str(args.model),
         "--hidden", str(args.hidden), "--experts", str(experts),
         "--top-k", str(args.top_k),
         "--capacity-factor", str(args.capacity_factor),
         "--repeats", str(args.repeats)],
        env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def gflop(x):
    return x / 1e9


def main():
    args = ARGS
    torch.set_num_threads(args.threads)
    S, M, H, k = args.tokens, args.model, args.hidden, args.top_k
    print(f"MoE layer forward + backward: S={S} tokens, d_model={M}, "
          f"hidden={H}, top-{k}, capacity factor {args.capacity_factor}, "
          f"{args.threads} threads (torch {torch.__version__}, "
          f"{args.rounds} x {args.repeats} runs, medians; OMP_WAIT_POLICY "
          f"moert {args.moert_wait_policy or 'unset'}, torch "
          f"{args.torch_wait_policy or 'unset'})")
    rows = []
    for E in args.experts:
        times = {"moert": [], "einsum": [], "indexed": []}
        runs = {f: torch_layer(f, args, E) for f in ("einsum", "indexed")}
        capacity, phases = None, None
        for _ in range(args.rounds):
            result = time_moert(args, E)
            times["moert"] += result["times"]
            capacity, phases = result["capacity"], result["phases"]
            for f, run in runs.items():
                times[f] += time_torch(run, args.repeats)
        med = {f: statistics.median(t) for f, t in times.items()}
        # FLOPs: experts 7 GEMMs (the runtime recomputes one; autograd keeps
        # it, 6) of 2*E*C*M*H; each one-hot einsum 2*S*E*C*M, five of them
        # in forward + backward (dispatch, combine, and their gradients
        # with respect to the tokens, the expert outputs and the combine
        # weights; the dispatch mask needs none).
        expert_flops = 7 * 2 * E * capacity * M * H
        einsum_flops = 5 * 2 * S * E * capacity * M
        rows.append({"experts": E, "capacity": capacity,
                     "moert_s": med["moert"], "einsum_s": med["einsum"],
                     "indexed_s": med["indexed"],
                     "einsum_ratio": med["einsum"] / med["moert"],
                     "indexed_ratio": med["indexed"] / med["moert"],
                     "expert_gflop": gflop(expert_flops),
                     "einsum_gflop": gflop(einsum_flops),
                     "moert_phases_s": phases, "times_s": times})
    print(f"{'E':>4} {'C':>6} {'moert ms':>10} {'einsum ms':>10} "
          f"{'indexed ms':>11} {'einsum/moert':>13} {'indexed/moert':>14} "
          f"{'expert GF':>10} {'einsum GF':>10}")
    for r in rows:
        print(f"{r['experts']:>4} {r['capacity']:>6} {r['moert_s'] * 1e3:>10.1f} "
              f"{r['einsum_s'] * 1e3:>10.1f} {r['indexed_s'] * 1e3:>11.1f} "
              f"{r['einsum_ratio']:>13.2f} {r['indexed_ratio']:>14.2f} "
              f"{r['expert_gflop']:>10.2f} {r['einsum_gflop']:>10.2f}")
    print("moert phases (ms, medians): " + "; ".join(
        f"E={r['experts']}: " + ", ".join(
            f"{name} {sec * 1e3:.1f}" for name, sec in r["moert_phases_s"].items())
        for r in rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"tokens": S, "model": M, "hidden": H, "top_k": k,
                       "capacity_factor": args.capacity_factor,
                       "threads": args.threads, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
