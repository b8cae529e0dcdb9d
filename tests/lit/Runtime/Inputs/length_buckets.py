#!/usr/bin/python3
"""Helpers of length-buckets.test (moe-train --bucket-plan).

    length_buckets.py split CORPUS LANG OUT S/T [S/T ...]
        OUT/all: the one-language corpus of CORPUS' LANG training pairs;
        OUT/b<k>: the pairs of bucket k (source/target lengths S/T), in
        corpus order, assigned by the rule of moert/data/LengthBuckets.h,
        written here independently: source max(|en| + 2, |x| + 3), target
        max(|en|, |x|) + 1, the smallest bucket holding both, else the last.
        Each gets CORPUS' spm.model. Prints the pairs per bucket.
    length_buckets.py replay MOE_TRAIN METRICS OUT CHECKPOINT PLAN0 PLAN1 ...
        Replays a bucketed run one step per process: step s runs the plan of
        the bucket METRICS names for it, alone, on OUT/b<bucket> (whose
        one-language batches are the bucket's batches), resuming from the
        previous step's checkpoint; the last is CHECKPOINT.
    length_buckets.py check METRICS B/S/T [B/S/T ...]
        Every row names a bucket and its real tokens, within the bucket's
        batch; prints the steps per bucket.
    length_buckets.py compare METRICS_A METRICS_B TOLERANCE
        The runs took the same buckets with the same real tokens, and their
        losses agree to TOLERANCE (relative).
"""
import json
import os
import shutil
import struct
import subprocess
import sys


def read_shard(path):
    data = open(path, "rb").read()
    assert data[:8] == b"MOEIDS1\0", path
    (count,) = struct.unpack_from("<Q", data, 8)
    at, pairs = 16, []
    for _ in range(count):
        n_src, n_tgt = struct.unpack_from("<II", data, at)
        at += 8
        src = data[at:at + 4 * n_src]
        at += 4 * n_src
        tgt = data[at:at + 4 * n_tgt]
        at += 4 * n_tgt
        pairs.append((n_src, n_tgt, src, tgt))
    assert at == len(data), path
    return pairs


def write_corpus(directory, corpus, language, pairs):
    os.makedirs(directory, exist_ok=True)
    shutil.copy(os.path.join(corpus, "spm.model"), directory)
    with open(os.path.join(directory, "languages.tsv"), "w") as f:
        f.write(f"language\ttrain\tvalid\ttest\n{language}\t{len(pairs)}\t0\t0\n")
    with open(os.path.join(directory, f"train.{language}.ids"), "wb") as f:
        f.write(b"MOEIDS1\0" + struct.pack("<Q", len(pairs)))
        for n_src, n_tgt, src, tgt in pairs:
            f.write(struct.pack("<II", n_src, n_tgt) + src + tgt)


def split(corpus, language, out, shapes):
    buckets = [tuple(int(v) for v in s.split("/")) for s in shapes]
    pairs = read_shard(os.path.join(corpus, f"train.{language}.ids"))
    write_corpus(os.path.join(out, "all"), corpus, language, pairs)
    parts = [[] for _ in buckets]
    for pair in pairs:
        en, x = pair[0], pair[1]
        need = (max(en + 2, x + 3), max(en, x) + 1)
        k = next((k for k, (s, t) in enumerate(buckets)
                  if need[0] <= s and need[1] <= t), len(buckets) - 1)
        parts[k].append(pair)
    for k, part in enumerate(parts):
        assert part, f"bucket {k} holds no pair"
        write_corpus(os.path.join(out, f"b{k}"), corpus, language, part)
    print("pairs per bucket:", " ".join(str(len(p)) for p in parts))


def rows(metrics):
    return [json.loads(line) for line in open(metrics)]


def replay(moe_train, metrics, out, checkpoint, plans):
    steps = [r["bucket"] for r in rows(metrics)]
    assert len(set(steps)) == len(plans), f"not every bucket ran: {steps}"
    previous = None
    for step, bucket in enumerate(steps, start=1):
        saved = checkpoint if step == len(steps) else \
            os.path.join(out, f"replay-{step}.safetensors")
        command = [moe_train, plans[bucket], "--data",
                   os.path.join(out, f"b{bucket}"), "--steps", str(step),
                   "--save", saved]
        if previous:
            command += ["--resume", previous]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        previous = saved
    print("replayed", len(steps), "steps in buckets",
          " ".join(str(b) for b in steps))


def check(metrics, shapes):
    buckets = [tuple(int(v) for v in s.split("/")) for s in shapes]
    counts = [0] * len(buckets)
    for r in rows(metrics):
        b, s, t = buckets[r["bucket"]]
        assert 0 < r["source_tokens"] <= b * s, r
        assert 0 < r["tokens"] <= b * t, r
        counts[r["bucket"]] += 1
    print("steps per bucket:", " ".join(str(c) for c in counts))


def compare(a, b, tolerance):
    ra, rb = rows(a), rows(b)
    assert len(ra) == len(rb) > 0, (len(ra), len(rb))
    worst = 0.0
    for x, y in zip(ra, rb):
        for key in ("step", "bucket", "tokens", "source_tokens"):
            assert x[key] == y[key], (key, x, y)
        worst = max(worst, abs(x["loss"] - y["loss"]) / abs(y["loss"]))
    assert worst <= tolerance, f"losses differ by {worst:.3g} (relative)"
    print(f"{len(ra)} steps in the same buckets, losses agree to {tolerance}")


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "split":
        split(args[0], args[1], args[2], args[3:])
    elif command == "replay":
        replay(args[0], args[1], args[2], args[3], args[4:])
    elif command == "check":
        check(args[0], args[1:])
    elif command == "compare":
        compare(args[0], args[1], float(args[2]))
    else:
        sys.exit(__doc__)
