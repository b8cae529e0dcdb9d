//===- MoeOps.td - Operations of the moe dialect ----------*- tablegen -*-===//
#ifndef MOE_OPS_TD
#define MOE_OPS_TD

include "dialects/Moe/MoeBase.td"
include "dialects/Moe/MoeAttrs.td"
include "dialects/Moe/MoeInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/IR/CommonTypeConstraints.td"
include "mlir/IR/OpBase.td"
include "mlir/Interfaces/InferTypeOpInterface.td"

//===----------------------------------------------------------------------===//
// Type constraints
//===----------------------------------------------------------------------===//

def Moe_Float : AnyTypeOf<[F32, BF16, F16]>;
def Moe_FloatTensor : RankedTensorOf<[F32, BF16, F16]>;
def Moe_F32Tensor : RankedTensorOf<[F32]>;
def Moe_IndexTensor : RankedTensorOf<[I32]>;
def Moe_MaskTensor : RankedTensorOf<[I1]>;
def Moe_Scalar : 0DTensorOf<[F32]>;

// Ops whose operand gradients moe-differentiate can build.
defvar Moe_Differentiable =
    DeclareOpInterfaceMethods<Moe_DifferentiableOpInterface>;

//===----------------------------------------------------------------------===//
// Dense ops
//===----------------------------------------------------------------------===//

def Moe_EmbeddingOp : Moe_Op<"embedding", [Pure, Moe_Differentiable]> {
  let summary = "token embedding lookup with optional positional encoding";
  let description = [{
    Looks up `tokens` (i32, any shape) in `table` (`[V, M]`) and returns
    `tokens.shape + [M]`. With `scaled`, embeddings are multiplied by
    `sqrt(M)`. The positional encoding is added afterwards: `sinusoidal`
    (fixed, Vaswani et al.), `learned` (from the `positions` table
    `[P, M]`, `P` at least the sequence length, the last token dimension) or
    `none`. Token ids outside `[0, V)` are a runtime error.

    ```mlir
    %h = moe.embedding sinusoidal %tokens, %table {scaled}
        : (tensor<8x32xi32>, tensor<1000x128xf32>) -> tensor<8x32x128xf32>
    %g = moe.embedding learned %tokens, %table positions %pos
        : (tensor<8x32xi32>, tensor<1000x128xf32>, tensor<64x128xf32>)
          -> tensor<8x32x128xf32>
    ```
  }];
  let arguments = (ins
    Moe_IndexTensor:$tokens,
    Moe_FloatTensor:$table,
    Optional<Moe_FloatTensor>:$positions,
    Moe_PositionKind:$position,
    UnitAttr:$scaled
  );
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $position $tokens `,` $table (`positions` $positions^)? attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moe_LinearOp : Moe_Op<"linear", [Pure, Moe_Differentiable]> {
  let summary = "affine map over the last dimension: x W + b";
  let description = [{
    `input` is `[..., K]`, `weight` is `[K, N]` (or `[N, K]` with
    `transpose_weight`, which lets the output projection share the embedding
    table), the optional `bias` is `[N]`; the result is `[..., N]`.

    ```mlir
    %y = moe.linear %x, %w, %b
        : (tensor<8x32x128xf32>, tensor<128x512xf32>, tensor<512xf32>)
          -> tensor<8x32x512xf32>
    %logits = moe.linear %h, %table {transpose_weight}
        : (tensor<8x32x128xf32>, tensor<1000x128xf32>) -> tensor<8x32x1000xf32>
    ```
  }];
  let arguments = (ins
    Moe_FloatTensor:$input,
    Moe_FloatTensor:$weight,
    Optional<Moe_FloatTensor>:$bias,
    UnitAttr:$transpose_weight
  );
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight (`,` $bias^)? attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moe_LayerNormOp : Moe_Op<"layer_norm", [Pure, Moe_Differentiable]> {
  let summary = "layer normalisation over the last dimension";
  let description = [{
    `(x - mean) / sqrt(var + epsilon) * scale + bias`, with mean and (biased)
    variance over the last dimension `M`; `scale` and `bias` are `[M]`.

    ```mlir
    %y = moe.layer_norm %x, %gamma, %beta {epsilon = 1.0e-5 : f64}
        : (tensor<8x32x128xf32>, tensor<128xf32>, tensor<128xf32>)
          -> tensor<8x32x128xf32>
    ```
  }];
  let arguments = (ins
    Moe_FloatTensor:$input,
    Moe_FloatTensor:$scale,
    Moe_FloatTensor:$bias,
    DefaultValuedAttr<F64Attr, "1.0e-5">:$epsilon
  );
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $scale `,` $bias attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moe_ActivationOp : Moe_Op<"activation", [Pure, SameOperandsAndResultType,
                                              Moe_Differentiable]> {
  let summary = "pointwise nonlinearity";
  let description = [{
    ```mlir
    %y = moe.activation gelu %x : tensor<8x32x512xf32>
    ```
  }];
  let arguments = (ins Moe_ActivationKind:$kind, Moe_FloatTensor:$input);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = "$kind $input attr-dict `:` type($input)";
}

def Moe_AddOp : Moe_Op<"add", [Pure, SameOperandsAndResultType, Commutative,
    Moe_Differentiable]> {
  let summary = "elementwise sum of two tensors of the same type";
  let description = [{
    Residual connections and sums of auxiliary losses.

    ```mlir
    %r = moe.add %x, %y : tensor<8x32x128xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$lhs, Moe_FloatTensor:$rhs);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` type($result)";
}

def Moe_DropoutOp : Moe_Op<"dropout", [SameOperandsAndResultType,
    Moe_Differentiable]> {
  let summary = "inverted dropout with a counter-based random stream";
  let description = [{
    In training, zeroes each element with probability `rate` and scales the
    rest by `1 / (1 - rate)`; in evaluation it is the identity. The mask of
    element `i` (its index in the logical, unpartitioned tensor) is drawn
    from a counter-based generator keyed by the run's seed, the step and
    `stream`, so the result does not depend on how the tensor is partitioned.
    Each dropout of a model has its own `stream`.

    ```mlir
    %y = moe.dropout %x {rate = 1.0e-1 : f64, stream = 3 : i64} : tensor<8x32x128xf32>
    ```
  }];
  let arguments = (ins
    Moe_FloatTensor:$input,
    F64Attr:$rate,
    I64Attr:$stream
  );
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
  let hasVerifier = 1;
}

def Moe_PaddingMaskOp : Moe_Op<"padding_mask", [Pure]> {
  let summary = "true where a token is not padding";
  let description = [{
    Produces the key-padding mask of `moe.attention` from token ids.

    ```mlir
    %mask = moe.padding_mask %tokens {pad_id = 1 : i64}
        : tensor<8x32xi32> -> tensor<8x32xi1>
    ```
  }];
  let arguments = (ins Moe_IndexTensor:$tokens, I64Attr:$pad_id);
  let results = (outs Moe_MaskTensor:$result);
  let assemblyFormat = "$tokens attr-dict `:` type($tokens) `->` type($result)";
  let hasVerifier = 1;
}

def Moe_AttentionOp : Moe_Op<"attention", [Pure, Moe_Differentiable]> {
  let summary = "multi-head scaled dot-product attention";
  let description = [{
    `query` is `[B, Sq, D]`, `key` and `value` are `[B, Sk, D]` (already
    projected; the projections are `moe.linear` ops, which is what tensor
    parallelism splits). `D` is split into `num_heads` heads of `D /
    num_heads`; each head computes `softmax(q k^T / sqrt(D / num_heads)) v`.
    `causal` masks keys after the query position (self-attention, `Sq ==
    Sk`); the optional `key_mask` (`[B, Sk]`, i1, true = attend) masks
    padding. Self-attention passes the same value as query, key and value
    inputs; cross-attention takes keys and values from the encoder.

    ```mlir
    %o = moe.attention %q, %k, %v key_mask %m {num_heads = 4 : i64, causal}
        : (tensor<8x32x128xf32>, tensor<8x32x128xf32>, tensor<8x32x128xf32>,
           tensor<8x32xi1>) -> tensor<8x32x128xf32>
    ```
  }];
  let arguments = (ins
    Moe_FloatTensor:$query,
    Moe_FloatTensor:$key,
    Moe_FloatTensor:$value,
    Optional<Moe_MaskTensor>:$key_mask,
    I64Attr:$num_heads,
    UnitAttr:$causal
  );
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $query `,` $key `,` $value (`key_mask` $key_mask^)? attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moe_CrossEntropyOp : Moe_Op<"cross_entropy", [Pure, Moe_Differentiable]> {
  let summary = "softmax cross-entropy with label smoothing, mean over tokens";
  let description = [{
    `logits` is `[..., V]`, `labels` (i32) is `[...]`. Tokens whose label is
    `ignore_index` do not count; the result is the mean over the others of
    `(1 - label_smoothing) * nll + label_smoothing * mean_v(-log p_v)`.

    ```mlir
    %loss = moe.cross_entropy %logits, %labels
        {label_smoothing = 1.0e-1 : f64, ignore_index = 1 : i64}
        : (tensor<8x32x1000xf32>, tensor<8x32xi32>) -> tensor<f32>
    ```
  }];
  let arguments = (ins
    Moe_FloatTensor:$logits,
    Moe_IndexTensor:$labels,
    DefaultValuedAttr<F64Attr, "0.0">:$label_smoothing,
    DefaultValuedAttr<I64Attr, "-100">:$ignore_index
  );
  let results = (outs Moe_Scalar:$loss);
  let assemblyFormat = [{
    $logits `,` $labels attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Mixture-of-Experts ops
//===----------------------------------------------------------------------===//

def Moe_GateOp : Moe_Op<"gate", [Moe_Differentiable]> {
  let summary = "MoE router: top-k experts, capacity slots, combine weights";
  let description = [{
    Routes the `S` tokens of `input` (`[..., M]`, tokens are the leading
    dimensions) to the `E` experts of `weight` (`[M, E]`), following
    DeepSpeed-MoE (see the dialect description and `#moe.gating`):

    * `logits = x W` (no bias), `gates = softmax(logits)` in f32;
    * `indices` (`[..., k]`, i32): the chosen experts, first choice first;
    * `locations` (`[..., k]`, i32): the slot in the expert's buffer, or -1
      for a dropped assignment. First choices take slots in token order;
      choice `j` queues behind all choices before `j` of that expert;
    * `weights` (`[..., k]`, f32): combine weights; the raw gate probability
      for top-1, renormalised over the kept choices for k >= 2, 0 if dropped;
    * `expert_counts` (`[E]`, i32): assignments per expert before dropping;
    * `aux_loss` (`tensor<f32>`): `E * sum_e mean(gates[:, e]) *
      mean(first_choice_mask[:, e])`.

    `capacity` is the slots per expert `C` (the second dimension of the
    `moe.dispatch` buffer); the verifier checks it against the configuration
    and `S`, so it cannot disagree with the routing. With `G = groups > 1`
    (`#moe.gating`) the tokens form `G` equal contiguous groups routed
    independently, each with the capacity `Cg` of `S / G` tokens:
    `capacity = G * Cg`, group `g` owns slots `[g * Cg, (g + 1) * Cg)` of
    every expert, `expert_counts` is the sum over groups and `aux_loss` the
    mean of the groups' aux losses. `eval` selects the
    evaluation behaviour: `eval_capacity_factor` and no noise. `stream`
    selects the gate's counter-based random stream (noise and RTS
    priorities), so routing does not depend on the partitioning.

    ```mlir
    %idx, %loc, %w, %counts, %aux = moe.gate %x, %wg
        {capacity = 16 : i64, config = #moe.gating<top_k = 2>, stream = 0 : i64}
        : (tensor<8x8x128xf32>, tensor<128x8xf32>)
          -> (tensor<8x8x2xi32>, tensor<8x8x2xi32>, tensor<8x8x2xf32>,
              tensor<8xi32>, tensor<f32>)
    ```
  }];
  let arguments = (ins
    Moe_FloatTensor:$input,
    Moe_FloatTensor:$weight,
    Moe_GatingAttr:$config,
    I64Attr:$capacity,
    I64Attr:$stream,
    UnitAttr:$eval
  );
  let results = (outs
    Moe_IndexTensor:$indices,
    Moe_IndexTensor:$locations,
    Moe_F32Tensor:$weights,
    Moe_IndexTensor:$expert_counts,
    Moe_Scalar:$aux_loss
  );
  let assemblyFormat = [{
    $input `,` $weight attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    int64_t getNumExperts();
    int64_t getNumTokens();
  }];
}

def Moe_DispatchOp : Moe_Op<"dispatch", [Pure, Moe_Differentiable]> {
  let summary = "scatter tokens into per-expert capacity buffers";
  let description = [{
    Copies each kept assignment of token `s` (choice `j`, expert
    `indices[s, j]`, slot `locations[s, j]`) into `result[expert, slot]`;
    unused slots are zero, dropped assignments (slot -1) are skipped. The
    result is `[E, C, M]`. Index based: every token is moved once per kept
    choice, `O(S * k * M)`.

    ```mlir
    %buf = moe.dispatch %x, %idx, %loc
        : (tensor<8x8x128xf32>, tensor<8x8x2xi32>, tensor<8x8x2xi32>)
          -> tensor<8x16x128xf32>
    ```
  }];
  let arguments = (ins
    Moe_FloatTensor:$input,
    Moe_IndexTensor:$indices,
    Moe_IndexTensor:$locations
  );
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $indices `,` $locations attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moe_ExpertFfnOp : Moe_Op<"expert_ffn", [Pure, Moe_Differentiable]> {
  let summary = "batched per-expert two-layer MLP";
  let description = [{
    For each expert `e`: `act(buf[e] W1[e] + b1[e]) W2[e] + b2[e]`, with
    `input` `[E, C, M]`, `w1` `[E, M, H]`, `b1` `[E, H]`, `w2` `[E, H, M]`,
    `b2` `[E, M]`; the result is `[E, C, M]`. Under expert parallelism `E`
    is the number of local experts.

    ```mlir
    %y = moe.expert_ffn gelu %buf, %w1, %b1, %w2, %b2
        : (tensor<8x16x128xf32>, tensor<8x128x512xf32>, tensor<8x512xf32>,
           tensor<8x512x128xf32>, tensor<8x128xf32>) -> tensor<8x16x128xf32>
    ```
  }];
  let arguments = (ins
    Moe_ActivationKind:$activation,
    Moe_FloatTensor:$input,
    Moe_FloatTensor:$w1,
    Moe_FloatTensor:$b1,
    Moe_FloatTensor:$w2,
    Moe_FloatTensor:$b2
  );
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $activation $input `,` $w1 `,` $b1 `,` $w2 `,` $b2 attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moe_CombineOp : Moe_Op<"combine", [Pure, Moe_Differentiable]> {
  let summary = "gather expert outputs back to tokens, weighted";
  let description = [{
    `result[s] = sum_j weights[s, j] * input[indices[s, j], locations[s, j]]`
    over the kept choices (slot != -1); a token whose choices were all
    dropped gets zero (the residual connection carries it). `input` is
    `[E, C, M]`; the result has the leading shape of `indices` and `M`.

    ```mlir
    %y = moe.combine %out, %idx, %loc, %w
        : (tensor<8x16x128xf32>, tensor<8x8x2xi32>, tensor<8x8x2xi32>,
           tensor<8x8x2xf32>) -> tensor<8x8x128xf32>
    ```
  }];
  let arguments = (ins
    Moe_FloatTensor:$input,
    Moe_IndexTensor:$indices,
    Moe_IndexTensor:$locations,
    Moe_F32Tensor:$weights
  );
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $indices `,` $locations `,` $weights attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moe_MoeLayerOp : Moe_Op<"moe_layer", []> {
  let summary = "a whole Mixture-of-Experts FFN block";
  let description = [{
    Gate, dispatch, per-expert FFN and combine in one op; the pass
    `moe-expand-moe-layer` rewrites it into `moe.gate`, `moe.dispatch`,
    `moe.expert_ffn` and `moe.combine`, computing the capacity from the
    static token count. `gate_weight` is `[M, E]`; the expert weights are as
    in `moe.expert_ffn`. Results: the layer output (same type as `input`),
    the expert counts `[E]` and the auxiliary loss.

    ```mlir
    %y, %counts, %aux = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2
        {config = #moe.gating<top_k = 2, capacity_factor = 1.25>, stream = 0 : i64}
        : (tensor<8x32x128xf32>, tensor<128x8xf32>, tensor<8x128x512xf32>,
           tensor<8x512xf32>, tensor<8x512x128xf32>, tensor<8x128xf32>)
          -> (tensor<8x32x128xf32>, tensor<8xi32>, tensor<f32>)
    ```
  }];
  let arguments = (ins
    Moe_ActivationKind:$activation,
    Moe_FloatTensor:$input,
    Moe_FloatTensor:$gate_weight,
    Moe_FloatTensor:$w1,
    Moe_FloatTensor:$b1,
    Moe_FloatTensor:$w2,
    Moe_FloatTensor:$b2,
    Moe_GatingAttr:$config,
    I64Attr:$stream,
    UnitAttr:$eval
  );
  let results = (outs
    Moe_FloatTensor:$result,
    Moe_IndexTensor:$expert_counts,
    Moe_Scalar:$aux_loss
  );
  let extraClassDeclaration = [{
    int64_t getNumExperts();
    int64_t getNumTokens();
    /// Slots per expert for this layer's tokens in its mode (all groups);
    /// -1 if none.
    int64_t inferCapacity();
  }];
  let assemblyFormat = [{
    $activation $input `,` $gate_weight `,` $w1 `,` $b1 `,` $w2 `,` $b2
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

// The backward ops that moe-differentiate emits.
include "dialects/Moe/MoeGradOps.td"
// The optimizer ops that moe-build-train-step emits.
include "dialects/Moe/MoeOptimOps.td"
// The local ops that moe-partition introduces.
include "dialects/Moe/MoePartitionOps.td"
// The ops of incremental decoding that moe-build-decoder emits.
include "dialects/Moe/MoeDecodeOps.td"

#endif // MOE_OPS_TD
