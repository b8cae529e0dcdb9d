#!/usr/bin/python3
"""Checks moe-train --eval-json against moe-eval on the saved checkpoint.

    check_train_eval.py TRAIN.jsonl EVAL.json STEPS

The JSONL file holds one evaluation per step of STEPS (comma-separated), in
order; the last one's BLEU, chrF2, copy baseline and loss equal moe-eval's
on the checkpoint saved at that step (same split and sentences), and BLEU
rises from the first evaluation to the last.
"""
import json
import sys


def main():
    lines = [json.loads(line) for line in open(sys.argv[1])]
    final = json.load(open(sys.argv[2]))
    steps = [int(s) for s in sys.argv[3].split(",")]
    assert [line["step"] for line in lines] == steps, \
        ([line["step"] for line in lines], steps)
    last = lines[-1]
    assert len(last["rows"]) == len(final["rows"]) > 0
    for mine, theirs in zip(last["rows"], final["rows"]):
        name = f'{mine["source"]}-{mine["target"]}'
        assert (mine["source"], mine["target"]) == \
            (theirs["source"], theirs["target"]), name
        for key in ("bleu", "chrf2", "copy_bleu", "copy_chrf2", "loss"):
            assert abs(mine[key] - theirs[key]) <= 1e-4 * max(1, abs(theirs[key])), \
                (name, key, mine[key], theirs[key])
        assert mine["loss_tokens"] == theirs["loss_tokens"], name
    assert lines[-1]["bleu"] > lines[0]["bleu"] + 10, \
        (lines[0]["bleu"], lines[-1]["bleu"])
    print(f'{len(lines)} evaluations, BLEU {lines[0]["bleu"]:.2f} -> '
          f'{lines[-1]["bleu"]:.2f}, the last equal to moe-eval\'s')


if __name__ == "__main__":
    main()
