#!/usr/bin/python3
"""Training throughput of the compiled demo model against PyTorch eager, and
its model FLOP utilization.

    /usr/bin/python3 bench/train_bench.py --compiler-bin build/bin
        --runtime-bin build/bin [--config models/demo.json] [--steps 60]
        [--warmup 10] [--rounds 2] [--threads 2] [--sgemm-peak GFLOPS]
        [--workdir DIR] [--json OUT.json] [--quick]

1. Compiles the model as scripts/demo.sh does (moe-model-gen, then moe-opt
   --moe-training-pipeline="lr=0.003 warmup-steps=20" --moe-emit-plan).
2. In each of ``rounds`` rounds: trains it with ``moe-train`` for
   warmup + steps steps (per-step seconds from its JSONL metrics: the whole
   training step, forward, backward, clipping and AdamW), then trains the
   same model in PyTorch eager for as many steps: ``MoEModel`` of
   tests/reference/moe_reference.py (indexed MoE layers, the faster of its
   two formulations; dropout as configured), the same batch shapes, loss +
   0.01 aux, clip_grad_norm_(1.0), AdamW(betas 0.9/0.98, eps 1e-8, the
   pipeline's defaults) with the same warmup schedule. Same thread count for
   both (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, torch.set_num_threads);
   each side with its faster OpenMP wait policy (--moert-wait-policy,
   default unset; --torch-wait-policy, default PASSIVE).
3. Prints median step times (after the warm-up steps, over all rounds),
   tokens/s (the runner's definition: target tokens, i.e. non-pad labels;
   the mean per step of the runner's batches, for both sides) and the ratio.
4. Counts the model FLOPs of one step (matrix products: forward x 3 for
   forward + backward; attention scores and values; experts at their
   capacity, the gate's logits; no recomputation) and divides by the median
   step time for the model FLOP utilization against ``--sgemm-peak``
   (moe-bench-experts --peak measures it; measured here when not given).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import bench_env  # bench/, next to this script

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--compiler-bin", default=os.path.join(REPO, "build", "bin"),
                   help="directory holding moe-model-gen and moe-opt")
    p.add_argument("--runtime-bin", default=os.path.join(REPO, "build", "bin"),
                   help="directory holding moe-train and moe-bench-experts")
    p.add_argument("--config", default=os.path.join(REPO, "models", "demo.json"))
    p.add_argument("--steps", type=int, default=60, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=10,
                   help="untimed steps at the start of each round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--moert-wait-policy", default="",
                   help="OMP_WAIT_POLICY of the runtime's processes "
                        "(default: unset, libgomp's short spin then sleep)")
    p.add_argument("--torch-wait-policy", default="PASSIVE",
                   help="OMP_WAIT_POLICY of PyTorch (default PASSIVE; "
                        "empty: unset)")
    p.add_argument("--sgemm-peak", type=float,
                   help="GFLOP/s; measured with moe-bench-experts when absent")
    p.add_argument("--workdir", help="where the plan and metrics go "
                   "(default: a temporary directory)")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--quick", action="store_true",
                   help="a few steps, one round (a smoke test)")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.warmup, args.rounds = 3, 1, 1
    return args


ARGS = parse_args()
# Before torch loads: threads and each side's OpenMP wait policy.
MOERT_ENV = bench_env.set_up(ARGS.threads, ARGS.moert_wait_policy,
                             ARGS.torch_wait_policy)

import torch  # noqa: E402

sys.path.insert(0, os.path.join(REPO, "tests", "reference"))
import moe_reference as ref  # noqa: E402

# The training pipeline of scripts/demo.sh and the optimizer defaults of
# moe-training-pipeline (passes/Passes.td).
LR, WARMUP_STEPS = 0.003, 20
BETAS, EPS, WEIGHT_DECAY, CLIP_NORM, AUX_COEF = (0.9, 0.98), 1e-8, 0.0, 1.0, 0.01


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def compile_plan(args, workdir):
    name = os.path.splitext(os.path.basename(args.config))[0]
    mlir = os.path.join(workdir, name + ".mlir")
    train = os.path.join(workdir, name + ".train.mlir")
    plan = os.path.join(workdir, name + ".moeplan")
    run([os.path.join(args.compiler_bin, "moe-model-gen"), args.config,
         "-o", mlir])
    run([os.path.join(args.compiler_bin, "moe-opt"), mlir,
         f"--moe-training-pipeline=lr={LR} warmup-steps={WARMUP_STEPS}",
         "-o", train, f"--moe-emit-plan=output={plan} seed=1"])
    return train, plan


def compiler_flop_count(args, train_mlir):
    """The compiler's own count (moe-partition-report), when it has one."""
    try:
        out = run([os.path.join(args.compiler_bin, "moe-opt"), train_mlir,
                   "--moe-partition-report", "-o", os.devnull]).stdout
    except (subprocess.CalledProcessError, OSError):
        return None
    for line in out.splitlines():
        parts = line.split()
        if line.strip().startswith("flops per step") and len(parts) >= 4:
            return int(parts[3])
    return None


def time_moert(args, plan, workdir, round_index):
    metrics = os.path.join(workdir, f"moert-round{round_index}.jsonl")
    run([os.path.join(args.runtime_bin, "moe-train"), plan,
         "--steps", str(args.warmup + args.steps), "--log-every", "1000000",
         "--metrics", metrics], env=dict(MOERT_ENV))
    with open(metrics) as f:
        records = [json.loads(line) for line in f if line.strip()]
    timed = records[args.warmup:]
    return [r["seconds"] for r in timed], [r["tokens"] for r in timed]


def synthetic_batches(c: ref.ModelConfig, count: int, seed: int = 1):
    """Batches shaped like the runner's reversal task: a random-length source
    of content tokens (padded), the target its reverse + EOS."""
    gen = torch.Generator().manual_seed(seed)
    pad, bos, eos, first = c.pad_id, 1, 2, 3
    batches = []
    for _ in range(count):
        src = torch.full((c.batch_size, c.src_len), pad, dtype=torch.long)
        tgt = torch.full((c.batch_size, c.tgt_len), pad, dtype=torch.long)
        labels = torch.full((c.batch_size, c.tgt_len), pad, dtype=torch.long)
        for b in range(c.batch_size):
            n = int(torch.randint(1, min(c.src_len, c.tgt_len - 1) + 1, (1,),
                                  generator=gen))
            content = torch.randint(first, c.vocab_size, (n,), generator=gen)
            src[b, :n] = content
            target = torch.cat([content.flip(0), torch.tensor([eos])])
            labels[b, :n + 1] = target
            tgt[b, 0] = bos
            tgt[b, 1:n + 1] = target[:-1]
        batches.append((src, tgt, labels))
    return batches


def time_torch(args, config, formulation="indexed"):
    model = ref.MoEModel(config, formulation=formulation, seed=1)
    model.train()
    params = [p for _, p in model.named_parameters_like_ir()]
    opt = torch.optim.AdamW(params, lr=LR, betas=BETAS, eps=EPS,
                            weight_decay=WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min((i + 1) / WARMUP_STEPS,
                           math.sqrt(WARMUP_STEPS / (i + 1))))
    batches = synthetic_batches(config, args.warmup + args.steps)
    times = []
    for i, (src, tgt, labels) in enumerate(batches):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss, aux, _ = model(src, tgt, labels)
        (loss + AUX_COEF * aux).backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP_NORM)
        opt.step()
        schedule.step()
        elapsed = time.perf_counter() - start
        if i >= args.warmup:
            times.append(elapsed)
    return times


def model_flops(c: ref.ModelConfig) -> dict:
    """Matrix-product FLOPs (2 m n k) of one training step: the forward's
    products and twice as many backward (no recomputation counted)."""
    B, Ls, Lt, d, V = c.batch_size, c.src_len, c.tgt_len, c.d_model, c.vocab_size
    Ts, Tt = B * Ls, B * Lt
    g = c.gating
    fwd = {"linear": 0, "attention": 0, "experts": 0, "gates": 0}

    def attention(Tq, Lq, Lk):
        fwd["linear"] += 2 * Tq * d * d * 2  # q and output projections
        fwd["linear"] += 2 * (B * Lk) * d * d * 2  # k and v projections
        fwd["attention"] += 2 * (2 * B * Lq * Lk * d)  # scores and values

    def ffn(T, layer):
        H = c.expert_hidden_dim() if c.is_moe_layer(layer) else c.ffn_hidden
        if not c.is_moe_layer(layer):
            fwd["linear"] += 2 * (2 * T * d * H)
            return
        E = c.num_experts
        per_group = ref.expert_capacity(T // g.groups, E, g.top_k,
                                        g.capacity_factor, g.min_capacity,
                                        g.drop_tokens)
        capacity = g.groups * per_group
        fwd["experts"] += 2 * (2 * E * capacity * d * H)
        fwd["gates"] += 2 * T * d * E

    for layer in range(c.encoder_layers):
        attention(Ts, Ls, Ls)
        ffn(Ts, layer)
    for layer in range(c.decoder_layers):
        attention(Tt, Lt, Lt)
        attention(Tt, Lt, Ls)
        ffn(Tt, layer)
    fwd["linear"] += 2 * Tt * d * V  # output projection (logits)
    step = {k: 3 * v for k, v in fwd.items()}
    step["total"] = sum(step.values())
    step["forward"] = sum(fwd.values())
    return step


def measure_sgemm_peak(args):
    out = run([os.path.join(args.runtime_bin, "moe-bench-experts"), "--peak"],
              env=dict(MOERT_ENV)).stdout
    for line in out.splitlines():
        if line.startswith("sgemm peak"):
            return float(line.split(":")[1].split()[0])
    raise RuntimeError("moe-bench-experts --peak printed no peak:\n" + out)


def main():
    args = ARGS
    torch.set_num_threads(args.threads)
    config = ref.load_config(args.config)
    workdir = args.workdir or tempfile.mkdtemp(prefix="moe-train-bench-")
    os.makedirs(workdir, exist_ok=True)
    train_mlir, plan = compile_plan(args, workdir)
    peak = args.sgemm_peak or measure_sgemm_peak(args)

    moert_times, tokens, torch_times = [], [], []
    for r in range(args.rounds):
        t, n = time_moert(args, plan, workdir, r)
        moert_times += t
        tokens += n
        torch_times += time_torch(args, config)
    moert_step = statistics.median(moert_times)
    torch_step = statistics.median(torch_times)
    mean_tokens = statistics.mean(tokens)
    flops = model_flops(config)
    compiler_flops = compiler_flop_count(args, train_mlir)

    print(f"Training step of {config.name} ({os.path.relpath(args.config, REPO)}"
          f": batch {config.batch_size} x {config.src_len}/{config.tgt_len}, "
          f"d_model {config.d_model}, {config.num_experts} experts top-"
          f"{config.gating.top_k}), {args.threads} threads, "
          f"{args.rounds} x {args.steps} steps after {args.warmup} warm-up, "
          f"medians; OMP_WAIT_POLICY moe-train "
          f"{args.moert_wait_policy or 'unset'}, torch "
          f"{args.torch_wait_policy or 'unset'}")
    print(f"{'':>16} {'step ms':>9} {'tokens/s':>10} {'ratio':>7}")
    print(f"{'moe-train':>16} {moert_step * 1e3:>9.2f} "
          f"{mean_tokens / moert_step:>10.0f} {1.0:>7.2f}")
    print(f"{'torch eager':>16} {torch_step * 1e3:>9.2f} "
          f"{mean_tokens / torch_step:>10.0f} {moert_step / torch_step:>7.2f}")
    print(f"speedup moe-train / torch eager: {torch_step / moert_step:.2f}x "
          f"(tokens/s: {mean_tokens:.0f} target tokens per step)")
    check = ""
    if compiler_flops is not None:
        check = (" (moe-partition-report: "
                 f"{compiler_flops / 1e9:.3f} GFLOP, "
                 f"{'same' if compiler_flops == flops['total'] else 'DIFFERENT'})")
    print(f"model FLOPs per step: {flops['total'] / 1e9:.3f} GFLOP{check}: "
          + ", ".join(f"{k} {flops[k] / 1e9:.3f}"
                      for k in ("linear", "attention", "experts", "gates")))
    achieved = flops["total"] / moert_step / 1e9
    print(f"model FLOP utilization: {achieved:.1f} GFLOP/s of "
          f"{peak:.1f} GFLOP/s sgemm peak = {100 * achieved / peak:.1f}% "
          f"(torch eager: {100 * flops['total'] / torch_step / 1e9 / peak:.1f}%)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": args.config, "threads": args.threads,
                       "moert_step_s": moert_step, "torch_step_s": torch_step,
                       "speedup": torch_step / moert_step,
                       "target_tokens_per_step": mean_tokens,
                       "flops_per_step": flops,
                       "compiler_flops_per_step": compiler_flops,
                       "sgemm_peak_gflops": peak,
                       "mfu": achieved / peak,
                       "moert_times_s": moert_times,
                       "torch_times_s": torch_times}, f, indent=1)


if __name__ == "__main__":
    main()
