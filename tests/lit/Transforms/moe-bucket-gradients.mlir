// RUN: moe-opt %s --split-input-file --moe-bucket-gradients | FileCheck %s
// RUN: moe-opt %s --split-input-file --moe-bucket-gradients="bucket-mb=0.0001" | FileCheck %s --check-prefix=SMALL
// RUN: not moe-opt %s --split-input-file --moe-bucket-gradients="bucket-mb=0" 2>&1 | FileCheck %s --check-prefix=ZERO
// RUN: not moe-opt %s --split-input-file --moe-bucket-gradients="function=nope" 2>&1 | FileCheck %s --check-prefix=NOFUNC

// Three gradient all-reduces over the same axes, used only at the end of the
// step, become one bucket reduced where the last of them was; the
// all-reduce over other axes, the one with another reduction and the i32
// one stay as they are. A tensor-parallel partial sum used at once (%t)
// closes nothing: it is a bucket of its own, left alone.
// CHECK-LABEL: func.func @train_step
// CHECK: %[[T:.*]] = shard.all_reduce %arg4 on @grid grid_axes = [2]
// CHECK-NEXT: moe.add %[[T]], %[[T]]
// CHECK: shard.all_reduce %arg3 on @grid grid_axes = [0]
// CHECK: shard.all_reduce %arg5 on @grid grid_axes = [0, 1] reduction = max
// CHECK: shard.all_reduce %arg6 on @grid grid_axes = [0, 1] : tensor<4xi32>
// CHECK: %[[FLAT:.*]] = moe.pack %arg0, %arg1, %arg2 : tensor<4x8xf32>, tensor<8xf32>, tensor<f32> -> tensor<41xf32>
// CHECK-NEXT: %[[SUM:.*]] = shard.all_reduce %[[FLAT]] on @grid grid_axes = [0, 1] : tensor<41xf32> -> tensor<41xf32>
// CHECK-NEXT: %[[A:.*]] = moe.unpack %[[SUM]] {offset = 0 : i64} : tensor<41xf32> -> tensor<4x8xf32>
// CHECK-NEXT: %[[B:.*]] = moe.unpack %[[SUM]] {offset = 32 : i64} : tensor<41xf32> -> tensor<8xf32>
// CHECK-NEXT: %[[C:.*]] = moe.unpack %[[SUM]] {offset = 40 : i64} : tensor<41xf32> -> tensor<f32>
// CHECK-NOT: shard.all_reduce %arg{{[012]}}
// CHECK: return %[[A]], %[[B]], %[[C]]
// With buckets of 104 bytes the 128-byte gradient fills one on its own;
// the next two share one.
// SMALL-LABEL: func.func @train_step
// SMALL: shard.all_reduce %arg0 on @grid grid_axes = [0, 1] : tensor<4x8xf32>
// SMALL: moe.pack %arg1, %arg2 : tensor<8xf32>, tensor<f32> -> tensor<9xf32>
// ZERO: moe-bucket-gradients: bucket-mb must be in (0, 1048576] MiB, found 0
// NOFUNC: moe-bucket-gradients: no function @nope
module {
  shard.grid @grid(shape = 2x2x2)
  func.func @train_step(%g0: tensor<4x8xf32>, %g1: tensor<8xf32>,
                        %g2: tensor<f32>, %e: tensor<8xf32>,
                        %p: tensor<8xf32>, %m: tensor<8xf32>,
                        %c: tensor<4xi32>)
      -> (tensor<4x8xf32>, tensor<8xf32>, tensor<f32>, tensor<8xf32>,
          tensor<8xf32>, tensor<8xf32>, tensor<4xi32>) {
    %r0 = shard.all_reduce %g0 on @grid grid_axes = [0, 1] : tensor<4x8xf32> -> tensor<4x8xf32>
    %t = shard.all_reduce %p on @grid grid_axes = [2] : tensor<8xf32> -> tensor<8xf32>
    %u = moe.add %t, %t : tensor<8xf32>
    %r1 = shard.all_reduce %g1 on @grid grid_axes = [0, 1] : tensor<8xf32> -> tensor<8xf32>
    %re = shard.all_reduce %e on @grid grid_axes = [0] : tensor<8xf32> -> tensor<8xf32>
    %rm = shard.all_reduce %m on @grid grid_axes = [0, 1] reduction = max : tensor<8xf32> -> tensor<8xf32>
    %rc = shard.all_reduce %c on @grid grid_axes = [0, 1] : tensor<4xi32> -> tensor<4xi32>
    %r2 = shard.all_reduce %g2 on @grid grid_axes = [0, 1] : tensor<f32> -> tensor<f32>
    return %r0, %r1, %r2, %re, %u, %rm, %rc
        : tensor<4x8xf32>, tensor<8xf32>, tensor<f32>, tensor<8xf32>,
          tensor<8xf32>, tensor<8xf32>, tensor<4xi32>
  }
}

// -----

// A member used before the next candidate closes its bucket: %r0 is read
// by moe.add before %g1 is reduced, so each stays a bucket of one.
// CHECK-LABEL: func.func @train_step
// CHECK-NOT: moe.pack
// CHECK: return
module {
  shard.grid @grid(shape = 2x2x1)
  func.func @train_step(%g0: tensor<8xf32>, %g1: tensor<8xf32>)
      -> (tensor<8xf32>, tensor<8xf32>) {
    %r0 = shard.all_reduce %g0 on @grid grid_axes = [0, 1] : tensor<8xf32> -> tensor<8xf32>
    %s = moe.add %r0, %g1 : tensor<8xf32>
    %r1 = shard.all_reduce %s on @grid grid_axes = [0, 1] : tensor<8xf32> -> tensor<8xf32>
    return %r0, %r1 : tensor<8xf32>, tensor<8xf32>
  }
}

// -----

// ZeRO: the reduce-scatters of gradient shards over the same axes share one
// bucket packed in rows (one per rank: row r holds part r of every
// gradient, so rank r receives its shard of each), and so do the
// all-gathers of the updated parameter shards (row r: rank r's shards;
// each parameter is unpacked from all rows). A scatter along another
// dimension stays as it is.
// CHECK-LABEL: func.func @train_step
// CHECK: shard.reduce_scatter %arg3 on @grid grid_axes = [0] scatter_axis = 1
// CHECK: %[[ROWS:.*]] = moe.pack %arg0, %arg1 {chunks = 2 : i64} : tensor<4x8xf32>, tensor<8xf32> -> tensor<40xf32>
// CHECK-NEXT: %[[MINE:.*]] = shard.reduce_scatter %[[ROWS]] on @grid grid_axes = [0] scatter_axis = 0 : tensor<40xf32> -> tensor<20xf32>
// CHECK-NEXT: %[[S0:.*]] = moe.unpack %[[MINE]] {offset = 0 : i64} : tensor<20xf32> -> tensor<2x8xf32>
// CHECK-NEXT: %[[S1:.*]] = moe.unpack %[[MINE]] {offset = 16 : i64} : tensor<20xf32> -> tensor<4xf32>
// CHECK: %[[OWN:.*]] = moe.pack %[[S0]], %[[S1]] : tensor<2x8xf32>, tensor<4xf32> -> tensor<20xf32>
// CHECK-NEXT: %[[ALL:.*]] = shard.all_gather %[[OWN]] on @grid grid_axes = [0] gather_axis = 0 : tensor<20xf32> -> tensor<40xf32>
// CHECK-NEXT: %[[P0:.*]] = moe.unpack %[[ALL]] {chunks = 2 : i64, offset = 0 : i64} : tensor<40xf32> -> tensor<4x8xf32>
// CHECK-NEXT: %[[P1:.*]] = moe.unpack %[[ALL]] {chunks = 2 : i64, offset = 16 : i64} : tensor<40xf32> -> tensor<8xf32>
// CHECK: return %[[P0]], %[[P1]]
module {
  shard.grid @grid(shape = 2)
  func.func @train_step(%g0: tensor<4x8xf32>, %g1: tensor<8xf32>,
                        %g2: tensor<4x8xf32>, %g3: tensor<4x8xf32>)
      -> (tensor<4x8xf32>, tensor<8xf32>, tensor<4x4xf32>) {
    %s0 = shard.reduce_scatter %g0 on @grid grid_axes = [0] scatter_axis = 0 : tensor<4x8xf32> -> tensor<2x8xf32>
    %s3 = shard.reduce_scatter %g3 on @grid grid_axes = [0] scatter_axis = 1 : tensor<4x8xf32> -> tensor<4x4xf32>
    %s1 = shard.reduce_scatter %g1 on @grid grid_axes = [0] scatter_axis = 0 : tensor<8xf32> -> tensor<4xf32>
    %p0 = shard.all_gather %s0 on @grid grid_axes = [0] gather_axis = 0 : tensor<2x8xf32> -> tensor<4x8xf32>
    %p1 = shard.all_gather %s1 on @grid grid_axes = [0] gather_axis = 0 : tensor<4xf32> -> tensor<8xf32>
    return %p0, %p1, %s3 : tensor<4x8xf32>, tensor<8xf32>, tensor<4x4xf32>
  }
}

// -----

// E+Z-Offload's 16-bit device copies (offload=params) are all-gathered in
// bf16: their gathers are bucketed like the fp32 ones, in a bucket of their
// own element type (a bf16 and an fp32 gather over the same axes are never
// packed together).
// CHECK-LABEL: func.func @train_step
// CHECK: %[[F:.*]] = shard.all_gather %arg2 on @grid grid_axes = [0] gather_axis = 0 : tensor<2x8xf32> -> tensor<4x8xf32>
// CHECK: %[[OWN:.*]] = moe.pack %arg0, %arg1 : tensor<2x8xbf16>, tensor<4xbf16> -> tensor<20xbf16>
// CHECK-NEXT: %[[ALL:.*]] = shard.all_gather %[[OWN]] on @grid grid_axes = [0] gather_axis = 0 : tensor<20xbf16> -> tensor<40xbf16>
// CHECK-NEXT: %[[C0:.*]] = moe.unpack %[[ALL]] {chunks = 2 : i64, offset = 0 : i64} : tensor<40xbf16> -> tensor<4x8xbf16>
// CHECK-NEXT: %[[C1:.*]] = moe.unpack %[[ALL]] {chunks = 2 : i64, offset = 16 : i64} : tensor<40xbf16> -> tensor<8xbf16>
// CHECK: return %[[C0]], %[[C1]], %[[F]]
// A bucket of 0.0001 MiB (104 bytes) holds the two bf16 shards' 80 bytes
// of copies but not a third f32 gather's 128.
// SMALL-LABEL: func.func @train_step
// SMALL: moe.pack %arg0, %arg1 : tensor<2x8xbf16>, tensor<4xbf16> -> tensor<20xbf16>
module {
  shard.grid @grid(shape = 2)
  func.func @train_step(%s0: tensor<2x8xbf16>, %s1: tensor<4xbf16>,
                        %s2: tensor<2x8xf32>)
      -> (tensor<4x8xbf16>, tensor<8xbf16>, tensor<4x8xf32>) {
    %c0 = shard.all_gather %s0 on @grid grid_axes = [0] gather_axis = 0 : tensor<2x8xbf16> -> tensor<4x8xbf16>
    %f = shard.all_gather %s2 on @grid grid_axes = [0] gather_axis = 0 : tensor<2x8xf32> -> tensor<4x8xf32>
    %c1 = shard.all_gather %s1 on @grid grid_axes = [0] gather_axis = 0 : tensor<4xbf16> -> tensor<8xbf16>
    return %c0, %c1, %f : tensor<4x8xbf16>, tensor<8xbf16>, tensor<4x8xf32>
  }
}
