"""Independent PyTorch reference of the encoder-decoder MoE models we compile.

What this is for
----------------
* Cross-checking the C++ runtime: fed the same weights (``load_state``) and the
  same batch, ``MoEModel`` computes the loss, the summed auxiliary loss, the
  expert counts and (via autograd, ``loss_and_grads``) every parameter
  gradient of the model that ``moe-model-gen`` generates from the same JSON
  configuration.  Parameter names, shapes and order are those of the
  ``moe.param`` arguments of the generated ``@forward`` (the IR is the source
  of truth; the tests parse it).
* The PyTorch baselines of the benchmarks (docs/benchmarks.md): the MoE
  layer in the GShard/DeepSpeed one-hot einsum formulation
  (``moe_layer_einsum``) and in an index-based one (``moe_layer_indexed``).

It is written from the semantics in docs/architecture.md ("Gate semantics"), the op
descriptions of dialects/Moe/MoeOps.td and the generator
compiler/ModelBuilder.cpp; it shares no code with the runtime or with
DeepSpeed/fairseq/tutel.

Conventions that follow the IR rather than torch
------------------------------------------------
* ``moe.linear`` is ``x W + b`` with ``W`` stored ``[in, out]`` (torch's
  ``nn.Linear`` stores ``[out, in]``); expert weights are ``[E, M, H]`` and
  ``[E, H, M]``; the gate weight is ``[M, E]`` (no bias).
* Attention rows whose keys are all masked, and a loss with no counted token,
  are defined as zero (not NaN), as the runtime kernels document.
* Every routing decision is a pure function of the inputs and of the noise
  passed in (``GateNoise``).  With ``use_rts=False``, ``noise="none"`` and
  ``second_sampling=False`` (or in eval mode without RTS) nothing is random.
  ``runtime_gate_noise`` reproduces the runtime's Philox-4x32-10 numbers
  (moert/Random.h, moert/kernels/Gate.h) so a cross-check can feed them in.

Importing this module has no side effects (no thread settings, no I/O).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "GatingConfig", "ModelConfig", "load_config", "parse_config",
    "ParamSpec", "param_specs", "count_parameters",
    "expert_capacity", "GateNoise", "GateResult", "moe_gate",
    "expert_ffn", "moe_layer_einsum", "moe_layer_indexed", "MOE_FORMULATIONS",
    "sinusoidal_positions", "multi_head_attention", "cross_entropy",
    "MoEModel", "loss_and_grads",
    "philox4x32x10", "random_bits", "runtime_gate_noise", "runtime_gate_noise_fn",
]

# DeepSpeed clamps the top-k renormalisation denominator at the float32
# machine epsilon, whatever the compute dtype (float64 gradchecks included).
RENORM_EPS = float(torch.finfo(torch.float32).eps)

# ---------------------------------------------------------------------------
# Configuration (same keys, defaults and validation as compiler/ModelConfig.*)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GatingConfig:
    """Mirror of ``GatingConfig`` / ``#moe.gating`` (defaults included)."""

    top_k: int = 1
    capacity_factor: float = 1.0
    eval_capacity_factor: float = 1.0
    min_capacity: int = 4
    drop_tokens: bool = True
    use_rts: bool = True
    noise: str = "none"  # "none" | "jitter" | "rsample"
    jitter_eps: float = 0.01
    second_sampling: bool = True
    groups: int = 1  # independently routed contiguous token groups (GShard G)


@dataclass(frozen=True)
class ModelConfig:
    """Mirror of ``ModelConfig`` (compiler/ModelConfig.h), JSON key names."""

    name: str = "model"
    vocab_size: int = 0
    pad_id: int = 0
    d_model: int = 0
    num_heads: int = 0
    ffn_hidden: int = 0
    encoder_layers: int = 0
    decoder_layers: int = 0
    activation: str = "gelu"
    position: str = "sinusoidal"
    max_positions: int = 0  # learned positions only; 0 means the max length
    init: str = "xavier"  # projections: "xavier" | "small_normal"
    tie_embeddings: bool = True
    dropout: float = 0.1
    label_smoothing: float = 0.1
    layer_norm_eps: float = 1e-5
    # moe.num_experts / every / offset / expert_hidden
    num_experts: int = 0
    moe_every: int = 2
    moe_offset: int = 1
    expert_hidden: int = 0  # 0 means ffn_hidden
    gating: GatingConfig = field(default_factory=GatingConfig)
    batch_size: int = 0
    src_len: int = 0
    tgt_len: int = 0

    def is_moe_layer(self, layer: int) -> bool:
        return self.num_experts > 0 and layer % self.moe_every == self.moe_offset

    def expert_hidden_dim(self) -> int:
        return self.expert_hidden if self.expert_hidden > 0 else self.ffn_hidden

    def num_positions(self) -> int:
        """Rows of the learned position table."""
        if self.max_positions > 0:
            return self.max_positions
        return max(self.src_len, self.tgt_len)


_ACTIVATIONS = ("relu", "gelu", "gelu_tanh", "silu")
_POSITIONS = ("none", "sinusoidal", "learned")
_NOISES = ("none", "jitter", "rsample")


class _Reader:
    """Reads typed keys of one JSON object like FieldReader in ModelConfig.cpp:
    type errors name the key; keys nobody asked for are rejected."""

    def __init__(self, obj: Mapping, where: str):
        self.obj, self.where, self.known = obj, where, set()

    def _get(self, key):
        self.known.add(key)
        return self.obj.get(key, None), key in self.obj

    def _fail(self, key, expected, found):
        raise ValueError(f"{self.where}: key \"{key}\" expects {expected}, "
                         f"found {json.dumps(found)}")

    def integer(self, key, default):
        value, present = self._get(key)
        if not present:
            return default
        # llvm::json::Value::getAsInteger also accepts integral doubles.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self._fail(key, "an integer", value)
        if isinstance(value, float):
            if not value.is_integer():
                self._fail(key, "an integer", value)
            value = int(value)
        return value

    def number(self, key, default):
        value, present = self._get(key)
        if not present:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self._fail(key, "a number", value)
        return float(value)

    def boolean(self, key, default):
        value, present = self._get(key)
        if not present:
            return default
        if not isinstance(value, bool):
            self._fail(key, "true or false", value)
        return value

    def string(self, key, default, allowed=None):
        value, present = self._get(key)
        if not present:
            return default
        if not isinstance(value, str) or (allowed and value not in allowed):
            expected = ("one of " + ", ".join(f'"{a}"' for a in allowed)
                        if allowed else "a string")
            self._fail(key, expected, value)
        return value

    def obj_(self, key):
        value, present = self._get(key)
        if not present:
            return None
        if not isinstance(value, dict):
            self._fail(key, "an object", value)
        return value

    def finish(self):
        for key in self.obj:
            if key not in self.known:
                raise ValueError(f"{self.where}: unknown key \"{key}\" (expected "
                                 f"one of: {', '.join(sorted(self.known))})")


def parse_config(data: Mapping, source: str = "<config>") -> ModelConfig:
    """Builds a validated ModelConfig from a parsed JSON object."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a JSON object at the top level")
    d = ModelConfig()
    top = _Reader(data, source)
    kw = dict(
        name=top.string("name", d.name),
        vocab_size=top.integer("vocab_size", d.vocab_size),
        pad_id=top.integer("pad_id", d.pad_id),
        d_model=top.integer("d_model", d.d_model),
        num_heads=top.integer("num_heads", d.num_heads),
        ffn_hidden=top.integer("ffn_hidden", d.ffn_hidden),
        encoder_layers=top.integer("encoder_layers", d.encoder_layers),
        decoder_layers=top.integer("decoder_layers", d.decoder_layers),
        activation=top.string("activation", d.activation, _ACTIVATIONS),
        position=top.string("position", d.position, _POSITIONS),
        init=top.string("init", d.init, ("xavier", "small_normal")),
        max_positions=top.integer("max_positions", d.max_positions),
        tie_embeddings=top.boolean("tie_embeddings", d.tie_embeddings),
        dropout=top.number("dropout", d.dropout),
        label_smoothing=top.number("label_smoothing", d.label_smoothing),
        layer_norm_eps=top.number("layer_norm_eps", d.layer_norm_eps),
        batch_size=top.integer("batch_size", d.batch_size),
        src_len=top.integer("src_len", d.src_len),
        tgt_len=top.integer("tgt_len", d.tgt_len),
    )
    moe = top.obj_("moe")
    top.finish()
    if moe is not None:
        r = _Reader(moe, source + ": moe")
        g = GatingConfig()
        kw.update(
            num_experts=r.integer("num_experts", d.num_experts),
            moe_every=r.integer("every", d.moe_every),
            moe_offset=r.integer("offset", d.moe_offset),
            expert_hidden=r.integer("expert_hidden", d.expert_hidden),
        )
        kw["gating"] = GatingConfig(
            top_k=r.integer("top_k", g.top_k),
            capacity_factor=r.number("capacity_factor", g.capacity_factor),
            eval_capacity_factor=r.number("eval_capacity_factor",
                                          g.eval_capacity_factor),
            min_capacity=r.integer("min_capacity", g.min_capacity),
            drop_tokens=r.boolean("drop_tokens", g.drop_tokens),
            use_rts=r.boolean("use_rts", g.use_rts),
            noise=r.string("noise", g.noise, _NOISES),
            jitter_eps=r.number("jitter_eps", g.jitter_eps),
            second_sampling=r.boolean("second_sampling", g.second_sampling),
            groups=r.integer("groups", g.groups),
        )
        r.finish()
    config = ModelConfig(**kw)
    validate_config(config, source)
    return config


def validate_config(c: ModelConfig, source: str = "<config>") -> None:
    """The cross-field rules of validateModelConfig; raises ValueError."""
    def fail(msg):
        raise ValueError(f"{source}: {msg}")
    for key in ("vocab_size", "d_model", "num_heads", "ffn_hidden",
                "encoder_layers", "decoder_layers", "batch_size", "src_len",
                "tgt_len"):
        if getattr(c, key) <= 0:
            fail(f"\"{key}\" must be > 0, found {getattr(c, key)}")
    if c.d_model % c.num_heads:
        fail(f"\"d_model\" ({c.d_model}) must be divisible by \"num_heads\" "
             f"({c.num_heads})")
    if not 0 <= c.pad_id < c.vocab_size:
        fail(f"\"pad_id\" must be in [0, vocab_size = {c.vocab_size}), "
             f"found {c.pad_id}")
    if not 0.0 <= c.dropout < 1.0:
        fail(f"\"dropout\" must be in [0, 1), found {c.dropout}")
    if not 0.0 <= c.label_smoothing < 1.0:
        fail(f"\"label_smoothing\" must be in [0, 1), found {c.label_smoothing}")
    if not c.layer_norm_eps > 0.0:
        fail(f"\"layer_norm_eps\" must be > 0, found {c.layer_norm_eps}")
    max_len = max(c.src_len, c.tgt_len)
    if c.position == "learned" and c.max_positions != 0 and c.max_positions < max_len:
        fail(f"\"max_positions\" ({c.max_positions}) must cover the longest "
             f"sequence ({max_len})")
    if c.num_experts < 0:
        fail(f"moe \"num_experts\" must be >= 0, found {c.num_experts}")
    if c.num_experts > 0:
        g = c.gating
        if c.moe_every < 1 or not 0 <= c.moe_offset < c.moe_every:
            fail("moe \"every\" must be >= 1 and \"offset\" in [0, every), "
                 f"found every = {c.moe_every}, offset = {c.moe_offset}")
        if c.expert_hidden < 0:
            fail(f"moe \"expert_hidden\" must be >= 0, found {c.expert_hidden}")
        if not 1 <= g.top_k <= c.num_experts:
            fail(f"moe \"top_k\" must be in [1, num_experts = {c.num_experts}], "
                 f"found {g.top_k}")
        if not (g.capacity_factor > 0.0 and g.eval_capacity_factor > 0.0):
            fail("moe capacity factors must be > 0")
        if g.min_capacity < 0:
            fail(f"moe \"min_capacity\" must be >= 0, found {g.min_capacity}")
        if not 0.0 < g.jitter_eps < 1.0:
            fail(f"moe \"jitter_eps\" must be in (0, 1), found {g.jitter_eps}")
        if g.groups < 1:
            fail(f"moe \"groups\" must be >= 1, found {g.groups}")
        # Only stacks with MoE layers have gates whose tokens are grouped.
        for stack, layers, key, length in (
                ("encoder", c.encoder_layers, "src_len", c.src_len),
                ("decoder", c.decoder_layers, "tgt_len", c.tgt_len)):
            tokens = c.batch_size * length
            if (any(c.is_moe_layer(i) for i in range(layers))
                    and tokens % g.groups):
                fail(f"moe \"groups\" must divide the {tokens} tokens of the "
                     f"{stack} (batch_size {c.batch_size} x {key} {length}), "
                     f"found {g.groups}")


def load_config(path) -> ModelConfig:
    """Reads a models/*.json configuration (keys and defaults as the C++)."""
    with open(path, "r", encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON: {e}") from e
    return parse_config(data, str(path))


# ---------------------------------------------------------------------------
# Parameters, in the argument order of the generated @forward
# ---------------------------------------------------------------------------

WEIGHT_STD = 0.02  # ModelBuilder::kWeightStd


@dataclass(frozen=True)
class ParamSpec:
    name: str
    shape: Tuple[int, ...]
    init: str  # "normal" | "uniform" | "xavier_uniform" | "zeros" | "ones"
    scale: float = 1.0  # standard deviation of "normal"; gain of xavier

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def is_expert(self) -> bool:
        return ".experts." in self.name


def param_specs(c: ModelConfig) -> List[ParamSpec]:
    """Every parameter in the order ModelBuilder declares it (= IR order).

    MoEModel builds its parameters from this list, so the zcode-m3 count in
    the tests exercises the same code path without allocating 10B floats.
    """
    m = c.d_model
    specs: List[ParamSpec] = []

    def normal(name, shape, scale=WEIGHT_STD):
        specs.append(ParamSpec(name, tuple(shape), "normal", scale))

    def projection(name, shape):  # ModelBuilder::weight
        if c.init == "small_normal":
            normal(name, shape)
        else:
            specs.append(ParamSpec(name, tuple(shape), "xavier_uniform", 1.0))

    def norm(prefix):  # layer norm: scale then bias
        specs.append(ParamSpec(prefix + ".weight", (m,), "ones"))
        specs.append(ParamSpec(prefix + ".bias", (m,), "zeros"))

    def linear(prefix, fan_in, fan_out):  # weight [in, out] then bias
        projection(prefix + ".weight", (fan_in, fan_out))
        specs.append(ParamSpec(prefix + ".bias", (fan_out,), "zeros"))

    def attention(prefix):
        for proj in ("q", "k", "v", "out"):
            linear(f"{prefix}.{proj}", m, m)

    def ffn(prefix, layer):
        if not c.is_moe_layer(layer):
            linear(prefix + ".fc1", m, c.ffn_hidden)
            linear(prefix + ".fc2", c.ffn_hidden, m)
            return
        e, h = c.num_experts, c.expert_hidden_dim()
        if c.init == "small_normal":
            normal(prefix + ".gate.weight", (m, e))
        else:  # torch.nn.Linear's default, as DeepSpeed's TopKGate
            specs.append(ParamSpec(prefix + ".gate.weight", (m, e), "uniform",
                                   1.0 / math.sqrt(m)))
        projection(prefix + ".experts.fc1.weight", (e, m, h))
        specs.append(ParamSpec(prefix + ".experts.fc1.bias", (e, h), "zeros"))
        projection(prefix + ".experts.fc2.weight", (e, h, m))
        specs.append(ParamSpec(prefix + ".experts.fc2.bias", (e, m), "zeros"))

    normal("embed.weight", (c.vocab_size, m), 1.0 / math.sqrt(m))
    if c.position == "learned":
        normal("embed.positions", (c.num_positions(), m), 1.0 / math.sqrt(m))
    for layer in range(c.encoder_layers):
        p = f"encoder.layers.{layer}"
        norm(p + ".self_attn_norm")
        attention(p + ".self_attn")
        norm(p + ".ffn_norm")
        ffn(p + ".ffn", layer)
    norm("encoder.final_norm")
    for layer in range(c.decoder_layers):
        p = f"decoder.layers.{layer}"
        norm(p + ".self_attn_norm")
        attention(p + ".self_attn")
        norm(p + ".cross_attn_norm")
        attention(p + ".cross_attn")
        norm(p + ".ffn_norm")
        ffn(p + ".ffn", layer)
    norm("decoder.final_norm")
    if not c.tie_embeddings:
        projection("output.weight", (m, c.vocab_size))
    return specs


def count_parameters(c: ModelConfig) -> Dict[str, int]:
    """Totals by shape arithmetic: tensors, total, dense and expert elements."""
    specs = param_specs(c)
    expert = sum(s.numel for s in specs if s.is_expert)
    total = sum(s.numel for s in specs)
    return {"tensors": len(specs), "total": total, "dense": total - expert,
            "expert": expert}


# ---------------------------------------------------------------------------
# The MoE gate (DeepSpeed-MoE semantics, docs/architecture.md "Gate semantics")
# ---------------------------------------------------------------------------


def expert_capacity(num_tokens: int, num_experts: int, top_k: int,
                    capacity_factor: float, min_capacity: int,
                    drop_tokens: bool = True) -> int:
    """C = max(ceil(S / E * factor * k), min_capacity), capped at S.

    The cap is our documented choice (an expert never holds a token twice).
    Dropless gates get the static bound S (the gate itself then uses the
    largest expert count).  The 1e-9 guard keeps representation error (e.g.
    a product of 8.000000001) from adding a slot; it is the formula of
    runtime/src/moert/GateCapacity.h, which compiler and runtime share.
    """
    if (num_tokens <= 0 or num_experts <= 0 or top_k <= 0 or top_k > num_experts
            or not capacity_factor > 0.0 or min_capacity < 0):
        raise ValueError("expert_capacity: invalid arguments "
                         f"S={num_tokens} E={num_experts} k={top_k} "
                         f"factor={capacity_factor} min={min_capacity}")
    if not drop_tokens:
        return num_tokens
    per_expert = num_tokens / num_experts * capacity_factor * top_k
    per_expert = min(per_expert, float(num_tokens))
    capacity = max(math.ceil(per_expert - 1e-9), min_capacity, 1)
    return min(capacity, num_tokens)


@dataclass
class GateNoise:
    """Random inputs of one gate call, as uniform numbers (None = not given).

    * ``rts``: ``[S]`` Random Token Selection priorities, any real values; an
      overloaded expert keeps the C first-choice tokens of HIGHEST priority
      (equal priorities: the lower token id wins).
    * ``jitter``: ``[S, M]`` uniforms in [0, 1); the gate input is multiplied
      by ``(1 - eps) + ((1 + eps) - (1 - eps)) * u`` (float32, as the runtime).
    * ``first``: ``[S, E]`` uniforms in (0, 1) for ``noise = rsample``: Gumbel
      ``-log(-log u)`` added to the logits of the first choice's argmax.
    * ``later``: ``[S, E]`` uniforms in (0, 1) for ``second_sampling``: one
      Gumbel draw per (token, expert) added to the logits for every later
      choice (for k > 2 this is a Gumbel-top-k sample without replacement).

    A missing field that the configuration needs is drawn from ``torch.rand``
    (with ``generator`` if given), which is then the only nondeterminism.
    """

    rts: Optional[torch.Tensor] = None
    jitter: Optional[torch.Tensor] = None
    first: Optional[torch.Tensor] = None
    later: Optional[torch.Tensor] = None


@dataclass
class GateResult:
    indices: torch.Tensor        # [S, k] int64, first choice first
    locations: torch.Tensor      # [S, k] int64 slot, -1 when dropped
    weights: torch.Tensor        # [S, k] combine weights (differentiable)
    expert_counts: torch.Tensor  # [E] int64, all k choices before dropping
    aux_loss: torch.Tensor       # scalar (differentiable)
    capacity: int                # slots per expert: groups * group capacity
    gates: torch.Tensor          # [S, E] softmax probabilities
    logits: torch.Tensor         # [S, E] noise-free logits (after jitter)
    groups: int = 1              # gating groups; capacity // groups per group


def _argmax_lowest(scores: torch.Tensor) -> torch.Tensor:
    """Row-wise argmax; on ties the lowest expert index wins (explicit rather
    than relying on torch.argmax's tie behaviour)."""
    best = scores.max(dim=-1, keepdim=True).values
    e = scores.shape[-1]
    ids = torch.arange(e, device=scores.device).expand_as(scores)
    return torch.where(scores == best, ids, torch.full_like(ids, e)).min(-1).values


def _gumbel(u: torch.Tensor) -> torch.Tensor:
    # float32 like the runtime; u in (0, 1) keeps both logs finite.
    u = u.to(torch.float32)
    return -torch.log(-torch.log(u))


def _open_uniform(shape, generator, device):
    # (floor(r * 2^24) + 0.5) / 2^24: uniform on (0, 1), never 0 or 1.
    r = torch.rand(shape, generator=generator, device=device, dtype=torch.float64)
    return (torch.floor(r * 16777216.0) + 0.5) / 16777216.0


def _check_noise(t: torch.Tensor, shape, what: str) -> torch.Tensor:
    t = torch.as_tensor(t)
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"gate noise '{what}': expected shape {tuple(shape)}, "
                         f"found {tuple(t.shape)}")
    return t


def _noise_rows(noise: GateNoise, begin: int, end: int) -> GateNoise:
    """The noise of tokens begin .. end - 1 (every field is per token)."""
    cut = lambda t: None if t is None else torch.as_tensor(t)[begin:end]  # noqa: E731
    return GateNoise(rts=cut(noise.rts), jitter=cut(noise.jitter),
                     first=cut(noise.first), later=cut(noise.later))


@dataclass
class _Routed:
    """One group's routing before capacity: what phase 1 of the gate makes."""
    logits: torch.Tensor   # [S, E]
    gates: torch.Tensor    # [S, E]
    indices: torch.Tensor  # [S, k]
    counts: torch.Tensor   # [E]


def _route(x, weight, gating: GatingConfig, training: bool, noise: GateNoise,
           generator, dtype) -> _Routed:
    """Logits, gates and expert choices of the tokens x [S, M]."""
    S, M = x.shape
    E = weight.shape[1]
    k = gating.top_k
    dev = x.device
    # Jitter multiplies the INPUT (training only), so gates and logits see it.
    if training and gating.noise == "jitter":
        u = noise.jitter
        u = (_check_noise(u, (S, M), "jitter") if u is not None else
             torch.rand((S, M), generator=generator, device=dev))
        one = torch.tensor(1.0, dtype=torch.float32)
        eps32 = torch.tensor(gating.jitter_eps, dtype=torch.float32)
        low, high = one - eps32, one + eps32
        factor = low + (high - low) * u.to(torch.float32).to(dev)
        x = x * factor.to(dtype)
    logits = x @ weight
    gates = torch.softmax(logits, dim=-1)

    with torch.no_grad():
        scores = logits.detach()
        first_scores = scores
        if training and gating.noise == "rsample":
            u = noise.first
            u = (_check_noise(u, (S, E), "first") if u is not None else
                 _open_uniform((S, E), generator, dev))
            first_scores = scores + _gumbel(u).to(dtype).to(dev)
        chosen = [_argmax_lowest(first_scores)]
        if k > 1:
            later_scores = scores
            if training and gating.second_sampling:
                u = noise.later
                u = (_check_noise(u, (S, E), "later") if u is not None else
                     _open_uniform((S, E), generator, dev))
                later_scores = scores + _gumbel(u).to(dtype).to(dev)
            taken = F.one_hot(chosen[0], E).bool()
            for _ in range(1, k):
                pick = _argmax_lowest(later_scores.masked_fill(taken, -math.inf))
                chosen.append(pick)
                taken |= F.one_hot(pick, E).bool()
        indices = torch.stack(chosen, dim=1)  # [S, k]
        counts = torch.bincount(indices.reshape(-1), minlength=E)
    return _Routed(logits, gates, indices, counts)


def _assign_slots(routed: _Routed, gating: GatingConfig, capacity: int,
                  noise: GateNoise, generator, dtype):
    """Slots (locations), combine weights and aux loss of one group's tokens
    for capacity C: ``(locations, weights, aux)``."""
    gates, indices = routed.gates, routed.indices
    S, E = gates.shape
    k = gating.top_k
    dev = gates.device
    with torch.no_grad():
        # First choices: position in token order within the expert.
        mask1 = F.one_hot(indices[:, 0], E)  # [S, E] int64
        count1 = mask1.sum(0)
        tok = torch.arange(S, device=dev)
        e1 = indices[:, 0]
        if gating.use_rts and bool((count1 > capacity).any()):
            # Random Token Selection: rank each token among its expert's
            # first-choice tokens by descending priority (stable sorts, so
            # equal priorities keep token order), keep ranks < C.
            prio = noise.rts
            prio = (_check_noise(prio, (S,), "rts") if prio is not None else
                    torch.rand((S,), generator=generator, device=dev,
                               dtype=torch.float64))
            prio = prio.to(torch.float64).to(dev)
            order = torch.sort(prio, descending=True, stable=True).indices
            order = order[torch.sort(e1[order], stable=True).indices]
            group_start = torch.cumsum(count1, 0) - count1
            rank = torch.empty_like(tok)
            rank[order] = tok - group_start[e1[order]]
            keep1 = rank < capacity
        else:
            # Without RTS: the first C tokens in token order.
            pos = (torch.cumsum(mask1, 0) - 1).gather(1, e1[:, None])[:, 0]
            keep1 = pos < capacity
        # Kept first choices take slots 0.. in token order (cumsum - 1).
        kept_mask1 = mask1 * keep1[:, None]
        slot1 = (torch.cumsum(kept_mask1, 0) - 1).gather(1, e1[:, None])[:, 0]
        locs = [torch.where(keep1, slot1, torch.full_like(slot1, -1))]
        # Choice j queues behind ALL choices < j of its expert, counted before
        # dropping; it is dropped positionally (slot >= C).
        queued = count1.clone()
        for j in range(1, k):
            ej = indices[:, j]
            mj = F.one_hot(ej, E)
            pos = queued[ej] + (torch.cumsum(mj, 0) - 1).gather(1, ej[:, None])[:, 0]
            locs.append(torch.where(pos < capacity, pos, torch.full_like(pos, -1)))
            queued = queued + mj.sum(0)
        locations = torch.stack(locs, dim=1)
        kept = locations >= 0

    chosen_gates = gates.gather(1, indices)  # [S, k], differentiable
    kept_f = kept.to(dtype)
    if k == 1:
        weights = chosen_gates * kept_f  # raw probability, no renormalisation
    else:
        kept_gates = chosen_gates * kept_f
        denom = torch.clamp(kept_gates.sum(dim=1, keepdim=True), min=RENORM_EPS)
        weights = kept_gates / denom
    # aux = E * sum_e mean_s(gates[:, e]) * mean_s(mask1[:, e]) (first choices,
    # before dropping; mask1 is a constant).
    aux = E * torch.sum(gates.mean(dim=0) * mask1.to(dtype).mean(dim=0))
    return locations, weights, aux


def moe_gate(x: torch.Tensor, weight: torch.Tensor, gating: GatingConfig, *,
             training: bool = True, noise: Optional[GateNoise] = None,
             capacity: Optional[int] = None,
             generator: Optional[torch.Generator] = None) -> GateResult:
    """Routes the S tokens of ``x`` ([S, M]) to the E experts of ``weight``
    ([M, E]) with the semantics of ``moe.gate``.

    Gating math is done in float32, or float64 when ``x`` is float64 (for
    gradcheck).  With ``gating.groups = G`` the tokens form G equal contiguous
    groups, each routed on its own exactly as an ungrouped gate over its
    tokens (and its slice of ``noise``); group g takes slots
    ``[g * Cg, (g + 1) * Cg)``, the counts are summed and the aux loss is the
    mean over groups.  ``capacity`` overrides the per-group capacity Cg (e.g.
    the MAX over an expert-parallel group for a dropless gate); by default it
    is ``expert_capacity(S / G, ...)`` with ``capacity_factor`` in training
    and ``eval_capacity_factor`` otherwise, and the largest expert count of
    any group when dropless.  ``GateResult.capacity`` is the total G * Cg.
    Routing decisions are not differentiable; the combine weights and the
    aux loss are (through the softmax gates).
    """
    if x.dim() != 2 or weight.dim() != 2 or x.shape[1] != weight.shape[0]:
        raise ValueError(f"moe_gate: expected x [S, M] and weight [M, E], found "
                         f"{tuple(x.shape)} and {tuple(weight.shape)}")
    S, M = x.shape
    E = weight.shape[1]
    k = gating.top_k
    if not 1 <= k <= E:
        raise ValueError(f"moe_gate: expected 1 <= top_k <= E = {E}, found {k}")
    G = gating.groups
    if G < 1 or S % G:
        raise ValueError(f"moe_gate: expected groups >= 1 dividing S = {S}, "
                         f"found {G}")
    Sg = S // G
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    noise = noise if noise is not None else GateNoise()
    for what, given, shape in (("rts", noise.rts, (S,)),
                               ("jitter", noise.jitter, (S, M)),
                               ("first", noise.first, (S, E)),
                               ("later", noise.later, (S, E))):
        if given is not None:
            _check_noise(given, shape, what)
    x = x.to(dtype)
    weight = weight.to(dtype)

    # Phase 1 for every group (in group order, so a generator drawing missing
    # noise is consumed as an ungrouped gate would for G = 1).
    group_noise = [_noise_rows(noise, g * Sg, (g + 1) * Sg) for g in range(G)]
    routed = [_route(x[g * Sg:(g + 1) * Sg], weight, gating, training,
                     group_noise[g], generator, dtype) for g in range(G)]
    largest = max(int(r.counts.max()) for r in routed)
    if capacity is None:
        if gating.drop_tokens:
            factor_c = (gating.capacity_factor if training
                        else gating.eval_capacity_factor)
            capacity = expert_capacity(Sg, E, k, factor_c, gating.min_capacity,
                                       True)
        else:
            capacity = largest
    elif not gating.drop_tokens:
        # More than S/G slots are never used; fewer than the largest count
        # would drop tokens, which dropless must not.
        capacity = min(int(capacity), Sg)
        if capacity < largest:
            raise ValueError("moe_gate: dropless capacity must cover the "
                             f"largest expert count {largest}, found {capacity}")
    capacity = int(capacity)
    if capacity < 1:
        raise ValueError(f"moe_gate: expected capacity >= 1, found {capacity}")

    # Phase 2 per group; group g's slots start at g * C.
    locations, weights, auxes = [], [], []
    for g, r in enumerate(routed):
        loc, w, aux = _assign_slots(r, gating, capacity, group_noise[g],
                                    generator, dtype)
        locations.append(torch.where(loc >= 0, loc + g * capacity, loc))
        weights.append(w)
        auxes.append(aux)
    cat = lambda ts: ts[0] if G == 1 else torch.cat(ts)  # noqa: E731
    counts = routed[0].counts
    for r in routed[1:]:
        counts = counts + r.counts
    aux = auxes[0] if G == 1 else torch.stack(auxes).mean()
    return GateResult(cat([r.indices for r in routed]), cat(locations),
                      cat(weights), counts, aux, G * capacity,
                      cat([r.gates for r in routed]),
                      cat([r.logits for r in routed]), G)


# ---------------------------------------------------------------------------
# Expert FFN, dispatch/combine: two formulations of the MoE layer
# ---------------------------------------------------------------------------


def activation_fn(kind: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if kind == "relu":
        return F.relu
    if kind == "gelu":  # exact (erf) GELU, as the runtime's "gelu"
        return F.gelu
    if kind == "gelu_tanh":
        return lambda t: F.gelu(t, approximate="tanh")
    if kind == "silu":
        return F.silu
    raise ValueError(f"unknown activation {kind!r}")


def expert_ffn(buf: torch.Tensor, w1, b1, w2, b2, activation: str = "gelu"):
    """``moe.expert_ffn``: per expert e, act(buf[e] W1[e] + b1[e]) W2[e] + b2[e];
    buf [E, C, M], W1 [E, M, H], b1 [E, H], W2 [E, H, M], b2 [E, M]."""
    h = activation_fn(activation)(torch.bmm(buf, w1) + b1[:, None, :])
    return torch.bmm(h, w2) + b2[:, None, :]


def _tokens(x: torch.Tensor) -> torch.Tensor:
    # Tokens are the leading dimensions (row-major), as in the dialect.
    return x.reshape(-1, x.shape[-1])


def moe_layer_einsum(x, gate_weight, w1, b1, w2, b2, gating: GatingConfig, *,
                     activation: str = "gelu", training: bool = True,
                     noise: Optional[GateNoise] = None,
                     capacity: Optional[int] = None,
                     generator: Optional[torch.Generator] = None):
    """The MoE layer as GShard/DeepSpeed write it: one-hot dispatch mask and
    combine tensor ``[G, S/G, E, Cg]`` over the G gating groups,
    ``'gsec,gsm->egcm'`` and ``'gsec,egcm->gsm'`` (O(S*E*C*M)); the expert
    buffer ``[E, G, Cg, M]`` is the ``[E, G*Cg, M]`` buffer of the dialect
    (group g in slots g*Cg ..).  Returns (y like x, expert_counts, aux_loss,
    GateResult)."""
    xt = _tokens(x)
    r = moe_gate(xt, gate_weight, gating, training=training, noise=noise,
                 capacity=capacity, generator=generator)
    E, G = gate_weight.shape[1], r.groups
    S, M = xt.shape
    Sg, Cg = S // G, r.capacity // G
    kept = r.locations >= 0
    # Position within the token's group's slots (GShard's per-group C).
    group_of = torch.arange(S, device=xt.device) // Sg
    local = (r.locations - group_of[:, None] * Cg).clamp(min=0)
    # [S, k, E, Cg] one-hot of (expert, slot) per kept choice, summed over k
    # (a token's choices go to distinct experts, so no cell is hit twice).
    onehot = (F.one_hot(r.indices, E).to(xt.dtype)[..., :, None]
              * F.one_hot(local, Cg).to(xt.dtype)[..., None, :]
              * kept.to(xt.dtype)[..., None, None])
    dispatch_mask = onehot.sum(dim=1).view(G, Sg, E, Cg)
    combine = (onehot * r.weights.to(xt.dtype)[..., None, None]).sum(dim=1)
    combine = combine.view(G, Sg, E, Cg)
    buf = torch.einsum("gsec,gsm->egcm", dispatch_mask, xt.view(G, Sg, M))
    y = expert_ffn(buf.reshape(E, G * Cg, M), w1, b1, w2, b2, activation)
    out = torch.einsum("gsec,egcm->gsm", combine, y.view(E, G, Cg, M))
    return out.reshape(x.shape), r.expert_counts, r.aux_loss, r


def moe_layer_indexed(x, gate_weight, w1, b1, w2, b2, gating: GatingConfig, *,
                      activation: str = "gelu", training: bool = True,
                      noise: Optional[GateNoise] = None,
                      capacity: Optional[int] = None,
                      generator: Optional[torch.Generator] = None):
    """The MoE layer by index (``moe.dispatch``/``moe.combine``): every kept
    assignment moves its token once with index_select/index_add (O(S*k*M)).
    Same results and gradients as ``moe_layer_einsum``."""
    xt = _tokens(x)
    S, M = xt.shape
    r = moe_gate(xt, gate_weight, gating, training=training, noise=noise,
                 capacity=capacity, generator=generator)
    E, C = gate_weight.shape[1], r.capacity
    kept = r.locations >= 0
    token = torch.arange(S, device=xt.device)[:, None].expand_as(r.indices)[kept]
    cell = (r.indices * C + r.locations)[kept]  # flat (expert, slot)
    buf = xt.new_zeros(E * C, M).index_add(0, cell, xt.index_select(0, token))
    y = expert_ffn(buf.view(E, C, M), w1, b1, w2, b2, activation)
    picked = y.reshape(E * C, M).index_select(0, cell)
    picked = picked * r.weights[kept].to(picked.dtype)[:, None]
    out = xt.new_zeros(S, M).index_add(0, token, picked)
    return out.reshape(x.shape), r.expert_counts, r.aux_loss, r


MOE_FORMULATIONS = {"einsum": moe_layer_einsum, "indexed": moe_layer_indexed}


# ---------------------------------------------------------------------------
# Dense pieces
# ---------------------------------------------------------------------------


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """pe[s, 2i] = sin(s / 10000^(2i/M)), pe[s, 2i+1] = cos(same); computed in
    float64 and rounded to float32 (as moert::dense::sinusoidalPositions)."""
    s = np.arange(length, dtype=np.float64)[:, None]
    d = np.arange(dim)
    angle = s / np.power(10000.0, (d - d % 2).astype(np.float64) / dim)[None, :]
    pe = np.where(d % 2 == 0, np.sin(angle), np.cos(angle))
    return torch.from_numpy(pe.astype(np.float32))


def multi_head_attention(q, k, v, key_mask: Optional[torch.Tensor],
                         num_heads: int, causal: bool) -> torch.Tensor:
    """``moe.attention`` on projected q [B, Sq, D], k/v [B, Sk, D]; key_mask
    [B, Sk] true = attend.  A query row with every key masked gets zero
    probabilities, output and gradient (the runtime's definition)."""
    B, Sq, D = q.shape
    Sk = k.shape[1]
    dh = D // num_heads
    qh = q.view(B, Sq, num_heads, dh).transpose(1, 2)
    kh = k.view(B, Sk, num_heads, dh).transpose(1, 2)
    vh = v.view(B, Sk, num_heads, dh).transpose(1, 2)
    scores = (qh @ kh.transpose(-1, -2)) / math.sqrt(dh)
    allowed = torch.ones(B, 1, Sq, Sk, dtype=torch.bool, device=q.device)
    if key_mask is not None:
        allowed = allowed & key_mask.bool()[:, None, None, :]
    if causal:
        allowed = allowed & torch.ones(Sq, Sk, dtype=torch.bool,
                                       device=q.device).tril()
    # A finite fill (not -inf) keeps fully masked rows NaN-free; the factor
    # below then zeroes them.  In any other row exp(min - max) is exactly 0.
    scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1) * allowed.any(-1, keepdim=True)
    out = probs @ vh
    return out.transpose(1, 2).reshape(B, Sq, D)


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor,
                  label_smoothing: float = 0.0, ignore_index: int = -100):
    """``moe.cross_entropy``: mean over counted tokens of
    (1 - ls) * nll + ls * mean_v(-log p_v); 0 when no token counts."""
    V = logits.shape[-1]
    logp = torch.log_softmax(logits.reshape(-1, V), dim=-1)
    labels = labels.reshape(-1).long()
    counted = labels != ignore_index
    safe = torch.where(counted, labels, torch.zeros_like(labels))
    if bool(((safe < 0) | (safe >= V)).any()):
        raise ValueError("cross_entropy: a label is neither ignored nor in [0, V)")
    nll = -logp.gather(1, safe[:, None])[:, 0]
    smooth = -logp.mean(dim=-1)
    per_token = (1.0 - label_smoothing) * nll + label_smoothing * smooth
    n = counted.sum()
    total = (per_token * counted.to(per_token.dtype)).sum()
    return total / torch.clamp(n, min=1).to(per_token.dtype)


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------

GateNoiseSource = Union[None, Mapping[str, GateNoise],
                        Callable[[str, int, int, int, int], Optional[GateNoise]]]
DropoutFn = Callable[[torch.Tensor, float, int], torch.Tensor]


class MoEModel(torch.nn.Module):
    """The encoder-decoder MoE Transformer that moe-model-gen builds.

    Pre-norm layers; embeddings from one table shared by source, target and
    (when tied) the output projection, scaled by sqrt(d_model), plus
    sinusoidal or learned positions; key-padding masks from ``pad_id``;
    causal decoder self-attention; cross-attention on the final-normed
    encoder output; MoE FFN where ``layer % every == offset`` (numbered per
    stack); dropout after the embeddings, each attention block and each FFN
    block (never inside them); cross-entropy with label smoothing, ignoring
    ``pad_id`` labels.

    ``torch.nn.Module.named_parameters()`` yields the IR names (the module
    tree mirrors the dotted names) in IR order; ``named_parameters_like_ir``
    makes that explicit.  ``dropout`` overrides the configuration's rate as
    if the JSON said so (0 for deterministic cross-checks); random-stream ids
    (``gate_streams``, ``dropout_streams``) follow the effective
    configuration exactly like the generator assigns them.  ``self.training``
    selects training vs evaluation behaviour (dropout, gate noise and the
    capacity factor).
    """

    def __init__(self, config: ModelConfig, *, dropout: Optional[float] = None,
                 formulation: str = "indexed", seed: int = 0,
                 device: Union[str, torch.device, None] = None,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        if dropout is not None:
            config = replace(config, dropout=float(dropout))
            validate_config(config, "MoEModel")
        if formulation not in MOE_FORMULATIONS:
            raise ValueError(f"formulation must be one of {list(MOE_FORMULATIONS)}")
        self.config = config
        self.formulation = formulation
        self.specs = param_specs(config)
        self._names = [s.name for s in self.specs]
        device = torch.device(device) if device is not None else None
        gen = None
        if device is None or device.type == "cpu":
            gen = torch.Generator().manual_seed(seed)
        for spec in self.specs:
            self._register(spec, self._init_value(spec, gen, device, dtype))
        self._assign_streams()
        self.last_routing: Dict[str, GateResult] = {}

    # -- construction helpers ------------------------------------------------

    @staticmethod
    def _init_value(spec: ParamSpec, gen, device, dtype):
        if device is not None and device.type == "meta":
            return torch.empty(spec.shape, device=device, dtype=dtype)
        if spec.init == "ones":
            t = torch.ones(spec.shape, dtype=dtype)
        elif spec.init == "zeros":
            t = torch.zeros(spec.shape, dtype=dtype)
        elif spec.init == "uniform":
            t = torch.empty(spec.shape, dtype=dtype).uniform_(
                -spec.scale, spec.scale, generator=gen)
        elif spec.init == "xavier_uniform":  # over the last two dimensions
            fan_in, fan_out = spec.shape[-2], spec.shape[-1]
            bound = spec.scale * math.sqrt(6.0 / (fan_in + fan_out))
            t = torch.empty(spec.shape, dtype=dtype).uniform_(-bound, bound,
                                                              generator=gen)
        else:  # the runtime draws its own values; cross-checks load_state()
            t = torch.empty(spec.shape, dtype=dtype).normal_(0.0, spec.scale,
                                                             generator=gen)
        return t.to(device) if device is not None else t

    def _register(self, spec: ParamSpec, value: torch.Tensor):
        *path, leaf = spec.name.split(".")
        module: torch.nn.Module = self
        for part in path:
            child = module._modules.get(part)
            if child is None:
                child = torch.nn.Module()
                module.add_module(part, child)
            module = child
        module.register_parameter(leaf, torch.nn.Parameter(value))

    def _assign_streams(self):
        """Replays ModelBuilder's stream counter: every dropout (only when the
        rate is non-zero) and every MoE layer take the next id, in op order."""
        c = self.config
        counter = iter(range(1 << 62))
        self.dropout_streams: Dict[str, int] = {}
        self.gate_streams: Dict[str, int] = {}
        self.stream_order: List[Tuple[str, str, int]] = []

        def drop(site):
            if c.dropout != 0.0:
                self.dropout_streams[site] = next(counter)
                self.stream_order.append(("dropout", site,
                                          self.dropout_streams[site]))

        def ffn(prefix, layer):
            if c.is_moe_layer(layer):
                self.gate_streams[prefix] = next(counter)
                self.stream_order.append(("moe_layer", prefix,
                                          self.gate_streams[prefix]))
            drop(prefix)

        drop("encoder.embed")
        for layer in range(c.encoder_layers):
            p = f"encoder.layers.{layer}"
            drop(p + ".self_attn")
            ffn(p + ".ffn", layer)
        drop("decoder.embed")
        for layer in range(c.decoder_layers):
            p = f"decoder.layers.{layer}"
            drop(p + ".self_attn")
            drop(p + ".cross_attn")
            ffn(p + ".ffn", layer)

    # -- parameters and state --------------------------------------------------

    def param(self, name: str) -> torch.Tensor:
        # Plain attribute walk (not get_parameter, which insists on
        # nn.Parameter) so torch.nn.utils.stateless.functional_call can
        # substitute tensors, e.g. for gradcheck.
        obj = self
        for part in name.split("."):
            obj = getattr(obj, part)
        return obj

    def named_parameters_like_ir(self) -> List[Tuple[str, torch.nn.Parameter]]:
        """(name, parameter) in the argument order of the IR's @forward."""
        return [(n, self.param(n)) for n in self._names]

    def state(self) -> Dict[str, np.ndarray]:
        """Copies of every parameter as numpy arrays, keyed by IR name."""
        return {n: p.detach().cpu().numpy().copy()
                for n, p in self.named_parameters_like_ir()}

    def load_state(self, arrays: Mapping[str, np.ndarray], strict: bool = True):
        """Copies ``arrays`` (IR name -> array) into the parameters; shapes
        must match exactly, and with ``strict`` the name sets too."""
        names = set(self._names)
        if strict:
            missing = sorted(names - set(arrays))
            extra = sorted(set(arrays) - names)
            if missing or extra:
                raise KeyError(f"load_state: missing {missing[:5]} "
                               f"({len(missing)}), unexpected {extra[:5]} "
                               f"({len(extra)})")
        with torch.no_grad():
            for name, value in arrays.items():
                if name not in names:
                    continue
                p = self.param(name)
                t = torch.as_tensor(np.asarray(value))
                if tuple(t.shape) != tuple(p.shape):
                    raise ValueError(f"load_state: {name} expects shape "
                                     f"{tuple(p.shape)}, found {tuple(t.shape)}")
                p.copy_(t.to(p.dtype))

    # -- building blocks -------------------------------------------------------

    def _dropout(self, x, site, dropout_fn: Optional[DropoutFn]):
        rate = self.config.dropout
        if rate == 0.0 or not self.training:
            return x
        if dropout_fn is not None:
            return dropout_fn(x, rate, self.dropout_streams[site])
        return F.dropout(x, rate, training=True)

    def _layer_norm(self, prefix, x):
        return F.layer_norm(x, (x.shape[-1],), self.param(prefix + ".weight"),
                            self.param(prefix + ".bias"),
                            eps=self.config.layer_norm_eps)

    def _linear(self, prefix, x):
        return x @ self.param(prefix + ".weight") + self.param(prefix + ".bias")

    def _embed(self, tokens):
        c = self.config
        table = self.param("embed.weight")
        if bool(((tokens < 0) | (tokens >= c.vocab_size)).any()):
            raise ValueError(f"token ids must be in [0, {c.vocab_size})")
        h = table[tokens] * math.sqrt(c.d_model)
        length = tokens.shape[-1]
        if c.position == "sinusoidal":
            h = h + sinusoidal_positions(length, c.d_model).to(h)
        elif c.position == "learned":
            positions = self.param("embed.positions")
            if length > positions.shape[0]:
                raise ValueError(f"sequence length {length} exceeds the "
                                 f"{positions.shape[0]} learned positions")
            h = h + positions[:length]
        return h

    def _attention(self, prefix, query_in, kv_in, key_mask, causal):
        q = self._linear(prefix + ".q", query_in)
        k = self._linear(prefix + ".k", kv_in)
        v = self._linear(prefix + ".v", kv_in)
        o = multi_head_attention(q, k, v, key_mask, self.config.num_heads, causal)
        return self._linear(prefix + ".out", o)

    def _ffn(self, prefix, layer, x, gate_noise: GateNoiseSource, generator):
        c = self.config
        act = c.activation
        if not c.is_moe_layer(layer):
            h = activation_fn(act)(self._linear(prefix + ".fc1", x))
            return self._linear(prefix + ".fc2", h), None
        noise = None
        if callable(gate_noise):
            noise = gate_noise(prefix, self.gate_streams[prefix],
                               x.numel() // x.shape[-1], c.d_model, c.num_experts)
        elif gate_noise is not None:
            noise = gate_noise.get(prefix)
        layer_fn = MOE_FORMULATIONS[self.formulation]
        y, counts, aux, routing = layer_fn(
            x, self.param(prefix + ".gate.weight"),
            self.param(prefix + ".experts.fc1.weight"),
            self.param(prefix + ".experts.fc1.bias"),
            self.param(prefix + ".experts.fc2.weight"),
            self.param(prefix + ".experts.fc2.bias"), c.gating,
            activation=act, training=self.training, noise=noise,
            generator=generator)
        self.last_routing[prefix] = routing
        return y, (counts, aux)

    # -- forward -----------------------------------------------------------------

    def forward(self, src_tokens, tgt_tokens, labels, *,
                gate_noise: GateNoiseSource = None,
                dropout_fn: Optional[DropoutFn] = None,
                generator: Optional[torch.Generator] = None,
                return_logits: bool = False):
        """Returns ``(loss, aux_loss_sum, expert_counts)`` like the IR's
        @forward: the cross-entropy, the sum of the MoE layers' aux losses
        (a zero scalar when the model has none; the IR then has no such
        result) and the per-layer expert counts [E] in layer order.

        ``gate_noise``: per MoE layer (key: its prefix, e.g.
        ``"encoder.layers.1.ffn"``) a GateNoise, or a callable
        ``(prefix, stream, S, M, E) -> GateNoise``; see runtime_gate_noise_fn.
        ``dropout_fn(x, rate, stream)`` replaces torch's dropout (e.g. with
        the runtime's masks).  With ``return_logits`` the logits are appended.
        """
        c = self.config
        dev = self.param("embed.weight").device
        src = torch.as_tensor(src_tokens, device=dev).long()
        tgt = torch.as_tensor(tgt_tokens, device=dev).long()
        lab = torch.as_tensor(labels, device=dev).long()
        self.last_routing = {}
        aux_losses, counts = [], []

        def add_moe(extra):
            if extra is not None:
                counts.append(extra[0])
                aux_losses.append(extra[1])

        src_mask = src != c.pad_id
        h = self._dropout(self._embed(src), "encoder.embed", dropout_fn)
        for layer in range(c.encoder_layers):
            p = f"encoder.layers.{layer}"
            a = self._layer_norm(p + ".self_attn_norm", h)
            h = h + self._dropout(self._attention(p + ".self_attn", a, a,
                                                  src_mask, False),
                                  p + ".self_attn", dropout_fn)
            f = self._layer_norm(p + ".ffn_norm", h)
            y, extra = self._ffn(p + ".ffn", layer, f, gate_noise, generator)
            add_moe(extra)
            h = h + self._dropout(y, p + ".ffn", dropout_fn)
        memory = self._layer_norm("encoder.final_norm", h)

        tgt_mask = tgt != c.pad_id
        h = self._dropout(self._embed(tgt), "decoder.embed", dropout_fn)
        for layer in range(c.decoder_layers):
            p = f"decoder.layers.{layer}"
            a = self._layer_norm(p + ".self_attn_norm", h)
            h = h + self._dropout(self._attention(p + ".self_attn", a, a,
                                                  tgt_mask, True),
                                  p + ".self_attn", dropout_fn)
            x = self._layer_norm(p + ".cross_attn_norm", h)
            h = h + self._dropout(self._attention(p + ".cross_attn", x, memory,
                                                  src_mask, False),
                                  p + ".cross_attn", dropout_fn)
            f = self._layer_norm(p + ".ffn_norm", h)
            y, extra = self._ffn(p + ".ffn", layer, f, gate_noise, generator)
            add_moe(extra)
            h = h + self._dropout(y, p + ".ffn", dropout_fn)
        h = self._layer_norm("decoder.final_norm", h)

        if c.tie_embeddings:
            logits = h @ self.param("embed.weight").t()
        else:
            logits = h @ self.param("output.weight")
        loss = cross_entropy(logits, lab, c.label_smoothing, c.pad_id)
        aux = (torch.stack(aux_losses).sum() if aux_losses
               else torch.zeros((), dtype=loss.dtype, device=dev))
        if return_logits:
            return loss, aux, counts, logits
        return loss, aux, counts


def loss_and_grads(model: MoEModel, src_tokens, tgt_tokens, labels, *,
                   aux_coef: float = 0.01, **forward_kwargs):
    """One forward + backward: the objective ``loss + aux_coef * aux`` (the
    seeds of moe-differentiate, whose default coefficient is 0.01) and the
    gradient of every parameter, keyed by IR name, in IR order.

    Returns a dict: ``total``, ``loss``, ``aux_loss`` (Python floats),
    ``expert_counts`` (list of int64 numpy arrays) and ``grads``
    (name -> numpy array, zeros where a parameter got no gradient).
    """
    model.zero_grad(set_to_none=True)
    loss, aux, counts = model(src_tokens, tgt_tokens, labels, **forward_kwargs)
    total = loss + aux_coef * aux
    total.backward()
    grads = {}
    for name, p in model.named_parameters_like_ir():
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        grads[name] = g.detach().cpu().numpy().copy()
    return {"total": float(total), "loss": float(loss), "aux_loss": float(aux),
            "expert_counts": [c.cpu().numpy() for c in counts], "grads": grads}


# ---------------------------------------------------------------------------
# The runtime's random numbers (Philox-4x32-10, moert/Random.h)
# ---------------------------------------------------------------------------

_MASK32 = np.uint64(0xFFFFFFFF)


def philox4x32x10(counter, key) -> np.ndarray:
    """Philox-4x32 with 10 rounds (Salmon et al., SC'11), vectorised:
    ``counter`` [..., 4] and ``key`` [..., 2] of 32-bit words -> [..., 4]."""
    c = np.asarray(counter, dtype=np.uint64)
    k = np.asarray(key, dtype=np.uint64)
    c0, c1, c2, c3 = (c[..., i].copy() for i in range(4))
    k0, k1 = k[..., 0].copy(), k[..., 1].copy()
    m0, m1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
    w0, w1 = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
    s32 = np.uint64(32)
    for _ in range(10):
        p0 = m0 * c0  # 32 x 32 -> 64 bits, no overflow in uint64
        p1 = m1 * c2
        c0, c1, c2, c3 = ((p1 >> s32) ^ c1 ^ k0) & _MASK32, p1 & _MASK32, \
                         ((p0 >> s32) ^ c3 ^ k1) & _MASK32, p0 & _MASK32
        k0 = (k0 + w0) & _MASK32
        k1 = (k1 + w1) & _MASK32
    return np.stack([c0, c1, c2, c3], axis=-1).astype(np.uint32)


def random_bits(seed: int, stream: int, step: int, index) -> np.ndarray:
    """moert::randomBits: 32 bits for element ``index`` (uint64 array): lane
    index % 4 of the block counter (index / 4 as 64 bits, stream, step),
    key = seed."""
    index = np.asarray(index, dtype=np.uint64)
    block = index // np.uint64(4)
    counter = np.stack([block & _MASK32, block >> np.uint64(32),
                        np.full_like(block, stream & 0xFFFFFFFF),
                        np.full_like(block, step & 0xFFFFFFFF)], axis=-1)
    key = np.array([seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF], np.uint64)
    out = philox4x32x10(counter, np.broadcast_to(key, counter.shape[:-1] + (2,)))
    lane = (index % np.uint64(4)).astype(np.int64)
    return np.take_along_axis(out, lane[..., None], axis=-1)[..., 0]


# Sub-sequences of a gate's stream (moert::GateRandomPurpose, top byte).
_RTS, _JITTER, _FIRST, _LATER = 1, 2, 3, 4


def _gate_index(purpose: int, element: np.ndarray) -> np.ndarray:
    return (np.uint64(purpose) << np.uint64(56)) | element.astype(np.uint64)


def runtime_gate_noise(seed: int, stream: int, step: int, num_tokens: int,
                       model_dim: int, num_experts: int,
                       gating: Optional[GatingConfig] = None,
                       first_token: int = 0) -> GateNoise:
    """The uniforms the runtime's gate draws (moert/kernels/Gate.cpp) for
    tokens first_token .. first_token + S - 1, as a GateNoise.  With
    ``gating`` only the fields it uses are generated."""
    S, M, E = num_tokens, model_dim, num_experts
    tokens = np.arange(first_token, first_token + S, dtype=np.uint64)
    want = lambda what: gating is None or what(gating)  # noqa: E731
    noise = GateNoise()
    scale = np.float32(1.0 / 16777216.0)
    if want(lambda g: g.use_rts):
        bits = random_bits(seed, stream, step, _gate_index(_RTS, tokens))
        # Ordering by the raw 32 bits, exactly as the runtime compares them.
        noise.rts = torch.from_numpy(bits.astype(np.float64))
    if want(lambda g: g.noise == "jitter"):
        el = tokens[:, None] * np.uint64(M) + np.arange(M, dtype=np.uint64)
        bits = random_bits(seed, stream, step, _gate_index(_JITTER, el))
        noise.jitter = torch.from_numpy((bits >> 8).astype(np.float32) * scale)
    el = tokens[:, None] * np.uint64(E) + np.arange(E, dtype=np.uint64)

    def open_uniform(purpose):
        bits = random_bits(seed, stream, step, _gate_index(purpose, el))
        # (float(bits >> 9) + 0.5f) * 2^-23 in float32, as moert::gumbel
        # (moert::bitsToOpenUniform): never 0, never 1.
        u = ((bits >> 9).astype(np.float32) + np.float32(0.5)) \
            * np.float32(1.0 / 8388608.0)
        return torch.from_numpy(u.astype(np.float32))

    if want(lambda g: g.noise == "rsample"):
        noise.first = open_uniform(_FIRST)
    if want(lambda g: g.second_sampling and g.top_k > 1):
        noise.later = open_uniform(_LATER)
    return noise


def runtime_gate_noise_fn(seed: int, step: int, gating: Optional[GatingConfig] = None,
                          first_token: int = 0):
    """A ``gate_noise`` callable for MoEModel.forward that feeds every MoE
    layer the runtime's numbers for its stream."""
    def fn(prefix: str, stream: int, S: int, M: int, E: int) -> GateNoise:
        return runtime_gate_noise(seed, stream, step, S, M, E, gating, first_token)
    return fn
