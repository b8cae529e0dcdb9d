//===- Passes.td - Passes over the moe dialect ------------*- tablegen -*-===//
#ifndef MOE_PASSES_TD
#define MOE_PASSES_TD

include "mlir/Pass/PassBase.td"

//===----------------------------------------------------------------------===//
// Expansion
//===----------------------------------------------------------------------===//

def MoeExpandMoeLayer : Pass<"moe-expand-moe-layer"> {
  let summary = "Expand moe.moe_layer into gate, dispatch, expert_ffn, combine";
  let description = [{
    Rewrites every composite `moe.moe_layer` into its four stages and infers
    the expert capacity `C` from the static token count `S`, the number of
    experts `E` and the gating configuration (training or eval mode), which
    gives the `[E, C, M]` shape of the expert buffers.

    Before:

    ```mlir
    %y, %counts, %aux = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2
        {config = #moe.gating<top_k = 2>, stream = 0 : i64}
        : (tensor<4x16x64xf32>, tensor<64x8xf32>, tensor<8x64x256xf32>,
           tensor<8x256xf32>, tensor<8x256x64xf32>, tensor<8x64xf32>)
          -> (tensor<4x16x64xf32>, tensor<8xi32>, tensor<f32>)
    ```

    After (S = 64, E = 8, k = 2, capacity_factor = 1: C = 16):

    ```mlir
    %idx, %loc, %w, %counts, %aux = moe.gate %x, %wg
        {capacity = 16 : i64, config = #moe.gating<top_k = 2>, stream = 0 : i64}
        : (tensor<4x16x64xf32>, tensor<64x8xf32>)
          -> (tensor<4x16x2xi32>, tensor<4x16x2xi32>, tensor<4x16x2xf32>,
              tensor<8xi32>, tensor<f32>)
    %buf = moe.dispatch %x, %idx, %loc : (...) -> tensor<8x16x64xf32>
    %out = moe.expert_ffn gelu %buf, %w1, %b1, %w2, %b2 : (...) -> tensor<8x16x64xf32>
    %y = moe.combine %out, %idx, %loc, %w : (...) -> tensor<4x16x64xf32>
    ```

    Fails with a diagnostic on the op when no capacity exists.
  }];
  let dependentDialects = ["::mlir::moe::MoeDialect"];
}

//===----------------------------------------------------------------------===//
// Training
//===----------------------------------------------------------------------===//

def MoeDifferentiate : Pass<"moe-differentiate", "::mlir::ModuleOp"> {
  let summary = "Build the gradient function of a model (reverse mode)";
  let description = [{
    From `@forward(params..., batch...) -> (loss, aux_loss, metrics...)`
    builds `@forward_grad` with the same arguments, returning the forward
    results followed by one gradient per `moe.param` argument (result
    attributes `moe.role = "grad"` and the parameter's `moe.param`). The
    objective is `loss + aux-loss-coef * aux_loss`. The backward graph is
    built op by op, in reverse, through `DifferentiableOpInterface`; values
    used several times accumulate their gradients with `moe.add`. Composite
    `moe.moe_layer` ops must be expanded first.

    Before:

    ```mlir
    func.func @forward(%x: tensor<4x8xf32>, %w: tensor<8x8xf32> {moe.param = "w"},
                       %labels: tensor<4xi32>) -> (tensor<f32> {moe.role = "loss"}) {
      %y = moe.linear %x, %w : (tensor<4x8xf32>, tensor<8x8xf32>) -> tensor<4x8xf32>
      %l = moe.cross_entropy %y, %labels : (tensor<4x8xf32>, tensor<4xi32>) -> tensor<f32>
      return %l : tensor<f32>
    }
    ```

    After (added):

    ```mlir
    func.func @forward_grad(...) -> (tensor<f32> {moe.role = "loss"},
        tensor<8x8xf32> {moe.param = "w", moe.role = "grad"}) {
      %y = moe.linear %x, %w ...
      %l = moe.cross_entropy %y, %labels ...
      %one = arith.constant dense<1.0> : tensor<f32>
      %dy = moe.cross_entropy_grad %one, %y, %labels ...
      %dx, %dw = moe.linear_grad %dy, %x, %w ...
      return %l, %dw : tensor<f32>, tensor<8x8xf32>
    }
    ```
  }];
  let options = [
    Option<"functionName", "function", "std::string", "\"forward\"",
           "Name of the model function to differentiate">,
    Option<"auxLossCoef", "aux-loss-coef", "double", "0.01",
           "Weight of the auxiliary (load-balancing) loss in the objective">,
  ];
  let dependentDialects = ["::mlir::moe::MoeDialect",
                           "::mlir::arith::ArithDialect"];
}

def MoeBuildDecoder : Pass<"moe-build-decoder", "::mlir::ModuleOp"> {
  let summary = "Build @encode, @decode_step (incremental decoding) and @evaluate from @forward";
  let description = [{
    Derives the two inference functions of an encoder-decoder from its
    training forward function, for decoding one target token at a time:

    ```
    @encode(params..., src_tokens) -> (states...)
    @decode_step(params..., tokens, position, self_mask, caches..., states...)
      -> (logits, key_rows..., value_rows...)
    ```

    The ops of `@forward` that do not depend on the target tokens (the
    encoder, the source padding mask, the cross-attention key and value
    projections) go to `@encode`; what the decoder reads of them are its
    results (`moe.name = "state.N"`), which `@decode_step` takes as inputs
    of the same names. The ops that depend on the target tokens go to
    `@decode_step` for one new token per sequence (`tokens` is `[B, 1]`):
    the target embedding becomes `moe.embedding_at` at `position`, every
    causal self-attention writes its new key and value rows into the
    caches of the earlier positions (`cache.k.N`, `cache.v.N`, `[B, T, D]`)
    with `moe.cache_update` and attends over them under `self_mask`
    (`[B, T]`, true for positions `0 .. position`), and the loss is dropped:
    the logits of the new token are the first result, followed by the new
    rows (`key_rows.N`, `value_rows.N`), which the caller appends to its
    caches. Both functions run in evaluation mode: no dropout, MoE layers
    with the evaluation capacity factor (`eval`).

    It also builds `@evaluate(params..., batch...) -> (loss)`: `@forward`
    in evaluation mode (no dropout, `eval` MoE layers), whose loss on
    held-out batches is the validation loss (teacher forcing).

    Fails, naming the op, when a target-dependent op mixes target
    positions other than through causal self-attention (then the decoder
    cannot run one position at a time).
  }];
  let options = [
    Option<"functionName", "function", "std::string", "\"forward\"",
           "The training forward function">,
    Option<"batch", "batch", "int64_t", "0",
           "Sequences decoded at once (0: the training batch)">,
  ];
  let dependentDialects = ["::mlir::moe::MoeDialect",
                           "::mlir::func::FuncDialect"];
}

def MoeBuildTrainStep : Pass<"moe-build-train-step", "::mlir::ModuleOp"> {
  let summary = "Build @train_step: clipping, LR schedule, AdamW updates";
  let description = [{
    From the gradient function built by `moe-differentiate` builds

    ```
    @train_step(params..., exp_avg..., exp_avg_sq..., batch..., step)
      -> (loss, aux_loss, expert_counts..., grad_norm, lr,
          params'..., exp_avg'..., exp_avg_sq'...)
    ```

    * global-norm gradient clipping: `moe.sum_squares` per gradient, summed
      per parameter group (`dense`, `expert`), then
      `moe.clip_by_global_norm` (`clip-norm = 0` disables clipping);
    * `moe.lr_schedule`: linear warmup to `lr` over `warmup-steps`, then
      inverse square root;
    * `moe.adamw` per parameter, fp32 moments, decoupled weight decay
      applied to matrices only (biases and norm scales are not decayed).

    Parameters whose weights feed `moe.expert_ffn` form the `expert` group
    (their gradients are reduced over the expert-data-parallel ranks when
    partitioned); every other parameter is `dense`. Optimizer state
    arguments and results carry `moe.opt_state` and `moe.state_of`.

    Example (one parameter, excerpt):

    ```mlir
    %s = moe.sum_squares dense %dw : tensor<8x8xf32> -> tensor<f32>
    %norm, %scale = moe.clip_by_global_norm %s {max_norm = 1.0 : f64}
        : tensor<f32> -> (tensor<f32>, tensor<f32>)
    %lr = moe.lr_schedule %step {peak_lr = 5.0e-4 : f64, warmup_steps = 4000 : i64}
        : tensor<i64> -> tensor<f32>
    %w2, %m2, %v2 = moe.adamw dense %w, %dw, %m, %v, %lr, %scale, %step {...}
        : tensor<8x8xf32>, tensor<f32>, tensor<i64>
    ```
  }];
  let options = [
    Option<"functionName", "function", "std::string", "\"forward_grad\"",
           "Gradient function built by moe-differentiate">,
    Option<"learningRate", "lr", "double", "5.0e-4", "Peak learning rate">,
    Option<"warmupSteps", "warmup-steps", "int64_t", "4000",
           "Linear warmup steps before the inverse-sqrt decay">,
    Option<"beta1", "beta1", "double", "0.9", "AdamW beta1">,
    Option<"beta2", "beta2", "double", "0.98", "AdamW beta2">,
    Option<"epsilon", "epsilon", "double", "1.0e-8", "AdamW epsilon">,
    Option<"weightDecay", "weight-decay", "double", "0.0",
           "Decoupled weight decay of matrices">,
    Option<"clipNorm", "clip-norm", "double", "1.0",
           "Global gradient norm bound (0 disables clipping)">,
  ];
  let dependentDialects = ["::mlir::moe::MoeDialect"];
}

def MoeEmitPlan : Pass<"moe-emit-plan", "::mlir::ModuleOp"> {
  let summary = "Write the FlatBuffers execution plan of @train_step";
  let description = [{
    Serializes the training step into a plan file the runtime executes
    (`runtime/src/moert/plan/plan.fbs`): a persistent buffer per argument
    (parameters with their `moe.init` initializers and groups, AdamW
    moments, batch inputs, the step), arena buffers placed by the static
    memory plan with their live ranges, and one instruction per op, named
    after it, with typed attributes (enums in their dialect spelling,
    `#moe.gating` flattened). AdamW updates parameters and moments in place;
    splat constants become `fill` instructions; the step's results are the
    arena buffers named `output:<role>`. The file is written atomically.
    The IR is left unchanged.

    ```
    moe-opt model.mlir --moe-training-pipeline \
        --moe-emit-plan="output=model.moeplan seed=1" -o /dev/null
    ```
  }];
  let options = [
    Option<"output", "output", "std::string", "\"\"",
           "Path of the plan file to write">,
    Option<"functionName", "function", "std::string", "\"train_step\"",
           "The training step function">,
    Option<"seed", "seed", "uint64_t", "0",
           "Random seed recorded in the plan's training configuration">,
    Option<"alignment", "alignment", "int64_t", "64",
           "Byte alignment of the arena buffers">,
    Option<"gpuKernels", "gpu-kernels", "std::string", "\"80,90\"",
           "GPU architectures (comma-separated 10 * major + minor) to "
           "generate the MoE dispatch/combine kernels for, as PTX in the "
           "plan (docs/codegen.md); 'none' for no device code">,
    Option<"dumpKernels", "dump-kernels", "std::string", "\"\"",
           "Directory to write the generated kernels' PTX to "
           "(moe_kernels.sm_XX.ptx), for inspection">,
  ];
}

//===----------------------------------------------------------------------===//
// Mixed precision
//===----------------------------------------------------------------------===//

def MoeMixedPrecision : Pass<"moe-mixed-precision", "::mlir::ModuleOp"> {
  let summary = "bf16/fp16 compute for GEMMs, attention and experts; fp16 loss scaling";
  let description = [{
    Chooses the input precision of the matrix products: every `moe.linear`,
    `moe.attention`, `moe.expert_ffn` and their gradient ops get
    `compute_type = bf16` (or `f16`): their inputs are rounded to that
    format and multiplied with fp32 accumulation (cuBLAS's bf16/fp16 GEMMs
    with fp32 compute; the CPU backend emulates it). Tensor types do not
    change: parameters stay fp32 master weights, the AdamW moments fp32.
    The router (`moe.gate`, `moe.gate_grad`: gating GEMM, softmax, top-k),
    the loss (`moe.cross_entropy` and its gradient), layer norms and the
    optimizer always stay fp32: the pass never marks them, and rejects
    input that does. `compute=fp32` removes every mark.

    With `compute=fp16` and a `@train_step`, the step also gets DeepSpeed's
    dynamic loss scaling: a new scalar batch input `loss_scale`
    (`moe.input = "loss_scale"`, written by the trainer every step) scales
    the loss gradient seeds (`moe.cross_entropy_grad`'s loss gradient and
    `moe.gate_grad`'s aux-loss gradient) before the backward pass; the
    global sum of squares is divided by `loss_scale^2` before
    `moe.clip_by_global_norm` (so the reported norm and the clipping see
    the true gradients) and AdamW's gradient factor becomes
    `clip_scale / loss_scale`. A non-finite gradient anywhere makes the
    (all-reduced) norm non-finite, the clipping factor 0, and AdamW skips
    the update: the step is skipped on every rank. The trainer reads the
    norm, updates the scale (2^16 initially, halved on overflow after the
    hysteresis, doubled after 1000 clean steps) and keeps the optimizer's
    step count at the number of applied steps.

    Runs last (after partitioning), since it marks the ops the other passes
    produce.

    ```mlir
    %y = moe.linear %x, %w {compute_type = bf16}
        : (tensor<8x128xf32>, tensor<128x512xf32>) -> tensor<8x512xf32>
    %idx, %loc, %w, %counts, %aux = moe.gate %x, %wg {...}   // unmarked: fp32
    ```
  }];
  let options = [
    Option<"compute", "compute", "::mlir::moe::ComputePrecision",
           "::mlir::moe::ComputePrecision::bf16",
           "Input precision of GEMMs, attention and experts",
           [{::llvm::cl::values(
             clEnumValN(::mlir::moe::ComputePrecision::bf16, "bf16",
                        "bfloat16 inputs, fp32 accumulation"),
             clEnumValN(::mlir::moe::ComputePrecision::fp16, "fp16",
                        "IEEE half inputs, fp32 accumulation, dynamic loss scaling"),
             clEnumValN(::mlir::moe::ComputePrecision::fp32, "fp32",
                        "full precision (removes every compute_type)"))}]>,
  ];
  let dependentDialects = ["::mlir::moe::MoeDialect",
                           "::mlir::arith::ArithDialect"];
}

def MoeOffload : Pass<"moe-offload", "::mlir::ModuleOp"> {
  let summary = "E+Z-Offload: optimizer state and fp32 master weights in host "
                "memory, 16-bit parameters on the device";
  let description = [{
    The heterogeneous memory placement of ZeRO-Offload, as the paper's
    E+Z-Offload uses it, on `@train_step` (after `moe-partition`, before
    `moe-bucket-gradients`).

    `mode=optimizer` marks every AdamW moment argument
    `moe.placement = "host"`: the plan keeps it in host memory and AdamW
    updates it there (the device keeps fp32 parameters and gradients).

    `mode=params` does that and also moves the fp32 master weights of the
    parameters that only feed matrix products (linear and expert weights)
    to the host, leaving a 16-bit copy (`device-type`, bf16 or f16) on the
    device:
      - a new argument `moe.device_copy = "<name>"` of the parameter's
        local shape in 16 bits, in device memory;
      - every GEMM that read the parameter reads `moe.convert` of the copy,
        made just before it (a temporary of the arena);
      - the master (`moe.param`, `moe.placement = "host"`) is only read and
        written by AdamW; under ZeRO it becomes this rank's shard, as the
        moments (the all-slice that cut it goes), so host memory holds one
        shard per rank, not a replica;
      - after AdamW the updated master is rounded to 16 bits and (ZeRO)
        all-gathered in 16 bits, half the bytes of the fp32 all-gather, into
        the copy: a result with `moe.role = "new_device_copy"`;
      - `@refresh_params` (masters -> copies: the same rounding and
        gathers) is added for the runtime to run after initializing or
        loading the masters.
    With GEMMs in the same 16-bit `compute_type` (the pipeline's
    `precision`), every GEMM sees the bits it saw before, so the step
    computes exactly what the plan without offload computes. Router
    weights, embeddings, norms and biases keep an fp32 device copy as the
    master; their moments still go to the host.

    Plans with decoding functions (`moe-build-decoder`) are refused with
    `mode=params`: compile the evaluation plan without offload (the
    checkpoint, fp32 logical tensors, is the same).
  }];
  let options = [
    Option<"mode", "mode", "::mlir::moe::OffloadMode",
           "::mlir::moe::OffloadMode::optimizer",
           "What lives in host memory",
           [{::llvm::cl::values(
             clEnumValN(::mlir::moe::OffloadMode::none, "none",
                        "nothing (the pass changes nothing)"),
             clEnumValN(::mlir::moe::OffloadMode::optimizer, "optimizer",
                        "the AdamW moments"),
             clEnumValN(::mlir::moe::OffloadMode::params, "params",
                        "the moments and the fp32 master weights of GEMM "
                        "weights, with 16-bit device copies"))}]>,
    Option<"deviceType", "device-type", "::mlir::moe::ComputePrecision",
           "::mlir::moe::ComputePrecision::bf16",
           "Element type of the device copies (mode=params; the GEMMs' "
           "compute type)",
           [{::llvm::cl::values(
             clEnumValN(::mlir::moe::ComputePrecision::bf16, "bf16",
                        "bfloat16"),
             clEnumValN(::mlir::moe::ComputePrecision::fp16, "fp16",
                        "IEEE half"),
             clEnumValN(::mlir::moe::ComputePrecision::fp32, "fp32",
                        "refused with mode=params: the copies are 16-bit"))}]>,
  ];
  let dependentDialects = ["::mlir::moe::MoeDialect",
                           "::mlir::shard::ShardDialect",
                           "::mlir::func::FuncDialect"];
}

def MoeStreamGradients : Pass<"moe-stream-gradients", "::mlir::ModuleOp"> {
  let summary = "Copy each reduced gradient whose AdamW runs on the host to "
                "host memory at once";
  let description = [{
    ZeRO-Offload's gradient streaming, on `@train_step` after
    `moe-offload` and `moe-bucket-gradients`: for every `moe.adamw` whose
    moments are in host memory (`moe.placement = "host"`), the gradient's
    sums of squares (for the global norm) move to just after the gradient
    is final (its reduction, or the unpack of its bucket), followed by
    `moe.to_host`, which copies it into a new host argument
    (`moe.grad_buffer = "<name>"`); AdamW reads that copy. The device's
    gradient then dies where it was reduced instead of living until the
    optimizer at the end of the step, so the arena no longer holds every
    gradient at once. The values are the same: checkpoints do not change.

    ```mlir
    %g = moe.unpack %bucket {offset = 4096 : i64} : ...
    %s = moe.sum_squares dense %g : tensor<32x128xf32> -> tensor<f32>
    %gh = moe.to_host %g into %arg300 : tensor<32x128xf32>
    ...
    %p2, %m2, %v2 = moe.adamw dense %p, %gh, %m, %v, ...
    ```
  }];
  let dependentDialects = ["::mlir::moe::MoeDialect"];
}

//===----------------------------------------------------------------------===//
// Inspection
//===----------------------------------------------------------------------===//

def MoeParamReport : Pass<"moe-param-report"> {
  let summary = "Print the parameter counts of each model function";
  let description = [{
    For every function with `moe.param` arguments, prints to stdout the
    number of parameter tensors and elements: total, dense (including the
    gates), expert (the weights of MoE layers) and active per token (dense
    plus `top_k / E` of the expert weights). The IR is left unchanged.

    ```
    parameters of @forward: 98 tensors
      total                           5531648  (5.53M)
      dense                           1847808  (1.85M)
      expert                          3683840  (3.68M)
      active per token                2768768  (2.77M)
      moe layers             2 (8 experts, top-2)
    ```
  }];
}

def MoeMemoryPlanReport : Pass<"moe-memory-plan-report"> {
  let summary = "Print the static arena plan of each function";
  let description = [{
    Plans the tensors produced inside each single-block function into one
    arena with liveness-based reuse (greedy by size) and prints the arena
    size next to the live-bytes lower bound, the size without reuse and the
    bytes of the persistent arguments. Values the emitted plan writes into
    persistent state (AdamW results updated in place into the parameters
    and moments, returned all-gathers of ZeRO shards) take no arena bytes.
    The IR is left unchanged.

    ```
    memory plan of @train_step: 1510 buffers
      arena (peak)                 52953344 bytes      50.50 MiB
      live lower bound             52953344 bytes      50.50 MiB
      without reuse               302125824 bytes     288.13 MiB
      arguments (persistent)       34842368 bytes      33.23 MiB
    ```
  }];
  let options = [
    Option<"functionName", "function", "std::string", "\"\"",
           "Only this function (default: every function)">,
    Option<"alignment", "alignment", "int64_t", "64",
           "Byte alignment of every buffer">,
  ];
}

//===----------------------------------------------------------------------===//
// Partitioning
//===----------------------------------------------------------------------===//

def MoePartition : Pass<"moe-partition", "::mlir::ModuleOp"> {
  let summary = "Partition @train_step over an expert x data (ZeRO) x tensor "
                "parallel grid";
  let description = [{
    Rewrites the logical training step into the SPMD program of one rank of
    the device grid `dp x ep x tp` (`shard.grid @grid`, axes 0, 1, 2). Types
    become local shard types; arguments and results carry `moe.sharding`
    (per dimension, the grid axes that split it); collectives are ops of the
    upstream `shard` dialect, inserted where a producer's distribution
    differs from what a consumer needs.

    * Tokens (the batch dimension) are split over `dp` and `ep`. Gates
      route their local groups (the gating `groups` must be a multiple of
      `dp * ep`); the dispatched `[E, C, M]` buffers reach `expert_ffn`
      through `shard.all_to_all` over `ep` (experts split, slots
      concatenated), and return the same way, in forward and backward.
    * Dense gradients are reduced over `dp` and `ep`, expert gradients over
      `dp`; the loss is divided by the all-reduced token count and the aux
      loss gradient by the number of token shards, so that the partitioned
      step computes the 1-rank step.
    * `zero=1|2`: AdamW moments (and for 2 the gradient, by
      `shard.reduce_scatter`) are partitioned over the data-parallel group
      of the parameter; the updated shard is `shard.all_gather`ed.
    * `tp`: column-parallel q/k/v and first FFN linear, row-parallel output
      and second FFN linear with `shard.all_reduce` (bias added after it by
      `moe.bias_add`), heads split over `tp`.

    Example (dp=2): a dense gradient before the update

    ```mlir
    %g = moe.linear_grad ...                       // partial over dp
    %r = shard.all_reduce %g on @grid grid_axes = [0] : tensor<128x128xf32> -> tensor<128x128xf32>
    %p, %m, %v = moe.adamw dense %w, %r, ...
    ```

    `overlap=true` marks the module (`moe.overlap_collectives`) so that the
    memory plan keeps a collective's operand bytes until its result is
    first read: the runtime, which runs collectives beside the compute and
    waits for one only where an instruction touches its bytes, can then
    overlap it with every instruction up to that read (by default the arena
    reuses the operand's bytes right after the collective).

    Errors (before anything runs): experts not divisible by `ep`, heads or
    hidden sizes not divisible by `tp`, batch not divisible by `dp * ep`,
    gating groups not a multiple of `dp * ep`.
  }];
  let options = [
    Option<"functionName", "function", "std::string", "\"train_step\"",
           "The training step to partition">,
    Option<"dp", "dp", "int64_t", "1", "Data-parallel (expert-data) ranks">,
    Option<"ep", "ep", "int64_t", "1", "Expert-parallel ranks">,
    Option<"tp", "tp", "int64_t", "1", "Tensor-parallel ranks">,
    Option<"zero", "zero", "int64_t", "0",
           "ZeRO stage: 0, 1 (optimizer state) or 2 (and gradients)">,
    Option<"overlap", "overlap", "bool", "false",
           "Plan memory for collectives beside the compute: a collective's "
           "operand keeps its bytes until its result is first read "
           "(module attribute moe.overlap_collectives; a larger arena)">,
  ];
  let dependentDialects = ["::mlir::moe::MoeDialect",
                           "::mlir::shard::ShardDialect",
                           "::mlir::arith::ArithDialect"];
}

//===----------------------------------------------------------------------===//
// Partitioning inspection
//===----------------------------------------------------------------------===//

def MoeBucketGradients : Pass<"moe-bucket-gradients", "::mlir::ModuleOp"> {
  let summary = "reduce gradients in buckets: one collective per bucket";
  let description = [{
    Replaces the f32 `shard.all_reduce` ops of a partitioned step that run
    over the same grid axes with the same reduction, taken in program
    order, by one all-reduce per bucket of up to `bucket-mb` MiB: the
    members' operands are packed into one 1-D buffer (`moe.pack`), reduced
    once, and unpacked (`moe.unpack`) into the values the members produced.
    A tensor of at least `bucket-mb` MiB keeps its own all-reduce (packing
    would only copy it). The bucket's reduction runs where its last member
    was; a bucket closes
    early when a member's result is used before the next candidate, so the
    forward pass's tensor-parallel partial sums, used at once, stay as they
    are, and the gradients, used by the optimizer at the end of the step,
    are bucketed. The collective count per step drops from one per gradient
    tensor to one per bucket (`moe-partition-report` counts them); the
    bytes sent stay those of the same elements (a ring all-reduce sends
    2 (n-1)/n of its buffer). The values equal the per-tensor reductions up
    to the summation order of the collective's algorithm. Part of
    `moe-training-pipeline` with `bucket-mb=M`.

    ZeRO's collectives are bucketed the same way: the f32 reduce-scatters
    of gradient shards along dimension 0 over the same axes are packed in
    rows (`chunks` = the ranks of the group; row r holds part r of every
    gradient, so rank r receives its shard of each from one
    reduce-scatter), and the all-gathers of updated parameter shards are
    packed shard after shard, gathered once and each parameter unpacked
    from the rows (row r: what rank r sent).

    ```mlir
    %flat = moe.pack %g0, %g1 : tensor<128x512xf32>, tensor<512xf32>
        -> tensor<66048xf32>
    %sum = shard.all_reduce %flat on @grid grid_axes = [0, 1]
        : tensor<66048xf32> -> tensor<66048xf32>
    %r0 = moe.unpack %sum {offset = 0 : i64}
        : tensor<66048xf32> -> tensor<128x512xf32>
    %r1 = moe.unpack %sum {offset = 65536 : i64}
        : tensor<66048xf32> -> tensor<512xf32>
    ```
  }];
  let options = [
    Option<"functionName", "function", "std::string", "\"train_step\"",
           "Function whose all-reduces are bucketed">,
    Option<"bucketMb", "bucket-mb", "double", "25.0",
           "Bucket size in MiB (a bucket closes once it holds this much)">,
  ];
  let dependentDialects = ["::mlir::moe::MoeDialect",
                           "::mlir::shard::ShardDialect"];
}

def MoePartitionGraph : Pass<"moe-partition-graph", "::mlir::ModuleOp"> {
  let summary = "Draw one partitioned MoE layer and its backward as Graphviz";
  let description = [{
    Writes a Graphviz `digraph` of MoE layer `layer` (the `layer`-th
    `moe.gate` of the step in program order, from 0): in a `forward`
    cluster the ops from the producer of the gate's input through
    `moe.combine`, in a `backward` cluster the ops from `moe.combine_grad`
    through `moe.dispatch_grad` and `moe.gate_grad` (the `expert_ffn_grad`
    between them), and the collectives among and after them (the expert
    counts' and weight gradients' reductions, ZeRO slices). Collectives are
    red boxes labelled with their grid axes (with names: dp, ep, tp) and
    split/concat/gather/scatter/slice dimensions; gates show their local
    capacity and groups and the grid axes their tokens are split over.
    Edges carry the local tensor types of one rank; parameters are
    cylinders with their local type and `moe.sharding` (per dimension, the
    axes splitting it, `-` for whole). Works on unpartitioned steps too.
    The IR is left unchanged.

    ```
    moe-opt model.mlir --moe-training-pipeline="dp=2 ep=2" \
        --moe-partition-graph="layer=0 output=layer0.dot" -o /dev/null
    dot -Tsvg layer0.dot -o layer0.svg
    ```

    Excerpt (dp=2 ep=2):

    ```
    op3 [label="all_to_all\ngrid_axes = [1] (ep)\nsplit_axis = 0, concat_axis = 1", shape=box, ...];
    op2 -> op3 [label="8x16x128xf32"];
    op3 -> op4 [label="4x32x128xf32"];
    in0 [label="encoder.layers.1.ffn.experts.fc1.weight\n4x128x512xf32\nsharding [ep, -, -]", shape=cylinder, ...];
    ```
  }];
  let options = [
    Option<"functionName", "function", "std::string", "\"train_step\"",
           "The training step">,
    Option<"layer", "layer", "int64_t", "0",
           "The MoE layer to draw: the n-th moe.gate in program order, from 0">,
    Option<"output", "output", "std::string", "\"-\"",
           "Path of the .dot file ('-': stdout)">,
  ];
}

def MoePartitionReport : Pass<"moe-partition-report", "::mlir::ModuleOp"> {
  let summary = "Print the per-rank memory, FLOPs and communication of a "
                "partitioned step";
  let description = [{
    For one rank of the SPMD program built by `moe-partition` (every rank
    runs the same program on shards of the same shapes, so one rank's
    numbers are every rank's) prints to stdout, in bytes:

    * parameters, optimizer state (the AdamW moments) and batch inputs (the
      step counter included): the local argument types;
    * gradients: the gradient operands of the AdamW updates (under ZeRO the
      shards the updates read);
    * activations: the arena peak of the static memory plan, as
      `moe-emit-plan` lays it out (values written into persistent state take
      no arena bytes);
    * persistent: the argument buffers, each at the next multiple of
      `alignment`, as in the plan;

    the matrix-product FLOPs of the local program per step (2*M*N*K per
    product of linear, attention, expert_ffn and gate ops, two products per
    forward product in their gradient ops; no recomputation, masking,
    element-wise or optimizer work), and per collective kind the number of
    ops and the bytes one rank sends per step (`w` element bytes, `p` the
    product of the grid sizes of the op's grid axes; `p = 1` sends nothing):

    | kind             | bytes sent               | n                       |
    |------------------|--------------------------|-------------------------|
    | `all_reduce`     | `2 (p-1) ceil(n/p) w`    | operand elements        |
    | `all_gather`     | `(p-1) n w`              | operand elements        |
    | `reduce_scatter` | `(p-1) n w`              | result elements         |
    | `all_to_all`     | `(p-1) n w`              | operand elements / `p`  |
    | `all_slice`      | 0 (local)                |                         |

    An unpartitioned step reports as one rank. With `json=<path>` the
    numbers are also written as JSON (`parameter_bytes`, `gradient_bytes`,
    `optimizer_state_bytes`, `batch_bytes`, `activation_bytes`,
    `persistent_bytes`, `flops`, `collectives.<kind>.count` and
    `.bytes_sent`, `grid.dp/ep/tp`, `zero`, and `by_axes`: one entry per
    collective kind and grid axes, `{kind, axes, count, bytes_sent}` with
    `axes` as printed, e.g. "[0, 1]"). The IR is left unchanged.

    ```
    partition report of @train_step: grid dp=2 ep=2 tp=1 (4 ranks), zero=1
      per rank (every rank of the SPMD program has the same sizes):
      parameters                          2627584 bytes         2.51 MiB
      ...
      collectives per step             ops       bytes sent
      all_to_all                         8           196608
        over [1]                         8           196608
    ```
  }];
  let options = [
    Option<"functionName", "function", "std::string", "\"train_step\"",
           "The training step">,
    Option<"json", "json", "std::string", "\"\"",
           "Also write the numbers as JSON to this path">,
    Option<"alignment", "alignment", "int64_t", "64",
           "Byte alignment of the plan's buffers (as moe-emit-plan)">,
    Option<"quiet", "quiet", "bool", "false",
           "Write only the JSON (for tools such as moe-plan)">,
  ];
}

#endif // MOE_PASSES_TD
