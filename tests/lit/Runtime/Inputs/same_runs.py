"""Checks that two moe-train runs of one plan agree exactly: their --metrics
records field by field (every field but `seconds`, the wall-clock time) and
each rank's --comm-stats record (every field). Used by
overlap-collectives.test to compare collective overlap on and off.

Usage: same_runs.py A.jsonl B.jsonl 'A-{rank}.json' 'B-{rank}.json' RANKS
"""
import json
import sys


def records(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    metrics_a, metrics_b, stats_a, stats_b, ranks = sys.argv[1:6]
    a, b = records(metrics_a), records(metrics_b)
    if not a or len(a) != len(b):
        sys.exit("metrics: %d records in %s, %d in %s" % (len(a), metrics_a, len(b), metrics_b))
    for ra, rb in zip(a, b):
        ra.pop("seconds", None)
        rb.pop("seconds", None)
        if ra != rb:
            sys.exit("metrics differ at step %s:\n  %s\n  %s" % (ra.get("step"), ra, rb))
    sent = None
    for rank in range(int(ranks)):
        with open(stats_a.replace("{rank}", str(rank))) as f:
            sa = json.load(f)
        with open(stats_b.replace("{rank}", str(rank))) as f:
            sb = json.load(f)
        if sa != sb:
            sys.exit("comm stats of rank %d differ:\n  %s\n  %s" % (rank, sa, sb))
        if rank == 0:
            sent = sa["step_bytes_sent"]
    if not sent:
        sys.exit("rank 0 sent no bytes: the runs have no collectives to compare")
    print("%d steps: metrics identical but for seconds; comm stats identical on %s ranks "
          "(%d bytes sent per step by rank 0)" % (len(a), ranks, sent))


if __name__ == "__main__":
    main()
