#!/usr/bin/env python3
"""Cross-check the runtime's bf16/f16 conversions (moert/Half.h) with PyTorch.

Inputs (about 1.4 M fp32 values): for every one of the 65536 upper halves,
the lower halves 0x0000, 0x0001, 0x7FFF, 0x8000, 0x8001, 0xFFFF and a
random one (every bf16 rounding boundary, ties with even and odd upper
halves, NaN payloads, infinities, fp32 subnormals); for every pair of
neighbouring f16 values the midpoint and one fp32 ulp either side (every
f16 rounding boundary, its subnormals and the overflow threshold 65520);
one million random fp32 bit patterns. Conversions must agree bit for bit
with `tensor.to(torch.bfloat16 / torch.float16)`, except that any NaN
pattern is accepted where torch gives a NaN (its vectorized and scalar
paths encode NaN differently). Decoding all 65536 patterns of each format
must agree exactly. Exits 77 (ctest SKIP) without torch.
"""
import argparse
import os
import subprocess
import sys

try:
    import numpy as np
    import torch
except ImportError as error:  # pragma: no cover - depends on the machine
    print(f"SKIP: {error} (use Debian's /usr/bin/python3 with python3-torch)")
    sys.exit(77)


def inputs():
    rng = np.random.default_rng(20261203)
    upper = np.arange(65536, dtype=np.uint32) << 16
    lows = [0x0000, 0x0001, 0x7FFF, 0x8000, 0x8001, 0xFFFF]
    parts = [upper | low for low in lows]
    parts.append(upper | rng.integers(0, 65536, 65536, dtype=np.uint32))
    # f16 neighbours: decode every finite pattern with torch itself, take
    # the midpoints (exact in fp32) and one ulp either side.
    finite = np.arange(0x7C00, dtype=np.uint16)
    f16 = torch.from_numpy(finite.view(np.int16).copy()).view(torch.float16)
    lo = f16[:-1].double()
    hi = f16[1:].double()
    mid = ((lo + hi) / 2).float().numpy()
    for values in (mid, np.nextafter(mid, np.float32(np.inf)),
                   np.nextafter(mid, np.float32(-np.inf))):
        bits = values.astype(np.float32).view(np.uint32)
        parts.extend([bits, bits | np.uint32(0x80000000)])
    parts.append(rng.integers(0, 2**32, 1_000_000, dtype=np.uint64)
                 .astype(np.uint32))
    return np.concatenate(parts).astype(np.uint32)


def compare(name, ours_bits, torch_bits, torch_is_nan):
    ours_bits = ours_bits.astype(np.uint16)
    torch_bits = torch_bits.astype(np.uint16)
    if name == "bf16":
        ours_nan = ((ours_bits & 0x7F80) == 0x7F80) & ((ours_bits & 0x7F) != 0)
    else:
        ours_nan = ((ours_bits & 0x7C00) == 0x7C00) & ((ours_bits & 0x3FF) != 0)
    bad = np.where(torch_is_nan, ~ours_nan, ours_bits != torch_bits)
    count = int(bad.sum())
    print(f"{'ok' if count == 0 else 'FAIL':4} fp32 -> {name}: "
          f"{len(ours_bits)} values, {count} mismatches")
    if count:
        for i in np.flatnonzero(bad)[:10]:
            print(f"     input index {i}: ours 0x{ours_bits[i]:04x}, "
                  f"torch 0x{torch_bits[i]:04x}")
    return count == 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dump-tool", required=True)
    parser.add_argument("--work-dir", required=True)
    args = parser.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    bits = inputs()
    path = os.path.join(args.work_dir, "inputs.f32")
    bits.astype("<u4").tofile(path)
    subprocess.run([args.dump_tool, path, args.work_dir], check=True)

    values = torch.from_numpy(bits.view(np.int32).copy()).view(torch.float32)
    is_nan = torch.isnan(values).numpy()
    ok = True
    for name, dtype in (("bf16", torch.bfloat16), ("f16", torch.float16)):
        ours = np.fromfile(os.path.join(args.work_dir, name + ".bin"),
                           dtype="<u2")
        theirs = values.to(dtype).view(torch.int16).numpy().view(np.uint16)
        ok &= compare(name, ours, theirs, is_nan)

    patterns = torch.arange(65536, dtype=torch.int32).to(torch.int16)
    for name, dtype in (("bf16", torch.bfloat16), ("f16", torch.float16)):
        ours = np.fromfile(os.path.join(args.work_dir, name + "_to_f32.bin"),
                           dtype="<f4")
        theirs = patterns.view(dtype).float().numpy()
        both_nan = np.isnan(ours) & np.isnan(theirs)
        bad = ~both_nan & (ours.view(np.uint32) != theirs.view(np.uint32))
        count = int(bad.sum())
        print(f"{'ok' if count == 0 else 'FAIL':4} {name} -> fp32: 65536 "
              f"patterns, {count} mismatches")
        ok &= count == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
