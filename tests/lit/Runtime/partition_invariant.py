#!/usr/bin/env python3
"""The partitioning invariant, with real MPI processes.

Compiles the demo model once unpartitioned and once per device grid, trains
each for a few steps (the grids under `mpirun -np <ranks>`), and checks that
every grid gives the losses and final parameters (and AdamW moments) of the
1-rank run, to a stated fp32 tolerance.

Why a tolerance and not bit equality: a partitioned step sums the same terms
in another order (gradients all-reduced over ranks instead of accumulated in
one GEMM, per-shard GEMMs with other blockings), so each reduction differs
by a few ulps (relative 1e-7; the losses agree to about 1e-7). AdamW
normalizes the update per element (m / sqrt(v)): where a gradient element is
small, a relative rounding difference in it becomes a difference in the
update of up to lr, so after 5 steps the parameters agree to 2e-5 .. 7e-5 of
each tensor's largest magnitude (measured on all grids). The tolerance (1e-3
of the tensor's scale; 1e-4 relative on the loss) is above that and far
below the effect of a real partitioning error (a missed or doubled
reduction, a wrong shard or slot order), which changes the first update by
the full learning rate on most elements: 1e-2 and more of the scale.

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
    # Gradients reduced in buckets (moe-bucket-gradients): one bucket, and
    # buckets of 64 KiB (many, some holding a single tensor) with tensor
    # parallelism, whose forward all-reduces must stay where they are.
    "dp=2 ep=2 bucket-mb=25",
    "ep=2 tp=2 bucket-mb=0.0625",
    "dp=2 zero=1 bucket-mb=0.0625",
    # ZeRO-2: the gradient shards' reduce-scatters and the parameters'
    # all-gathers in buckets as well (packed in rows, one per rank).
    "dp=2 ep=2 zero=2 bucket-mb=25",
    "dp=2 zero=2 bucket-mb=0.0625",
]
LOSS_RTOL = 1e-4
PEAK_LR = 0.003
PARAM_TOL = 1e-3


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
    parser.add_argument(
        "--reshard", nargs="*", default=None,
        help="instead of the grid sweep: train segments on these grids in turn "
             "(e.g. 'dp=2 ep=2' 'ep=4' '1'), each resuming the previous "
             "segment's checkpoint, and compare with the uninterrupted 1-rank run")
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
    pipeline = '--moe-training-pipeline=lr=%g warmup-steps=5' % PEAK_LR

    def compile_plan(name, partition):
        plan = os.path.join(args.workdir, name + ".moeplan")
        cmd = [args.moe_opt, args.model, pipeline]
        if partition:
            items = partition.split()
            buckets = [i for i in items if i.startswith("bucket-mb=")]
            grid = " ".join(i for i in items if not i.startswith("bucket-mb="))
            cmd.append("--moe-partition=" + grid)
            if buckets:
                cmd.append("--moe-bucket-gradients=" + buckets[0])
        cmd += ["--moe-emit-plan=output=%s seed=%d" % (plan, args.seed), "-o", os.devnull]
        run(cmd, env)
        return plan

    def train(name, partition):
        plan = compile_plan(name, partition)
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
    if args.reshard is not None:
        return reshard_chain(args, env, compile_plan, base_losses, base_params)
    if len(base_losses) != args.steps:
        sys.exit("expected %d loss records in the 1-rank run, found %d" % (args.steps, len(base_losses)))
    failures = 0
    for grid in args.grids:
        name = grid.replace(" ", "_").replace("=", "")
        grid_losses, grid_params = train(name, grid)
        if [s for s, _ in grid_losses] != [s for s, _ in base_losses]:
            print("FAIL %-18s logged steps %s, expected %s" % (grid, grid_losses, base_losses))
            failures += 1
            continue
        label = "%-18s ranks %d" % (grid, ranks_of(grid))
        if not compare(label, base_losses, base_params, grid_losses, grid_params, args.steps):
            failures += 1
    print("losses (1 rank):", " ".join("%.6f" % l for _, l in base_losses))
    if failures:
        sys.exit("%d grid(s) differ from the 1-rank run" % failures)
    print("all %d grids match the 1-rank run" % len(args.grids))


def degenerate(name):
    """Tensors whose gradient is zero in exact arithmetic: the attention key
    bias (softmax is invariant to adding q.b_k to every score of a query)
    and its moments. Their 'gradient' is rounding noise, which AdamW scales
    to full-size steps, so two runs that round differently move them
    differently; they are checked against the largest move AdamW allows
    instead (|update| <= lr per element and step)."""
    return ".k.bias" in name


def compare(label, base_losses, base_params, got_losses, got_params, steps):
    """Prints and returns whether `got` matches the 1-rank run."""
    by_step = dict(base_losses)
    worst_loss = max(abs(l - by_step[s]) / max(abs(by_step[s]), 1e-12) for s, l in got_losses)
    worst_param, worst_name = 0.0, ""
    if sorted(got_params) != sorted(base_params):
        print("FAIL %s: checkpoint tensors differ" % label)
        return False
    for key, ref in base_params.items():
        got = got_params[key]
        if got.shape != ref.shape:
            print("FAIL %s: %s has shape %s, expected %s" % (label, key, got.shape, ref.shape))
            return False
        if ref.dtype != np.float32:
            continue
        diff = float(np.max(np.abs(got.astype(np.float64) - ref)))
        if degenerate(key):
            if ".exp_avg" not in key and diff > 2 * PEAK_LR * steps:
                print("FAIL %s: %s differs by %.3e, more than AdamW can move it" % (label, key, diff))
                return False
            continue
        scale = max(float(np.max(np.abs(ref))), 1e-6)
        err = diff / scale
        if err > worst_param:
            worst_param, worst_name = err, key
    ok = worst_loss <= LOSS_RTOL and worst_param <= PARAM_TOL
    print("%s %s  loss rel err %.2e  worst tensor err %.2e (%s)"
          % ("ok  " if ok else "FAIL", label, worst_loss, worst_param, worst_name))
    return ok


def reshard_chain(args, env, compile_plan, base_losses, base_params):
    """Segments of training on different grids, each resuming the last."""
    segments = args.reshard
    steps_per_segment = [args.steps * (i + 1) // len(segments) for i in range(len(segments))]
    resume = None
    got_losses = []
    for index, (grid, until) in enumerate(zip(segments, steps_per_segment)):
        partition = None if grid in ("1", "") else grid
        name = "reshard%d_%s" % (index, grid.replace(" ", "_").replace("=", ""))
        plan = compile_plan(name, partition)
        metrics = os.path.join(args.workdir, name + ".jsonl")
        ckpt = os.path.join(args.workdir, name + ".safetensors")
        for stale in (metrics, ckpt):
            if os.path.exists(stale):
                os.remove(stale)
        cmd = [args.moe_train, plan, "--seed", str(args.seed), "--steps", str(until),
               "--metrics", metrics, "--save", ckpt]
        if resume:
            cmd += ["--resume", resume]
        if partition:
            cmd = [args.mpirun, "-np", str(ranks_of(partition))] + cmd
        run(cmd, env)
        got_losses += losses(metrics)
        resume = ckpt
        print("segment %d: grid %-12s trained to step %d" % (index, grid, until))
    if [s for s, _ in got_losses] != [s for s, _ in base_losses]:
        sys.exit("resharded run logged steps %s, expected %s"
                 % ([s for s, _ in got_losses], [s for s, _ in base_losses]))
    if not compare("resharded " + " -> ".join(segments), base_losses, base_params,
                   got_losses, read_safetensors(resume), args.steps):
        sys.exit("the resharded run differs from the 1-rank run")
    print("the resharded run matches the 1-rank run")


if __name__ == "__main__":
    main()
