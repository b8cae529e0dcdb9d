// moe-partition on a small generated encoder-decoder (Inputs/partition-tiny.json:
// batch 8 x 4 tokens, d_model 16, 4 heads, FFN 32, MoE in layer 1 of each
// stack with 4 experts, top-2, 4 gating groups, capacity 16) for each kind
// of grid. The checks follow the first MoE layer (encoder layer 1), the
// loss normalization and the gradient reductions of @train_step.
//
// RUN: moe-model-gen %S/Inputs/partition-tiny.json -o %t.mlir
// RUN: moe-opt %t.mlir --moe-training-pipeline --moe-partition="dp=2" | FileCheck %s --check-prefix=DP
// RUN: moe-opt %t.mlir --moe-training-pipeline --moe-partition="ep=2" | FileCheck %s --check-prefix=EP
// RUN: moe-opt %t.mlir --moe-training-pipeline --moe-partition="dp=2 ep=2" | FileCheck %s --check-prefix=DPEP
// RUN: moe-opt %t.mlir --moe-training-pipeline --moe-partition="tp=2" | FileCheck %s --check-prefix=TP
// RUN: moe-opt %t.mlir --moe-training-pipeline --moe-partition="ep=2 tp=2" | FileCheck %s --check-prefix=EPTP
// RUN: moe-opt %t.mlir --moe-training-pipeline --moe-partition="dp=2 zero=1" | FileCheck %s --check-prefix=ZERO1
// RUN: moe-opt %t.mlir --moe-training-pipeline --moe-partition="dp=2 ep=2 zero=2" -o %t.zero2.mlir
// RUN: FileCheck %s --check-prefix=ZERO2 < %t.zero2.mlir
// RUN: FileCheck %s --check-prefix=ZERO2RS < %t.zero2.mlir
// RUN: moe-opt %t.mlir --moe-training-pipeline --moe-partition="dp=1 ep=1 tp=1" | FileCheck %s --check-prefix=ONE

//===----------------------------------------------------------------------===//
// dp=2: tokens split over axis 0, experts whole. Each rank routes 2 of the
// 4 gating groups (capacity 16 / 2 = 8); expert buffers need no exchange.
// Every gradient, dense and expert, is summed over dp.
//===----------------------------------------------------------------------===//
// DP: shard.grid @grid(shape = 2x1x1)
// DP-LABEL: func.func @train_step
// DP-SAME: tensor<4x16x32xf32> {{{.*}}moe.param = "encoder.layers.1.ffn.experts.fc1.weight", moe.sharding = [array<i16>, array<i16>, array<i16>]}
// DP-SAME: tensor<4x4xi32> {moe.input = "src_tokens", moe.sharding = [array<i16: 0>, array<i16>]}
// DP: moe.gate {{.*}}capacity = 8 : i64, config = #moe.gating<top_k = 2, eval_capacity_factor = 2.0, groups = 2>, shard_axes = array<i64: 0>{{.*}} : (tensor<4x4x16xf32>
// DP-NEXT: shard.all_reduce %expert_counts on @grid grid_axes = [0] : tensor<4xi32>
// DP-NEXT: moe.dispatch {{.*}} -> tensor<4x8x16xf32>
// DP-NEXT: moe.expert_ffn gelu {{.*}} : (tensor<4x8x16xf32>, tensor<4x16x32xf32>,
// DP-NOT: shard.all_to_all
// DP: %[[COUNT:.*]] = moe.token_count %{{.*}} : tensor<4x4xi32> -> tensor<f32>
// DP-NEXT: %[[TOTAL:.*]] = shard.all_reduce %[[COUNT]] on @grid grid_axes = [0] : tensor<f32>
// DP-NEXT: %[[WEIGHT:.*]] = arith.divf %[[COUNT]], %[[TOTAL]] : tensor<f32>
// DP-NEXT: %[[LOSS:.*]] = moe.cross_entropy
// DP-NEXT: %[[PART:.*]] = arith.mulf %[[LOSS]], %[[WEIGHT]] : tensor<f32>
// DP-NEXT: shard.all_reduce %[[PART]] on @grid grid_axes = [0] : tensor<f32>
// DP: moe.expert_ffn_grad
// DP-NEXT: shard.all_reduce %b2_grad on @grid grid_axes = [0] : tensor<4x16xf32>
// DP-NEXT: shard.all_reduce %w2_grad on @grid grid_axes = [0] : tensor<4x32x16xf32>
// DP-NEXT: shard.all_reduce %b1_grad on @grid grid_axes = [0] : tensor<4x32xf32>
// DP-NEXT: shard.all_reduce %w1_grad on @grid grid_axes = [0] : tensor<4x16x32xf32>
// DP: moe.gate_grad
// DP-NEXT: shard.all_reduce %{{.*}} on @grid grid_axes = [0] : tensor<16x4xf32>
// DP-NOT: shard.all_to_all

//===----------------------------------------------------------------------===//
// ep=2: experts split over axis 1 (2 per rank), tokens too. The [E, C, M]
// buffers reach expert_ffn through an all_to_all over ep (split experts,
// concatenate slots) and return the same way; the backward mirrors it.
// Dense gradients are summed over ep; expert gradients need no reduction
// (each ep rank holds all slots of its own experts).
//===----------------------------------------------------------------------===//
// EP: shard.grid @grid(shape = 1x2x1)
// EP-LABEL: func.func @train_step
// EP-SAME: tensor<2x16x32xf32> {{{.*}}moe.param = "encoder.layers.1.ffn.experts.fc1.weight", moe.sharding = [array<i16: 1>, array<i16>, array<i16>]}
// EP-SAME: tensor<2x16x32xf32> {moe.opt_state = "exp_avg", moe.sharding = [array<i16: 1>, array<i16>, array<i16>], moe.state_of = "encoder.layers.1.ffn.experts.fc1.weight"}
// EP-SAME: tensor<4x4xi32> {moe.input = "src_tokens", moe.sharding = [array<i16: 1>, array<i16>]}
// EP: moe.gate {{.*}}capacity = 8 : i64, config = #moe.gating<top_k = 2, eval_capacity_factor = 2.0, groups = 2>, shard_axes = array<i64: 1>
// EP-NEXT: shard.all_reduce %expert_counts on @grid grid_axes = [1] : tensor<4xi32>
// EP-NEXT: %[[BUF:.*]] = moe.dispatch {{.*}} -> tensor<4x8x16xf32>
// EP-NEXT: %[[IN:.*]] = shard.all_to_all %[[BUF]] on @grid grid_axes = [1] split_axis = 0 concat_axis = 1 : tensor<4x8x16xf32> -> tensor<2x16x16xf32>
// EP-NEXT: %[[OUT:.*]] = moe.expert_ffn gelu %[[IN]], {{.*}} : (tensor<2x16x16xf32>, tensor<2x16x32xf32>, tensor<2x32xf32>, tensor<2x32x16xf32>, tensor<2x16xf32>) -> tensor<2x16x16xf32>
// EP-NEXT: %[[BACK:.*]] = shard.all_to_all %[[OUT]] on @grid grid_axes = [1] split_axis = 1 concat_axis = 0 : tensor<2x16x16xf32> -> tensor<4x8x16xf32>
// EP-NEXT: moe.combine %[[BACK]], {{.*}} -> tensor<4x4x16xf32>
// EP: moe.token_count
// EP-NEXT: shard.all_reduce {{.*}} grid_axes = [1] : tensor<f32>
// EP-NEXT: arith.divf
// EP: %[[DBUF:.*]], %{{.*}} = moe.combine_grad
// EP-NEXT: %[[DIN:.*]] = shard.all_to_all %[[DBUF]] on @grid grid_axes = [1] split_axis = 0 concat_axis = 1 : tensor<4x8x16xf32> -> tensor<2x16x16xf32>
// EP-NEXT: %[[DX:.*]], %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} = moe.expert_ffn_grad gelu %[[DIN]],
// EP-NEXT: %[[DBACK:.*]] = shard.all_to_all %[[DX]] on @grid grid_axes = [1] split_axis = 1 concat_axis = 0 : tensor<2x16x16xf32> -> tensor<4x8x16xf32>
// EP-NEXT: moe.dispatch_grad %[[DBACK]]
// EP: moe.gate_grad
// EP-NEXT: shard.all_reduce {{.*}} grid_axes = [1] : tensor<16x4xf32>
// Expert gradients go to the norm and the update unreduced.
// EP: moe.sum_squares expert %w1_grad_{{[0-9]+}} : tensor<2x16x32xf32>
// EP: moe.adamw expert %arg30, %w1_grad_{{[0-9]+}}, %arg121, %arg212

//===----------------------------------------------------------------------===//
// dp=2 ep=2: tokens split over [0, 1] (one gating group per rank, capacity
// 4); experts over ep, their slots over dp after the exchange. Dense
// gradients are summed over [0, 1], expert gradients over [0] only.
//===----------------------------------------------------------------------===//
// DPEP: shard.grid @grid(shape = 2x2x1)
// DPEP-LABEL: func.func @train_step
// DPEP-SAME: tensor<2x4xi32> {moe.input = "src_tokens", moe.sharding = [array<i16: 0, 1>, array<i16>]}
// DPEP: moe.gate {{.*}}capacity = 4 : i64, config = #moe.gating<top_k = 2, eval_capacity_factor = 2.0>, shard_axes = array<i64: 0, 1>{{.*}} : (tensor<2x4x16xf32>
// DPEP-NEXT: shard.all_reduce %expert_counts on @grid grid_axes = [0, 1] : tensor<4xi32>
// DPEP-NEXT: moe.dispatch {{.*}} -> tensor<4x4x16xf32>
// DPEP-NEXT: shard.all_to_all {{.*}} grid_axes = [1] split_axis = 0 concat_axis = 1 : tensor<4x4x16xf32> -> tensor<2x8x16xf32>
// DPEP-NEXT: moe.expert_ffn gelu {{.*}} : (tensor<2x8x16xf32>, tensor<2x16x32xf32>,
// DPEP-NEXT: shard.all_to_all {{.*}} grid_axes = [1] split_axis = 1 concat_axis = 0 : tensor<2x8x16xf32> -> tensor<4x4x16xf32>
// DPEP: %[[COUNT:.*]] = moe.token_count %{{.*}} : tensor<2x4xi32> -> tensor<f32>
// DPEP-NEXT: %[[TOTAL:.*]] = shard.all_reduce %[[COUNT]] on @grid grid_axes = [0, 1] : tensor<f32>
// DPEP-NEXT: %[[WEIGHT:.*]] = arith.divf %[[COUNT]], %[[TOTAL]]
// DPEP-NEXT: %[[LOSS:.*]] = moe.cross_entropy
// DPEP-NEXT: %[[PART:.*]] = arith.mulf %[[LOSS]], %[[WEIGHT]]
// DPEP-NEXT: shard.all_reduce %[[PART]] on @grid grid_axes = [0, 1] : tensor<f32>
// The aux losses are means over the token shards; the loss gradient is
// weighted like the loss.
// DPEP-NEXT: %[[AUX:.*]] = moe.add %aux_loss
// DPEP-NEXT: shard.all_reduce %[[AUX]] on @grid grid_axes = [0, 1] reduction = average : tensor<f32>
// DPEP-NEXT: %[[DLOSS:.*]] = arith.mulf %{{.*}}, %[[WEIGHT]]
// DPEP-NEXT: moe.cross_entropy_grad %[[DLOSS]]
// DPEP: moe.expert_ffn_grad
// DPEP-NEXT: shard.all_reduce %b2_grad on @grid grid_axes = [0] : tensor<2x16xf32>
// DPEP-NEXT: shard.all_reduce %w2_grad on @grid grid_axes = [0] : tensor<2x32x16xf32>
// DPEP-NEXT: shard.all_reduce %b1_grad on @grid grid_axes = [0] : tensor<2x32xf32>
// DPEP-NEXT: shard.all_reduce %w1_grad on @grid grid_axes = [0] : tensor<2x16x32xf32>
// DPEP-NEXT: shard.all_to_all
// DPEP: moe.gate_grad
// DPEP-NEXT: shard.all_reduce {{.*}} grid_axes = [0, 1] : tensor<16x4xf32>
// DPEP: moe.linear_grad {{.*}} -> (tensor<2x4x16xf32>, tensor<16x16xf32>)
// DPEP-NEXT: shard.all_reduce {{.*}} grid_axes = [0, 1] : tensor<16x16xf32>
// Expert norms are partial over ep (each rank holds half of the experts).
// DPEP: moe.sum_squares expert %{{.*}} : tensor<2x16xf32> -> tensor<f32>
// DPEP: shard.all_reduce %{{[0-9]+}} on @grid grid_axes = [1] : tensor<f32> -> tensor<f32>
// DPEP-NEXT: moe.sum_squares dense

//===----------------------------------------------------------------------===//
// tp=2: Megatron layout. q/k/v and the first FFN linear are column-parallel
// (weights split on their output dimension, biases with them), the
// attention output and second FFN linear row-parallel (split on the input
// dimension, bias replicated and added after the all-reduce), heads halved.
//===----------------------------------------------------------------------===//
// TP: shard.grid @grid(shape = 1x1x2)
// TP-LABEL: func.func @train_step
// TP-SAME: tensor<16x8xf32> {{{.*}}moe.param = "encoder.layers.0.self_attn.q.weight", moe.sharding = [array<i16>, array<i16: 2>]}
// TP-SAME: tensor<8xf32> {{{.*}}moe.param = "encoder.layers.0.self_attn.q.bias", moe.sharding = [array<i16: 2>]}
// TP-SAME: tensor<8x16xf32> {{{.*}}moe.param = "encoder.layers.0.self_attn.out.weight", moe.sharding = [array<i16: 2>, array<i16>]}
// TP-SAME: tensor<16xf32> {{{.*}}moe.param = "encoder.layers.0.self_attn.out.bias", moe.sharding = [array<i16>]}
// TP-SAME: tensor<16x16xf32> {{{.*}}moe.param = "encoder.layers.0.ffn.fc1.weight", moe.sharding = [array<i16>, array<i16: 2>]}
// TP-SAME: tensor<16x16xf32> {{{.*}}moe.param = "encoder.layers.0.ffn.fc2.weight", moe.sharding = [array<i16: 2>, array<i16>]}
// TP-SAME: tensor<8x4xi32> {moe.input = "src_tokens", moe.sharding = [array<i16>, array<i16>]}
// TP: moe.linear %{{.*}}, %arg3, %arg4 : (tensor<8x4x16xf32>, tensor<16x8xf32>, tensor<8xf32>) -> tensor<8x4x8xf32>
// TP: moe.attention {{.*}} {num_heads = 2 : i64} : (tensor<8x4x8xf32>, tensor<8x4x8xf32>, tensor<8x4x8xf32>, tensor<8x4xi1>) -> tensor<8x4x8xf32>
// TP-NEXT: %[[PARTIAL:.*]] = moe.linear %{{.*}}, %arg9 : (tensor<8x4x8xf32>, tensor<8x16xf32>) -> tensor<8x4x16xf32>
// TP-NEXT: %[[SUM:.*]] = shard.all_reduce %[[PARTIAL]] on @grid grid_axes = [2] : tensor<8x4x16xf32>
// TP-NEXT: moe.bias_add %[[SUM]], %arg10 : tensor<8x4x16xf32>, tensor<16xf32>
// TP: moe.linear %{{.*}}, %arg13, %arg14 : (tensor<8x4x16xf32>, tensor<16x16xf32>, tensor<16xf32>) -> tensor<8x4x16xf32>
// TP-NEXT: moe.activation gelu
// TP-NEXT: %[[FFN:.*]] = moe.linear %{{.*}}, %arg15 : (tensor<8x4x16xf32>, tensor<16x16xf32>) -> tensor<8x4x16xf32>
// TP-NEXT: %[[FFNSUM:.*]] = shard.all_reduce %[[FFN]] on @grid grid_axes = [2] : tensor<8x4x16xf32>
// TP-NEXT: moe.bias_add %[[FFNSUM]], %arg16
// Experts and tokens are not split over tp.
// TP: moe.expert_ffn gelu {{.*}} : (tensor<4x16x16xf32>, tensor<4x16x32xf32>,
// TP-NOT: shard.all_to_all
// Backward: the input gradient of a column-parallel linear is partial over
// tp (the conjugate all-reduce); here the query of the last cross-attention.
// TP: %query_grad, %key_grad, %value_grad = moe.attention_grad {{.*}} {num_heads = 2 : i64}
// TP: %[[DX:.*]], %{{.*}} = moe.linear_grad %query_grad, %{{.*}}, %arg74 : (tensor<8x4x8xf32>, tensor<8x4x16xf32>, tensor<16x8xf32>)
// TP-NEXT: shard.all_reduce %[[DX]] on @grid grid_axes = [2] : tensor<8x4x16xf32>

//===----------------------------------------------------------------------===//
// ep=2 tp=2: both at once.
//===----------------------------------------------------------------------===//
// EPTP: shard.grid @grid(shape = 1x2x2)
// EPTP-LABEL: func.func @train_step
// EPTP: moe.attention {{.*}} {num_heads = 2 : i64} : (tensor<4x4x8xf32>
// EPTP: shard.all_reduce {{.*}} grid_axes = [2] : tensor<4x4x16xf32>
// EPTP-NEXT: moe.bias_add
// EPTP: moe.gate {{.*}}groups = 2>, shard_axes = array<i64: 1>
// EPTP: shard.all_to_all {{.*}} grid_axes = [1] split_axis = 0 concat_axis = 1 : tensor<4x8x16xf32> -> tensor<2x16x16xf32>
// EPTP-NEXT: moe.expert_ffn
// EPTP-NEXT: shard.all_to_all {{.*}} grid_axes = [1] split_axis = 1 concat_axis = 0

//===----------------------------------------------------------------------===//
// ZeRO-1 (dp=2): AdamW moments split over dp (first divisible dimension);
// the full gradient is sliced locally, the parameter too, and the updated
// shard is all-gathered back into the parameter.
//===----------------------------------------------------------------------===//
// ZERO1: module attributes {{{.*}}moe.zero_stage = 1 : i64}
// ZERO1: shard.grid @grid(shape = 2x1x1)
// ZERO1-LABEL: func.func @train_step
// ZERO1-SAME: tensor<16x16xf32> {{{.*}}moe.param = "encoder.layers.0.self_attn.q.weight", moe.sharding = [array<i16>, array<i16>]}
// ZERO1-SAME: tensor<8x16xf32> {moe.opt_state = "exp_avg", moe.sharding = [array<i16: 0>, array<i16>], moe.state_of = "encoder.layers.0.self_attn.q.weight"}
// ZERO1-SAME: tensor<2x16x32xf32> {moe.opt_state = "exp_avg", moe.sharding = [array<i16: 0>, array<i16>, array<i16>], moe.state_of = "encoder.layers.1.ffn.experts.fc1.weight"}
// The slices are local copies taken right before the update that reads
// them (so that no slice stays alive across the backward pass).
// ZERO1: %[[GSUM:.*]] = shard.all_reduce %w1_grad_{{[0-9]+}} on @grid grid_axes = [0] : tensor<4x16x32xf32>
// ZERO1-NOT: shard.reduce_scatter
// ZERO1: shard.all_slice %arg3 on @grid grid_axes = [0] slice_axis = 0 : tensor<16x16xf32> -> tensor<8x16xf32>
// ZERO1: %[[ESLICE:.*]] = shard.all_slice %arg30 on @grid grid_axes = [0] slice_axis = 0 : tensor<4x16x32xf32> -> tensor<2x16x32xf32>
// ZERO1-NEXT: %[[GSLICE:.*]] = shard.all_slice %[[GSUM]] on @grid grid_axes = [0] slice_axis = 0 : tensor<4x16x32xf32> -> tensor<2x16x32xf32>
// ZERO1-NEXT: %[[NEW:.*]], %{{.*}}, %{{.*}} = moe.adamw expert %[[ESLICE]], %[[GSLICE]], %arg121, %arg212
// ZERO1-NEXT: shard.all_gather %[[NEW]] on @grid grid_axes = [0] gather_axis = 0 : tensor<2x16x32xf32> -> tensor<4x16x32xf32>

//===----------------------------------------------------------------------===//
// ZeRO-2 (dp=2 ep=2): gradients are reduce-scattered into the shard the
// update reads (dense over [0, 1], expert over [0] on the slot dimension
// after ep), the norm is summed from the shards, the update all-gathered.
//===----------------------------------------------------------------------===//
// ZERO2: module attributes {{{.*}}moe.zero_stage = 2 : i64}
// ZERO2: shard.grid @grid(shape = 2x2x1)
// ZERO2-LABEL: func.func @train_step
// ZERO2-SAME: tensor<2x8x32xf32> {moe.opt_state = "exp_avg", moe.sharding = [array<i16: 1>, array<i16: 0>, array<i16>], moe.state_of = "encoder.layers.1.ffn.experts.fc1.weight"}
// ZERO2: moe.layer_norm_grad
// ZERO2-NEXT: shard.reduce_scatter %bias_grad on @grid grid_axes = [0, 1] scatter_axis = 0 : tensor<16xf32> -> tensor<4xf32>
// ZERO2: moe.expert_ffn_grad
// ZERO2-NEXT: shard.reduce_scatter %b2_grad on @grid grid_axes = [0] scatter_axis = 1 : tensor<2x16xf32> -> tensor<2x8xf32>
// ZERO2-NEXT: shard.reduce_scatter %w2_grad on @grid grid_axes = [0] scatter_axis = 1 : tensor<2x32x16xf32> -> tensor<2x16x16xf32>
// ZERO2-NEXT: shard.reduce_scatter %b1_grad on @grid grid_axes = [0] scatter_axis = 1 : tensor<2x32xf32> -> tensor<2x16xf32>
// ZERO2-NEXT: %[[RS:.*]] = shard.reduce_scatter %w1_grad on @grid grid_axes = [0] scatter_axis = 1 : tensor<2x16x32xf32> -> tensor<2x8x32xf32>
// ZERO2: moe.sum_squares expert %[[RS]] : tensor<2x8x32xf32> -> tensor<f32>
// ZERO2: %[[NORMSQ:.*]] = shard.all_reduce %{{[0-9]+}} on @grid grid_axes = [0, 1] : tensor<f32>
// ZERO2-NEXT: moe.clip_by_global_norm %[[NORMSQ]]
// ZERO2: %[[NEW:.*]], %{{.*}}, %{{.*}} = moe.adamw expert %{{.*}}, %[[RS]], %arg{{[0-9]+}}, %arg{{[0-9]+}}
// ZERO2-NEXT: shard.all_gather %[[NEW]] on @grid grid_axes = [0] gather_axis = 1 : tensor<2x8x32xf32> -> tensor<2x16x32xf32>
// No gradient tensor is all-reduced under ZeRO-2 (only scalars are).
// ZERO2RS-LABEL: func.func @train_step
// ZERO2RS-NOT: shard.all_reduce {{.*}} : tensor<{{[0-9x]+}}xf32>
// ZERO2RS: return

//===----------------------------------------------------------------------===//
// dp=1 ep=1 tp=1: the one-rank program, no collectives.
//===----------------------------------------------------------------------===//
// ONE: shard.grid @grid(shape = 1x1x1)
// ONE-LABEL: func.func @train_step
// ONE-NOT: shard.
// ONE: moe.gate {{.*}}capacity = 16 : i64, config = #moe.gating<top_k = 2, eval_capacity_factor = 2.0, groups = 4>
// ONE-NOT: shard_axes
// ONE-NOT: shard.
// ONE-NOT: moe.token_count
// ONE-NOT: shard.
