"""Checks of train-fp16.test.

  trains METRICS STEPS THRESHOLD: every step present, none skipped, the
      loss scale reported, the loss falls below THRESHOLD (mean of the last
      10 steps) and below the first step's;
  skips METRICS POWER: every step skipped, the scale starts at 2^POWER,
      stays for the first overflow (hysteresis 2) and halves on each later
      one; the learning rate stays at its first value (the schedule does
      not advance on skipped steps);
  same-tensors A B: two safetensors checkpoints hold identical tensors;
  close A B NAMES...: the f32 tensors NAMES of two files agree to 1e-2
      relative (fp16 rounding of the GEMM inputs; fp32 itself agrees to
      far less).
"""
import json
import math
import struct
import sys


def records(path):
    return [json.loads(line) for line in open(path)]


def trains(path, steps, threshold):
    rs = records(path)
    assert [r["step"] for r in rs] == list(range(1, steps + 1)), "steps missing"
    for r in rs:
        assert not r["skipped"], f"step {r['step']} skipped"
        assert r["loss_scale"] == 65536, r
        for key in ("loss", "aux_loss", "grad_norm", "lr"):
            assert r[key] is not None and math.isfinite(r[key]), (key, r)
    first = rs[0]["loss"]
    tail = sum(r["loss"] for r in rs[-10:]) / 10
    print(f"first loss {first:.4f}, mean of last 10 {tail:.4f}")
    assert tail < threshold and tail < first, "loss did not fall"


def skips(path, power):
    rs = records(path)
    expected = [2.0 ** power, 2.0 ** power]
    while len(expected) < len(rs):
        expected.append(expected[-1] / 2)
    for r, scale in zip(rs, expected):
        assert r["skipped"], r
        assert r["grad_norm"] is None, r  # non-finite, written as null
        assert r["loss_scale"] == scale, (r["loss_scale"], scale)
        assert r["lr"] == rs[0]["lr"], "the schedule advanced on a skip"
    print(f"{len(rs)} skipped steps, scales {[r['loss_scale'] for r in rs]}")


def close(a, b, names):
    ta, tb = tensors(a), tensors(b)
    for name in names:
        x = struct.unpack(f"<{len(ta[name]) // 4}f", ta[name])
        y = struct.unpack(f"<{len(tb[name]) // 4}f", tb[name])
        assert len(x) == len(y), name
        for u, v in zip(x, y):
            assert math.isfinite(u) and abs(u - v) <= 1e-2 * abs(v), (name, u, v)
        print(f"{name}: {x[:1]} vs {y[:1]}")


def tensors(path):
    data = open(path, "rb").read()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + size])
    body = data[8 + size:]
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        out[name] = body[begin:end]
    return out


def same_tensors(a, b):
    ta, tb = tensors(a), tensors(b)
    assert ta.keys() == tb.keys(), "different tensors"
    different = [name for name in ta if ta[name] != tb[name]]
    assert not different, f"tensors differ: {different[:5]}"
    print(f"{len(ta)} tensors identical")


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "trains":
        trains(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    elif mode == "skips":
        skips(sys.argv[2], int(sys.argv[3]))
    elif mode == "close":
        close(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif mode == "same-tensors":
        same_tensors(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown mode {mode}")
