// RUN: moe-opt %s --split-input-file --moe-build-decoder --verify-diagnostics | FileCheck %s
// RUN: moe-opt %s --split-input-file --moe-build-decoder=batch=4 --verify-diagnostics | FileCheck %s --check-prefix=BATCH
// RUN: not moe-opt %s --split-input-file --moe-training-pipeline="decoder=true ep=2" 2>&1 | FileCheck %s --check-prefix=PARTITION

// A one-layer encoder-decoder: the encoder and the cross-attention's key
// and value projections go to @encode, the decoder to @decode_step for one
// new token per sequence over caches of the earlier positions.

// CHECK-LABEL: func.func @encode(
// CHECK-SAME: %[[SRC:.*]]: tensor<2x5xi32> {moe.input = "src_tokens"}
// CHECK-SAME: moe.param = "embed"
// CHECK-SAME: -> (tensor<2x5x8xf32> {moe.name = "state.0"}, tensor<2x5x8xf32> {moe.name = "state.1"}, tensor<2x5xi1> {moe.name = "state.2"})
// CHECK-NOT: moe.dropout
// CHECK: %[[MASK:.*]] = moe.padding_mask %[[SRC]]
// CHECK: moe.moe_layer gelu {{.*}} eval
// CHECK: %[[K:.*]] = moe.linear %[[MEM:.*]], %{{.*}} : (tensor<2x5x8xf32>
// CHECK: %[[V:.*]] = moe.linear %[[MEM]], %{{.*}} : (tensor<2x5x8xf32>
// CHECK: return %[[K]], %[[V]], %[[MASK]]

// CHECK-LABEL: func.func @decode_step(
// CHECK-SAME: %[[TOK:[a-z0-9]*]]: tensor<2x1xi32> {moe.input = "tokens"}
// CHECK-SAME: %[[POS:[a-z0-9]*]]: tensor<i32> {moe.input = "position"}
// CHECK-SAME: %[[SELF:[a-z0-9]*]]: tensor<2x6xi1> {moe.input = "self_mask"}
// CHECK-SAME: %[[CK:[a-z0-9]*]]: tensor<2x6x8xf32> {moe.input = "cache.k.0"}
// CHECK-SAME: %[[CV:[a-z0-9]*]]: tensor<2x6x8xf32> {moe.input = "cache.v.0"}
// CHECK-SAME: tensor<2x5x8xf32> {moe.input = "state.0"}
// CHECK-SAME: tensor<2x5x8xf32> {moe.input = "state.1"}
// CHECK-SAME: tensor<2x5xi1> {moe.input = "state.2"}
// CHECK-SAME: -> (tensor<2x1x16xf32> {moe.name = "logits"}, tensor<2x1x8xf32> {moe.name = "key_rows.0"}, tensor<2x1x8xf32> {moe.name = "value_rows.0"})
// CHECK: %[[H:.*]] = moe.embedding_at sinusoidal %[[TOK]], %{{.*}} offset %[[POS]] {scaled} : (tensor<2x1xi32>, tensor<16x8xf32>, tensor<i32>) -> tensor<2x1x8xf32>
// CHECK-NOT: moe.dropout
// CHECK: %[[NQ:.*]] = moe.linear %[[H]]
// CHECK: %[[NK:.*]] = moe.linear %[[H]]
// CHECK: %[[NV:.*]] = moe.linear %[[H]]
// CHECK: %[[KC:.*]] = moe.cache_update %[[CK]], %[[NK]], %[[POS]] : (tensor<2x6x8xf32>, tensor<2x1x8xf32>, tensor<i32>) -> tensor<2x6x8xf32>
// CHECK: %[[VC:.*]] = moe.cache_update %[[CV]], %[[NV]], %[[POS]]
// CHECK: moe.attention %[[NQ]], %[[KC]], %[[VC]] key_mask %[[SELF]] {num_heads = 2 : i64} : (tensor<2x1x8xf32>, tensor<2x6x8xf32>, tensor<2x6x8xf32>, tensor<2x6xi1>) -> tensor<2x1x8xf32>
// CHECK: moe.attention {{.*}} : (tensor<2x1x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5xi1>) -> tensor<2x1x8xf32>
// CHECK: moe.moe_layer gelu {{.*}} eval
// CHECK: %[[LOGITS:.*]] = moe.linear {{.*}} {transpose_weight} : (tensor<2x1x8xf32>, tensor<16x8xf32>) -> tensor<2x1x16xf32>
// CHECK-NOT: moe.cross_entropy
// CHECK: return %[[LOGITS]], %[[NK]], %[[NV]]

// The forward in evaluation mode, for the validation loss.
// CHECK-LABEL: func.func @evaluate(
// CHECK-SAME: {moe.input = "src_tokens"}
// CHECK-SAME: {moe.input = "tgt_tokens"}
// CHECK-SAME: {moe.input = "labels"}
// CHECK-SAME: -> (tensor<f32> {moe.name = "loss"})
// CHECK-NOT: moe.dropout
// CHECK: moe.moe_layer gelu {{.*}} eval
// CHECK: moe.attention {{.*}} {causal, num_heads = 2 : i64}
// CHECK: moe.moe_layer gelu {{.*}} eval
// CHECK: %[[LOSS:.*]] = moe.cross_entropy
// CHECK: return %[[LOSS]] : tensor<f32>

// BATCH-LABEL: func.func @encode(
// BATCH-SAME: tensor<4x5xi32> {moe.input = "src_tokens"}
// BATCH: return {{.*}} : tensor<4x5x8xf32>, tensor<4x5x8xf32>, tensor<4x5xi1>
// BATCH-LABEL: func.func @decode_step(
// BATCH-SAME: tensor<4x1xi32> {moe.input = "tokens"}
// BATCH-SAME: tensor<4x6x8xf32> {moe.input = "cache.k.0"}
// BATCH: return {{.*}} : tensor<4x1x16xf32>, tensor<4x1x8xf32>, tensor<4x1x8xf32>

// PARTITION: error: moe-partition: the module has @decode_step (moe-build-decoder): incremental decoding runs in one process; compile it without a grid

module {
  func.func @forward(%embed: tensor<16x8xf32> {moe.param = "embed"},
                     %wq: tensor<8x8xf32> {moe.param = "q"}, %wk: tensor<8x8xf32> {moe.param = "k"},
                     %wv: tensor<8x8xf32> {moe.param = "v"},
                     %xq: tensor<8x8xf32> {moe.param = "xq"}, %xk: tensor<8x8xf32> {moe.param = "xk"},
                     %xv: tensor<8x8xf32> {moe.param = "xv"},
                     %wg: tensor<8x4xf32> {moe.param = "gate"},
                     %w1: tensor<4x8x16xf32> {moe.param = "w1"}, %b1: tensor<4x16xf32> {moe.param = "b1"},
                     %w2: tensor<4x16x8xf32> {moe.param = "w2"}, %b2: tensor<4x8xf32> {moe.param = "b2"},
                     %src: tensor<2x5xi32> {moe.input = "src_tokens"},
                     %tgt: tensor<2x6xi32> {moe.input = "tgt_tokens"},
                     %labels: tensor<2x6xi32> {moe.input = "labels"})
      -> (tensor<f32> {moe.role = "loss"}) {
    %smask = moe.padding_mask %src {pad_id = 0 : i64} : tensor<2x5xi32> -> tensor<2x5xi1>
    %s0 = moe.embedding sinusoidal %src, %embed {scaled} : (tensor<2x5xi32>, tensor<16x8xf32>) -> tensor<2x5x8xf32>
    %s1 = moe.dropout %s0 {rate = 0.1 : f64, stream = 0 : i64} : tensor<2x5x8xf32>
    %mem, %c0, %a0 = moe.moe_layer gelu %s1, %wg, %w1, %b1, %w2, %b2 {config = #moe.gating<top_k = 2>, stream = 1 : i64} : (tensor<2x5x8xf32>, tensor<8x4xf32>, tensor<4x8x16xf32>, tensor<4x16xf32>, tensor<4x16x8xf32>, tensor<4x8xf32>) -> (tensor<2x5x8xf32>, tensor<4xi32>, tensor<f32>)
    %tmask = moe.padding_mask %tgt {pad_id = 0 : i64} : tensor<2x6xi32> -> tensor<2x6xi1>
    %t0 = moe.embedding sinusoidal %tgt, %embed {scaled} : (tensor<2x6xi32>, tensor<16x8xf32>) -> tensor<2x6x8xf32>
    %t1 = moe.dropout %t0 {rate = 0.1 : f64, stream = 2 : i64} : tensor<2x6x8xf32>
    %q = moe.linear %t1, %wq : (tensor<2x6x8xf32>, tensor<8x8xf32>) -> tensor<2x6x8xf32>
    %k = moe.linear %t1, %wk : (tensor<2x6x8xf32>, tensor<8x8xf32>) -> tensor<2x6x8xf32>
    %v = moe.linear %t1, %wv : (tensor<2x6x8xf32>, tensor<8x8xf32>) -> tensor<2x6x8xf32>
    %sa = moe.attention %q, %k, %v key_mask %tmask {causal, num_heads = 2 : i64} : (tensor<2x6x8xf32>, tensor<2x6x8xf32>, tensor<2x6x8xf32>, tensor<2x6xi1>) -> tensor<2x6x8xf32>
    %t2 = moe.add %t1, %sa : tensor<2x6x8xf32>
    %cq = moe.linear %t2, %xq : (tensor<2x6x8xf32>, tensor<8x8xf32>) -> tensor<2x6x8xf32>
    %ck = moe.linear %mem, %xk : (tensor<2x5x8xf32>, tensor<8x8xf32>) -> tensor<2x5x8xf32>
    %cv = moe.linear %mem, %xv : (tensor<2x5x8xf32>, tensor<8x8xf32>) -> tensor<2x5x8xf32>
    %ca = moe.attention %cq, %ck, %cv key_mask %smask {num_heads = 2 : i64} : (tensor<2x6x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5xi1>) -> tensor<2x6x8xf32>
    %t3 = moe.add %t2, %ca : tensor<2x6x8xf32>
    %t4, %c1, %a1 = moe.moe_layer gelu %t3, %wg, %w1, %b1, %w2, %b2 {config = #moe.gating<top_k = 2>, stream = 3 : i64} : (tensor<2x6x8xf32>, tensor<8x4xf32>, tensor<4x8x16xf32>, tensor<4x16xf32>, tensor<4x16x8xf32>, tensor<4x8xf32>) -> (tensor<2x6x8xf32>, tensor<4xi32>, tensor<f32>)
    %logits = moe.linear %t4, %embed {transpose_weight} : (tensor<2x6x8xf32>, tensor<16x8xf32>) -> tensor<2x6x16xf32>
    %loss = moe.cross_entropy %logits, %labels : (tensor<2x6x16xf32>, tensor<2x6xi32>) -> tensor<f32>
    return %loss : tensor<f32>
  }
}
