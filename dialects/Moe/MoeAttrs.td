//===- MoeAttrs.td - Attributes of the moe dialect --------*- tablegen -*-===//
#ifndef MOE_ATTRS_TD
#define MOE_ATTRS_TD

include "dialects/Moe/MoeBase.td"
include "dialects/Moe/MoeEnums.td"

// An f64 stored as an APFloat (hashable) and printed in its shortest
// round-trip form (1.25, not 1.250000e+00).
class Moe_DoubleParameter<string value, string desc>
    : DefaultValuedParameter<"::llvm::APFloat", "::llvm::APFloat(" # value # ")",
                             desc> {
  let comparator = "$_lhs.bitwiseIsEqual($_rhs)";
  let parser = "::mlir::moe::parseDoubleParameter($_parser)";
  let printer = "::mlir::moe::printDoubleParameter($_printer, $_self)";
}

// A bool printed as `true`/`false`.
class Moe_BoolParameter<string value, string desc>
    : DefaultValuedParameter<"bool", value, desc> {
  let parser = "::mlir::moe::parseBoolParameter($_parser)";
  let printer = "$_printer << ($_self ? \"true\" : \"false\")";
}

def Moe_GatingAttr : Moe_Attr<"Gating", "gating"> {
  let summary = "configuration of an MoE gate (router)";
  let description = [{
    How tokens are routed to experts; defaults follow DeepSpeed-MoE.

    * `top_k` (default 1): experts per token; must not exceed the number of
      experts of the gate that uses it.
    * `capacity_factor` (1.0) / `eval_capacity_factor` (1.0): slots per
      expert relative to an even split, in training / evaluation; > 0.
    * `min_capacity` (4): lower bound on the capacity; >= 0.
    * `drop_tokens` (true): false selects dropless routing, where capacity
      is the largest expert load.
    * `use_rts` (true): Random Token Selection; an overloaded expert keeps
      a uniformly random subset of its tokens instead of the first ones.
    * `noise` (none): `jitter` or `rsample`, training only.
    * `jitter_eps` (0.01): half-width of the jitter noise; in (0, 1).
    * `second_sampling` (true): top-2 and beyond pick the later choices
      with Gumbel noise on the logits (DeepSpeed's second-expert sampling).
    * `groups` (1): GShard-style gating groups. The gate's tokens (in
      flattened, batch-major order) are split into `groups` equal
      contiguous groups, each routed independently: per-group capacity,
      Random Token Selection, top-k queuing and aux loss. A partitioned run
      whose ranks each hold whole groups then routes exactly like the
      1-rank run. The token count must be divisible by `groups`; >= 1.

    Example:

    ```mlir
    #moe.gating<top_k = 2, capacity_factor = 1.25, use_rts = true>
    ```
  }];
  let parameters = (ins
    DefaultValuedParameter<"int64_t", "1", "experts per token">:$top_k,
    Moe_DoubleParameter<"1.0", "capacity factor in training">:$capacity_factor,
    Moe_DoubleParameter<"1.0", "capacity factor in evaluation">:$eval_capacity_factor,
    DefaultValuedParameter<"int64_t", "4", "lower bound on capacity">:$min_capacity,
    Moe_BoolParameter<"true", "drop tokens beyond capacity">:$drop_tokens,
    Moe_BoolParameter<"true", "random token selection">:$use_rts,
    DefaultValuedParameter<"::mlir::moe::NoisePolicy",
        "::mlir::moe::NoisePolicy::none", "noise policy">:$noise,
    Moe_DoubleParameter<"0.01", "jitter half-width">:$jitter_eps,
    Moe_BoolParameter<"true", "Gumbel sampling of later choices">:$second_sampling,
    DefaultValuedParameter<"int64_t", "1", "independently routed token groups">:$groups
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Slots per expert for `numTokens` tokens and `numExperts` experts in
    /// training or evaluation mode: `groups` times the capacity of one
    /// group of numTokens / groups tokens; -1 if the configuration admits
    /// none (including a token count not divisible by `groups`).
    int64_t getCapacity(int64_t numTokens, int64_t numExperts,
                        bool training) const;
    /// Capacity of one group (numTokens / groups tokens); -1 if none.
    int64_t getGroupCapacity(int64_t numTokens, int64_t numExperts,
                             bool training) const;
  }];
}

def Moe_InitAttr : Moe_Attr<"Init", "init"> {
  let summary = "initializer of a model parameter";
  let description = [{
    Attached to parameter arguments as `moe.init`. The runtime draws the
    initial values deterministically from the run's seed and the parameter's
    name, so every partitioning initialises the same logical tensor.

    ```mlir
    func.func @forward(%w: tensor<128x512xf32> {moe.param = "ffn.w1",
                                                moe.init = #moe.init<normal, scale = 0.02>})
    ```
  }];
  let parameters = (ins
    EnumParameter<Moe_InitKind>:$kind,
    Moe_DoubleParameter<"1.0", "standard deviation, bound or gain">:$scale
  );
  let assemblyFormat = "`<` $kind (`,` `scale` `=` $scale^)? `>`";
  let genVerifyDecl = 1;
}

#endif // MOE_ATTRS_TD
