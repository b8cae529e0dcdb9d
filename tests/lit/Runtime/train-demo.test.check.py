"""Checks a moe-train metrics file: every step present, finite values, the
loss of the last 10 steps below a threshold and below the first step's."""
import json
import math
import sys

path, steps, threshold = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
records = [json.loads(line) for line in open(path)]
assert [r["step"] for r in records] == list(range(1, steps + 1)), "steps missing"
for r in records:
    for key in ("loss", "aux_loss", "grad_norm", "lr"):
        assert math.isfinite(r[key]), f"step {r['step']}: {key} = {r[key]}"
    assert len(r["expert_counts"]) == 2, "expected two MoE layers"
first = records[0]["loss"]
tail = sum(r["loss"] for r in records[-10:]) / 10
print(f"first loss {first:.4f}, mean of last 10 {tail:.4f}")
assert tail < threshold, f"loss {tail} not below {threshold}"
assert tail < first, "loss did not fall"
