#!/usr/bin/env python3
"""Compares the metrics of one plan trained on two backends.

    python3 scripts/compare_runs.py REFERENCE.jsonl TESTED.jsonl
        [--loss-band 0.02] [--exact-routing-steps 1]

REFERENCE is the CPU run, TESTED the same plan, seed and steps on another
backend. Passes when every step's loss is within the band (relative) of the
reference's and the expert counts (routing) of the first steps are equal:
fp32 sums in another order move the logits by rounding only, so routing may
first differ where two logits are within that rounding of each other, and
later steps drift with the parameters. Prints a table and one verdict line;
exits 1 on a failure (for scripts/gpu-check.sh).
"""

import argparse
import json
import math
import sys


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
    return {r["step"]: r for r in rows}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("reference")
    p.add_argument("tested")
    p.add_argument("--loss-band", type=float, default=0.02)
    p.add_argument("--exact-routing-steps", type=int, default=1)
    a = p.parse_args()
    ref, got = load(a.reference), load(a.tested)
    failures = []
    if sorted(ref) != sorted(got):
        failures.append(f"steps differ: {sorted(ref)} vs {sorted(got)}")
    worst = 0.0
    print(f"{'step':>5} {'loss (ref)':>12} {'loss':>12} {'rel diff':>10} routing")
    for step in sorted(set(ref) & set(got)):
        r, g = ref[step], got[step]
        if r["loss"] is None or g["loss"] is None or not math.isfinite(g["loss"]):
            failures.append(f"step {step}: non-finite loss {g['loss']}")
            continue
        rel = abs(g["loss"] - r["loss"]) / max(abs(r["loss"]), 1e-6)
        worst = max(worst, rel)
        same = r.get("expert_counts") == g.get("expert_counts")
        print(f"{step:>5} {r['loss']:>12.6f} {g['loss']:>12.6f} {rel:>10.2e} "
              f"{'same' if same else 'differs'}")
        if rel > a.loss_band:
            failures.append(f"step {step}: loss {g['loss']} vs {r['loss']} "
                            f"(relative {rel:.3g} > {a.loss_band})")
        if step <= a.exact_routing_steps and not same:
            failures.append(f"step {step}: expert counts {g.get('expert_counts')}"
                            f" vs {r.get('expert_counts')}")
    if failures:
        print("FAIL: " + "; ".join(failures))
        return 1
    print(f"PASS: {len(got)} steps, largest relative loss difference "
          f"{worst:.2e} (band {a.loss_band}), routing equal for the first "
          f"{a.exact_routing_steps} step(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
