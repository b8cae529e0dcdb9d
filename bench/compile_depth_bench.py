#!/usr/bin/env python3
"""Compile time against model depth: is the compiler linear in the layers?

Generates the same small MoE model with L and 2L decoder layers (and 4L),
times `moe-model-gen` and `moe-opt --moe-training-pipeline --moe-emit-plan`
on each, and prints the time ratio of each doubling: about 2 for a linear
compiler, about 4 for a quadratic one. The baseline is the shallow model
timed in the same run, so the ratios do not depend on the machine.

    bench/compile_depth_bench.py --bin build/bin [--layers 250] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time


def config(layers: int) -> dict:
    return {
        "name": f"depth{layers}", "vocab_size": 64, "d_model": 16,
        "num_heads": 2, "ffn_hidden": 16, "encoder_layers": 1,
        "decoder_layers": layers, "batch_size": 2, "src_len": 4,
        "tgt_len": 4, "moe": {"num_experts": 2},
    }


def timed(command: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default="build/bin")
    parser.add_argument("--layers", type=int, default=250,
                        help="decoder layers of the shallowest model")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    gen = os.path.join(args.bin, "moe-model-gen")
    opt = os.path.join(args.bin, "moe-opt")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for layers in (args.layers, 2 * args.layers, 4 * args.layers):
            cfg = os.path.join(tmp, f"d{layers}.json")
            mlir = os.path.join(tmp, f"d{layers}.mlir")
            plan = os.path.join(tmp, f"d{layers}.moeplan")
            with open(cfg, "w") as f:
                json.dump(config(layers), f)
            t_gen = timed([gen, cfg, "-o", mlir], args.repeat)
            t_opt = timed([opt, mlir, "--moe-training-pipeline",
                           f"--moe-emit-plan=output={plan} gpu-kernels=none",
                           "-o", os.devnull], args.repeat)
            rows.append((layers, t_gen, t_opt))
    print(f"{'decoder layers':>14} {'moe-model-gen s':>16} {'x prev':>7} "
          f"{'moe-opt s':>10} {'x prev':>7}")
    previous = None
    for layers, t_gen, t_opt in rows:
        ratio_gen = f"{t_gen / previous[1]:7.2f}" if previous else " " * 7
        ratio_opt = f"{t_opt / previous[2]:7.2f}" if previous else " " * 7
        print(f"{layers:>14} {t_gen:16.2f} {ratio_gen} {t_opt:10.2f} "
              f"{ratio_opt}")
        previous = (layers, t_gen, t_opt)
    print("(per doubling of the depth: 2.0 is linear, 4.0 quadratic)")


if __name__ == "__main__":
    main()
