"""The compiled model against the independent PyTorch reference.

For a few model configurations (the demo with dropout 0 and 4 gating groups,
a tiny top-1 model with Random Token Selection and rsample noise, a tiny
dropless top-2 model with jitter, a tiny top-2 model that drops tokens, and
the top-1 and dropless ones again with gating groups) this test

1. generates the model with moe-model-gen, compiles it with moe-opt
   (--moe-training-pipeline, explicit aux-loss coefficient) and emits the plan
   of @forward_grad (forward + backward, no optimizer);
2. runs ONE training step of that plan in the C++ runtime with moe-step-dump,
   which writes the parameters it drew, the batch it built and every output:*
   buffer (loss, aux loss, expert counts, the gradient of every parameter) to
   a safetensors file;
3. loads those parameters and that batch into moe_reference.MoEModel and runs
   loss_and_grads with the same aux-loss coefficient and the runtime's
   Philox gate noise (runtime_gate_noise_fn: RTS priorities, Gumbel noise,
   jitter), and compares: loss, aux loss, expert counts (exactly), routing
   (fp32 and fp64 reference route identically, so the comparison is well
   posed), and EVERY gradient, tensor by tensor, with the tolerance below.

Run: /usr/bin/python3 -m unittest discover -s tests/reference \
         -p "test_runtime_against_torch.py" -v
(ctest: reference/runtime_against_torch). Tools are taken from
$MOE_BINARY_DIR/bin (default <repo>/build/bin). Exits 77 (CTest's skip code)
when torch or numpy cannot be imported, or, when run on its own, when the
tools are not built.
"""

import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest
from dataclasses import replace

try:
    import numpy as np
    import torch
except ImportError as error:  # no torch: a skip, not a failure
    sys.stderr.write(f"runtime-against-torch tests skipped: {error}\n")
    sys.stderr.flush()
    os._exit(77)  # unittest turns SystemExit at import into a failure

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import moe_reference as R  # noqa: E402

torch.set_num_threads(2)

SOURCE_DIR = os.environ.get("MOE_SOURCE_DIR",
                            os.path.normpath(os.path.join(HERE, "..", "..")))
BINARY_DIR = os.environ.get("MOE_BINARY_DIR", os.path.join(SOURCE_DIR, "build"))
TOOLS = ("moe-model-gen", "moe-opt", "moe-step-dump")

# True when this module is the one that was asked for (its own ctest entry)
# rather than picked up by the generic "test_*.py" discovery of
# reference/moe_reference.
STANDALONE = any("test_runtime_against_torch" in arg for arg in sys.argv)


def tool(name):
    path = os.path.join(BINARY_DIR, "bin", name)
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


MISSING_TOOLS = [t for t in TOOLS if tool(t) is None]
if MISSING_TOOLS and STANDALONE:
    sys.stderr.write("runtime-against-torch tests skipped: not built in "
                     f"{BINARY_DIR}/bin: {', '.join(MISSING_TOOLS)}\n")
    sys.stderr.flush()
    os._exit(77)

# ---------------------------------------------------------------------------
# Tolerances
# ---------------------------------------------------------------------------
# The reference runs in float64 on exactly the float32 weights and batch the
# runtime used, so its result is the exact answer to ~1e-15 and the
# difference measures the runtime's float32 error alone. Float32 has a unit
# roundoff u = 2^-24 = 6e-8. The longest reductions of this model are the
# weight gradients (sums over all B * T tokens, up to 256 terms for the demo)
# and the logits / softmax over V (1024) terms; a length-n float32 dot product
# or sum has a worst-case relative error of ~n*u (1.5e-5 for n = 256, 6e-5
# for n = 1024) relative to the sum of the absolute terms, typically
# sqrt(n)*u (~1e-6); backpropagating through ~10 layers (layer norms,
# softmaxes, GEMMs) compounds that a few times. So a correct runtime differs
# from the reference by ~1e-6..1e-5 of a tensor's scale (measured: <= 1e-6),
# and per tensor
#   max|runtime - reference| <= GRAD_RTOL * max|reference| + GRAD_ATOL
# with GRAD_RTOL = 1e-3 leaves a margin of >= ~20x over the worst-case bound
# while any wrong formula (a missing term, a wrong scale, a transposed
# operand, a mis-routed token) changes a gradient by O(1) of its scale.
# GRAD_ATOL is negligible next to every non-zero gradient scale here (the
# smallest max|reference| is ~1e-7, in the tiny models' encoder attention).
GRAD_RTOL = 1e-3
GRAD_ATOL = 1e-13
# Some gradients are analytically zero: the attention KEY biases (adding q.b
# to every score of a softmax row changes nothing). The float64 reference
# gives ~1e-20 for them; the float32 runtime gives the cancellation residue
# of the same terms that make up the key WEIGHT's gradient, ~u times that
# scale (measured 3e-8..7e-8 of it). Such a tensor (max|reference| below
# ZERO_GRAD_REL times the model's largest gradient) is held to
#   max|runtime| <= GRAD_RTOL * max|reference gradient of <prefix>.weight|
# i.e. to the scale it would have if it did not cancel.
ZERO_GRAD_REL = 1e-12
# Loss and aux loss are means of O(1) per-token terms: the same argument
# (n*u over n <= 1024 terms with a few compounding layers) gives ~1e-5
# relative; 1e-4 keeps the margin.
LOSS_RTOL = 1e-4

# ---------------------------------------------------------------------------
# The models
# ---------------------------------------------------------------------------


def demo_config():
    """models/demo.json with dropout forced to 0 (no dropout ops, so the
    gates' stream ids shift down; MoEModel numbers them the same way)."""
    with open(os.path.join(SOURCE_DIR, "models", "demo.json"), encoding="utf-8") as f:
        data = json.load(f)
    data["dropout"] = 0.0
    return data


TINY_TOP1_RTS = {
    # Top-1 with Random Token Selection and rsample (Gumbel) noise; every
    # layer is MoE and capacity is tight (C = S/E), so overloaded experts
    # keep a Philox-chosen random subset.
    "name": "tiny-top1-rts", "vocab_size": 64, "pad_id": 0, "d_model": 32,
    "num_heads": 4, "ffn_hidden": 48, "encoder_layers": 2, "decoder_layers": 2,
    "activation": "gelu", "position": "sinusoidal", "tie_embeddings": True,
    "dropout": 0.0, "label_smoothing": 0.1,
    "moe": {"num_experts": 4, "every": 1, "offset": 0, "top_k": 1,
            "capacity_factor": 1.0, "eval_capacity_factor": 2.0,
            "min_capacity": 1, "use_rts": True, "noise": "rsample"},
    "batch_size": 4, "src_len": 12, "tgt_len": 12,
}

TINY_TOP2_DROPLESS = {
    # Dropless top-2 with jitter on the gate input and Gumbel-sampled second
    # choices; learned positions, untied output, gelu_tanh, expert_hidden,
    # pad id 1, unequal source and target lengths.
    "name": "tiny-top2-dropless", "vocab_size": 48, "pad_id": 1, "d_model": 24,
    "num_heads": 3, "ffn_hidden": 40, "encoder_layers": 2, "decoder_layers": 2,
    "activation": "gelu_tanh", "position": "learned", "tie_embeddings": False,
    "dropout": 0.0, "label_smoothing": 0.05,
    "moe": {"num_experts": 4, "every": 2, "offset": 1, "top_k": 2,
            "expert_hidden": 32, "drop_tokens": False, "use_rts": True,
            "noise": "jitter", "second_sampling": True},
    "batch_size": 3, "src_len": 10, "tgt_len": 11,
}

TINY_TOP1_RTS_GROUPED = {
    # TINY_TOP1_RTS with 4 gating groups of 12 tokens: each group has its
    # own 3 slots per expert and its own Random Token Selection.
    **TINY_TOP1_RTS, "name": "tiny-top1-rts-grouped",
    "moe": {**TINY_TOP1_RTS["moe"], "groups": 4},
}

TINY_TOP2_DROPLESS_GROUPED = {
    # TINY_TOP2_DROPLESS with 3 gating groups (of 10 source and 11 target
    # tokens): the capacity is the largest expert count of any one group.
    **TINY_TOP2_DROPLESS, "name": "tiny-top2-dropless-grouped",
    "moe": {**TINY_TOP2_DROPLESS["moe"], "groups": 3},
}

TINY_TOP2_DROPPING = {
    # Top-2 with a small capacity: first choices overflow (RTS picks), second
    # choices queue behind all first choices and are dropped positionally,
    # and kept weights are renormalised over the surviving choices.
    "name": "tiny-top2-dropping", "vocab_size": 40, "pad_id": 0, "d_model": 16,
    "num_heads": 2, "ffn_hidden": 24, "encoder_layers": 1, "decoder_layers": 1,
    "activation": "silu", "position": "sinusoidal", "tie_embeddings": True,
    "dropout": 0.0, "label_smoothing": 0.0,
    "moe": {"num_experts": 4, "every": 1, "offset": 0, "top_k": 2,
            "capacity_factor": 0.5, "min_capacity": 1, "use_rts": True,
            "noise": "none", "second_sampling": True},
    "batch_size": 4, "src_len": 8, "tgt_len": 9,
}

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

_ST_DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32,
              "I64": np.int64, "BOOL": np.bool_, "U8": np.uint8}


def read_safetensors(path):
    """(tensors: name -> numpy array, metadata) of a safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    base = 8 + n
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        dtype = np.dtype(_ST_DTYPES[info["dtype"]]).newbyteorder("<")
        array = np.frombuffer(data[base + begin:base + end], dtype=dtype)
        tensors[name] = array.reshape(info["shape"]).astype(dtype.newbyteorder("="))
    return tensors, metadata


def run(cmd, what):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise AssertionError(f"{what} failed (exit {out.returncode}): "
                             f"{' '.join(cmd)}\n{out.stderr[-3000:]}")
    return out


STREAM_RE = re.compile(r"= moe\.(dropout|moe_layer) .*?stream = (\d+) : i64")


def param_group(name):
    """encoder.layers.1.self_attn.q.weight -> encoder.layers.*.self_attn.q.weight"""
    return re.sub(r"\.\d+\.", ".*.", name)


def routing_of(model):
    return {prefix: (r.indices.clone(), r.locations.clone(), r.capacity)
            for prefix, r in model.last_routing.items()}


# ---------------------------------------------------------------------------
# The test
# ---------------------------------------------------------------------------


@unittest.skipIf(MISSING_TOOLS, "not built in "
                 f"{BINARY_DIR}/bin: {', '.join(MISSING_TOOLS)}")
@unittest.skipIf(not STANDALONE and "MOE_BINARY_DIR" in os.environ,
                 "run by its own ctest entry, reference/runtime_against_torch")
class RuntimeAgainstTorchTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="moe-runtime-vs-torch-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)

    # -- pipeline ------------------------------------------------------------

    def compile_and_step(self, config_data, seed, step, aux_coef, alphabet=0):
        name = config_data["name"]
        base = os.path.join(self.work, name)
        with open(base + ".json", "w", encoding="utf-8") as f:
            json.dump(config_data, f, indent=1)
        run([tool("moe-model-gen"), base + ".json", "-o", base + ".mlir"],
            "moe-model-gen")
        run([tool("moe-opt"), base + ".mlir",
             f"--moe-training-pipeline=aux-loss-coef={aux_coef!r}",
             f"--moe-emit-plan=output={base}.moeplan function=forward_grad",
             "-o", os.devnull], "moe-opt")
        run([tool("moe-step-dump"), base + ".moeplan", "--seed", str(seed),
             "--step", str(step), "--out", base + ".safetensors",
             "--alphabet", str(alphabet)], "moe-step-dump")
        tensors, metadata = read_safetensors(base + ".safetensors")
        self.assertEqual(metadata.get("moert.seed"), str(seed))
        self.assertEqual(metadata.get("moert.step"), str(step))
        with open(base + ".mlir", encoding="utf-8") as f:
            ir = f.read()
        return R.load_config(base + ".json"), tensors, ir

    # -- comparison ----------------------------------------------------------

    def check_against_reference(self, config_data, *, seed, step,
                                aux_coef=0.01, alphabet=0):
        config, dump, ir = self.compile_and_step(config_data, seed, step,
                                                 aux_coef, alphabet)
        label = config.name
        params = {k[len("param:"):]: v for k, v in dump.items()
                  if k.startswith("param:")}
        grads = {k[len("output:grad:"):]: v for k, v in dump.items()
                 if k.startswith("output:grad:")}
        counts_rt = [dump[k] for k in sorted(
            (k for k in dump if k.startswith("output:expert_counts:")),
            key=lambda k: int(k.rsplit(":", 1)[1]))]
        src, tgt, labels = (dump["batch:" + n]
                            for n in ("src_tokens", "tgt_tokens", "labels"))

        # The reference's random-stream ids are the generator's.
        model64 = R.MoEModel(config, dropout=0.0, dtype=torch.float64).train()
        self.assertEqual([(k, s) for k, _, s in model64.stream_order],
                         [(m.group(1), int(m.group(2)))
                          for m in STREAM_RE.finditer(ir)], f"{label}: streams")
        names = [n for n, _ in model64.named_parameters_like_ir()]
        self.assertEqual(sorted(params), sorted(names), f"{label}: parameters")
        self.assertEqual(sorted(grads), sorted(names),
                         f"{label}: one output:grad:<name> per parameter")
        for n in names:
            self.assertEqual(params[n].dtype, np.float32, n)
            self.assertEqual(grads[n].shape, params[n].shape, n)
            self.assertTrue(np.isfinite(grads[n]).all(),
                            f"{label}: runtime gradient of {n} is not finite")
        # The batch is a real one: some target tokens count.
        self.assertGreater(int((labels != config.pad_id).sum()), 0)

        noise = R.runtime_gate_noise_fn(seed, step, config.gating)
        model64.load_state(params)  # float32 values, widened exactly
        self.last_case = dict(config=config, params=params, batch=(src, tgt, labels),
                              noise=noise)
        ref = R.loss_and_grads(model64, src, tgt, labels, aux_coef=aux_coef,
                               gate_noise=noise)
        routing64 = routing_of(model64)

        # Routing: a float32 reference must route exactly as the float64 one
        # (otherwise a near-tie makes the comparison ill-posed; pick another
        # seed), and the runtime's expert counts must equal the reference's.
        model32 = R.MoEModel(config, dropout=0.0).train()
        model32.load_state(params)
        with torch.no_grad():
            loss32, _, counts32 = model32(src, tgt, labels, gate_noise=noise)
        for prefix, (idx, loc, cap) in routing_of(model32).items():
            idx64, loc64, cap64 = routing64[prefix]
            self.assertTrue(torch.equal(idx, idx64) and torch.equal(loc, loc64)
                            and cap == cap64,
                            f"{label}: {prefix}: float32 and float64 routing "
                            "differ (a near-tie); choose another seed")
        ref_counts = [c.astype(np.int64) for c in ref["expert_counts"]]
        self.assertEqual(len(counts_rt), len(ref_counts), f"{label}: MoE layers")
        for i, (rt, rf) in enumerate(zip(counts_rt, ref_counts)):
            self.assertEqual(rt.astype(np.int64).tolist(), rf.tolist(),
                             f"{label}: expert counts of MoE layer {i}")

        # Loss and aux loss.
        loss_rt = float(dump["output:loss"])
        self.assertLessEqual(abs(loss_rt - ref["loss"]),
                             LOSS_RTOL * max(1.0, abs(ref["loss"])),
                             f"{label}: loss runtime {loss_rt!r} reference "
                             f"{ref['loss']!r}")
        if ref_counts:
            aux_rt = float(dump["output:aux_loss"])
            self.assertLessEqual(abs(aux_rt - ref["aux_loss"]),
                                 LOSS_RTOL * max(1.0, abs(ref["aux_loss"])),
                                 f"{label}: aux loss runtime {aux_rt!r} "
                                 f"reference {ref['aux_loss']!r}")

        # Every gradient, tensor by tensor.
        scales = {n: float(np.abs(ref["grads"][n]).max()) for n in names}
        zero_cut = ZERO_GRAD_REL * max(scales.values())
        rows, failures = [], []
        for n in names:
            g_ref = ref["grads"][n].astype(np.float64)
            g_rt = grads[n].astype(np.float64)
            err = float(np.abs(g_rt - g_ref).max())
            zero = scales[n] <= zero_cut
            if zero:
                sibling = re.sub(r"\.bias$", ".weight", n)
                scale = scales.get(sibling, max(scales.values()))
                if sibling == n or scale <= zero_cut:
                    scale = max(scales.values())
            else:
                scale = scales[n]
            bound = GRAD_RTOL * scale + GRAD_ATOL
            rows.append((n, err, scale, bound, zero))
            if not err <= bound:
                failures.append(n)
        nonzero = [r for r in rows if not r[4]]
        worst = max(nonzero, key=lambda r: r[1] / r[2])
        zeros = [r for r in rows if r[4]]
        zero_worst = max((r[1] / r[2] for r in zeros), default=0.0)
        used = max(r[1] / r[3] for r in rows)
        summary = (f"{label}: loss {loss_rt:.6f} (ref {ref['loss']:.6f}), aux "
                   f"{ref['aux_loss']:.6f}, counts "
                   f"{[c.tolist() for c in ref_counts]}; {len(names)} "
                   f"gradients: worst max|diff|/max|ref| {worst[1] / worst[2]:.2e} "
                   f"({worst[0]}), smallest max|ref| "
                   f"{min(r[2] for r in nonzero):.1e}; {len(zeros)} analytically "
                   f"zero: worst max|runtime|/sibling scale {zero_worst:.1e}; "
                   f"{100 * used:.3f}% of the tolerance used")
        sys.stderr.write(summary + "\n")
        if failures:
            self.fail(f"{label}: {len(failures)} of {len(names)} gradients "
                      f"exceed max|diff| <= {GRAD_ATOL:g} + {GRAD_RTOL:g} * "
                      f"max|ref|: {failures[:8]}\n" + self.group_table(rows))
        return ref, ref_counts, model64

    def assert_grouping_changes_routing(self, model):
        """The grouped reference routes differently from the same model with
        one group, so the agreement with the runtime does test the groups."""
        case = self.last_case
        config = case["config"]
        self.assertGreater(config.gating.groups, 1)
        ungrouped = R.MoEModel(replace(config, gating=replace(config.gating,
                                                               groups=1)),
                               dropout=0.0, dtype=torch.float64).train()
        ungrouped.load_state(case["params"])
        with torch.no_grad():
            ungrouped(*case["batch"], gate_noise=case["noise"])
        changed = [prefix for prefix, r in model.last_routing.items()
                   if not torch.equal(r.locations,
                                      ungrouped.last_routing[prefix].locations)]
        self.assertTrue(changed, f"{config.name}: grouping changed no slot")
        return ungrouped

    @staticmethod
    def group_table(rows):
        """Worst relative error (max|diff| / max|ref|; for analytically zero
        gradients, relative to their sibling weight's) per parameter group."""
        groups = {}
        for n, err, scale, bound, _ in rows:
            g = param_group(n)
            rel = err / scale if scale > 0 else (0.0 if err == 0 else math.inf)
            if g not in groups or rel > groups[g][0]:
                groups[g] = (rel, err, scale, bound, n)
        lines = [f"{'parameter group':<48} {'max|diff|/max|ref|':>18} "
                 f"{'max|diff|':>11} {'max|ref|':>11}  worst tensor"]
        ranked = sorted(groups.items(), key=lambda kv: -kv[1][0])
        shown = 0
        for g, (rel, err, scale, bound, n) in ranked:
            failed = err > bound
            if not failed and shown >= 12:
                continue  # every failing group, and the worst passing ones
            shown += 1
            lines.append(f"{g:<48} {rel:>18.3e} {err:>11.3e} {scale:>11.3e}  "
                         f"{n}{'  FAIL' if failed else ''}")
        if shown < len(ranked):
            lines.append(f"... {len(ranked) - shown} more groups within "
                         "tolerance")
        return "\n".join(lines)

    # -- cases ---------------------------------------------------------------

    def test_demo_dropout0(self):
        # Top-2, RTS, Gumbel-sampled second choices, 4 gating groups; aux
        # coefficient 0.01 (the pipeline's default, passed explicitly).
        ref, counts, model = self.check_against_reference(
            demo_config(), seed=5, step=3, aux_coef=0.01)
        self.assertEqual(len(counts), 2)
        self.assertEqual(model.config.gating.groups, 4)
        self.assert_grouping_changes_routing(model)

    def test_tiny_top1_rts_rsample_grouped(self):
        ref, counts, model = self.check_against_reference(
            TINY_TOP1_RTS_GROUPED, seed=11, step=7, aux_coef=0.1, alphabet=0)
        # Random Token Selection within a group: some group overflows an
        # expert's 3 slots.
        G = model.config.gating.groups
        overflowed = 0
        for r in model.last_routing.values():
            Sg, Cg = r.indices.shape[0] // G, r.capacity // G
            for g in range(G):
                first = r.indices[g * Sg:(g + 1) * Sg, 0]
                overflowed += int(torch.bincount(first, minlength=4).max() > Cg)
        self.assertGreater(overflowed, 0, "no group overflowed: RTS not exercised")
        self.assert_grouping_changes_routing(model)

    def test_tiny_top2_dropless_jitter_grouped(self):
        ref, counts, model = self.check_against_reference(
            TINY_TOP2_DROPLESS_GROUPED, seed=2, step=1, aux_coef=0.05,
            alphabet=32)
        for prefix, r in model.last_routing.items():
            self.assertTrue(bool((r.locations >= 0).all()),
                            f"{prefix}: dropless gate dropped a token")
            # Each group's capacity is the largest count of one group, below
            # the largest count over the whole batch.
            self.assertLess(r.capacity // r.groups, int(r.expert_counts.max()))
        self.assert_grouping_changes_routing(model)

    def test_tiny_top1_rts_rsample(self):
        # A larger aux coefficient makes the load-balancing gradient a
        # visible part of the gate weights' gradient.
        ref, counts, model = self.check_against_reference(
            TINY_TOP1_RTS, seed=11, step=7, aux_coef=0.1, alphabet=0)
        # The case must really exercise Random Token Selection.
        overloaded = [prefix for prefix, r in model.last_routing.items()
                      if int(r.expert_counts.max()) > r.capacity]
        self.assertTrue(overloaded, "no expert overflowed: RTS not exercised")

    def test_tiny_top2_dropless_jitter(self):
        # alphabet 32 (< vocab - 3 - pad_id): with the whole vocabulary, the
        # synthetic task (runner/SyntheticTask.cpp) draws content ids up to
        # pad_id + vocab - 1, i.e. outside the vocabulary when pad_id > 0.
        ref, counts, model = self.check_against_reference(
            TINY_TOP2_DROPLESS, seed=2, step=1, aux_coef=0.05, alphabet=32)
        for prefix, r in model.last_routing.items():
            self.assertTrue(bool((r.locations >= 0).all()),
                            f"{prefix}: dropless gate dropped a token")

    def test_step_dump_is_deterministic_and_rejects_bad_input(self):
        config, first, _ = self.compile_and_step(TINY_TOP2_DROPPING, seed=4,
                                                 step=2, aux_coef=0.01)
        base = os.path.join(self.work, TINY_TOP2_DROPPING["name"])
        again = base + "-again.safetensors"
        run([tool("moe-step-dump"), base + ".moeplan", "--seed", "4",
             "--step", "2", "--out", again, "--alphabet", "0"], "moe-step-dump")
        second, _ = read_safetensors(again)
        self.assertEqual(sorted(first), sorted(second))
        for name in first:
            self.assertTrue(np.array_equal(first[name], second[name]), name)
        bad_plan = os.path.join(self.work, "not-a-plan.moeplan")
        with open(bad_plan, "wb") as f:
            f.write(b"this is not a plan\n")
        out = os.path.join(self.work, "never-written.safetensors")
        for args, code, message in (
                ([base + ".moeplan", "--seed", "1", "--out", out], 2, "--step"),
                ([base + ".moeplan", "--seed", "1", "--step", "0", "--out", out],
                 2, "--step"),
                ([base + ".moeplan", "--seed", "1", "--step", "1"], 2, "--out"),
                ([base + ".moeplan", "--seed", "x", "--step", "1", "--out", out],
                 2, "--seed"),
                ([bad_plan, "--seed", "1", "--step", "1", "--out", out], 1,
                 "not-a-plan.moeplan"),
                ([os.path.join(self.work, "missing.moeplan"), "--seed", "1",
                  "--step", "1", "--out", out], 1, "missing.moeplan")):
            with self.subTest(args=args):
                proc = subprocess.run([tool("moe-step-dump")] + args,
                                      capture_output=True, text=True, timeout=60)
                self.assertEqual(proc.returncode, code, proc.stderr)
                self.assertIn(message, proc.stderr)
                self.assertFalse(os.path.exists(out))

    def test_tiny_top2_dropping(self):
        ref, counts, model = self.check_against_reference(
            TINY_TOP2_DROPPING, seed=9, step=4, aux_coef=0.01)
        dropped = sum(int((r.locations < 0).sum())
                      for r in model.last_routing.values())
        self.assertGreater(dropped, 0, "no token dropped")


if __name__ == "__main__":
    unittest.main()
