// RUN: moe-opt %s --moe-partition-report="json=%t.json" -o /dev/null | FileCheck %s
// RUN: FileCheck %s --check-prefix=JSON < %t.json
// RUN: moe-opt %s --moe-partition-report="alignment=256" -o /dev/null | FileCheck %s --check-prefix=ALIGN

// A hand-written rank program on a 2 x 3 x 1 grid (ZeRO-1 style update of
// one parameter) whose numbers are worked out below, independently of the
// pass.
//
// Arguments (f32 = 4 bytes, i32 = 4, i64 = 8):
//   %w       6x8xf32   192 B  parameter
//   %m, %v   3x8xf32    96 B  optimizer state (2 x 96 = 192)
//   %x       2x5x6xf32 240 B  batch
//   %labels  2x5xi32    40 B  batch
//   %step    i64         8 B  batch (240 + 40 + 8 = 288)
// Persistent buffers, each at the next multiple of 64: %w [0, 192),
// %m [192, 288), %v [320, 416), %x [448, 688), %labels [704, 744),
// %step [768, 776): 776 bytes. With alignment 256: %w 0, %m 256, %v 512,
// %x 768, %labels 1024, %step 1280 + 8 = 1288.
// Gradient read by the update: %g, 3x8xf32 = 96 B.
//
// FLOPs: linear [10 tokens x 6] x [6 x 8] = 2*10*6*8 = 960, its gradient
// twice that, 1920: 2880 (forward 960, backward 1920, all linear).
//
// Collectives (w = 4):
//   all_reduce %dw over [0, 1]: p = 6, n = 48: 2*5*ceil(48/6)*4 = 320
//   all_reduce %l over [0, 1]:  p = 6, n = 1:  2*5*ceil(1/6)*4  = 40
//   all_reduce %l over [2]:     p = 1: 0                    -> 3 ops, 360
//   all_gather %p over [0]: p = 2, n = 24: 1*24*4 = 96      -> 1 op, 96
//   reduce_scatter %dy over [0]: p = 2, result n = 40: 1*40*4 -> 1 op, 160
//   all_to_all %dx over [1]: p = 3, n = 60/3 = 20: 2*20*4   -> 1 op, 160
//   all_slice (2 ops): 0.  Total: 8 ops, 776 bytes.
//
// Arena (64-byte aligned sizes; [first, last] op positions, returned values
// live to the terminator at 17; %m2, %v2 are updated in place and %pg is
// written into %w, so they take no arena bytes):
//   %y 320 [0,3]   %l 64 [1,9]    %one 64 [2,3]   %dy 320 [3,5]
//   %dx 256 [4,6]  %dw 192 [4,7]  %rs 192 [5,17]  %xa 256 [6,17]
//   %r 192 [7,10]  %lsum 64 [8,17] %lone 64 [9,17] %g 128 [10,15]
//   %ws 128 [11,15] %lr 64 [12,15] %s 64 [13,14]   %norm 64 [14,17]
//   %scale 64 [14,15] %p 128 [15,16]
// Largest first at the lowest free offset: %y 0, %dy 320, %dx 0, %xa 256,
// %dw 640, %rs 832, %r 0, %g 512, %ws 0, %p 128, then the 64-byte ones in
// order of first use: %l 1024, %one 320, %lsum 640, %lone 704, %lr 768,
// %s 128, %norm 1024, %scale 1088 -> arena 1152 bytes.

// CHECK: partition report of @train_step: grid dp=2 ep=3 tp=1 (6 ranks), zero=1
// CHECK-NEXT: per rank (every rank of the SPMD program has the same sizes):
// CHECK-NEXT: parameters 192 bytes
// CHECK-NEXT: gradients 96 bytes
// CHECK-NEXT: optimizer state 192 bytes
// CHECK-NEXT: batch inputs 288 bytes
// CHECK-NEXT: activations (arena peak) 1152 bytes
// CHECK-NEXT: persistent (arguments) 776 bytes
// CHECK-NEXT: flops per step 2880
// CHECK-NEXT: forward 960
// CHECK-NEXT: backward 1920
// CHECK-NEXT: linear 2880
// CHECK-NEXT: attention 0
// CHECK-NEXT: experts 0
// CHECK-NEXT: gates 0
// CHECK-NEXT: collectives per step ops bytes sent
// CHECK-NEXT: all_reduce 3 360
// CHECK-NEXT: over [0, 1] 2 360
// CHECK-NEXT: over [2] 1 0
// CHECK-NEXT: all_gather 1 96
// CHECK-NEXT: over [0] 1 96
// CHECK-NEXT: reduce_scatter 1 160
// CHECK-NEXT: over [0] 1 160
// CHECK-NEXT: all_to_all 1 160
// CHECK-NEXT: over [1] 1 160
// CHECK-NEXT: all_slice 2 0
// CHECK-NEXT: over [0] 2 0
// CHECK-NEXT: total 8 776

// JSON: "grid": {
// JSON-NEXT: "dp": 2,
// JSON-NEXT: "ep": 3,
// JSON-NEXT: "tp": 1
// JSON-NEXT: },
// JSON-NEXT: "zero": 1,
// JSON-NEXT: "alignment": 64,
// JSON-NEXT: "parameter_bytes": 192,
// JSON-NEXT: "gradient_bytes": 96,
// JSON-NEXT: "optimizer_state_bytes": 192,
// JSON-NEXT: "batch_bytes": 288,
// JSON-NEXT: "activation_bytes": 1152,
// JSON-NEXT: "persistent_bytes": 776,
// JSON-NEXT: "device_copy_bytes": 0,
// JSON-NEXT: "host_bytes": 0,
// JSON-NEXT: "to_host_bytes": 0,
// JSON-NEXT: "to_device_bytes": 0,
// JSON-NEXT: "flops": 2880,
// JSON-NEXT: "collectives": {
// JSON-NEXT: "all_reduce": {
// JSON-NEXT: "count": 3,
// JSON-NEXT: "bytes_sent": 360
// JSON-NEXT: },
// JSON-NEXT: "all_gather": {
// JSON-NEXT: "count": 1,
// JSON-NEXT: "bytes_sent": 96
// JSON-NEXT: },
// JSON-NEXT: "reduce_scatter": {
// JSON-NEXT: "count": 1,
// JSON-NEXT: "bytes_sent": 160
// JSON-NEXT: },
// JSON-NEXT: "all_to_all": {
// JSON-NEXT: "count": 1,
// JSON-NEXT: "bytes_sent": 160
// JSON-NEXT: },
// JSON-NEXT: "all_slice": {
// JSON-NEXT: "count": 2,
// JSON-NEXT: "bytes_sent": 0
// JSON-NEXT: }
// JSON-NEXT: },
// JSON-NEXT: "by_axes": [
// JSON-NEXT: {
// JSON-NEXT: "kind": "all_reduce",
// JSON-NEXT: "axes": "[0, 1]",
// JSON-NEXT: "count": 2,
// JSON-NEXT: "bytes_sent": 360
// JSON-NEXT: },
// JSON-NEXT: {
// JSON-NEXT: "kind": "all_reduce",
// JSON-NEXT: "axes": "[2]",
// JSON-NEXT: "count": 1,
// JSON-NEXT: "bytes_sent": 0
// JSON-NEXT: },
// JSON:      "kind": "all_to_all",
// JSON-NEXT: "axes": "[1]",
// JSON-NEXT: "count": 1,
// JSON-NEXT: "bytes_sent": 160
// JSON: {{^ ]$}}
// JSON-NEXT: }

// ALIGN: persistent (arguments) 1288 bytes

module attributes {moe.zero_stage = 1 : i64} {
  shard.grid @grid(shape = 2x3x1)
  func.func @train_step(
      %w: tensor<6x8xf32> {moe.param = "w"},
      %m: tensor<3x8xf32> {moe.opt_state = "exp_avg", moe.state_of = "w"},
      %v: tensor<3x8xf32> {moe.opt_state = "exp_avg_sq", moe.state_of = "w"},
      %x: tensor<2x5x6xf32> {moe.input = "x"},
      %labels: tensor<2x5xi32> {moe.input = "labels"},
      %step: tensor<i64> {moe.input = "step"})
      -> (tensor<f32> {moe.role = "loss"}, tensor<f32> {moe.role = "metric", moe.name = "one"},
          tensor<1x5x8xf32> {moe.role = "metric", moe.name = "rs"},
          tensor<2x15x2xf32> {moe.role = "metric", moe.name = "xa"},
          tensor<f32> {moe.role = "metric", moe.name = "grad_norm"},
          tensor<6x8xf32> {moe.param = "w", moe.role = "new_param"},
          tensor<3x8xf32> {moe.opt_state = "exp_avg", moe.state_of = "w", moe.role = "new_state"},
          tensor<3x8xf32> {moe.opt_state = "exp_avg_sq", moe.state_of = "w", moe.role = "new_state"}) {
    %y = moe.linear %x, %w : (tensor<2x5x6xf32>, tensor<6x8xf32>) -> tensor<2x5x8xf32>
    %l = moe.cross_entropy %y, %labels : (tensor<2x5x8xf32>, tensor<2x5xi32>) -> tensor<f32>
    %one = arith.constant dense<1.0> : tensor<f32>
    %dy = moe.cross_entropy_grad %one, %y, %labels
        : (tensor<f32>, tensor<2x5x8xf32>, tensor<2x5xi32>) -> tensor<2x5x8xf32>
    %dx, %dw = moe.linear_grad %dy, %x, %w
        : (tensor<2x5x8xf32>, tensor<2x5x6xf32>, tensor<6x8xf32>) -> (tensor<2x5x6xf32>, tensor<6x8xf32>)
    %rs = shard.reduce_scatter %dy on @grid grid_axes = [0] scatter_axis = 0
        : tensor<2x5x8xf32> -> tensor<1x5x8xf32>
    %xa = shard.all_to_all %dx on @grid grid_axes = [1] split_axis = 2 concat_axis = 1
        : tensor<2x5x6xf32> -> tensor<2x15x2xf32>
    %r = shard.all_reduce %dw on @grid grid_axes = [0, 1] : tensor<6x8xf32> -> tensor<6x8xf32>
    %lsum = shard.all_reduce %l on @grid grid_axes = [0, 1] : tensor<f32> -> tensor<f32>
    %lone = shard.all_reduce %l on @grid grid_axes = [2] : tensor<f32> -> tensor<f32>
    %g = shard.all_slice %r on @grid grid_axes = [0] slice_axis = 0 : tensor<6x8xf32> -> tensor<3x8xf32>
    %ws = shard.all_slice %w on @grid grid_axes = [0] slice_axis = 0 : tensor<6x8xf32> -> tensor<3x8xf32>
    %lr = moe.lr_schedule %step {peak_lr = 1.0e-3 : f64, warmup_steps = 10 : i64} : tensor<i64> -> tensor<f32>
    %s = moe.sum_squares dense %g : tensor<3x8xf32> -> tensor<f32>
    %norm, %scale = moe.clip_by_global_norm %s {max_norm = 1.0 : f64} : tensor<f32> -> (tensor<f32>, tensor<f32>)
    %p, %m2, %v2 = moe.adamw dense %ws, %g, %m, %v, %lr, %scale, %step
        {beta1 = 0.9 : f64, beta2 = 0.98 : f64, epsilon = 1.0e-8 : f64, weight_decay = 0.0 : f64}
        : tensor<3x8xf32>, tensor<f32>, tensor<i64>
    %pg = shard.all_gather %p on @grid grid_axes = [0] gather_axis = 0 : tensor<3x8xf32> -> tensor<6x8xf32>
    return %lsum, %lone, %rs, %xa, %norm, %pg, %m2, %v2
        : tensor<f32>, tensor<f32>, tensor<1x5x8xf32>, tensor<2x15x2xf32>, tensor<f32>,
          tensor<6x8xf32>, tensor<3x8xf32>, tensor<3x8xf32>
  }
}
