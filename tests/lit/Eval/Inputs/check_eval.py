#!/usr/bin/python3
"""Checks moe-eval's JSON against its translation files.

    check_eval.py EVAL.json HYPDIR MOE_BLEU

For every direction: BLEU is above the copy baseline by at least 20 points,
and the BLEU moe-bleu computes from HYPDIR/<dir>.{hyp,ref} (and from .src
for the baseline) equals the table's.
"""
import json
import subprocess
import sys

evaluation = json.load(open(sys.argv[1]))
for row in evaluation["rows"]:
    name = f'{row["source"]}-{row["target"]}'
    base = f"{sys.argv[2]}/{name}"

    def bleu(hypotheses):
        out = subprocess.run([sys.argv[3], base + ".ref", "-i", hypotheses,
                              "-m", "bleu", "-b", "-w", "4"],
                             check=True, capture_output=True, text=True)
        return float(out.stdout.split()[0])

    assert abs(bleu(base + ".hyp") - row["bleu"]) < 1e-3, (name, row)
    assert abs(bleu(base + ".src") - row["copy_bleu"]) < 1e-3, (name, row)
    assert row["bleu"] > row["copy_bleu"] + 20, (name, row)
    print(f'{name}: BLEU {row["bleu"]:.2f} > copy {row["copy_bleu"]:.2f}, '
          "moe-bleu agrees")
