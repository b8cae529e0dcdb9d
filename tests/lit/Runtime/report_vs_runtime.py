#!/usr/bin/env python3
"""Compares the compiler's per-rank partition report (moe-partition-report
json=...) with what moe-train measured on every rank (--comm-stats): the
arena and persistent bytes the runtime allocated, and per collective kind the
bytes each rank's communicator sent during one step.

Usage: report_vs_runtime.py REPORT.json STATS_PATTERN NRANKS
(STATS_PATTERN contains {rank}.)
"""
import json
import sys


def main():
    report_path, pattern, nranks = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(report_path) as f:
        report = json.load(f)
    failures = []
    for rank in range(nranks):
        with open(pattern.replace("{rank}", str(rank))) as f:
            stats = json.load(f)
        if stats["world_size"] != nranks:
            failures.append("rank %d: world size %d, expected %d" % (rank, stats["world_size"], nranks))
        if stats["grid"] != report["grid"]:
            failures.append("rank %d: grid %s, the report's %s" % (rank, stats["grid"], report["grid"]))
        for ours, theirs in (("activation_bytes", "arena_bytes"), ("persistent_bytes", "persistent_bytes")):
            if report[ours] != stats[theirs]:
                failures.append("rank %d: report %s = %d, runtime %s = %d"
                                % (rank, ours, report[ours], theirs, stats[theirs]))
        if not stats["same_every_step"]:
            failures.append("rank %d: the bytes sent changed between steps" % rank)
        total = 0
        for kind, measured in stats["step_collectives"].items():
            expected = report["collectives"][kind]["bytes_sent"]
            total += expected
            if measured["bytes_sent"] != expected:
                failures.append("rank %d: %s sent %d bytes per step, the report says %d"
                                % (rank, kind, measured["bytes_sent"], expected))
        if stats["step_bytes_sent"] != total:
            failures.append("rank %d: %d bytes per step in all, the report says %d"
                            % (rank, stats["step_bytes_sent"], total))
    if failures:
        sys.exit("\n".join(failures))
    print("ranks %d: arena %d, persistent %d, bytes sent per step %d: report = runtime"
          % (nranks, report["activation_bytes"], report["persistent_bytes"],
             sum(c["bytes_sent"] for c in report["collectives"].values())))


if __name__ == "__main__":
    main()
