#!/usr/bin/env python3
"""The partitioning invariant, with real MPI processes.

Compiles the demo model once unpartitioned and once per device grid, trains
each for a few steps (the grids under `mpirun -np <ranks>`), and checks that
every grid gives the losses and final parameters (and AdamW moments) of the
1-rank run, to a stated fp32 tolerance.

Why a tolerance and not bit equality: a partitioned step sums the same terms
in another order (gradients all-reduced over ranks instead of accumulated in
one GEMM, per-shard GEMMs with other blockings), so each reduction differs
by a few ulps (relative 1e-7). AdamW normalizes the update per element
(m / sqrt(v)), which keeps these differences at the same relative size
rather than amplifying them, so after a few steps the parameters agree to
about 1e-6 of their scale. The tolerance (2e-4 of each tensor's largest
magnitude, 1e-4 relative on the loss) is 100x above what is measured and far
below the effect of any real partitioning error (a missed reduction halves a
gradient; a wrong shard permutes experts), which shows up as differences of
order 1e-2 or more after the first update.

Usage: partition_invariant.py MOE_OPT MOE_TRAIN MODEL.mlir WORKDIR [--grids ...]
"""
import argparse
import json
import os
import struct
import subprocess
import sys

import numpy as np

GRIDS = [
    "dp=2",
    "ep=2",
    "tp=2",
    "dp=2 ep=2",
    "ep=2 tp=2",
    "ep=4",
    "dp=2 zero=1",
    "dp=2 ep=2 zero=2",
]
LOSS_RTOL = 1e-4
PARAM_TOL = 2e-4


def ranks_of(grid):
    n = 1
    for item in grid.split():
        key, value = item.split("=")
        if key in ("dp", "ep", "tp"):
            n *= int(value)
    return n


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    base = 8 + header_len
    tensors = {}
    dtypes = {"F32": np.float32, "I32": np.int32, "I64": np.int64}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        array = np.frombuffer(data[base + begin : base + end], dtype=dtypes[info["dtype"]])
        tensors[name] = array.reshape(info["shape"])
    return tensors


def losses(path):
    result = []
    with open(path) as f:
        for line in f:
            record = json.loads(line)
            if "loss" in record and "step" in record:
                result.append((record["step"], record["loss"]))
    return result


def run(cmd, env):
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        sys.exit("command failed (%d): %s\n%s" % (proc.returncode, " ".join(cmd), proc.stdout))
    return proc.stdout


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("moe_opt")
    parser.add_argument("moe_train")
    parser.add_argument("model")
    parser.add_argument("workdir")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--mpirun", default="mpirun")
    parser.add_argument("--grids", nargs="*", default=GRIDS)
    args = parser.parse_args()

    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        OMP_WAIT_POLICY="PASSIVE",
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        OMPI_MCA_rmaps_base_oversubscribe="1",
    )
    os.makedirs(args.workdir, exist_ok=True)
    pipeline = '--moe-training-pipeline=lr=0.003 warmup-steps=5'

    def train(name, partition):
        plan = os.path.join(args.workdir, name + ".moeplan")
        cmd = [args.moe_opt, args.model, pipeline]
        if partition:
            cmd.append("--moe-partition=" + partition)
        cmd += ["--moe-emit-plan=output=%s seed=%d" % (plan, args.seed), "-o", os.devnull]
        run(cmd, env)
        metrics = os.path.join(args.workdir, name + ".jsonl")
        ckpt = os.path.join(args.workdir, name + ".safetensors")
        for stale in (metrics, ckpt):
            if os.path.exists(stale):
                os.remove(stale)
        train_cmd = [args.moe_train, plan, "--seed", str(args.seed), "--steps", str(args.steps),
                     "--metrics", metrics, "--save", ckpt]
        if partition:
            train_cmd = [args.mpirun, "-np", str(ranks_of(partition))] + train_cmd
        run(train_cmd, env)
        return losses(metrics), read_safetensors(ckpt)

    base_losses, base_params = train("single", None)
    if len(base_losses) != args.steps:
        sys.exit("expected %d loss records in the 1-rank run, found %d" % (args.steps, len(base_losses)))
    failures = 0
    for grid in args.grids:
        name = grid.replace(" ", "_").replace("=", "")
        grid_losses, grid_params = train(name, grid)
        worst_loss = 0.0
        if [s for s, _ in grid_losses] != [s for s, _ in base_losses]:
            print("FAIL %-18s steps %s, expected %s" % (grid, grid_losses, base_losses))
            failures += 1
            continue
        for (_, a), (_, b) in zip(base_losses, grid_losses):
            worst_loss = max(worst_loss, abs(a - b) / max(abs(a), 1e-12))
        worst_param, worst_name = 0.0, ""
        if sorted(grid_params) != sorted(base_params):
            print("FAIL %-18s checkpoint tensors differ: %s" % (grid, sorted(set(grid_params) ^ set(base_params))[:5]))
            failures += 1
            continue
        for key, ref in base_params.items():
            got = grid_params[key]
            if got.shape != ref.shape:
                print("FAIL %-18s %s has shape %s, expected %s" % (grid, key, got.shape, ref.shape))
                failures += 1
                break
            if ref.dtype != np.float32:
                continue
            scale = max(float(np.max(np.abs(ref))), 1e-6)
            err = float(np.max(np.abs(got.astype(np.float64) - ref))) / scale
            if err > worst_param:
                worst_param, worst_name = err, key
        ok = worst_loss <= LOSS_RTOL and worst_param <= PARAM_TOL
        failures += 0 if ok else 1
        print("%s %-18s ranks %d  loss rel err %.2e  worst tensor err %.2e (%s)"
              % ("ok  " if ok else "FAIL", grid, ranks_of(grid), worst_loss, worst_param, worst_name))
    print("losses (1 rank):", " ".join("%.6f" % l for _, l in base_losses))
    if failures:
        sys.exit("%d grid(s) differ from the 1-rank run" % failures)
    print("all %d grids match the 1-rank run" % len(args.grids))


if __name__ == "__main__":
    main()
