#!/usr/bin/env python3
"""Cross-check the MoE gate, dispatch and combine kernels against PyTorch.

Runs moert-moe-reference-dump, which writes, for a few deterministic gate
configurations (no noise, no Random Token Selection; top-1 and top-2, with
and without token dropping), the inputs, the routing, the layer output and
the gradients of L = sum(y * R) + aux_coefficient * aux_loss. This script
recomputes all of it independently with the DeepSpeed-MoE / GShard
formulation: one-hot masks, cumsum locations, combine weights as an
[S, E, C] tensor and einsum dispatch/combine, in float64, with gradients from
torch autograd. Exits 77 (ctest SKIP) when this interpreter has no torch;
run it with Debian's /usr/bin/python3.

Tolerance: our kernels compute in fp32 (OpenBLAS sgemm for the logits), the
reference in fp64, on unit-scale inputs with reductions of at most a few
dozen terms, so the differences are a few fp32 ulps (measured below 1e-6).
We accept |ours - torch| <= 1e-5 + 1e-5 * |torch|, ten times that and far
below any formula error (a wrong slot, a missing renormalisation term or aux
gradient changes values by >= 1e-3 here). Integer outputs (expert ids,
slots, counts, capacity) must match exactly.
"""
import argparse
import math
import os
import subprocess
import sys

try:
    import torch
    import torch.nn.functional as F
except ImportError as error:  # pragma: no cover - depends on the machine
    print(f"SKIP: {error} (use Debian's /usr/bin/python3 with python3-torch)")
    sys.exit(77)

ABS_TOL = 1e-5
REL_TOL = 1e-5
failures = []


def load_case(path):
    params, tensors = {}, {}
    with open(path) as handle:
        lines = handle.read().splitlines()
    i = 0
    while i < len(lines):
        fields = lines[i].split()
        if fields[0] == "param":
            params[fields[1]] = float(fields[2])
            i += 1
        elif fields[0] == "tensor":
            shape = [int(d) for d in fields[2].split(",")]
            values = [float(v) for v in lines[i + 1].split()]
            tensors[fields[1]] = torch.tensor(values, dtype=torch.float64).reshape(shape)
            i += 2
        else:
            raise ValueError(f"{path}:{i + 1}: unexpected line {lines[i]!r}")
    return params, tensors


def expect_close(name, ours, reference):
    reference = reference.detach().double()
    if tuple(ours.shape) != tuple(reference.shape):
        failures.append(f"{name}: shape {tuple(ours.shape)} vs {tuple(reference.shape)}")
        return
    error = (ours - reference).abs()
    allowed = ABS_TOL + REL_TOL * reference.abs()
    worst = (error - allowed).max().item() if error.numel() else -1.0
    status = "ok" if worst <= 0 else "FAIL"
    print(f"{status:4} {name}: max abs error {error.max().item():.3g}")
    if worst > 0:
        failures.append(name)


def expect_equal(name, ours, reference):
    same = torch.equal(ours.long(), reference.long())
    print(f"{'ok' if same else 'FAIL':4} {name}: exact")
    if not same:
        failures.append(f"{name}: ours {ours.long().tolist()} vs "
                        f"torch {reference.long().tolist()}")


def reference_layer(params, t):
    """DeepSpeed-MoE top-1/top-2 gating (use_rts=False, no noise) + GShard
    einsum dispatch/combine, differentiated by autograd."""
    x = t["x"].clone().requires_grad_(True)
    wg = t["gateWeight"].clone().requires_grad_(True)
    k = int(params["topK"])
    S, E = x.shape[0], wg.shape[1]

    logits = x @ wg
    gates = F.softmax(logits, dim=1)
    index1 = torch.argmax(gates, dim=1)
    mask1 = F.one_hot(index1, E).double()
    masks, indices = [mask1], [index1]
    if k == 2:
        logits_except1 = logits.detach().masked_fill(mask1.bool(), float("-inf"))
        index2 = torch.argmax(logits_except1, dim=1)
        masks.append(F.one_hot(index2, E).double())
        indices.append(index2)
    counts = sum(masks).sum(dim=0)

    # Locations: cumsum within each choice, later choices behind all earlier.
    locations, offset = [], torch.zeros(E, dtype=torch.float64)
    for mask in masks:
        locations.append(torch.cumsum(mask, dim=0) - 1 + offset)
        offset = offset + mask.sum(dim=0)

    if params["dropTokens"]:
        capacity = math.ceil(S / E * params["capacityFactor"] * k - 1e-9)
        capacity = min(max(capacity, int(params["minCapacity"])), S)
    else:
        capacity = min(int(counts.max().item()), S)

    me = gates.mean(dim=0)
    ce = mask1.mean(dim=0)
    aux = (me * ce).sum() * E

    kept = [mask * (location < capacity).double() for mask, location in zip(masks, locations)]
    chosen_gates = [(gates * m).sum(dim=1) for m in kept]
    if k == 2:
        denominator = torch.clamp(chosen_gates[0] + chosen_gates[1],
                                  min=torch.finfo(torch.float32).eps)
        chosen_gates = [g / denominator for g in chosen_gates]
    combine = torch.zeros(S, E, capacity, dtype=torch.float64)
    slots = []
    for m, location, g in zip(kept, locations, chosen_gates):
        slot = (location * m).sum(dim=1).long()
        slot_one_hot = F.one_hot(slot, capacity).double()
        combine = combine + g[:, None, None] * m[:, :, None] * slot_one_hot[:, None, :]
        slots.append(torch.where(m.sum(dim=1) > 0, slot, torch.full_like(slot, -1)))
    dispatch_mask = (combine != 0).double()

    dispatched = torch.einsum("sec,sm->ecm", dispatch_mask, x)
    expert_out = dispatched * t["expertScale"][:, None, :]
    y = torch.einsum("sec,ecm->sm", combine, expert_out)
    loss = (y * t["outputProjection"]).sum() + params["auxCoefficient"] * aux
    loss.backward()
    weights = torch.stack(chosen_gates, dim=1) * torch.stack(
        [m.sum(dim=1) for m in kept], dim=1)
    return {
        "experts": torch.stack(indices, dim=1),
        "slots": torch.stack(slots, dim=1),
        "weights": weights,
        "gates": gates,
        "expertCounts": counts,
        "capacity": capacity,
        "auxLoss": aux,
        "y": y,
        "xGrad": x.grad,
        "gateWeightGrad": wg.grad,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dump-tool", required=True)
    parser.add_argument("--work-dir", required=True)
    args = parser.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    subprocess.run([args.dump_tool, args.work_dir], check=True)
    cases = sorted(f for f in os.listdir(args.work_dir) if f.endswith(".txt"))
    if not cases:
        print("no cases were written")
        return 1
    for case in cases:
        params, t = load_case(os.path.join(args.work_dir, case))
        name = case[:-4]
        ref = reference_layer(params, t)
        dropped = int((t["slots"] < 0).sum().item())
        print(f"== {name}: capacity {int(params['capacity'])}, {dropped} dropped choices")
        if params["dropTokens"] and dropped == 0:
            failures.append(f"{name}: expected the case to drop tokens")
        expect_equal(f"{name}.capacity", torch.tensor(int(params["capacity"])),
                     torch.tensor(ref["capacity"]))
        for key in ("experts", "slots", "expertCounts"):
            expect_equal(f"{name}.{key}", t[key], ref[key])
        expect_close(f"{name}.auxLoss", torch.tensor(params["auxLoss"], dtype=torch.float64),
                     ref["auxLoss"])
        for key in ("weights", "gates", "y", "xGrad", "gateWeightGrad"):
            expect_close(f"{name}.{key}", t[key], ref[key])
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("all MoE kernel values match torch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
