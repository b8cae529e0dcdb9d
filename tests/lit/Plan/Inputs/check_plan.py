"""Checks moe-plan's JSON answers against the hand-derived numbers written
out in moe-plan-hand-checked.test. Exits non-zero on the first mismatch."""
import json
import sys


def fail(message):
    sys.exit("check_plan.py: " + message)


def near(found, expected, rel, what):
    if abs(found - expected) > rel * abs(expected):
        fail(f"{what}: expected {expected} (within {rel:.0e}), found {found}")


def equal(found, expected, what):
    if found != expected:
        fail(f"{what}: expected {expected}, found {found}")


def demo(grids):
    (c,) = grids
    equal(c["flops"], 2091909120, "demo matrix FLOPs")
    near(c["step_seconds"], 2091909120 / (312e12 * 0.40), 1e-9, "demo step")
    near(c["mfu"], 0.40, 1e-9, "demo MFU")
    print(f"demo: flops {c['flops']}, step {c['step_seconds']:.4e} s, "
          f"MFU {100 * c['mfu']:.1f} %")


def zcode(grids):
    by = {(c["zero"], c["offload"]): c for c in grids}
    experts = 18 * 8393728
    rest = 609966080
    params = 4 * (experts + rest)
    for c in grids:
        equal((c["dp"], c["ep"], c["tp"]), (8, 64, 1), "grid")
        equal(c["parameter_bytes"], params, "parameter bytes")
        equal(c["bytes_sent"]["all_to_all"], 72 * 1032192, "all-to-all bytes")
    z0, z2 = by[(0, False)], by[(2, False)]
    equal(z0["optimizer_state_bytes"], 2 * params, "ZeRO 0 moments")
    equal(z0["gradient_bytes"], params, "ZeRO 0 gradients")
    sharded = 8 * (rest // 512 + experts // 8)
    equal(z2["gradient_bytes"], sharded // 2, "ZeRO 2 gradient shards")
    equal(z2["optimizer_state_bytes"], sharded, "ZeRO 2 moments")
    off = by[(2, True)]
    equal(off["host_bytes"], sharded, "offloaded bytes")
    equal(off["device_bytes"], z2["device_bytes"] - sharded,
          "device bytes with offload")
    for c in (z0, z2, off):
        equal(c["device_bytes"],
              c["persistent_bytes"] + c["activation_bytes"] - c["host_bytes"],
              "device bytes = persistent + arena - offloaded")
    # ZeRO 0: the all-reduces by grid axes (ring: 2 (n-1)/n of the bytes).
    axes = {}
    for t in z0["bytes_sent_by_axes"]:
        axes[(t["kind"], tuple(t["axes"]))] = t["bytes"]
    equal(axes[("all_reduce", (0,))], 2 * 7 * 4 * experts // 8,
          "expert gradients over dp")
    near(axes[("all_reduce", (0, 1))], 2 * 511 * 4 * rest / 512, 1e-4,
         "non-expert gradients over the grid")
    # Step: everything over the inter-node link (25 GB/s, 60 us per call:
    # 741 all-reduces and 72 all-to-alls), compute at 40 % of 312 TFLOP/s,
    # nothing overlapped.
    calls = sum(t["calls"] for t in z0["bytes_sent_by_axes"])
    equal(calls, 741 + 72, "collective calls (ZeRO 0)")
    inter = sum(t["bytes"] for t in z0["bytes_sent_by_axes"]) / 25e9
    inter += calls * 60e-6
    near(z0["step_seconds"], z0["flops"] / (312e12 * 0.4) + inter, 1e-9,
         "ZeRO 0 step")
    # Offload (ZeRO 2): 1.5 x the moments' bytes over PCIe (32 GB/s) and
    # 3.5 x through the host AdamW (100 GB/s) on top of the ZeRO 2 step.
    near(off["step_seconds"] - z2["step_seconds"],
         1.5 * sharded / 32e9 + 3.5 * sharded / 100e9, 1e-6, "offload time")
    print(f"zcode: parameters {params} B, moments {2 * params} B (ZeRO 0), "
          f"{sharded} B (ZeRO 2, on the host with offload), all-to-all "
          f"{72 * 1032192} B, step {z0['step_seconds']:.4f} s")


def buckets(pair):
    """Z-code M3, ZeRO 0, without and with 25 MiB gradient buckets."""
    plain, bucketed = pair
    by = lambda c: {(t["kind"], tuple(t["axes"])): t for t in c["bytes_sent_by_axes"]}
    p, b = by(plain), by(bucketed)
    # The same elements are reduced over the same groups: the expert
    # gradients' bytes over dp are exactly those of the per-tensor ring.
    equal(b[("all_reduce", (0,))]["bytes"], 2 * 7 * 4 * 18 * 8393728 // 8,
          "bucketed expert gradients over dp")
    equal(b[("all_to_all", (1,))], p[("all_to_all", (1,))], "all-to-all")
    calls = lambda d: sum(t["calls"] for t in d.values())
    saved = calls(p) - calls(b)
    if not (calls(b) * 4 < calls(p)):
        fail(f"expected buckets to cut the calls 4x: {calls(p)} -> {calls(b)}")
    # Everything crosses nodes: the step shrinks by 60 us per call saved plus
    # the byte difference over 25 GB/s (the ring's pieces round per buffer).
    bytes_saved = (sum(t["bytes"] for t in p.values()) -
                   sum(t["bytes"] for t in b.values()))
    near(plain["step_seconds"] - bucketed["step_seconds"],
         saved * 60e-6 + bytes_saved / 25e9, 1e-6, "step time saved")
    print(f"buckets: {calls(p)} -> {calls(b)} collective calls, step "
          f"{plain['step_seconds'] - bucketed['step_seconds']:.4f} s shorter")


def largest(answers):
    found = [a for a in answers if a["found"]]
    equal(len(found), 6, "answers found")
    capacity = 0.05 * 2**30 * 0.9
    for a in found:
        equal(a["parameters"], 793856 + 263680 * a["num_experts"],
              f"{a['combination']} parameters")
        if a["num_experts"] % a["ep"]:
            fail(f"{a['combination']}: {a['num_experts']} experts over ep "
                 f"{a['ep']}")
        if a["device_bytes"] > capacity:
            fail(f"{a['combination']}: {a['device_bytes']} B does not fit")
        if "next_device_bytes" in a and a["next_device_bytes"] <= capacity:
            fail(f"{a['combination']}: the next size fits too")
    best = {}
    for a in found:
        key = a["combination"]
        best[key] = max(best.get(key, 0), a["parameters"])
    if not best["E+Z-Offload"] > best["E+Z"] > best["E+D"]:
        fail(f"expected E+Z-Offload > E+Z > E+D, found {best}")
    print(f"largest: {len(found)} answers, parameters = 793856 + 263680 x "
          "experts, experts divisible by ep, next size does not fit, "
          "offload > ZeRO > none")


if __name__ == "__main__":
    what, path = sys.argv[1], sys.argv[2]
    with open(path) as f:
        data = json.load(f)
    if what == "buckets":
        with open(sys.argv[3]) as f:
            data = (data[0], json.load(f)[0])
    {"demo": demo, "zcode": zcode, "largest": largest,
     "buckets": buckets}[what](data)
