//===- MoeBase.td - The moe dialect and its base op class -*- tablegen -*-===//
//
// The `moe` dialect describes Mixture-of-Experts Transformer models as pure
// functions over tensors, from which the compiler derives the training step.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_BASE_TD
#define MOE_BASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"

def Moe_Dialect : Dialect {
  let name = "moe";
  let cppNamespace = "::mlir::moe";
  let summary = "Mixture-of-Experts Transformer models as tensor programs";
  let description = [{
    The `moe` dialect describes Transformer models with Mixture-of-Experts
    (MoE) layers so that a compiler can derive, partition and schedule their
    training step.

    ## Design

    * **Values are builtin tensors.** Every op consumes and produces ranked
      `tensor<...>` values (f32 first; bf16/f16 for accelerators). There is no
      mutable state in the IR.
    * **Models are pure functions.** Weights are function arguments, as in
      JAX: a model is `func.func @forward(%params..., %batch...) -> (loss,
      metrics...)`. Parameters carry `moe.param` (their name in checkpoints)
      and `moe.init` (their initializer); batch inputs carry `moe.input`;
      results carry `moe.role` (`loss`, `aux_loss`, `expert_counts`,
      `metric`, `grad`, `new_param`, `new_state`). Optimizer state carries
      `moe.opt_state` and `moe.state_of`; metrics are named by `moe.name`.
      Training builds
      `@train_step(params, optimizer_state, batch, step)` from `@forward`.
      Pure functions over tensors keep differentiation and SPMD partitioning
      (the upstream `shard` dialect) simple and inspectable.
    * **Tokens are the leading dimensions.** Dense ops accept `[..., M]`;
      the MoE ops treat the product of all leading dimensions as the token
      count `S` of the routing group, so no reshapes appear in the model.
    * **Routing follows DeepSpeed-MoE.** `moe.gate` implements top-1/top-2/
      top-k gating with expert capacity, Random Token Selection, noise
      policies and the load-balancing loss; its configuration is the
      `#moe.gating` attribute. `moe.dispatch` and `moe.combine` move tokens
      by index (`O(S*k*M)`), never by the one-hot einsum of GShard.
    * **Composite and expanded forms.** `moe.moe_layer` is the whole MoE
      block; `moe-expand-moe-layer` rewrites it into `moe.gate`,
      `moe.dispatch`, `moe.expert_ffn` and `moe.combine`, inferring the
      expert capacity `C` from the static token count.

    ## Expert capacity

    For `S` tokens, `E` experts and `k` choices per token,
    `C = max(ceil(S / E * capacity_factor * k), min_capacity)`, capped at
    `S` (an expert never holds a token twice). In eval mode
    `eval_capacity_factor` replaces `capacity_factor`. Without token dropping
    (`drop_tokens = false`) the static bound is `C = S`; the runtime uses the
    maximum expert count within that bound. Compiler and runtime share one
    implementation of this formula (`runtime/src/moert/GateCapacity.h`).

    With gating groups (`#moe.gating<groups = G>`, GShard's G dimension) the
    formula applies to each group of `S / G` tokens, giving `Cg`, and the
    gate's `capacity` is `G * Cg` slots per expert: group `g` fills slots
    `[g * Cg, (g + 1) * Cg)`. Dropless grouped routing uses `Cg` = the
    largest expert count of any group. Because each group is routed on its
    own, a partitioned run whose ranks hold whole groups routes exactly as
    the single-process run.
  }];
  let useDefaultAttributePrinterParser = 1;
  let hasRegionArgAttrVerify = 1;
  let hasRegionResultAttrVerify = 1;
  let extraClassDeclaration = [{
    /// Argument attribute naming a parameter (its checkpoint key).
    static constexpr ::llvm::StringLiteral kParamAttrName = "moe.param";
    /// Argument attribute giving a parameter's initializer.
    static constexpr ::llvm::StringLiteral kInitAttrName = "moe.init";
    /// Argument attribute naming a batch input (e.g. "src_tokens").
    static constexpr ::llvm::StringLiteral kInputAttrName = "moe.input";
    /// Result attribute giving a result's role ("loss", "aux_loss", ...).
    static constexpr ::llvm::StringLiteral kRoleAttrName = "moe.role";
    /// Optimizer state argument/result: "exp_avg" or "exp_avg_sq".
    static constexpr ::llvm::StringLiteral kOptStateAttrName = "moe.opt_state";
    /// Optimizer state argument/result: the parameter it belongs to.
    static constexpr ::llvm::StringLiteral kStateOfAttrName = "moe.state_of";
    /// Result attribute naming a metric ("grad_norm", "lr").
    static constexpr ::llvm::StringLiteral kNameAttrName = "moe.name";
    /// Argument/result attribute of a partitioned function: for each
    /// dimension, the grid axes that split it (major to minor), e.g.
    /// `[array<i16>, array<i16: 1>]`; the type is the local shard's.
    static constexpr ::llvm::StringLiteral kShardingAttrName = "moe.sharding";
    /// Argument attribute of persistent state kept in host memory ("host"):
    /// the fp32 master weights and AdamW moments of E+Z-Offload.
    static constexpr ::llvm::StringLiteral kPlacementAttrName = "moe.placement";
    /// Argument/result attribute: the low-precision device copy of the
    /// named parameter (its master is the `moe.param` argument), rewritten
    /// from the master after every update (`moe-offload`).
    static constexpr ::llvm::StringLiteral kDeviceCopyAttrName =
        "moe.device_copy";
    /// Argument attribute: a host buffer receiving the named parameter's
    /// reduced gradient every step (`moe-stream-gradients`).
    static constexpr ::llvm::StringLiteral kGradBufferAttrName =
        "moe.grad_buffer";

    /// The first argument of `argAttrs` (a function's uniqued argument
    /// attribute array) whose parameter name an earlier argument already
    /// has, and that earlier argument; {-1, -1} when the names are unique.
    /// Computed once per array and remembered (verifying each argument
    /// against all earlier ones made verification quadratic in depth).
    std::pair<int, int> findDuplicateParam(::mlir::ArrayAttr argAttrs);

  private:
    ::llvm::DenseMap<::mlir::Attribute, std::pair<int, int>> duplicateParams;
    std::mutex duplicateParamsMutex;

  public:
  }];
}

class Moe_Op<string mnemonic, list<Trait> traits = []>
    : Op<Moe_Dialect, mnemonic, traits>;

class Moe_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<Moe_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

#endif // MOE_BASE_TD
