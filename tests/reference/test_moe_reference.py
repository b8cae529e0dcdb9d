"""Tests of the PyTorch reference (moe_reference.py).

They pin the reference to the IR (parameter names, shapes, order, initializers
and random-stream ids parsed from generated @forward signatures), to the gate
semantics of docs/architecture.md ("Gate semantics") on hand-made cases and against a plain-Python
loop written separately from the vectorised gate, to the agreement of the two
MoE-layer formulations, and to finite differences (gradcheck in float64).

Run: /usr/bin/python3 -m unittest discover -s tests/reference -p "test_*.py" -v
Exits 77 (CTest's skip code) when torch or numpy cannot be imported.
"""

import math
import os
import re
import shutil
import subprocess
import sys
import unittest
from dataclasses import replace

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as error:  # no torch: a skip, not a failure
    sys.stderr.write(f"moe_reference tests skipped: {error}\n")
    sys.stderr.flush()
    # unittest's loader turns SystemExit at import into a failed test, so
    # leave the process directly with the skip code.
    os._exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import moe_reference as R  # noqa: E402

# Two cores are shared with other work; the suite stays small anyway.
torch.set_num_threads(2)

SOURCE_DIR = os.environ.get("MOE_SOURCE_DIR",
                            os.path.normpath(os.path.join(HERE, "..", "..")))
MODELS = os.path.join(SOURCE_DIR, "models")
FIXTURES = os.path.join(HERE, "fixtures")


def find_tool(name):
    """A built compiler tool, if any (the tests never build anything): from
    $MOE_BINARY_DIR/bin when that is set (and only there, so a stale tool of
    another build is never used), else <source>/build/bin, else PATH."""
    binary_dir = os.environ.get("MOE_BINARY_DIR")
    candidates = ([os.path.join(binary_dir, "bin", name)] if binary_dir else
                  [os.path.join(SOURCE_DIR, "build", "bin", name)])
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None if binary_dir else shutil.which(name)


# ---------------------------------------------------------------------------
# Reading the IR
# ---------------------------------------------------------------------------

ARG_RE = re.compile(r"%arg(\d+): tensor<((?:\d+x)*)(f32|i32)> \{([^{}]*)\}")
PARAM_RE = re.compile(r'moe\.param = "([^"]+)"')
INIT_RE = re.compile(r"moe\.init = #moe\.init<(\w+)(?:, scale = ([-+0-9.eE]+))?>")
STREAM_OP_RE = re.compile(r"= (moe\.dropout|moe\.moe_layer) .*?stream = (\d+) : i64")


def parse_forward_params(text):
    """[(name, shape, init, scale)] of the moe.param arguments of @forward,
    in argument order."""
    start = text.index("func.func @forward(")
    end = text.index(") -> (", start)
    params = []
    for m in ARG_RE.finditer(text[start:end]):
        attrs = m.group(4)
        name = PARAM_RE.search(attrs)
        if not name:
            continue  # batch input
        shape = tuple(int(d) for d in m.group(2).split("x") if d)
        init = INIT_RE.search(attrs)
        kind = init.group(1)
        scale = float(init.group(2)) if init.group(2) else 1.0
        params.append((name.group(1), shape, kind, scale))
    return params


def parse_stream_ops(text):
    """[(op, stream)] of dropout and moe_layer ops in IR order."""
    return [(m.group(1).split(".")[1], int(m.group(2)))
            for m in STREAM_OP_RE.finditer(text)]


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


class IrMixin:
    def assert_matches_ir(self, config, ir_text):
        model = R.MoEModel(config)
        ir = parse_forward_params(ir_text)
        ours = [(s.name, s.shape, s.init, s.scale) for s in R.param_specs(config)]
        self.assertEqual([p[0] for p in ours], [p[0] for p in ir], "names/order")
        for (name, shape, init, scale), (_, ir_shape, ir_init, ir_scale) in zip(ours, ir):
            self.assertEqual(shape, ir_shape, name)
            self.assertEqual(init, ir_init, name)
            if init in ("normal", "uniform", "xavier_uniform"):
                self.assertAlmostEqual(scale, ir_scale, places=12, msg=name)
        # The torch module exposes exactly these names, shapes and order.
        torch_params = [(n, tuple(p.shape)) for n, p in model.named_parameters()]
        self.assertEqual(torch_params, [(p[0], p[1]) for p in ir])
        self.assertEqual([n for n, _ in model.named_parameters_like_ir()],
                         [p[0] for p in ir])
        self.assertEqual(sum(p.numel() for p in model.parameters()),
                         sum(int(np.prod(p[1])) for p in ir))
        # Random streams: the generator's counter, replayed.
        self.assertEqual([(kind, stream) for kind, _, stream in model.stream_order],
                         parse_stream_ops(ir_text))
        return model


# ---------------------------------------------------------------------------
# Configuration and parameters vs the IR
# ---------------------------------------------------------------------------


class ConfigAndParamsTest(unittest.TestCase, IrMixin):
    def test_demo_config_keys_and_defaults(self):
        c = R.load_config(os.path.join(MODELS, "demo.json"))
        self.assertEqual((c.vocab_size, c.d_model, c.num_heads, c.ffn_hidden),
                         (1024, 128, 4, 512))
        self.assertEqual((c.num_experts, c.moe_every, c.moe_offset), (8, 2, 1))
        self.assertEqual(c.gating.top_k, 2)
        self.assertEqual(c.gating.eval_capacity_factor, 2.0)
        self.assertEqual(c.gating.groups, 4)
        # Defaults of keys the file leaves out (ModelConfig.h).
        self.assertEqual(c.layer_norm_eps, 1e-5)
        self.assertTrue(c.gating.drop_tokens)
        self.assertTrue(c.gating.second_sampling)
        self.assertEqual(c.gating.jitter_eps, 0.01)
        self.assertEqual(c.expert_hidden_dim(), 512)

    def test_config_errors_name_the_key(self):
        base = {"vocab_size": 8, "d_model": 4, "num_heads": 2, "ffn_hidden": 4,
                "encoder_layers": 1, "decoder_layers": 1, "batch_size": 1,
                "src_len": 2, "tgt_len": 2}
        R.parse_config(dict(base))
        bad = [({"vocab_szie": 3}, "vocab_szie"),
               ({"d_model": "4"}, "d_model"),
               ({"num_heads": 3}, "num_heads"),
               ({"activation": "tanh"}, "activation"),
               ({"moe": {"num_experts": 2, "top_k": 3}}, "top_k"),
               ({"moe": {"num_experts": 2, "expert": 3}}, "expert"),
               ({"moe": {"num_experts": 2, "use_rts": 1}}, "use_rts"),
               ({"moe": {"num_experts": 2, "groups": 0}}, "groups"),
               # 1 x 2 tokens per stack do not split into 4 groups.
               ({"moe": {"num_experts": 2, "every": 1, "offset": 0,
                         "groups": 4}}, "groups"),
               ({"moe": {"num_experts": 2, "groups": 1.5}}, "groups"),
               ({"pad_id": 8}, "pad_id")]
        for extra, key in bad:
            with self.subTest(key=key):
                with self.assertRaisesRegex(ValueError, key):
                    R.parse_config({**base, **extra})

    def test_demo_params_match_ir(self):
        config = R.load_config(os.path.join(MODELS, "demo.json"))
        model = self.assert_matches_ir(config, read(os.path.join(MODELS, "demo.mlir")))
        self.assertEqual(len(list(model.parameters())), 91)
        self.assertEqual(tuple(model.param(
            "encoder.layers.1.ffn.experts.fc1.weight").shape), (8, 128, 512))
        self.assertEqual(model.gate_streams, {"encoder.layers.1.ffn": 4,
                                              "decoder.layers.1.ffn": 12})

    def test_tiny_variants_match_fixture_ir(self):
        # Fixtures generated by moe-model-gen: learned positions, untied
        # output, dropless + jitter, every layer MoE; top-3 with expert_hidden
        # and MoE only in layer 2 of each stack; no-dropout stream numbering.
        for name in ("variant", "tiny-top2", "tiny-top3"):
            with self.subTest(name=name):
                config = R.load_config(os.path.join(FIXTURES, name + ".json"))
                self.assert_matches_ir(config,
                                       read(os.path.join(FIXTURES, name + ".mlir")))

    def test_freshly_generated_ir_matches(self):
        gen = find_tool("moe-model-gen")
        if gen is None:
            self.skipTest("moe-model-gen not built")
        for path in (os.path.join(MODELS, "demo.json"),
                     os.path.join(FIXTURES, "variant.json"),
                     os.path.join(FIXTURES, "tiny-top3.json")):
            with self.subTest(path=path):
                out = subprocess.run([gen, path], capture_output=True, text=True,
                                     timeout=60)
                if out.returncode != 0:
                    self.skipTest(f"moe-model-gen failed: {out.stderr[:200]}")
                self.assert_matches_ir(R.load_config(path), out.stdout)

    def test_static_capacity_matches_compiler(self):
        # moe-expand-moe-layer writes the capacity it infers into moe.gate.
        opt = find_tool("moe-opt")
        if opt is None:
            self.skipTest("moe-opt not built")
        for ir_path, json_path in (
                (os.path.join(MODELS, "demo.mlir"), os.path.join(MODELS, "demo.json")),
                (os.path.join(FIXTURES, "tiny-top3.mlir"),
                 os.path.join(FIXTURES, "tiny-top3.json"))):
            out = subprocess.run([opt, "--moe-expand-moe-layer", ir_path],
                                 capture_output=True, text=True, timeout=60)
            if out.returncode != 0:
                self.skipTest(f"moe-opt failed: {out.stderr[:200]}")
            found = [int(c) for c in re.findall(r"moe\.gate [^\n]*?capacity = (\d+)",
                                                out.stdout)]
            c = R.load_config(json_path)
            g = c.gating
            expected = []
            for stack, n, length in (("enc", c.encoder_layers, c.src_len),
                                     ("dec", c.decoder_layers, c.tgt_len)):
                for layer in range(n):
                    if c.is_moe_layer(layer):
                        expected.append(g.groups * R.expert_capacity(
                            c.batch_size * length // g.groups, c.num_experts,
                            g.top_k, g.capacity_factor, g.min_capacity,
                            g.drop_tokens))
            self.assertEqual(found, expected, ir_path)

    def test_zcode_parameter_count_without_weights(self):
        c = R.load_config(os.path.join(MODELS, "zcode-m3.json"))
        counts = R.count_parameters(c)
        # tests/lit/Models/zcode-m3.test (moe-param-report).
        self.assertEqual(counts, {"tensors": 719, "total": 10279540736,
                                  "dense": 609966080, "expert": 9669574656})
        # Same code path as MoEModel, on the meta device (no memory).
        model = R.MoEModel(c, device="meta")
        self.assertEqual(sum(p.numel() for p in model.parameters()), 10279540736)
        self.assertEqual(len(list(model.parameters())), 719)

    def test_state_round_trip_and_errors(self):
        c = R.load_config(os.path.join(FIXTURES, "variant.json"))
        a, b = R.MoEModel(c, seed=1), R.MoEModel(c, seed=2)
        state = a.state()
        self.assertEqual(list(state), [n for n, _ in a.named_parameters_like_ir()])
        b.load_state(state)
        for name, value in b.state().items():
            np.testing.assert_array_equal(value, state[name])
        with self.assertRaises(KeyError):
            b.load_state({k: v for k, v in state.items() if k != "embed.weight"})
        bad = dict(state)
        bad["embed.weight"] = np.zeros((3, 3), np.float32)
        with self.assertRaises(ValueError):
            b.load_state(bad)


# ---------------------------------------------------------------------------
# Gate semantics
# ---------------------------------------------------------------------------


def direct_logits_gate(logits, gating, **kw):
    """Runs moe_gate with x = logits and Wg = I, so logits are exact."""
    logits = torch.as_tensor(logits, dtype=torch.float32)
    return R.moe_gate(logits, torch.eye(logits.shape[1]), gating, **kw)


def loop_slots(indices, capacity, priorities=None):
    """Slots by the spec, one token at a time (independent of the vectorised
    gate): first choices keep the first C tokens in token order, or with
    priorities the C highest (ties: lower token), slots in token order;
    choice j queues behind all choices < j (before dropping)."""
    S, k = len(indices), len(indices[0])
    slots = [[-1] * k for _ in range(S)]
    experts = sorted({row[0] for row in indices} | {e for row in indices for e in row})
    queued = {}
    for e in experts:
        tokens = [s for s in range(S) if indices[s][0] == e]
        queued[e] = len(tokens)
        if len(tokens) > capacity:
            if priorities is not None:
                tokens = sorted(sorted(tokens, key=lambda s: (-priorities[s], s))[:capacity])
            else:
                tokens = tokens[:capacity]
        for slot, s in enumerate(tokens):
            slots[s][0] = slot
    for j in range(1, k):
        for s in range(S):
            e = indices[s][j]
            position = queued.get(e, 0)
            queued[e] = position + 1
            slots[s][j] = position if position < capacity else -1
    return slots


class GateTest(unittest.TestCase):
    def test_capacity_formula(self):
        cap = R.expert_capacity
        self.assertEqual(cap(256, 8, 2, 1.0, 4), 64)          # demo, training
        self.assertEqual(cap(256, 8, 2, 2.0, 4), 128)         # demo, eval
        self.assertEqual(cap(2048, 64, 1, 1.0, 4), 32)        # zcode-m3
        self.assertEqual(cap(16, 8, 1, 1.0, 4), 4)            # min_capacity
        self.assertEqual(cap(4, 2, 1, 10.0, 0), 4)            # capped at S
        self.assertEqual(cap(3, 8, 1, 1.0, 16), 3)            # min capped at S
        self.assertEqual(cap(50, 11, 1, 1.1, 0), 5)           # 5.000000000000001
        self.assertEqual(cap(10, 4, 1, 0.5, 0), 2)            # ceil(1.25)
        self.assertEqual(cap(12, 4, 3, 0.5, 1), 5)            # ceil(4.5)
        self.assertEqual(cap(10, 4, 2, 1.0, 0, drop_tokens=False), 10)
        with self.assertRaises(ValueError):
            cap(8, 2, 3, 1.0, 0)

    def test_top1_overflow_drops_later_tokens_without_rts(self):
        # Tokens 0..5 prefer expert 0, tokens 6, 7 expert 1; C = ceil(8/2*0.5) = 2.
        logits = [[2.0, 0.0]] * 6 + [[0.0, 1.0]] * 2
        g = R.GatingConfig(top_k=1, capacity_factor=0.5, min_capacity=0, use_rts=False)
        r = direct_logits_gate(logits, g, training=True)
        self.assertEqual(r.capacity, 2)
        self.assertEqual(r.indices[:, 0].tolist(), [0] * 6 + [1] * 2)
        self.assertEqual(r.locations[:, 0].tolist(), [0, 1, -1, -1, -1, -1, 0, 1])
        self.assertEqual(r.expert_counts.tolist(), [6, 2])  # before dropping
        p0 = 1 / (1 + math.exp(-2.0))
        p1 = 1 / (1 + math.exp(-1.0))
        expected = [p0, p0, 0, 0, 0, 0, p1, p1]  # raw softmax probability
        np.testing.assert_allclose(r.weights[:, 0].numpy(), expected, rtol=1e-6)

    def test_rts_keeps_highest_priorities_then_token_order(self):
        logits = [[2.0, 0.0]] * 6 + [[0.0, 1.0]] * 2
        g = R.GatingConfig(top_k=1, capacity_factor=0.5, min_capacity=0, use_rts=True)
        prio = torch.tensor([0.1, 0.9, 0.5, 0.8, 0.2, 0.3, 0.0, 0.0])
        r = direct_logits_gate(logits, g, noise=R.GateNoise(rts=prio))
        # Expert 0 keeps tokens 1 (0.9) and 3 (0.8), slots in token order.
        self.assertEqual(r.locations[:, 0].tolist(), [-1, 0, -1, 1, -1, -1, 0, 1])
        # Reversed priorities keep tokens 0 and 4; ties go to the lower token.
        prio = torch.tensor([0.9, 0.1, 0.5, 0.5, 0.8, 0.5, 0.0, 0.0])
        r = direct_logits_gate(logits, g, noise=R.GateNoise(rts=prio))
        self.assertEqual(r.locations[:, 0].tolist(), [0, -1, -1, -1, 1, -1, 0, 1])
        prio = torch.tensor([0.5, 0.9, 0.5, 0.5, 0.1, 0.5, 0.0, 0.0])
        r = direct_logits_gate(logits, g, noise=R.GateNoise(rts=prio))
        self.assertEqual(r.locations[:, 0].tolist(), [0, 1, -1, -1, -1, -1, 0, 1])
        # An expert within capacity is untouched by RTS; eval applies RTS too.
        # (eval_capacity_factor 1.0: C = 4, the four highest priorities).
        r = direct_logits_gate(logits, g, training=False,
                               noise=R.GateNoise(rts=torch.arange(8.0)))
        self.assertEqual(r.capacity, 4)
        self.assertEqual(r.locations[:, 0].tolist(), [-1, -1, 0, 1, 2, 3, 0, 1])

    def test_top2_second_choice_queues_behind_all_first_choices(self):
        # First choices: e0, e0, e1, e0; second: e1, e2, e0, e1.
        logits = [[3.0, 2.0, 0.0], [3.0, 0.0, 2.0], [2.0, 3.0, 0.0], [3.0, 1.0, 0.0]]
        g = R.GatingConfig(top_k=2, min_capacity=0, use_rts=False,
                           second_sampling=False)
        r = direct_logits_gate(logits, g, capacity=3)
        self.assertEqual(r.indices.tolist(), [[0, 1], [0, 2], [1, 0], [0, 1]])
        self.assertEqual(r.expert_counts.tolist(), [4, 3, 1])
        # e0 holds first choices 0, 1, 3 (slots 0..2); token 2's second
        # choice e0 queues at 3 >= C and is dropped; e1's second choices queue
        # behind its one first choice.
        self.assertEqual(r.locations.tolist(), [[0, 1], [1, 0], [0, -1], [2, 2]])
        gates = torch.softmax(torch.tensor(logits), -1)
        for s in (0, 1, 3):
            g1, g2 = gates[s, r.indices[s, 0]], gates[s, r.indices[s, 1]]
            np.testing.assert_allclose(r.weights[s].numpy(),
                                       [g1 / (g1 + g2), g2 / (g1 + g2)], rtol=1e-6)
        # Only the first choice kept: renormalised over it alone -> 1.
        np.testing.assert_allclose(r.weights[2].numpy(), [1.0, 0.0], rtol=1e-6)

    def test_top2_dropped_first_choice_frees_no_slot(self):
        # Four tokens prefer e0 (C = 2): with RTS the kept ones are 2 and 3;
        # the second choices for e0 (tokens 4, 5) still queue behind all four.
        logits = [[3.0, 2.0, 0.0]] * 4 + [[1.0, 3.0, 0.0]] * 2
        g = R.GatingConfig(top_k=2, min_capacity=0, use_rts=True,
                           second_sampling=False)
        prio = torch.tensor([0.1, 0.2, 0.9, 0.8, 0.0, 0.0])
        r = direct_logits_gate(logits, g, capacity=2, noise=R.GateNoise(rts=prio))
        self.assertEqual(r.locations[:, 0].tolist(), [-1, -1, 0, 1, 0, 1])
        self.assertEqual(r.locations[:, 1].tolist(), [-1, -1, -1, -1, -1, -1])
        # Tokens 0, 1: both choices dropped -> zero weights.
        self.assertEqual(r.weights[:2].abs().sum().item(), 0.0)
        # A kept second choice alone gets weight 1 (first choice dropped).
        r = direct_logits_gate(logits, g, capacity=4,
                               noise=R.GateNoise(rts=prio))
        self.assertEqual(r.locations.tolist(),
                         [[0, 2], [1, 3], [2, -1], [3, -1], [0, -1], [1, -1]])

    def test_renormalisation_epsilon_clamp(self):
        g = R.GatingConfig(top_k=2, min_capacity=0, use_rts=False,
                           second_sampling=False)
        # Token 0 holds expert 2's only slot (C = 1); token 1's first choice
        # (expert 2) is dropped and its kept second choice, expert 1, has
        # probability ~e^-60, below float32 eps: w = g / eps, not g / g = 1.
        logits = [[0.0, -40.0, 40.0], [-50.0, -20.0, 40.0]]
        r = direct_logits_gate(logits, g, capacity=1)
        self.assertEqual(r.indices.tolist(), [[2, 0], [2, 1]])
        self.assertEqual(r.locations.tolist(), [[0, 0], [-1, 0]])
        g1 = float(torch.softmax(torch.tensor(logits[1]), -1)[1])
        self.assertLess(g1, R.RENORM_EPS)
        self.assertAlmostEqual(float(r.weights[1, 1]) / (g1 / R.RENORM_EPS), 1.0, places=5)
        self.assertEqual(float(r.weights[1, 0]), 0.0)
        # Token 0 keeps both: ordinary renormalisation g_i / (g_1 + g_2).
        p = torch.softmax(torch.tensor(logits[0]), -1)
        np.testing.assert_allclose(r.weights[0].numpy(),
                                   [p[2] / (p[2] + p[0]), p[0] / (p[2] + p[0])],
                                   rtol=1e-6)
        # Clamped: d w / d g = 1 / eps (the clamp cuts the sum's dependence).
        x = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
        r = R.moe_gate(x, torch.eye(3, dtype=torch.float64), g, capacity=1)
        (gx,) = torch.autograd.grad(r.weights[1, 1], x)
        gates = r.gates[1].detach()
        expected = gates[1] * ((torch.arange(3) == 1).double() - gates) / R.RENORM_EPS
        torch.testing.assert_close(gx[1], expected)

    def test_dropless_and_eval_capacity(self):
        gen = torch.Generator().manual_seed(3)
        x = torch.randn(40, 6, generator=gen)
        wg = torch.randn(6, 4, generator=gen)
        x[:30] += 3 * wg[:, 0]  # overload expert 0
        g = R.GatingConfig(top_k=2, capacity_factor=0.5, eval_capacity_factor=2.0,
                           min_capacity=0, use_rts=False, second_sampling=False)
        train = R.moe_gate(x, wg, g, training=True)
        evaluation = R.moe_gate(x, wg, g, training=False)
        self.assertEqual(train.capacity, R.expert_capacity(40, 4, 2, 0.5, 0))
        self.assertEqual(evaluation.capacity, R.expert_capacity(40, 4, 2, 2.0, 0))
        self.assertGreater(int((train.locations < 0).sum()), 0)
        dropless = R.moe_gate(x, wg, replace(g, drop_tokens=False))
        self.assertEqual(dropless.capacity, int(dropless.expert_counts.max()))
        self.assertTrue(bool((dropless.locations >= 0).all()))
        torch.testing.assert_close(dropless.expert_counts, train.expert_counts)
        # The static bound (C = S, the IR's dispatch shape) changes nothing
        # but the padding.
        bound = R.moe_gate(x, wg, replace(g, drop_tokens=False), capacity=40)
        torch.testing.assert_close(bound.locations, dropless.locations)
        with self.assertRaises(ValueError):
            R.moe_gate(x, wg, replace(g, drop_tokens=False), capacity=2)

    def test_aux_loss_and_counts_direct_formula(self):
        gen = torch.Generator().manual_seed(4)
        S, M, E = 37, 5, 6
        x, wg = torch.randn(S, M, generator=gen), torch.randn(M, E, generator=gen)
        for k in (1, 2, 3):
            g = R.GatingConfig(top_k=k, capacity_factor=0.5, min_capacity=0,
                               second_sampling=False, use_rts=False)
            r = R.moe_gate(x, wg, g)
            gates = torch.softmax(x @ wg, -1)
            aux = 0.0
            for e in range(E):
                frac_tokens = sum(1 for s in range(S) if int(r.indices[s, 0]) == e) / S
                aux += float(gates[:, e].mean()) * frac_tokens
            self.assertAlmostEqual(float(r.aux_loss), E * aux, places=5)
            counts = [sum(1 for s in range(S) for j in range(k)
                          if int(r.indices[s, j]) == e) for e in range(E)]
            self.assertEqual(r.expert_counts.tolist(), counts)
            # Choices are the top-k of the logits (no noise), distinct.
            top = torch.topk(x @ wg, k, dim=-1).indices
            self.assertEqual(r.indices.tolist(), top.tolist())

    def test_slots_and_weights_match_loop_reference(self):
        gen = torch.Generator().manual_seed(5)
        for trial in range(24):
            S = int(torch.randint(5, 40, (1,), generator=gen))
            E = int(torch.randint(2, 7, (1,), generator=gen))
            k = int(torch.randint(1, min(E, 4) + 1, (1,), generator=gen))
            use_rts = bool(trial % 2)
            M = 4
            x, wg = torch.randn(S, M, generator=gen), torch.randn(M, E, generator=gen)
            x[: S // 2] += 2 * wg[:, 0]  # make overflow likely
            g = R.GatingConfig(top_k=k, capacity_factor=float(0.3 + 0.2 * (trial % 4)),
                               min_capacity=trial % 3, use_rts=use_rts,
                               second_sampling=bool(trial % 3 == 0))
            noise = R.GateNoise(rts=torch.rand(S, generator=gen),
                                later=torch.rand(S, E, generator=gen) * 0.98 + 0.01)
            with self.subTest(trial=trial, S=S, E=E, k=k, rts=use_rts):
                r = R.moe_gate(x, wg, g, noise=noise)
                expected = loop_slots(r.indices.tolist(), r.capacity,
                                      noise.rts.tolist() if use_rts else None)
                self.assertEqual(r.locations.tolist(), expected)
                gates = torch.softmax(x @ wg, -1)
                for s in range(S):
                    kept = [j for j in range(k) if expected[s][j] >= 0]
                    ps = [float(gates[s, r.indices[s, j]]) for j in range(k)]
                    total = max(sum(ps[j] for j in kept), R.RENORM_EPS)
                    want = [(ps[j] if k == 1 else ps[j] / total) if j in kept else 0.0
                            for j in range(k)]
                    np.testing.assert_allclose(r.weights[s].tolist(), want,
                                               rtol=1e-5, atol=1e-7)

    def test_noise_policies(self):
        logits = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
        base = R.GatingConfig(top_k=2, min_capacity=0, use_rts=False)
        # Second sampling: Gumbel on the later choices only, training only.
        later = torch.tensor([[0.5, 0.5, 0.5, 1 - 1e-7]])  # boosts expert 3
        r = direct_logits_gate(logits, base, noise=R.GateNoise(later=later))
        self.assertEqual(r.indices.tolist(), [[0, 3]])
        r = direct_logits_gate(logits, base, training=False,
                               noise=R.GateNoise(later=later))
        self.assertEqual(r.indices.tolist(), [[0, 1]])
        r = direct_logits_gate(logits, replace(base, second_sampling=False),
                               noise=R.GateNoise(later=later))
        self.assertEqual(r.indices.tolist(), [[0, 1]])
        # rsample: Gumbel on the first choice's argmax; gates stay noise-free.
        rs = replace(base, top_k=1, noise="rsample")
        first = torch.tensor([[0.5, 0.5, 1 - 1e-7, 0.5]])
        r = direct_logits_gate(logits, rs, noise=R.GateNoise(first=first))
        self.assertEqual(r.indices.tolist(), [[2]])
        clean = torch.softmax(logits, -1)
        torch.testing.assert_close(r.gates, clean)
        self.assertAlmostEqual(float(r.weights[0, 0]), float(clean[0, 2]), places=6)
        # Jitter multiplies the input by (1 - eps) + 2 eps u, in training.
        jit = replace(base, noise="jitter", jitter_eps=0.25, second_sampling=False)
        gen = torch.Generator().manual_seed(6)
        x, wg = torch.randn(5, 3, generator=gen), torch.randn(3, 4, generator=gen)
        u = torch.rand(5, 3, generator=gen)
        r = R.moe_gate(x, wg, jit, noise=R.GateNoise(jitter=u))
        torch.testing.assert_close(r.logits, (x * (0.75 + 0.5 * u)) @ wg)
        r = R.moe_gate(x, wg, jit, training=False, noise=R.GateNoise(jitter=u))
        torch.testing.assert_close(r.logits, x @ wg)

    def test_deterministic_without_randomness(self):
        gen = torch.Generator().manual_seed(7)
        x, wg = torch.randn(50, 8, generator=gen), torch.randn(8, 5, generator=gen)
        g = R.GatingConfig(top_k=2, capacity_factor=0.5, use_rts=False,
                           second_sampling=False)
        a, b = R.moe_gate(x, wg, g), R.moe_gate(x, wg, g)
        torch.testing.assert_close(a.locations, b.locations)
        torch.testing.assert_close(a.weights, b.weights)
        # Ties in the logits go to the lowest expert index.
        r = direct_logits_gate([[1.0, 1.0, 1.0]], replace(g, top_k=2))
        self.assertEqual(r.indices.tolist(), [[0, 1]])

    def test_gate_weights_gradcheck(self):
        # The differentiable path: softmax -> kept choices -> renormalisation,
        # plus the aux loss through mean gates (routing held by margins).
        gen = torch.Generator().manual_seed(8)
        S, M, E = 14, 5, 4
        for k, rts, groups in ((1, True, 1), (2, False, 1), (3, True, 1),
                               (1, True, 2), (2, True, 7)):
            x = torch.randn(S, M, generator=gen, dtype=torch.float64)
            wg = torch.randn(M, E, generator=gen, dtype=torch.float64)
            g = R.GatingConfig(top_k=k, capacity_factor=0.6, min_capacity=0,
                               use_rts=rts, noise="jitter", second_sampling=True,
                               groups=groups)
            noise = R.GateNoise(rts=torch.rand(S, generator=gen),
                                jitter=torch.rand(S, M, generator=gen),
                                later=torch.rand(S, E, generator=gen) * 0.98 + 0.01)
            drops = int((R.moe_gate(x, wg, g, noise=noise).locations < 0).sum())
            self.assertGreater(drops, 0)

            def f(x_, wg_):
                r = R.moe_gate(x_, wg_, g, noise=noise)
                return r.weights, r.aux_loss

            with self.subTest(k=k, groups=groups):
                self.assertTrue(torch.autograd.gradcheck(
                    f, (x.requires_grad_(), wg.requires_grad_()), eps=1e-6, atol=1e-6))

    def test_groups_are_separate_gates_on_slices(self):
        # A gate with G groups is G ungrouped gates over the contiguous
        # slices of its tokens (and of its noise), slots shifted by g * Cg;
        # counts add up, the aux loss is their mean. Checked against the
        # plain loop too, group by group.
        gen = torch.Generator().manual_seed(12)
        S, M, E = 36, 5, 4
        cases = [R.GatingConfig(top_k=1, capacity_factor=0.7, min_capacity=0,
                                noise="rsample", groups=4),
                 R.GatingConfig(top_k=2, capacity_factor=0.5, min_capacity=1,
                                noise="jitter", groups=3),
                 R.GatingConfig(top_k=3, capacity_factor=0.6, min_capacity=0,
                                use_rts=False, groups=6),
                 R.GatingConfig(top_k=2, drop_tokens=False, groups=4)]
        for g in cases:
            x = torch.randn(S, M, generator=gen)
            wg = torch.randn(M, E, generator=gen)
            x[::2] += 2 * wg[:, 0]  # overload expert 0 in every group
            noise = R.GateNoise(rts=torch.rand(S, generator=gen),
                                jitter=torch.rand(S, M, generator=gen),
                                first=torch.rand(S, E, generator=gen) * 0.98 + 0.01,
                                later=torch.rand(S, E, generator=gen) * 0.98 + 0.01)
            G, Sg = g.groups, S // g.groups
            with self.subTest(top_k=g.top_k, groups=G, drop=g.drop_tokens):
                r = R.moe_gate(x, wg, g, noise=noise)
                self.assertEqual(r.groups, G)
                self.assertEqual(r.capacity % G, 0)
                Cg = r.capacity // G
                single = replace(g, groups=1)
                parts = [R.moe_gate(x[i * Sg:(i + 1) * Sg], wg, single,
                                    noise=R.GateNoise(
                                        rts=noise.rts[i * Sg:(i + 1) * Sg],
                                        jitter=noise.jitter[i * Sg:(i + 1) * Sg],
                                        first=noise.first[i * Sg:(i + 1) * Sg],
                                        later=noise.later[i * Sg:(i + 1) * Sg]),
                                    capacity=None if g.drop_tokens else Cg)
                         for i in range(G)]
                if g.drop_tokens:
                    self.assertEqual(Cg, R.expert_capacity(
                        Sg, E, g.top_k, g.capacity_factor, g.min_capacity))
                    self.assertGreater(int((r.locations < 0).sum()), 0)
                else:
                    # Dropless: the largest count of any one group.
                    self.assertEqual(Cg, max(int(p.expert_counts.max())
                                             for p in parts))
                    self.assertTrue(bool((r.locations >= 0).all()))
                    self.assertLess(Cg, int(r.expert_counts.max()))
                for i, p in enumerate(parts):
                    rows = slice(i * Sg, (i + 1) * Sg)
                    self.assertEqual(p.capacity, Cg)
                    torch.testing.assert_close(r.indices[rows], p.indices)
                    shifted = torch.where(p.locations >= 0,
                                          p.locations + i * Cg, p.locations)
                    torch.testing.assert_close(r.locations[rows], shifted)
                    torch.testing.assert_close(r.weights[rows], p.weights)
                    torch.testing.assert_close(r.gates[rows], p.gates)
                    expected = loop_slots(p.indices.tolist(), Cg,
                                          noise.rts[rows].tolist()
                                          if g.use_rts else None)
                    self.assertEqual(p.locations.tolist(), expected)
                torch.testing.assert_close(
                    r.expert_counts, sum(p.expert_counts for p in parts))
                torch.testing.assert_close(
                    r.aux_loss, torch.stack([p.aux_loss for p in parts]).mean())
                with self.assertRaisesRegex(ValueError, "groups"):
                    R.moe_gate(x[:S - 1], wg, g, noise=None)

    def test_runtime_philox_numbers(self):
        # Random123 known answers (also in runtime/tests/RandomTest.cpp).
        kat = [((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
               ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2,
                (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
               ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
                (0xA4093822, 0x299F31D0), (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1))]
        for counter, key, want in kat:
            self.assertEqual(tuple(int(v) for v in R.philox4x32x10(counter, key)), want)
        # Element i = lane i % 4 of block i / 4, counter (block, stream, step).
        seed, stream, step = 0x0123456789ABCDEF, 7, 11
        bits = R.random_bits(seed, stream, step, np.arange(8, dtype=np.uint64))
        key = (seed & 0xFFFFFFFF, seed >> 32)
        block0 = R.philox4x32x10((0, 0, stream, step), key)
        block1 = R.philox4x32x10((1, 0, stream, step), key)
        self.assertEqual(bits.tolist(), block0.tolist() + block1.tolist())
        noise = R.runtime_gate_noise(5, 3, 2, 6, 4, 3)
        self.assertEqual(tuple(noise.rts.shape), (6,))
        self.assertEqual(tuple(noise.jitter.shape), (6, 4))
        for u in (noise.jitter, noise.first, noise.later):
            self.assertTrue(bool(((u >= 0) & (u < 1)).all()))
        self.assertTrue(bool((noise.first > 0).all()))
        # A global token offset shifts the numbers (partition independence).
        shifted = R.runtime_gate_noise(5, 3, 2, 4, 4, 3, first_token=2)
        torch.testing.assert_close(shifted.later, noise.later[2:])


# ---------------------------------------------------------------------------
# The two MoE-layer formulations
# ---------------------------------------------------------------------------


class FormulationTest(unittest.TestCase):
    def test_einsum_and_indexed_agree(self):
        gen = torch.Generator().manual_seed(9)
        B, L, M, H, E = 3, 7, 6, 10, 5
        cases = [R.GatingConfig(top_k=1, capacity_factor=0.6, min_capacity=0),
                 R.GatingConfig(top_k=2, capacity_factor=0.5, min_capacity=1),
                 R.GatingConfig(top_k=3, capacity_factor=0.8, min_capacity=0,
                                use_rts=False),
                 R.GatingConfig(top_k=2, drop_tokens=False, noise="jitter"),
                 R.GatingConfig(top_k=2, capacity_factor=0.5, min_capacity=1,
                                groups=3),
                 R.GatingConfig(top_k=1, drop_tokens=False, groups=7)]
        for g in cases:
            x = torch.randn(B, L, M, generator=gen, dtype=torch.float64)
            x[0] += 2.0  # skew routing so that some tokens are dropped
            weights = [torch.randn(M, E, generator=gen, dtype=torch.float64),
                       torch.randn(E, M, H, generator=gen, dtype=torch.float64) * 0.3,
                       torch.randn(E, H, generator=gen, dtype=torch.float64) * 0.1,
                       torch.randn(E, H, M, generator=gen, dtype=torch.float64) * 0.3,
                       torch.randn(E, M, generator=gen, dtype=torch.float64) * 0.1]
            S = B * L
            noise = R.GateNoise(rts=torch.rand(S, generator=gen),
                                jitter=torch.rand(S, M, generator=gen),
                                later=torch.rand(S, E, generator=gen) * 0.98 + 0.01)
            upstream = torch.randn(B, L, M, generator=gen, dtype=torch.float64)
            results = {}
            for name, fn in R.MOE_FORMULATIONS.items():
                inputs = [t.clone().requires_grad_() for t in [x] + weights]
                y, counts, aux, routing = fn(*inputs, g, activation="gelu",
                                             noise=noise)
                objective = (y * upstream).sum() + 0.37 * aux
                grads = torch.autograd.grad(objective, inputs)
                results[name] = (y, counts, aux, grads, routing)
            with self.subTest(top_k=g.top_k, drop=g.drop_tokens,
                              groups=g.groups):
                a, b = results["einsum"], results["indexed"]
                if g.drop_tokens:
                    self.assertGreater(int((a[4].locations < 0).sum()), 0)
                torch.testing.assert_close(a[0], b[0])
                torch.testing.assert_close(a[1], b[1])
                torch.testing.assert_close(a[2], b[2])
                for ga, gb in zip(a[3], b[3]):
                    torch.testing.assert_close(ga, gb)

    def test_layer_matches_per_token_definition(self):
        # y[s] = sum over kept choices of w * FFN_e(x[s]); dropped tokens 0.
        gen = torch.Generator().manual_seed(10)
        S, M, H, E = 16, 4, 6, 4
        x = torch.randn(S, M, generator=gen)
        wg, w1 = torch.randn(M, E, generator=gen), torch.randn(E, M, H, generator=gen)
        b1, w2 = torch.randn(E, H, generator=gen), torch.randn(E, H, M, generator=gen)
        b2 = torch.randn(E, M, generator=gen)
        g = R.GatingConfig(top_k=2, capacity_factor=0.5, min_capacity=0,
                           use_rts=False, second_sampling=False)
        y, _, _, r = R.moe_layer_indexed(x, wg, w1, b1, w2, b2, g, activation="relu")
        for s in range(S):
            want = torch.zeros(M)
            for j in range(2):
                if r.locations[s, j] >= 0:
                    e = int(r.indices[s, j])
                    want += r.weights[s, j] * (torch.relu(x[s] @ w1[e] + b1[e]) @ w2[e] + b2[e])
            torch.testing.assert_close(y[s], want, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# Dense pieces
# ---------------------------------------------------------------------------


class DenseTest(unittest.TestCase):
    def test_cross_entropy_matches_torch_and_empty_is_zero(self):
        gen = torch.Generator().manual_seed(11)
        logits = torch.randn(4, 5, 9, generator=gen)
        labels = torch.randint(0, 9, (4, 5), generator=gen)
        labels[0, :3] = 2
        ours = R.cross_entropy(logits, labels, 0.1, ignore_index=2)
        theirs = F.cross_entropy(logits.reshape(-1, 9), labels.reshape(-1),
                                 ignore_index=2, label_smoothing=0.1)
        torch.testing.assert_close(ours, theirs)
        self.assertEqual(float(R.cross_entropy(logits, torch.full((4, 5), 2), 0.1, 2)), 0.0)

    def test_attention_against_loop_and_fully_masked_rows(self):
        gen = torch.Generator().manual_seed(12)
        B, S, D, H = 2, 5, 8, 2
        q, k, v = (torch.randn(B, S, D, generator=gen) for _ in range(3))
        mask = torch.ones(B, S, dtype=torch.bool)
        mask[1, :2] = False  # leading padding: causal rows 0, 1 of batch 1 empty
        out = R.multi_head_attention(q, k, v, mask, H, causal=True)
        dh = D // H
        for b in range(B):
            for h in range(H):
                sl = slice(h * dh, (h + 1) * dh)
                for i in range(S):
                    keys = [j for j in range(S) if j <= i and mask[b, j]]
                    if not keys:
                        self.assertEqual(out[b, i, sl].abs().sum().item(), 0.0)
                        continue
                    sc = torch.stack([q[b, i, sl] @ k[b, j, sl] for j in keys]) / math.sqrt(dh)
                    want = (torch.softmax(sc, 0)[:, None] * v[b, keys, sl]).sum(0)
                    torch.testing.assert_close(out[b, i, sl], want, rtol=1e-5, atol=1e-6)
        qq = q.clone().requires_grad_()
        R.multi_head_attention(qq, k, v, mask, H, causal=True).sum().backward()
        self.assertTrue(bool(torch.isfinite(qq.grad).all()))
        self.assertEqual(qq.grad[1, :2].abs().sum().item(), 0.0)

    def test_sinusoidal_positions(self):
        pe = R.sinusoidal_positions(6, 8)
        self.assertAlmostEqual(float(pe[1, 0]), math.sin(1.0), places=6)
        self.assertAlmostEqual(float(pe[1, 1]), math.cos(1.0), places=6)
        self.assertAlmostEqual(float(pe[5, 2]), math.sin(5 / 10000 ** (2 / 8)), places=6)
        self.assertAlmostEqual(float(pe[5, 7]), math.cos(5 / 10000 ** (6 / 8)), places=6)


# ---------------------------------------------------------------------------
# Whole models
# ---------------------------------------------------------------------------


def random_batch(config, seed, batch=None, pad_tail=True):
    gen = torch.Generator().manual_seed(seed)
    B = batch or config.batch_size
    low = config.pad_id + 1 if config.pad_id + 1 < config.vocab_size else 0
    shape_s, shape_t = (B, config.src_len), (B, config.tgt_len)
    src = torch.randint(low, config.vocab_size, shape_s, generator=gen)
    tgt = torch.randint(low, config.vocab_size, shape_t, generator=gen)
    labels = torch.roll(tgt, -1, dims=1)  # next-token labels, like the data
    if pad_tail:
        src[0, -2:] = config.pad_id
        tgt[-1, -1:] = config.pad_id
        labels[-1, -2:] = config.pad_id
    return src, tgt, labels


class ModelTest(unittest.TestCase):
    def test_tiny_model_gradcheck(self):
        # float64, dropout 0, training mode with every random input injected
        # (RTS priorities, Gumbel for rsample and later choices, jitter).
        for name, names in (
                ("tiny-top3", ["encoder.layers.2.ffn.gate.weight",
                               "decoder.layers.2.ffn.experts.fc1.weight",
                               "decoder.layers.2.ffn.experts.fc1.bias",
                               "decoder.layers.2.ffn.experts.fc2.bias",
                               "encoder.layers.0.self_attn.k.weight",
                               "decoder.layers.1.cross_attn_norm.weight",
                               "decoder.final_norm.bias"]),
                ("variant", ["embed.positions", "output.weight",
                             "encoder.layers.0.ffn.gate.weight",
                             "decoder.layers.1.ffn.experts.fc2.bias",
                             "decoder.layers.0.self_attn.q.bias"])):
            config = R.load_config(os.path.join(FIXTURES, name + ".json"))
            model = R.MoEModel(config, dropout=0.0, seed=13).double().train()
            # Larger weights than the init so every path carries signal.
            with torch.no_grad():
                gen = torch.Generator().manual_seed(14)
                for n, p in model.named_parameters():
                    p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
            src, tgt, labels = random_batch(config, 15)
            # The runtime's Philox numbers, drawn once (not per evaluation).
            noise = {}
            noise_fn = R.runtime_gate_noise_fn(seed=99, step=3, gating=config.gating)
            model(src, tgt, labels, gate_noise=lambda p, *a: noise.setdefault(
                p, noise_fn(p, *a)))
            if config.gating.drop_tokens:  # the routing really drops tokens
                self.assertTrue(any(bool((r.locations < 0).any())
                                    for r in model.last_routing.values()))
            params = {n: model.param(n).detach().clone() for n in names}

            def f(*tensors):
                loss, aux, _ = torch.nn.utils.stateless.functional_call(
                    model, dict(zip(names, tensors)), (src, tgt, labels),
                    {"gate_noise": noise})
                return loss + 0.01 * aux

            inputs = tuple(params[n].requires_grad_() for n in names)
            with self.subTest(model=name):
                self.assertTrue(torch.autograd.gradcheck(f, inputs, eps=1e-6,
                                                         atol=1e-5, rtol=1e-4))

    def test_demo_loss_at_init_and_gradients(self):
        config = R.load_config(os.path.join(MODELS, "demo.json"))
        src, tgt, labels = random_batch(config, 16)
        log_v = math.log(config.vocab_size)
        # Untied output: Xavier-uniform [M, V] gives logits of standard
        # deviation ~sqrt(2 M / (M + V)) (0.47 for the demo) on unit-scale
        # inputs, so the loss is ~log V + var / 2 (about log V + 0.11).
        untied = R.MoEModel(replace(config, tie_embeddings=False), dropout=0.0).eval()
        self.assertLess(abs(float(untied(src, tgt, labels)[0]) - log_v), 0.25)
        # Tied (the demo): the output shares the sqrt(M)-scaled input table,
        # so at init the input token's own logit is ~sqrt(M) * |e|^2 / rms
        # (~9) and takes most probability mass; next-token labels then cost
        # log V plus a few nats, and copying the input costs little.
        model = R.MoEModel(config, dropout=0.0, seed=0)
        model.train()
        noise = R.runtime_gate_noise_fn(seed=1, step=0, gating=config.gating)
        out = R.loss_and_grads(model, src, tgt, labels, gate_noise=noise)
        self.assertGreater(out["loss"], log_v)
        self.assertLess(out["loss"], log_v + 5.0)
        copy_loss = float(model.eval()(src, tgt, tgt)[0])
        self.assertLess(copy_loss, log_v)
        # Each layer's aux loss E * sum_e mean(gates[:, e]) * f_e is 1 for
        # uniform gates; the router's stock init (U(+-1/sqrt(M)), logits of
        # standard deviation ~0.6) makes the gates mildly peaked, so the two
        # layers start somewhat above 2.
        self.assertGreater(out["aux_loss"], 1.9)
        self.assertLess(out["aux_loss"], 3.2)
        S = config.batch_size * config.tgt_len
        for counts in out["expert_counts"]:
            self.assertEqual(int(counts.sum()), S * config.gating.top_k)
        self.assertEqual(list(out["grads"]), [n for n, _ in model.named_parameters_like_ir()])
        for name, g in out["grads"].items():
            self.assertTrue(np.isfinite(g).all(), name)
            self.assertGreater(float(np.abs(g).max()), 0.0, name)
        # total = loss + 0.01 * aux
        self.assertAlmostEqual(out["total"], out["loss"] + 0.01 * out["aux_loss"], places=5)
        # The einsum formulation gives the same loss and gradients.
        other = R.MoEModel(config, dropout=0.0, formulation="einsum")
        other.load_state(model.state())
        other.train()
        out2 = R.loss_and_grads(other, src, tgt, labels, gate_noise=noise)
        self.assertAlmostEqual(out["loss"], out2["loss"], places=5)
        for name in out["grads"]:
            np.testing.assert_allclose(out["grads"][name], out2["grads"][name],
                                       rtol=1e-4, atol=1e-6, err_msg=name)

    def test_dropout_switch_and_hook(self):
        config = R.load_config(os.path.join(FIXTURES, "tiny-top2.json"))
        src, tgt, labels = random_batch(config, 17)
        model = R.MoEModel(config, seed=3).train()
        noise = {p: R.GateNoise(rts=torch.arange(float(config.batch_size * n)))
                 for p, n in (("encoder.layers.1.ffn", config.src_len),
                              ("decoder.layers.1.ffn", config.tgt_len))}
        g = R.GatingConfig(**{**config.gating.__dict__, "second_sampling": False})
        deterministic = R.MoEModel(replace(config, gating=g), dropout=0.0, seed=3)
        deterministic.train()
        a = deterministic(src, tgt, labels, gate_noise=noise)[0]
        b = deterministic(src, tgt, labels, gate_noise=noise)[0]
        self.assertEqual(float(a), float(b))
        # The hook sees every dropout site with the generator's stream ids.
        seen = []

        def hook(x, rate, stream):
            seen.append(stream)
            return x

        model(src, tgt, labels, dropout_fn=hook)
        self.assertEqual(sorted(seen), sorted(model.dropout_streams.values()))
        self.assertEqual(len(seen), 1 + 2 * 2 + 1 + 3 * 2)
        # Eval mode: no dropout at all.
        seen.clear()
        model.eval()(src, tgt, labels, dropout_fn=hook)
        self.assertEqual(seen, [])


if __name__ == "__main__":
    unittest.main()
