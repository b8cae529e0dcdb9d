// RUN: moe-opt %s --moe-expand-moe-layer | FileCheck %s
// RUN: moe-opt %s --moe-expand-moe-layer | moe-opt | FileCheck %s

// Top-2, 64 tokens, 8 experts, capacity_factor 1.25: C = ceil(64/8*1.25*2) = 20.
// CHECK-LABEL: func.func @top2
func.func @top2(%x: tensor<4x16x64xf32>, %wg: tensor<64x8xf32>,
                %w1: tensor<8x64x256xf32>, %b1: tensor<8x256xf32>,
                %w2: tensor<8x256x64xf32>, %b2: tensor<8x64xf32>)
    -> (tensor<4x16x64xf32>, tensor<8xi32>, tensor<f32>) {
  // CHECK-NOT: moe.moe_layer
  // CHECK: %[[IDX:.*]], %[[LOC:.*]], %[[W:.*]], %[[CNT:.*]], %[[AUX:.*]] = moe.gate %arg0, %arg1
  // CHECK-SAME: capacity = 20 : i64
  // CHECK-SAME: config = #moe.gating<top_k = 2, capacity_factor = 1.25>
  // CHECK-SAME: stream = 7 : i64
  // CHECK-SAME: -> (tensor<4x16x2xi32>, tensor<4x16x2xi32>, tensor<4x16x2xf32>, tensor<8xi32>, tensor<f32>)
  // CHECK: %[[BUF:.*]] = moe.dispatch %arg0, %[[IDX]], %[[LOC]] : {{.*}} -> tensor<8x20x64xf32>
  // CHECK: %[[OUT:.*]] = moe.expert_ffn gelu %[[BUF]], %arg2, %arg3, %arg4, %arg5 : {{.*}} -> tensor<8x20x64xf32>
  // CHECK: %[[Y:.*]] = moe.combine %[[OUT]], %[[IDX]], %[[LOC]], %[[W]] : {{.*}} -> tensor<4x16x64xf32>
  // CHECK: return %[[Y]], %[[CNT]], %[[AUX]]
  %y, %c, %a = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2
      {config = #moe.gating<top_k = 2, capacity_factor = 1.25>, stream = 7 : i64}
      : (tensor<4x16x64xf32>, tensor<64x8xf32>, tensor<8x64x256xf32>,
         tensor<8x256xf32>, tensor<8x256x64xf32>, tensor<8x64xf32>)
        -> (tensor<4x16x64xf32>, tensor<8xi32>, tensor<f32>)
  return %y, %c, %a : tensor<4x16x64xf32>, tensor<8xi32>, tensor<f32>
}

// Eval mode uses eval_capacity_factor: ceil(64/8*2.0*1) = 16; min_capacity
// lifts training's 8 to 10 but does not apply when the formula is larger.
// CHECK-LABEL: func.func @eval_mode
// CHECK: moe.gate {{.*}}capacity = 16 : i64
// CHECK-SAME: eval
// CHECK: moe.dispatch {{.*}} -> tensor<8x16x32xf32>
func.func @eval_mode(%x: tensor<64x32xf32>, %wg: tensor<32x8xf32>,
                     %w1: tensor<8x32x64xf32>, %b1: tensor<8x64xf32>,
                     %w2: tensor<8x64x32xf32>, %b2: tensor<8x32xf32>)
    -> tensor<64x32xf32> {
  %y, %c, %a = moe.moe_layer relu %x, %wg, %w1, %b1, %w2, %b2
      {config = #moe.gating<eval_capacity_factor = 2.0, min_capacity = 10>,
       stream = 0 : i64, eval}
      : (tensor<64x32xf32>, tensor<32x8xf32>, tensor<8x32x64xf32>,
         tensor<8x64xf32>, tensor<8x64x32xf32>, tensor<8x32xf32>)
        -> (tensor<64x32xf32>, tensor<8xi32>, tensor<f32>)
  return %y : tensor<64x32xf32>
}

// Training with min_capacity: 64/8*1.0 = 8 < 10, so C = 10.
// CHECK-LABEL: func.func @min_capacity
// CHECK: moe.gate {{.*}}capacity = 10 : i64
// CHECK: moe.dispatch {{.*}} -> tensor<8x10x32xf32>
func.func @min_capacity(%x: tensor<64x32xf32>, %wg: tensor<32x8xf32>,
                        %w1: tensor<8x32x64xf32>, %b1: tensor<8x64xf32>,
                        %w2: tensor<8x64x32xf32>, %b2: tensor<8x32xf32>)
    -> tensor<64x32xf32> {
  %y, %c, %a = moe.moe_layer relu %x, %wg, %w1, %b1, %w2, %b2
      {config = #moe.gating<min_capacity = 10>, stream = 0 : i64}
      : (tensor<64x32xf32>, tensor<32x8xf32>, tensor<8x32x64xf32>,
         tensor<8x64xf32>, tensor<8x64x32xf32>, tensor<8x32xf32>)
        -> (tensor<64x32xf32>, tensor<8xi32>, tensor<f32>)
  return %y : tensor<64x32xf32>
}

// Dropless: the static bound is every token.
// CHECK-LABEL: func.func @dropless
// CHECK: moe.gate {{.*}}capacity = 64 : i64
// CHECK: moe.dispatch {{.*}} -> tensor<8x64x32xf32>
func.func @dropless(%x: tensor<64x32xf32>, %wg: tensor<32x8xf32>,
                    %w1: tensor<8x32x64xf32>, %b1: tensor<8x64xf32>,
                    %w2: tensor<8x64x32xf32>, %b2: tensor<8x32xf32>)
    -> tensor<64x32xf32> {
  %y, %c, %a = moe.moe_layer relu %x, %wg, %w1, %b1, %w2, %b2
      {config = #moe.gating<drop_tokens = false>, stream = 0 : i64}
      : (tensor<64x32xf32>, tensor<32x8xf32>, tensor<8x32x64xf32>,
         tensor<8x64xf32>, tensor<8x64x32xf32>, tensor<8x32xf32>)
        -> (tensor<64x32xf32>, tensor<8xi32>, tensor<f32>)
  return %y : tensor<64x32xf32>
}

// Gating groups: 64 tokens in 4 groups of 16, 8 experts, top-1 factor 1.0:
// each group gets max(ceil(16/8), min_capacity 4) = 4 slots, 16 in all (the
// ungrouped capacity would be 8). The buffer holds every group's slots.
// CHECK-LABEL: func.func @groups
// CHECK: moe.gate {{.*}}capacity = 16 : i64, config = #moe.gating<groups = 4>
// CHECK: moe.dispatch {{.*}} -> tensor<8x16x32xf32>
// CHECK: moe.expert_ffn relu {{.*}} -> tensor<8x16x32xf32>
func.func @groups(%x: tensor<4x16x32xf32>, %wg: tensor<32x8xf32>,
                  %w1: tensor<8x32x64xf32>, %b1: tensor<8x64xf32>,
                  %w2: tensor<8x64x32xf32>, %b2: tensor<8x32xf32>)
    -> tensor<4x16x32xf32> {
  %y, %c, %a = moe.moe_layer relu %x, %wg, %w1, %b1, %w2, %b2
      {config = #moe.gating<groups = 4>, stream = 0 : i64}
      : (tensor<4x16x32xf32>, tensor<32x8xf32>, tensor<8x32x64xf32>,
         tensor<8x64xf32>, tensor<8x64x32xf32>, tensor<8x32xf32>)
        -> (tensor<4x16x32xf32>, tensor<8xi32>, tensor<f32>)
  return %y : tensor<4x16x32xf32>
}

// Grouped dropless: each group's static bound is its own tokens, 2 x 32.
// CHECK-LABEL: func.func @groups_dropless
// CHECK: moe.gate {{.*}}capacity = 64 : i64
// CHECK: moe.dispatch {{.*}} -> tensor<8x64x32xf32>
func.func @groups_dropless(%x: tensor<64x32xf32>, %wg: tensor<32x8xf32>,
                           %w1: tensor<8x32x64xf32>, %b1: tensor<8x64xf32>,
                           %w2: tensor<8x64x32xf32>, %b2: tensor<8x32xf32>)
    -> tensor<64x32xf32> {
  %y, %c, %a = moe.moe_layer relu %x, %wg, %w1, %b1, %w2, %b2
      {config = #moe.gating<top_k = 2, drop_tokens = false, groups = 2>,
       stream = 0 : i64}
      : (tensor<64x32xf32>, tensor<32x8xf32>, tensor<8x32x64xf32>,
         tensor<8x64xf32>, tensor<8x64x32xf32>, tensor<8x32xf32>)
        -> (tensor<64x32xf32>, tensor<8xi32>, tensor<f32>)
  return %y : tensor<64x32xf32>
}
