#!/usr/bin/env python3
"""Decoding speed: incremental decoding against the training step's forward.

Builds the toy translation corpus of the tests (tests/lit/Eval/Inputs),
a model for it of the demo's shape (d_model 128, 2 encoder and 2 decoder
layers, MoE every other layer, target length 24), trains it briefly,
compiles the evaluation plan with the incremental decoder
(`--moe-training-pipeline="decoder=true"`) and translates the same
sentences with each of moe-eval's decoders:

  incremental    the plan's @encode once per source, @decode_step one
                 position per token over cached keys and values
  reuse-sources  the training step's forward, its encoder part once per
                 source, the decoder over the whole prefix
  recompute      the whole forward for every token

It prints sentences per second and the ratio to `recompute`, timed in the
same run, and checks that the translations are identical (the model's
capacity factor leaves room for every token, so no decoder drops one).
Kernels run on `--threads` threads (default 1: one-token decoder steps are
small enough that thread start-up and barriers decide their time on a
busy 2-core machine).

    bench/decode_bench.py --bin build/bin [--sentences 200] [--beam 1]
                          [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOY = os.path.join(HERE, "..", "tests", "lit", "Eval", "Inputs",
                   "toy_corpus.py")


ENV = dict(os.environ)


def run(command: list[str]) -> str:
    return subprocess.run(command, check=True, capture_output=True,
                          text=True, env=ENV).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default="build/bin")
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--beam", type=int, default=1)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    ENV["OMP_NUM_THREADS"] = ENV["OPENBLAS_NUM_THREADS"] = str(args.threads)
    tool = lambda name: os.path.join(args.bin, name)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus")
        run([sys.executable, TOY, corpus])
        run([tool("moe-data"), "spm", corpus, "--vocab", "200"])
        run([tool("moe-data"), "encode", corpus])
        base = os.path.join(tmp, "base.json")
        run([sys.executable, TOY, "--config", corpus, base, "4.0"])
        config = json.load(open(base))
        config.update({"name": "decode-bench", "d_model": 128,
                       "ffn_hidden": 512, "encoder_layers": 2,
                       "decoder_layers": 2, "src_len": 24, "tgt_len": 24,
                       "batch_size": 24})
        config["moe"]["eval_capacity_factor"] = 4.0
        cfg = os.path.join(tmp, "model.json")
        json.dump(config, open(cfg, "w"))
        mlir = os.path.join(tmp, "model.mlir")
        train_plan = os.path.join(tmp, "train.moeplan")
        eval_plan = os.path.join(tmp, "eval.moeplan")
        checkpoint = os.path.join(tmp, "ck.safetensors")
        run([tool("moe-model-gen"), cfg, "-o", mlir])
        run([tool("moe-opt"), mlir,
             "--moe-training-pipeline=lr=0.003 warmup-steps=50",
             f"--moe-emit-plan=output={train_plan} seed=1 gpu-kernels=none",
             "-o", os.devnull])
        run([tool("moe-opt"), mlir,
             "--moe-training-pipeline=decoder=true",
             f"--moe-emit-plan=output={eval_plan} seed=1 gpu-kernels=none",
             "-o", os.devnull])
        run([tool("moe-train"), train_plan, "--data", corpus, "--steps",
             str(args.steps), "--save", checkpoint])
        results = {}
        for mode in ("recompute", "reuse-sources", "incremental"):
            hyp = os.path.join(tmp, "hyp-" + mode)
            out_json = os.path.join(tmp, mode + ".json")
            start = time.perf_counter()
            run([tool("moe-eval"), eval_plan, "--checkpoint", checkpoint,
                 "--data", corpus, "--languages", "xa", "--direction", "both",
                 "--sentences", str(args.sentences), "--beam",
                 str(args.beam), "--decoder", mode, "--hypotheses", hyp,
                 "--json", out_json])
            wall = time.perf_counter() - start
            rows = json.load(open(out_json))["rows"]
            sentences = sum(r["sentences"] for r in rows)
            seconds = sum(r["seconds"] for r in rows)
            texts = {name: open(os.path.join(hyp, name)).read()
                     for name in sorted(os.listdir(hyp))
                     if name.endswith(".hyp")}
            results[mode] = (sentences / seconds, wall, texts)
    base_speed = results["recompute"][0]
    print(f"decoding {args.sentences} sentences x 2 directions, "
          f"beam {args.beam}, {args.threads} thread(s) (d_model 128, 2+2 "
          f"layers, target length 24)")
    print(f"{'decoder':<14} {'sent/s':>9} {'x recompute':>12} "
          f"{'wall s':>7}")
    for mode, (speed, wall, _) in results.items():
        print(f"{mode:<14} {speed:9.1f} {speed / base_speed:12.2f} "
              f"{wall:7.1f}")
    same = all(results[m][2] == results["recompute"][2] for m in results)
    print("translations identical across decoders:", "yes" if same else "NO")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
