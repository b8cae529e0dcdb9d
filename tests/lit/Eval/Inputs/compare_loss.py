#!/usr/bin/python3
"""Compares the held-out losses of two moe-eval --json files.

    compare_loss.py A.json B.json MAX_LOSS [--tolerance T] [--bleu D]

Prints one line per direction; fails unless every direction's loss agrees
to T (relative, default 1e-5) between the files and is below MAX_LOSS in
both, and (with --bleu) BLEU differs by at most D points.
"""
import json
import sys


def main():
    a = json.load(open(sys.argv[1]))["rows"]
    b = json.load(open(sys.argv[2]))["rows"]
    limit = float(sys.argv[3])
    options = dict(zip(sys.argv[4::2], sys.argv[5::2]))
    tolerance = float(options.get("--tolerance", "1e-5"))
    bleu = float(options["--bleu"]) if "--bleu" in options else None
    ok = len(a) == len(b) and len(a) > 0
    for x, y in zip(a, b):
        name = x["source"] + "-" + x["target"]
        agree = abs(x["loss"] - y["loss"]) <= tolerance * max(1.0, abs(y["loss"]))
        if bleu is not None:
            agree = agree and abs(x["bleu"] - y["bleu"]) <= bleu
        low = x["loss"] < limit and y["loss"] < limit
        same_tokens = x["loss_tokens"] == y["loss_tokens"] > 0
        print(f"{name}: loss {x['loss']:.5f} vs {y['loss']:.5f} "
              f"({x['loss_tokens']} tokens): "
              f"{'agree' if agree and same_tokens else 'DIFFER'}, "
              f"{'below' if low else 'NOT below'} {limit}")
        ok = ok and agree and low and same_tokens
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
