#!/usr/bin/python3
"""Training throughput in real (non-pad) target tokens per second: the main
job's model on one batch shape against length buckets (moe-train
--bucket-plan), measured in the same run, alternating.

    bench/bucket_throughput.py [--corpus build/run/corpus] [--ranks 1|2]
        [--steps 150] [--rounds 2] [--config models/mt-demo.json]
        [--buckets 48/12,24/24,12/48] [--lengths]

Needs the built tools (build/bin) and an encoded corpus (./scripts/run.sh
makes build/run/corpus). Each round trains a fresh model for --steps steps
with the single shape of the configuration (batch_size x src_len/tgt_len)
and then with the buckets (batch x length, source = target length; the
plans in increasing length); the first 20 steps of each run are left out
(warm-up). Prints, per run and summed over the rounds: steps, real target
tokens per step and per second, and the share of the batches' target slots
that hold real tokens; per run also the speed at the median step time,
which bursts of load from other jobs move less. --lengths prints the corpus' pair lengths
(the rows' needs, moert/data/LengthBuckets.h) and the buckets they fall in.
"""
import argparse
import json
import os
import struct
import subprocess
import sys

WARMUP = 20


def run(command, **kw):
    return subprocess.run(command, check=True, **kw)


def compile_plan(config, batch, length, out, ranks, work):
    c = dict(config, batch_size=batch, src_len=length, tgt_len=length)
    path = os.path.join(work, f"b{batch}x{length}")
    json.dump(c, open(path + ".json", "w"))
    run(["build/bin/moe-model-gen", path + ".json", "-o", path + ".mlir"])
    pipeline = "lr=0.003 warmup-steps=1000" + (" ep=2" if ranks == 2 else "")
    run(["build/bin/moe-opt", path + ".mlir",
         f"--moe-training-pipeline={pipeline}",
         f"--moe-emit-plan=output={out} seed=1 gpu-kernels=none",
         "-o", "/dev/null"])


def train(plans, corpus, steps, ranks, metrics):
    launch = ["build/bin/moe-train"]
    if ranks == 2 and os.geteuid() == 0:
        # OpenMPI refuses to start as root unless told (as scripts/run.sh).
        os.environ.update(OMPI_ALLOW_RUN_AS_ROOT="1",
                          OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    if ranks == 2:
        launch = ["mpirun", "--oversubscribe", "-np", "2", "--bind-to", "none",
                  "-x", "OMP_NUM_THREADS=1", "build/bin/moe-train"]
    command = launch + [plans[0]]
    for plan in plans[1:]:
        command += ["--bucket-plan", plan]
    command += ["--data", corpus, "--steps", str(steps), "--metrics", metrics,
                "--log-every", str(steps)]
    run(command, stdout=subprocess.DEVNULL)
    rows = [json.loads(line) for line in open(metrics)][WARMUP:]
    return rows


def summary(rows, capacity):
    tokens = sum(r["tokens"] for r in rows)
    seconds = sum(r["seconds"] for r in rows)
    slots = sum(capacity[r.get("bucket", 0)] for r in rows)
    return len(rows), tokens, seconds, slots


def median(values):
    values = sorted(values)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else \
        (values[middle - 1] + values[middle]) / 2


def read_lengths(corpus):
    needs = []
    for name in os.listdir(corpus):
        if not (name.startswith("train.") and name.endswith(".ids")):
            continue
        data = open(os.path.join(corpus, name), "rb").read()
        (count,) = struct.unpack_from("<Q", data, 8)
        at = 16
        for _ in range(count):
            en, x = struct.unpack_from("<II", data, at)
            at += 8 + 4 * (en + x)
            needs.append((max(en + 2, x + 3), max(en, x) + 1))
    return needs


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default="build/run/corpus")
    parser.add_argument("--config", default="models/mt-demo.json")
    parser.add_argument("--ranks", type=int, default=1, choices=(1, 2))
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--buckets", default="48/12,24/24,12/48")
    parser.add_argument("--lengths", action="store_true")
    parser.add_argument("--work", default="build/bench-buckets")
    args = parser.parse_args()
    config = json.load(open(args.config))
    buckets = [tuple(int(v) for v in b.split("/"))
               for b in args.buckets.split(",")]
    if args.lengths:
        needs = read_lengths(args.corpus)
        counts = [0] * len(buckets)
        for s, t in needs:
            k = next((k for k, (_, n) in enumerate(buckets)
                      if s <= n and t <= n), len(buckets) - 1)
            counts[k] += 1
        for limit in (12, 16, 24, 32, 48):
            share = sum(1 for s, t in needs if s <= limit and t <= limit)
            print(f"pairs whose rows fit {limit}/{limit}: "
                  f"{100.0 * share / len(needs):.1f} %")
        print("pairs per bucket:", ", ".join(
            f"{b}x{n}: {c}" for (b, n), c in zip(buckets, counts)))
        return
    os.makedirs(args.work, exist_ok=True)
    single = (config["batch_size"], config["src_len"])
    single_plan = os.path.join(args.work, f"single-r{args.ranks}.moeplan")
    compile_plan(config, *single, single_plan, args.ranks, args.work)
    bucket_plans = []
    for batch, length in buckets:
        plan = os.path.join(args.work, f"bucket{length}-r{args.ranks}.moeplan")
        compile_plan(config, batch, length, plan, args.ranks, args.work)
        bucket_plans.append(plan)
    totals = {"single": [0, 0, 0.0, 0], "buckets": [0, 0, 0.0, 0]}
    for round_ in range(args.rounds):
        for name, plans, capacity in (
                ("single", [single_plan], [single[0] * single[1]]),
                ("buckets", bucket_plans, [b * n for b, n in buckets])):
            metrics = os.path.join(args.work, f"{name}-{round_}.jsonl")
            rows = train(plans, args.corpus, args.steps, args.ranks, metrics)
            steps, tokens, seconds, slots = summary(rows, capacity)
            for i, v in enumerate((steps, tokens, seconds, slots)):
                totals[name][i] += v
            # The median step time is robust to bursts of load from other
            # jobs on the machine.
            typical = median([r["seconds"] for r in rows])
            print(f"round {round_ + 1} {name:8s}: {steps} steps, "
                  f"{tokens / steps:.0f} real target tokens/step "
                  f"({100.0 * tokens / slots:.1f} % of the slots), "
                  f"{tokens / seconds:.0f} real target tokens/s; median step "
                  f"{typical * 1000:.1f} ms: {tokens / steps / typical:.0f} "
                  f"real target tokens/s", flush=True)
    s, b = totals["single"], totals["buckets"]
    for name, (steps, tokens, seconds, slots) in totals.items():
        print(f"total {name:8s}: {tokens / steps:.0f} real target tokens/step "
              f"({100.0 * tokens / slots:.1f} % of the slots), "
              f"{seconds / steps * 1000:.1f} ms/step, "
              f"{tokens / seconds:.0f} real target tokens/s")
    print(f"buckets / single: {(b[1] / b[2]) / (s[1] / s[2]):.2f}x "
          "real target tokens/s")


if __name__ == "__main__":
    sys.exit(main())
