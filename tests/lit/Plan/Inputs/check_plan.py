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
    # Offload (ZeRO 2), overlapped (the default): the gradient copies
    # (0.5 x the moments' bytes over PCIe, 32 GB/s) hide behind the backward
    # compute, the parameter copies (1 x) behind the host AdamW (3.5 x at
    # 100 GB/s), which is all the offload adds to the ZeRO 2 step.
    near(off["step_seconds"] - z2["step_seconds"], 3.5 * sharded / 100e9,
         1e-6, "offload time")
    print(f"zcode: parameters {params} B, moments {2 * params} B (ZeRO 0), "
          f"{sharded} B (ZeRO 2, on the host with offload), all-to-all "
          f"{72 * 1032192} B, step {z0['step_seconds']:.4f} s")


PCIE = {"a100-40g": 32e9, "v100-32g": 16e9}
EFFECTIVE = {"a100-40g": 312e12 * 0.4, "v100-32g": 125e12 * 0.4}


def offload_parts(c, device, params):
    """The offload's parts of one grid from its optimizer bytes, by hand:
    per element of the moments (8 bytes) the fp32 gradient goes to the host
    (4 bytes: 0.5 x), the parameter copies of the optimizer phase move the
    fp32 parameter down and up (8 bytes: 1 x) or, with offload=params, a
    16-bit copy up (2 bytes: 0.25 x), and the host AdamW moves 7 x 4 bytes
    (3.5 x) at 100 GB/s. The backward pass computes 2/3 of the rank's FLOPs
    (two products per forward product)."""
    b = c["optimizer_state_bytes"]
    parts = {
        "gradient_copy_seconds": 0.5 * b / PCIE[device],
        "parameter_copy_seconds": (0.25 if params else 1.0) * b / PCIE[device],
        "host_adamw_seconds": 3.5 * b / 100e9,
        "backward_compute_seconds": 2 / 3 * c["flops"] / EFFECTIVE[device],
    }
    equal(c["backward_flops"], 2 * c["flops"] // 3, "backward FLOPs")
    for key, value in parts.items():
        near(c[key], value, 1e-9, key)
    return parts


def offload(runs):
    """Z-code M3, dp 8 x ep 64: the offload time overlapped and in series."""
    overlapped, serial, params, params_serial, v100 = runs
    key = lambda c: (c["zero"], c["offload"])
    rows = {}
    for name, grids, device, with_params, overlap in (
            ("overlapped", overlapped, "a100-40g", False, True),
            ("serial", serial, "a100-40g", False, False),
            ("params", params, "a100-40g", True, True),
            ("params serial", params_serial, "a100-40g", True, False),
            ("v100", v100, "v100-32g", False, True)):
        for c in grids:
            step = (c["compute_seconds"] + c["exposed_comm_seconds"] +
                    c["offload_seconds"])
            near(c["step_seconds"], step, 1e-12, f"{name} step")
            if not c["offload"]:
                equal(c["offload_seconds"], 0, f"{name} offload time")
                continue
            p = offload_parts(c, device, with_params)
            g, w, a, bw = (p["gradient_copy_seconds"],
                           p["parameter_copy_seconds"],
                           p["host_adamw_seconds"],
                           p["backward_compute_seconds"])
            expected = (max(0.0, g - bw) + max(a, w)) if overlap else g + w + a
            near(c["offload_seconds"], expected, 1e-9,
                 f"{name} ZeRO {c['zero']} offload time")
            rows[(name, c["zero"])] = c["offload_seconds"]
    # Everything but the offload is the same in both runs.
    by = {key(c): c for c in serial}
    for c in overlapped:
        near(by[key(c)]["step_seconds"] - c["step_seconds"],
             by[key(c)]["offload_seconds"] - c["offload_seconds"], 1e-9,
             "serial - overlapped step")
    ms = lambda name, zero: f"{1e3 * rows[(name, zero)]:.4f}"
    print(f"offload ZeRO 2: serial {ms('serial', 2)} ms, overlapped "
          f"{ms('overlapped', 2)} ms; ZeRO 0: serial {ms('serial', 0)} ms, "
          f"overlapped {ms('overlapped', 0)} ms; offload=params ZeRO 2: "
          f"serial {ms('params serial', 2)} ms, overlapped "
          f"{ms('params', 2)} ms; v100 ZeRO 2: overlapped "
          f"{ms('v100', 2)} ms")


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
    if what == "offload":
        data = [data]
        for extra in sys.argv[3:]:
            with open(extra) as f:
                data.append(json.load(f))
    {"demo": demo, "zcode": zcode, "largest": largest,
     "buckets": buckets, "offload": offload}[what](data)
