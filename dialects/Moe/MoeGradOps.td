//===- MoeGradOps.td - Backward ops of the moe dialect ----*- tablegen -*-===//
//
// The ops that `moe-differentiate` emits. They are ops of the dialect so the
// whole training step stays inspectable IR; each names the forward op it
// differentiates and takes the forward values it needs (recomputation of
// cheap intermediates is the kernel's business, not the IR's).
//
//===----------------------------------------------------------------------===//
#ifndef MOE_GRAD_OPS_TD
#define MOE_GRAD_OPS_TD

include "dialects/Moe/MoeOps.td"

class Moe_GradOp<string mnemonic, list<Trait> traits = []>
    : Moe_Op<mnemonic, !listconcat([Pure], traits)>;

def Moe_LinearGradOp : Moe_GradOp<"linear_grad", [
    AllTypesMatch<["input", "input_grad"]>,
    AllTypesMatch<["weight", "weight_grad"]>]> {
  let summary = "gradients of moe.linear with respect to input and weight";
  let description = [{
    For `y = x W`: `dx = dy W^T`, `dW = x^T dy` summed over the token
    dimensions (with `transpose_weight`, `W` is `[N, K]` and `dW = dy^T x`).
    The bias gradient is `moe.bias_grad`.

    ```mlir
    %dx, %dw = moe.linear_grad %dy, %x, %w
        : (tensor<8x32x512xf32>, tensor<8x32x128xf32>, tensor<128x512xf32>)
          -> (tensor<8x32x128xf32>, tensor<128x512xf32>)
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$result_grad, Moe_FloatTensor:$input,
                       Moe_FloatTensor:$weight, UnitAttr:$transpose_weight);
  let results = (outs Moe_FloatTensor:$input_grad,
                      Moe_FloatTensor:$weight_grad);
  let assemblyFormat = [{
    $result_grad `,` $input `,` $weight attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moe_BiasGradOp : Moe_GradOp<"bias_grad"> {
  let summary = "sum of a gradient over all but the last dimension";
  let description = [{
    The gradient of a bias `[N]` added to `[..., N]`.

    ```mlir
    %db = moe.bias_grad %dy : tensor<8x32x512xf32> -> tensor<512xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$result_grad);
  let results = (outs Moe_FloatTensor:$bias_grad);
  let assemblyFormat = [{
    $result_grad attr-dict `:` type($result_grad) `->` type($bias_grad)
  }];
  let hasVerifier = 1;
}

def Moe_LayerNormGradOp : Moe_GradOp<"layer_norm_grad", [
    AllTypesMatch<["input", "input_grad", "result_grad"]>,
    AllTypesMatch<["scale", "scale_grad", "bias_grad"]>]> {
  let summary = "gradients of moe.layer_norm";
  let description = [{
    Recomputes the mean and inverse standard deviation from `input`.

    ```mlir
    %dx, %dg, %db = moe.layer_norm_grad %dy, %x, %gamma {epsilon = 1.0e-5 : f64}
        : (tensor<8x32x128xf32>, tensor<8x32x128xf32>, tensor<128xf32>)
          -> (tensor<8x32x128xf32>, tensor<128xf32>, tensor<128xf32>)
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$result_grad, Moe_FloatTensor:$input,
                       Moe_FloatTensor:$scale,
                       DefaultValuedAttr<F64Attr, "1.0e-5">:$epsilon);
  let results = (outs Moe_FloatTensor:$input_grad, Moe_FloatTensor:$scale_grad,
                      Moe_FloatTensor:$bias_grad);
  let assemblyFormat = [{
    $result_grad `,` $input `,` $scale attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moe_ActivationGradOp : Moe_GradOp<"activation_grad", [
    AllTypesMatch<["result_grad", "input", "input_grad"]>]> {
  let summary = "gradient of moe.activation";
  let description = [{
    `dx = dy * act'(x)`.

    ```mlir
    %dx = moe.activation_grad gelu %dy, %x : tensor<8x32x512xf32>
    ```
  }];
  let arguments = (ins Moe_ActivationKind:$kind, Moe_FloatTensor:$result_grad,
                       Moe_FloatTensor:$input);
  let results = (outs Moe_FloatTensor:$input_grad);
  let assemblyFormat = [{
    $kind $result_grad `,` $input attr-dict `:` type($input)
  }];
  let hasVerifier = 1;
}

def Moe_AttentionGradOp : Moe_GradOp<"attention_grad", [
    AllTypesMatch<["result_grad", "query", "query_grad"]>,
    AllTypesMatch<["key", "key_grad"]>,
    AllTypesMatch<["value", "value_grad"]>]> {
  let summary = "gradients of moe.attention";
  let description = [{
    Recomputes the attention probabilities from `query` and `key` (same
    masks and heads as the forward op) and returns the gradients of query,
    key and value.

    ```mlir
    %dq, %dk, %dv = moe.attention_grad %do, %q, %k, %v key_mask %m
        {num_heads = 4 : i64}
        : (tensor<8x32x128xf32>, tensor<8x32x128xf32>, tensor<8x32x128xf32>,
           tensor<8x32x128xf32>, tensor<8x32xi1>)
          -> (tensor<8x32x128xf32>, tensor<8x32x128xf32>, tensor<8x32x128xf32>)
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$result_grad, Moe_FloatTensor:$query,
                       Moe_FloatTensor:$key, Moe_FloatTensor:$value,
                       Optional<Moe_MaskTensor>:$key_mask,
                       I64Attr:$num_heads, UnitAttr:$causal);
  let results = (outs Moe_FloatTensor:$query_grad, Moe_FloatTensor:$key_grad,
                      Moe_FloatTensor:$value_grad);
  let assemblyFormat = [{
    $result_grad `,` $query `,` $key `,` $value (`key_mask` $key_mask^)?
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moe_CrossEntropyGradOp : Moe_GradOp<"cross_entropy_grad", [
    AllTypesMatch<["logits", "logits_grad"]>]> {
  let summary = "gradient of moe.cross_entropy with respect to the logits";
  let description = [{
    `dlogits = dloss * ((softmax(logits) - target) / count)` per counted
    token, with the smoothed target; zero for ignored tokens.

    ```mlir
    %dl = moe.cross_entropy_grad %dloss, %logits, %labels
        {label_smoothing = 1.0e-1 : f64, ignore_index = 0 : i64}
        : (tensor<f32>, tensor<8x32x1000xf32>, tensor<8x32xi32>)
          -> tensor<8x32x1000xf32>
    ```
  }];
  let arguments = (ins Moe_Scalar:$loss_grad, Moe_FloatTensor:$logits,
                       Moe_IndexTensor:$labels,
                       DefaultValuedAttr<F64Attr, "0.0">:$label_smoothing,
                       DefaultValuedAttr<I64Attr, "-100">:$ignore_index);
  let results = (outs Moe_FloatTensor:$logits_grad);
  let assemblyFormat = [{
    $loss_grad `,` $logits `,` $labels attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moe_EmbeddingGradOp : Moe_GradOp<"embedding_grad"> {
  let summary = "gradient of moe.embedding with respect to its table";
  let description = [{
    Scatter-adds `dy` (times `sqrt(M)` if `scaled`) into the rows of a
    zero `[V, M]` table named by `tokens`.

    ```mlir
    %dt = moe.embedding_grad %dy, %tokens {scaled}
        : (tensor<8x32x128xf32>, tensor<8x32xi32>) -> tensor<1000x128xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$result_grad, Moe_IndexTensor:$tokens,
                       UnitAttr:$scaled);
  let results = (outs Moe_FloatTensor:$table_grad);
  let assemblyFormat = [{
    $result_grad `,` $tokens attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moe_PositionGradOp : Moe_GradOp<"position_grad"> {
  let summary = "gradient of learned positions: sum over the batch";
  let description = [{
    `dpos[p] = sum over leading dims of dy[..., p, :]` for `p` below the
    sequence length, zero for the rows beyond it.

    ```mlir
    %dp = moe.position_grad %dy : tensor<8x32x128xf32> -> tensor<64x128xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$result_grad);
  let results = (outs Moe_FloatTensor:$positions_grad);
  let assemblyFormat = [{
    $result_grad attr-dict `:` type($result_grad) `->` type($positions_grad)
  }];
  let hasVerifier = 1;
}

def Moe_GateGradOp : Moe_GradOp<"gate_grad", [
    AllTypesMatch<["input", "input_grad"]>,
    AllTypesMatch<["weight", "weight_grad"]>]> {
  let summary = "gradients of moe.gate through combine weights and aux loss";
  let description = [{
    Recomputes the softmax gates from `input` and `weight` (the same noise
    stream as the forward gate) and backpropagates the gradients of the
    combine weights (through the top-k renormalisation over the kept
    choices, read from `indices` and `locations`) and of the auxiliary loss
    (through the mean gate probabilities; the first-choice mask is not
    differentiable) to `input` and `weight`.

    ```mlir
    %dx, %dwg = moe.gate_grad %dw, %daux, %x, %wg, %idx, %loc
        {capacity = 16 : i64, config = #moe.gating<top_k = 2>, stream = 0 : i64}
        : (tensor<8x8x2xf32>, tensor<f32>, tensor<8x8x128xf32>,
           tensor<128x8xf32>, tensor<8x8x2xi32>, tensor<8x8x2xi32>)
          -> (tensor<8x8x128xf32>, tensor<128x8xf32>)
    ```
  }];
  let arguments = (ins Moe_F32Tensor:$weights_grad, Moe_Scalar:$aux_loss_grad,
                       Moe_FloatTensor:$input, Moe_FloatTensor:$weight,
                       Moe_IndexTensor:$indices, Moe_IndexTensor:$locations,
                       Moe_GatingAttr:$config, I64Attr:$capacity,
                       I64Attr:$stream, UnitAttr:$eval);
  let results = (outs Moe_FloatTensor:$input_grad,
                      Moe_FloatTensor:$weight_grad);
  let assemblyFormat = [{
    $weights_grad `,` $aux_loss_grad `,` $input `,` $weight `,` $indices `,`
    $locations attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moe_DispatchGradOp : Moe_GradOp<"dispatch_grad"> {
  let summary = "gradient of moe.dispatch: gather from the expert buffers";
  let description = [{
    `dx[s] = sum over kept choices j of dbuf[indices[s, j], locations[s, j]]`.

    ```mlir
    %dx = moe.dispatch_grad %dbuf, %idx, %loc
        : (tensor<8x16x128xf32>, tensor<8x8x2xi32>, tensor<8x8x2xi32>)
          -> tensor<8x8x128xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$result_grad, Moe_IndexTensor:$indices,
                       Moe_IndexTensor:$locations);
  let results = (outs Moe_FloatTensor:$input_grad);
  let assemblyFormat = [{
    $result_grad `,` $indices `,` $locations attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moe_CombineGradOp : Moe_GradOp<"combine_grad", [
    AllTypesMatch<["input", "input_grad"]>,
    AllTypesMatch<["weights", "weights_grad"]>]> {
  let summary = "gradients of moe.combine";
  let description = [{
    `dbuf[e, c] = weights[s, j] * dy[s]` for the token `s` and choice `j`
    that own slot `(e, c)` (zero for unused slots), and
    `dweights[s, j] = <dy[s], buf[e, c]>` (zero for dropped choices).

    ```mlir
    %dbuf, %dw = moe.combine_grad %dy, %buf, %idx, %loc, %w
        : (tensor<8x8x128xf32>, tensor<8x16x128xf32>, tensor<8x8x2xi32>,
           tensor<8x8x2xi32>, tensor<8x8x2xf32>)
          -> (tensor<8x16x128xf32>, tensor<8x8x2xf32>)
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$result_grad, Moe_FloatTensor:$input,
                       Moe_IndexTensor:$indices, Moe_IndexTensor:$locations,
                       Moe_F32Tensor:$weights);
  let results = (outs Moe_FloatTensor:$input_grad, Moe_F32Tensor:$weights_grad);
  let assemblyFormat = [{
    $result_grad `,` $input `,` $indices `,` $locations `,` $weights attr-dict
    `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Moe_ExpertFfnGradOp : Moe_GradOp<"expert_ffn_grad", [
    AllTypesMatch<["result_grad", "input", "input_grad"]>,
    AllTypesMatch<["w1", "w1_grad"]>, AllTypesMatch<["b1", "b1_grad"]>,
    AllTypesMatch<["w2", "w2_grad"]>, AllTypesMatch<["b2", "b2_grad"]>]> {
  let summary = "gradients of moe.expert_ffn";
  let description = [{
    Recomputes the hidden pre-activation per expert and returns the
    gradients of the buffer and of every expert weight.

    ```mlir
    %dbuf, %dw1, %db1, %dw2, %db2 = moe.expert_ffn_grad gelu %dy, %buf,
        %w1, %b1, %w2, %b2
        : (tensor<8x16x128xf32>, tensor<8x16x128xf32>, tensor<8x128x512xf32>,
           tensor<8x512xf32>, tensor<8x512x128xf32>, tensor<8x128xf32>)
          -> (tensor<8x16x128xf32>, tensor<8x128x512xf32>, tensor<8x512xf32>,
              tensor<8x512x128xf32>, tensor<8x128xf32>)
    ```
  }];
  let arguments = (ins Moe_ActivationKind:$activation,
                       Moe_FloatTensor:$result_grad, Moe_FloatTensor:$input,
                       Moe_FloatTensor:$w1, Moe_FloatTensor:$b1,
                       Moe_FloatTensor:$w2, Moe_FloatTensor:$b2);
  let results = (outs Moe_FloatTensor:$input_grad, Moe_FloatTensor:$w1_grad,
                      Moe_FloatTensor:$b1_grad, Moe_FloatTensor:$w2_grad,
                      Moe_FloatTensor:$b2_grad);
  let assemblyFormat = [{
    $activation $result_grad `,` $input `,` $w1 `,` $b1 `,` $w2 `,` $b2
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

#endif // MOE_GRAD_OPS_TD
