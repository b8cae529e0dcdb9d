//===- MoeOptimOps.td - Optimizer ops of the moe dialect --*- tablegen -*-===//
//
// The ops `moe-build-train-step` emits: global-norm clipping, the learning
// rate schedule and the AdamW update. Kept as ops of the dialect so the
// training step is inspectable and the partitioner can see (and reduce) the
// per-group partial sums.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_OPTIM_OPS_TD
#define MOE_OPTIM_OPS_TD

include "dialects/Moe/MoeOps.td"

def Moe_ParamGroup : I32EnumAttr<"ParamGroup", "parameter group", [
      I32EnumAttrCase<"dense", 0>,
      I32EnumAttrCase<"expert", 1>,
    ]> {
  let cppNamespace = "::mlir::moe";
  let description = [{
    `expert` parameters are the weights of MoE experts (split over the
    expert-parallel axis; their gradients are reduced over the
    expert-data-parallel group only); every other parameter is `dense`.
  }];
}

def Moe_SumSquaresOp : Moe_Op<"sum_squares", [Pure]> {
  let summary = "sum of the squares of all elements (for the global norm)";
  let description = [{
    One partial sum per gradient; the partial sums of a group are added and
    the groups combined into the global gradient norm. `group` tells the
    partitioner which ranks hold the other parts of this sum.

    ```mlir
    %s = moe.sum_squares dense %g : tensor<128x512xf32> -> tensor<f32>
    ```
  }];
  let arguments = (ins Moe_ParamGroup:$group, Moe_FloatTensor:$input);
  let results = (outs Moe_Scalar:$result);
  let assemblyFormat = [{
    $group $input attr-dict `:` type($input) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Moe_ClipByGlobalNormOp : Moe_Op<"clip_by_global_norm", [Pure]> {
  let summary = "global gradient norm and the factor that clips it";
  let description = [{
    From the sum of squares of all gradients returns `norm = sqrt(sum)` and
    `scale = min(1, max_norm / (norm + 1e-6))`, the factor the update
    applies to every gradient. A non-finite norm gives scale 0 (the step
    is skipped by the update rather than poisoning the weights).

    ```mlir
    %norm, %scale = moe.clip_by_global_norm %sumsq {max_norm = 1.0 : f64}
        : tensor<f32> -> (tensor<f32>, tensor<f32>)
    ```
  }];
  let arguments = (ins Moe_Scalar:$sum_squares, F64Attr:$max_norm);
  let results = (outs Moe_Scalar:$norm, Moe_Scalar:$scale);
  let assemblyFormat = [{
    $sum_squares attr-dict `:` type($sum_squares) `->` `(` type($norm) `,`
    type($scale) `)`
  }];
  let hasVerifier = 1;
}

def Moe_LrScheduleOp : Moe_Op<"lr_schedule", [Pure]> {
  let summary = "inverse-square-root learning rate with linear warmup";
  let description = [{
    For the 1-based `step`: `lr = peak_lr * step / warmup_steps` during
    warmup, then `peak_lr * sqrt(warmup_steps / step)` (the inverse square
    root schedule of the Transformer recipes); without warmup
    (`warmup_steps = 0`) `peak_lr / sqrt(step)`.

    ```mlir
    %lr = moe.lr_schedule %step {peak_lr = 3.0e-4 : f64, warmup_steps = 4000 : i64}
        : tensor<i64> -> tensor<f32>
    ```
  }];
  let arguments = (ins 0DTensorOf<[I64]>:$step, F64Attr:$peak_lr,
                       I64Attr:$warmup_steps);
  let results = (outs Moe_Scalar:$lr);
  let assemblyFormat = "$step attr-dict `:` type($step) `->` type($lr)";
  let hasVerifier = 1;
}

def Moe_AdamWOp : Moe_Op<"adamw", [Pure,
    AllTypesMatch<["param", "grad", "exp_avg", "exp_avg_sq", "new_param",
                   "new_exp_avg", "new_exp_avg_sq"]>,
    AllTypesMatch<["lr", "grad_scale"]>]> {
  let summary = "one AdamW step for one parameter";
  let description = [{
    With `g = grad * grad_scale` (the clipping factor), the 1-based `step`
    and fp32 moments:
    `m' = beta1 m + (1 - beta1) g`, `v' = beta2 v + (1 - beta2) g^2`,
    `p' = p - lr * (m' / (1 - beta1^step)) / (sqrt(v' / (1 - beta2^step)) + epsilon)
          - lr * weight_decay * p` (decoupled weight decay).
    `group` records whether the parameter is an expert weight.

    ```mlir
    %p2, %m2, %v2 = moe.adamw dense %p, %g, %m, %v, %lr, %scale, %step
        {beta1 = 9.0e-1 : f64, beta2 = 9.8e-1 : f64, epsilon = 1.0e-8 : f64,
         weight_decay = 0.0 : f64}
        : tensor<128x512xf32>, tensor<f32>, tensor<i64>
    ```
  }];
  let arguments = (ins Moe_ParamGroup:$group, Moe_F32Tensor:$param,
                       Moe_F32Tensor:$grad, Moe_F32Tensor:$exp_avg,
                       Moe_F32Tensor:$exp_avg_sq, Moe_Scalar:$lr,
                       Moe_Scalar:$grad_scale, 0DTensorOf<[I64]>:$step,
                       F64Attr:$beta1, F64Attr:$beta2, F64Attr:$epsilon,
                       F64Attr:$weight_decay);
  let results = (outs Moe_F32Tensor:$new_param, Moe_F32Tensor:$new_exp_avg,
                      Moe_F32Tensor:$new_exp_avg_sq);
  let assemblyFormat = [{
    $group $param `,` $grad `,` $exp_avg `,` $exp_avg_sq `,` $lr `,`
    $grad_scale `,` $step attr-dict `:` type($param) `,` type($lr) `,`
    type($step)
  }];
  let hasVerifier = 1;
}

def Moe_ConvertOp : Moe_Op<"convert", [Pure, SameOperandsAndResultShape]> {
  let summary = "element type conversion between f32, bf16 and f16";
  let description = [{
    Converts every element: to bf16 or f16 by rounding to nearest, ties to
    even (values beyond f16's range become infinities, NaN stays NaN); to
    f32 exactly. `moe-offload` uses it for the 16-bit device copies of the
    parameters: the fp32 master is rounded once after its update, and each
    GEMM reads an fp32 view of the copy made just before it (the GEMM's own
    rounding of it to `compute_type` then changes nothing).

    ```mlir
    %w16 = moe.convert %w : tensor<128x512xf32> -> tensor<128x512xbf16>
    %w32 = moe.convert %w16 : tensor<128x512xbf16> -> tensor<128x512xf32>
    ```
  }];
  let arguments = (ins Moe_FloatTensor:$input);
  let results = (outs Moe_FloatTensor:$result);
  let assemblyFormat = [{
    $input attr-dict `:` type($input) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Moe_ToHostOp : Moe_Op<"to_host", [Pure,
    AllTypesMatch<["input", "buffer", "result"]>]> {
  let summary = "a device tensor's copy in a host buffer (gradient streaming)";
  let description = [{
    The value of `input`, held in `buffer`: a step argument placed in host
    memory (`moe.grad_buffer`, `moe.placement = "host"`), which the plan
    writes. `moe-stream-gradients` copies each reduced gradient whose AdamW
    runs on the host there as soon as its sum of squares is taken, so the
    device's copy dies at once instead of living until the optimizer.

    ```mlir
    %gh = moe.to_host %g into %buffer : tensor<32x128xf32>
    ```
  }];
  let arguments = (ins Moe_F32Tensor:$input, Moe_F32Tensor:$buffer);
  let results = (outs Moe_F32Tensor:$result);
  let assemblyFormat = [{
    $input `into` $buffer attr-dict `:` type($input)
  }];
}

#endif // MOE_OPTIM_OPS_TD
