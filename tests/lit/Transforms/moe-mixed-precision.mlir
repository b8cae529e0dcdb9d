// moe-mixed-precision on the demo model: every GEMM op (linear, attention,
// expert FFN and their gradients) gets compute_type; the router, the loss,
// norms and the optimizer are never marked; fp16 adds dynamic loss scaling
// to @train_step.
//
// RUN: moe-opt %models/demo.mlir --moe-training-pipeline --moe-mixed-precision=compute=bf16 -o %t.bf16.mlir
// RUN: FileCheck %s --check-prefix=BF16 < %t.bf16.mlir
// Every GEMM op is marked, and only GEMM ops are.
// RUN: grep -E "= moe\.(linear|attention|expert_ffn)(_grad)? " %t.bf16.mlir | not grep -v "compute_type = bf16"
// RUN: grep "compute_type" %t.bf16.mlir | not grep -vE "= moe\.(linear|attention|expert_ffn)(_grad)? "
// RUN: not grep -E "moe\.(gate|gate_grad|cross_entropy|cross_entropy_grad|layer_norm|layer_norm_grad|adamw|sum_squares|clip_by_global_norm) .*compute_type" %t.bf16.mlir
// The pipeline option gives the same module.
// RUN: moe-opt %models/demo.mlir --moe-training-pipeline="precision=bf16" -o %t.pipeline.mlir
// RUN: diff %t.bf16.mlir %t.pipeline.mlir
// compute=fp32 removes every mark.
// RUN: moe-opt %t.bf16.mlir --moe-mixed-precision=compute=fp32 | not grep compute_type
//
// RUN: moe-opt %models/demo.mlir --moe-training-pipeline --moe-mixed-precision=compute=fp16 -o %t.fp16.mlir
// RUN: FileCheck %s --check-prefix=FP16 < %t.fp16.mlir
// RUN: grep -E "= moe\.(linear|attention|expert_ffn)(_grad)? " %t.fp16.mlir | not grep -v "compute_type = f16"
// Running it again adds nothing.
// RUN: moe-opt %t.fp16.mlir --moe-mixed-precision=compute=fp16 | grep -c "arith.mulf" | FileCheck %s --check-prefix=SEEDS
// RUN: grep -c "arith.mulf" %t.fp16.mlir | FileCheck %s --check-prefix=SEEDS
// One loss seed and two aux-loss seeds (two MoE layers):
// SEEDS: 3
//
// Partitioned: the same scaling around the all-reduced norm.
// RUN: moe-opt %models/demo.mlir --moe-training-pipeline="precision=fp16 dp=2 ep=2" | FileCheck %s --check-prefix=PART

// BF16-LABEL: func.func @forward(
// BF16: moe.attention {{.*}}{compute_type = bf16,
// BF16: moe.expert_ffn gelu {{.*}}{compute_type = bf16}
// BF16-LABEL: func.func @train_step(
// BF16-NOT: loss_scale
// BF16: = moe.linear {{.*}}{compute_type = bf16}
// BF16: = moe.attention {{.*}}{compute_type = bf16,
// BF16: = moe.gate %
// BF16: = moe.expert_ffn gelu {{.*}}{compute_type = bf16}
// BF16: = moe.linear {{.*}}{compute_type = bf16, transpose_weight}
// BF16: = moe.cross_entropy %
// BF16: = moe.linear_grad {{.*}}{compute_type = bf16, transpose_weight}
// BF16: = moe.expert_ffn_grad gelu {{.*}}{compute_type = bf16}
// BF16: = moe.gate_grad %
// BF16: = moe.attention_grad {{.*}}{compute_type = bf16,
// BF16: moe.clip_by_global_norm %{{[0-9]+}} {max_norm

// FP16-LABEL: func.func @train_step(
// FP16-SAME: %[[STEP:[a-z0-9]+]]: tensor<i64> {moe.input = "step"}, %[[LS:[a-z0-9]+]]: tensor<f32> {moe.input = "loss_scale"})
// The loss gradient seeds are multiplied by the scale...
// FP16: %[[SEED:.*]] = arith.mulf %{{.*}}, %[[LS]] : tensor<f32>
// FP16-NEXT: moe.cross_entropy_grad %[[SEED]],
// FP16: %[[AUX:.*]] = arith.mulf %{{.*}}, %[[LS]] : tensor<f32>
// FP16-NEXT: moe.gate_grad %{{.*}}, %[[AUX]],
// ...the sum of squares is unscaled before clipping (twice: scale^2 may
// overflow fp32)...
// FP16: %[[S1:.*]] = arith.divf %{{.*}}, %[[LS]] : tensor<f32>
// FP16-NEXT: %[[S2:.*]] = arith.divf %[[S1]], %[[LS]] : tensor<f32>
// FP16-NEXT: %[[NORM:.*]], %[[CLIP:.*]] = moe.clip_by_global_norm %[[S2]]
// ...and AdamW applies clip / scale to the scaled gradients.
// FP16-NEXT: %[[GS:.*]] = arith.divf %[[CLIP]], %[[LS]] : tensor<f32>
// FP16-NEXT: %[[LR:.*]] = moe.lr_schedule %[[STEP]]
// FP16-NEXT: moe.adamw dense {{.*}}, %[[LR]], %[[GS]], %[[STEP]]
// FP16-NOT: %[[CLIP]]{{[,) ]}}
// FP16: return %{{.*}}, %[[NORM]], %[[LR]],

// PART-LABEL: func.func @train_step(
// PART-SAME: %[[LS:[a-z0-9]+]]: tensor<f32> {moe.input = "loss_scale"})
// PART: %[[SEED:.*]] = arith.mulf %{{.*}}, %[[LS]] : tensor<f32>
// PART-NEXT: moe.cross_entropy_grad %[[SEED]],
// PART: shard.all_reduce
// PART: %[[S1:.*]] = arith.divf %{{.*}}, %[[LS]] : tensor<f32>
// PART-NEXT: %[[S2:.*]] = arith.divf %[[S1]], %[[LS]] : tensor<f32>
// PART-NEXT: %{{.*}}, %[[CLIP:.*]] = moe.clip_by_global_norm %[[S2]]
// PART-NEXT: %[[GS:.*]] = arith.divf %[[CLIP]], %[[LS]] : tensor<f32>
// PART: moe.adamw expert {{.*}}, %[[GS]], %{{[a-z0-9]+}} {
