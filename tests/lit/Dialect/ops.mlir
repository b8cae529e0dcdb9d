// RUN: moe-opt %s | FileCheck %s
// RUN: moe-opt %s | moe-opt | FileCheck %s
// RUN: moe-opt %s --mlir-print-op-generic | moe-opt | FileCheck %s

// Round trip of every moe op and attribute: the custom form parses, prints in
// the form checked below, and the printed (custom and generic) forms parse
// back to the same IR.

//===----------------------------------------------------------------------===//
// Dense ops
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @embedding(
// CHECK-SAME: %arg0: tensor<2x8xi32>, %arg1: tensor<100x16xf32>, %arg2: tensor<12x16xf32>, %arg3: tensor<100x16xbf16>, %arg4: tensor<8xi32>, %arg5: tensor<8x16xbf16>)
func.func @embedding(%tok: tensor<2x8xi32>, %table: tensor<100x16xf32>,
                     %pos: tensor<12x16xf32>, %tbf: tensor<100x16xbf16>,
                     %tok1: tensor<8xi32>, %posbf: tensor<8x16xbf16>)
    -> (tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>,
        tensor<2x8x16xf32>, tensor<8x16xbf16>, tensor<8x16xbf16>) {
  // CHECK: %[[NONE:[0-9]+]] = moe.embedding none %arg0, %arg1 : (tensor<2x8xi32>, tensor<100x16xf32>) -> tensor<2x8x16xf32>
  %0 = moe.embedding none %tok, %table
      : (tensor<2x8xi32>, tensor<100x16xf32>) -> tensor<2x8x16xf32>
  // CHECK-NEXT: %[[SIN:[0-9]+]] = moe.embedding sinusoidal %arg0, %arg1 : (tensor<2x8xi32>, tensor<100x16xf32>) -> tensor<2x8x16xf32>
  %1 = moe.embedding sinusoidal %tok, %table
      : (tensor<2x8xi32>, tensor<100x16xf32>) -> tensor<2x8x16xf32>
  // CHECK-NEXT: %[[SCALED:[0-9]+]] = moe.embedding sinusoidal %arg0, %arg1 {scaled} : (tensor<2x8xi32>, tensor<100x16xf32>) -> tensor<2x8x16xf32>
  %2 = moe.embedding sinusoidal %tok, %table {scaled}
      : (tensor<2x8xi32>, tensor<100x16xf32>) -> tensor<2x8x16xf32>
  // More positions (12) than the sequence length (8) is allowed.
  // CHECK-NEXT: %[[LEARNED:[0-9]+]] = moe.embedding learned %arg0, %arg1 positions %arg2 {scaled} : (tensor<2x8xi32>, tensor<100x16xf32>, tensor<12x16xf32>) -> tensor<2x8x16xf32>
  %3 = moe.embedding learned %tok, %table positions %pos {scaled}
      : (tensor<2x8xi32>, tensor<100x16xf32>, tensor<12x16xf32>)
        -> tensor<2x8x16xf32>
  // Rank-1 tokens, bf16 table; exactly as many positions as tokens.
  // CHECK-NEXT: %[[BF:[0-9]+]] = moe.embedding none %arg4, %arg3 : (tensor<8xi32>, tensor<100x16xbf16>) -> tensor<8x16xbf16>
  %4 = moe.embedding none %tok1, %tbf
      : (tensor<8xi32>, tensor<100x16xbf16>) -> tensor<8x16xbf16>
  // CHECK-NEXT: %[[BFPOS:[0-9]+]] = moe.embedding learned %arg4, %arg3 positions %arg5 : (tensor<8xi32>, tensor<100x16xbf16>, tensor<8x16xbf16>) -> tensor<8x16xbf16>
  %5 = moe.embedding learned %tok1, %tbf positions %posbf
      : (tensor<8xi32>, tensor<100x16xbf16>, tensor<8x16xbf16>)
        -> tensor<8x16xbf16>
  // CHECK-NEXT: return %[[NONE]], %[[SIN]], %[[SCALED]], %[[LEARNED]], %[[BF]], %[[BFPOS]]
  return %0, %1, %2, %3, %4, %5
      : tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>,
        tensor<2x8x16xf32>, tensor<8x16xbf16>, tensor<8x16xbf16>
}

// CHECK-LABEL: func.func @linear(
// CHECK-SAME: %arg0: tensor<2x8x16xf32>, %arg1: tensor<16x32xf32>, %arg2: tensor<32xf32>, %arg3: tensor<100x16xf32>, %arg4: tensor<8x16xbf16>, %arg5: tensor<16x4xbf16>, %arg6: tensor<4xbf16>)
func.func @linear(%x: tensor<2x8x16xf32>, %w: tensor<16x32xf32>,
                  %b: tensor<32xf32>, %table: tensor<100x16xf32>,
                  %xh: tensor<8x16xbf16>, %wh: tensor<16x4xbf16>,
                  %bh: tensor<4xbf16>)
    -> (tensor<2x8x32xf32>, tensor<2x8x32xf32>, tensor<2x8x100xf32>,
        tensor<8x4xbf16>) {
  // CHECK: %[[NOBIAS:[0-9]+]] = moe.linear %arg0, %arg1 : (tensor<2x8x16xf32>, tensor<16x32xf32>) -> tensor<2x8x32xf32>
  %0 = moe.linear %x, %w
      : (tensor<2x8x16xf32>, tensor<16x32xf32>) -> tensor<2x8x32xf32>
  // CHECK-NEXT: %[[BIAS:[0-9]+]] = moe.linear %arg0, %arg1, %arg2 : (tensor<2x8x16xf32>, tensor<16x32xf32>, tensor<32xf32>) -> tensor<2x8x32xf32>
  %1 = moe.linear %x, %w, %b
      : (tensor<2x8x16xf32>, tensor<16x32xf32>, tensor<32xf32>)
        -> tensor<2x8x32xf32>
  // The output projection shares the embedding table ([V, M]).
  // CHECK-NEXT: %[[TIED:[0-9]+]] = moe.linear %arg0, %arg3 {transpose_weight} : (tensor<2x8x16xf32>, tensor<100x16xf32>) -> tensor<2x8x100xf32>
  %2 = moe.linear %x, %table {transpose_weight}
      : (tensor<2x8x16xf32>, tensor<100x16xf32>) -> tensor<2x8x100xf32>
  // CHECK-NEXT: %[[BF:[0-9]+]] = moe.linear %arg4, %arg5, %arg6 : (tensor<8x16xbf16>, tensor<16x4xbf16>, tensor<4xbf16>) -> tensor<8x4xbf16>
  %3 = moe.linear %xh, %wh, %bh
      : (tensor<8x16xbf16>, tensor<16x4xbf16>, tensor<4xbf16>)
        -> tensor<8x4xbf16>
  // CHECK-NEXT: return %[[NOBIAS]], %[[BIAS]], %[[TIED]], %[[BF]]
  return %0, %1, %2, %3 : tensor<2x8x32xf32>, tensor<2x8x32xf32>,
                          tensor<2x8x100xf32>, tensor<8x4xbf16>
}

// CHECK-LABEL: func.func @linear_transposed_bias(
func.func @linear_transposed_bias(%x: tensor<4x16xf32>, %w: tensor<8x16xf32>,
                                  %b: tensor<8xf32>) -> tensor<4x8xf32> {
  // CHECK: moe.linear %arg0, %arg1, %arg2 {transpose_weight} : (tensor<4x16xf32>, tensor<8x16xf32>, tensor<8xf32>) -> tensor<4x8xf32>
  %0 = moe.linear %x, %w, %b {transpose_weight}
      : (tensor<4x16xf32>, tensor<8x16xf32>, tensor<8xf32>) -> tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// The default epsilon (1e-5) is not printed; an explicit one is.
// CHECK-LABEL: func.func @layer_norm(
func.func @layer_norm(%x: tensor<2x8x16xf32>, %g: tensor<16xf32>,
                      %b: tensor<16xf32>, %xh: tensor<8x16xf16>,
                      %gh: tensor<16xf16>, %bh: tensor<16xf16>)
    -> (tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<8x16xf16>) {
  // CHECK: %[[DEF:[0-9]+]] = moe.layer_norm %arg0, %arg1, %arg2 : (tensor<2x8x16xf32>, tensor<16xf32>, tensor<16xf32>) -> tensor<2x8x16xf32>
  %0 = moe.layer_norm %x, %g, %b
      : (tensor<2x8x16xf32>, tensor<16xf32>, tensor<16xf32>)
        -> tensor<2x8x16xf32>
  // CHECK-NEXT: %[[EPS:[0-9]+]] = moe.layer_norm %arg0, %arg1, %arg2 {epsilon = 9.9999999999999995E-7 : f64} : (tensor<2x8x16xf32>, tensor<16xf32>, tensor<16xf32>) -> tensor<2x8x16xf32>
  %1 = moe.layer_norm %x, %g, %b {epsilon = 1.0e-6 : f64}
      : (tensor<2x8x16xf32>, tensor<16xf32>, tensor<16xf32>)
        -> tensor<2x8x16xf32>
  // CHECK-NEXT: %[[F16:[0-9]+]] = moe.layer_norm %arg3, %arg4, %arg5 {epsilon = 1.000000e-03 : f64} : (tensor<8x16xf16>, tensor<16xf16>, tensor<16xf16>) -> tensor<8x16xf16>
  %2 = moe.layer_norm %xh, %gh, %bh {epsilon = 1.0e-3 : f64}
      : (tensor<8x16xf16>, tensor<16xf16>, tensor<16xf16>) -> tensor<8x16xf16>
  // CHECK-NEXT: return %[[DEF]], %[[EPS]], %[[F16]]
  return %0, %1, %2
      : tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<8x16xf16>
}

// CHECK-LABEL: func.func @activation(
func.func @activation(%x: tensor<2x8x32xf32>, %h: tensor<4x32xbf16>)
    -> (tensor<2x8x32xf32>, tensor<2x8x32xf32>, tensor<2x8x32xf32>,
        tensor<2x8x32xf32>, tensor<4x32xbf16>) {
  // CHECK: %[[RELU:[0-9]+]] = moe.activation relu %arg0 : tensor<2x8x32xf32>
  %0 = moe.activation relu %x : tensor<2x8x32xf32>
  // CHECK-NEXT: %[[GELU:[0-9]+]] = moe.activation gelu %arg0 : tensor<2x8x32xf32>
  %1 = moe.activation gelu %x : tensor<2x8x32xf32>
  // CHECK-NEXT: %[[TANH:[0-9]+]] = moe.activation gelu_tanh %arg0 : tensor<2x8x32xf32>
  %2 = moe.activation gelu_tanh %x : tensor<2x8x32xf32>
  // CHECK-NEXT: %[[SILU:[0-9]+]] = moe.activation silu %arg0 : tensor<2x8x32xf32>
  %3 = moe.activation silu %x : tensor<2x8x32xf32>
  // CHECK-NEXT: %[[BF:[0-9]+]] = moe.activation gelu %arg1 : tensor<4x32xbf16>
  %4 = moe.activation gelu %h : tensor<4x32xbf16>
  // CHECK-NEXT: return %[[RELU]], %[[GELU]], %[[TANH]], %[[SILU]], %[[BF]]
  return %0, %1, %2, %3, %4 : tensor<2x8x32xf32>, tensor<2x8x32xf32>,
      tensor<2x8x32xf32>, tensor<2x8x32xf32>, tensor<4x32xbf16>
}

// CHECK-LABEL: func.func @add_dropout(
func.func @add_dropout(%x: tensor<2x8x16xf32>, %y: tensor<2x8x16xf32>,
                       %a: tensor<f32>, %h: tensor<8x16xf16>)
    -> (tensor<2x8x16xf32>, tensor<f32>, tensor<2x8x16xf32>,
        tensor<8x16xf16>) {
  // CHECK: %[[SUM:[0-9]+]] = moe.add %arg0, %arg1 : tensor<2x8x16xf32>
  %0 = moe.add %x, %y : tensor<2x8x16xf32>
  // Sums of scalar auxiliary losses.
  // CHECK-NEXT: %[[AUX:[0-9]+]] = moe.add %arg2, %arg2 : tensor<f32>
  %1 = moe.add %a, %a : tensor<f32>
  // CHECK-NEXT: %[[DROP:[0-9]+]] = moe.dropout %[[SUM]] {rate = 1.000000e-01 : f64, stream = 3 : i64} : tensor<2x8x16xf32>
  %2 = moe.dropout %0 {rate = 1.0e-1 : f64, stream = 3 : i64}
      : tensor<2x8x16xf32>
  // A rate of 0 is the identity; f16 input.
  // CHECK-NEXT: %[[DROPH:[0-9]+]] = moe.dropout %arg3 {rate = 0.000000e+00 : f64, stream = 0 : i64} : tensor<8x16xf16>
  %3 = moe.dropout %h {rate = 0.0 : f64, stream = 0 : i64} : tensor<8x16xf16>
  // CHECK-NEXT: return %[[SUM]], %[[AUX]], %[[DROP]], %[[DROPH]]
  return %0, %1, %2, %3
      : tensor<2x8x16xf32>, tensor<f32>, tensor<2x8x16xf32>, tensor<8x16xf16>
}

// CHECK-LABEL: func.func @padding_mask(
func.func @padding_mask(%tok: tensor<2x8xi32>) -> tensor<2x8xi1> {
  // CHECK: %[[MASK:[0-9]+]] = moe.padding_mask %arg0 {pad_id = 1 : i64} : tensor<2x8xi32> -> tensor<2x8xi1>
  %0 = moe.padding_mask %tok {pad_id = 1 : i64} : tensor<2x8xi32> -> tensor<2x8xi1>
  // CHECK-NEXT: return %[[MASK]]
  return %0 : tensor<2x8xi1>
}

// CHECK-LABEL: func.func @attention(
func.func @attention(%q: tensor<2x8x16xf32>, %m: tensor<2x8xi1>,
                     %enc: tensor<2x12x16xf32>, %em: tensor<2x12xi1>,
                     %qh: tensor<2x8x16xbf16>)
    -> (tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>,
        tensor<2x8x16xf32>, tensor<2x8x16xbf16>) {
  // Self-attention, causal, with a key-padding mask.
  // CHECK: %[[SELF:[0-9]+]] = moe.attention %arg0, %arg0, %arg0 key_mask %arg1 {causal, num_heads = 4 : i64} : (tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8xi1>) -> tensor<2x8x16xf32>
  %0 = moe.attention %q, %q, %q key_mask %m {num_heads = 4 : i64, causal}
      : (tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>,
         tensor<2x8xi1>) -> tensor<2x8x16xf32>
  // No mask, not causal, a single head.
  // CHECK-NEXT: %[[PLAIN:[0-9]+]] = moe.attention %arg0, %arg0, %arg0 {num_heads = 1 : i64} : (tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
  %1 = moe.attention %q, %q, %q {num_heads = 1 : i64}
      : (tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>)
        -> tensor<2x8x16xf32>
  // Cross-attention: 8 queries over 12 encoder keys (Sq != Sk).
  // CHECK-NEXT: %[[CROSS:[0-9]+]] = moe.attention %arg0, %arg2, %arg2 key_mask %arg3 {num_heads = 2 : i64} : (tensor<2x8x16xf32>, tensor<2x12x16xf32>, tensor<2x12x16xf32>, tensor<2x12xi1>) -> tensor<2x8x16xf32>
  %2 = moe.attention %q, %enc, %enc key_mask %em {num_heads = 2 : i64}
      : (tensor<2x8x16xf32>, tensor<2x12x16xf32>, tensor<2x12x16xf32>,
         tensor<2x12xi1>) -> tensor<2x8x16xf32>
  // CHECK-NEXT: %[[CROSSNM:[0-9]+]] = moe.attention %arg0, %arg2, %arg2 {num_heads = 16 : i64} : (tensor<2x8x16xf32>, tensor<2x12x16xf32>, tensor<2x12x16xf32>) -> tensor<2x8x16xf32>
  %3 = moe.attention %q, %enc, %enc {num_heads = 16 : i64}
      : (tensor<2x8x16xf32>, tensor<2x12x16xf32>, tensor<2x12x16xf32>)
        -> tensor<2x8x16xf32>
  // CHECK-NEXT: %[[BF:[0-9]+]] = moe.attention %arg4, %arg4, %arg4 {causal, num_heads = 8 : i64} : (tensor<2x8x16xbf16>, tensor<2x8x16xbf16>, tensor<2x8x16xbf16>) -> tensor<2x8x16xbf16>
  %4 = moe.attention %qh, %qh, %qh {num_heads = 8 : i64, causal}
      : (tensor<2x8x16xbf16>, tensor<2x8x16xbf16>, tensor<2x8x16xbf16>)
        -> tensor<2x8x16xbf16>
  // CHECK-NEXT: return %[[SELF]], %[[PLAIN]], %[[CROSS]], %[[CROSSNM]], %[[BF]]
  return %0, %1, %2, %3, %4 : tensor<2x8x16xf32>, tensor<2x8x16xf32>,
      tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xbf16>
}

// The defaults (label_smoothing = 0, ignore_index = -100) are not printed.
// CHECK-LABEL: func.func @cross_entropy(
func.func @cross_entropy(%logits: tensor<2x8x100xf32>, %labels: tensor<2x8xi32>,
                         %lh: tensor<16x100xbf16>, %yh: tensor<16xi32>)
    -> (tensor<f32>, tensor<f32>, tensor<f32>) {
  // CHECK: %[[DEF:[0-9]+]] = moe.cross_entropy %arg0, %arg1 : (tensor<2x8x100xf32>, tensor<2x8xi32>) -> tensor<f32>
  %0 = moe.cross_entropy %logits, %labels
      : (tensor<2x8x100xf32>, tensor<2x8xi32>) -> tensor<f32>
  // CHECK-NEXT: %[[SMOOTH:[0-9]+]] = moe.cross_entropy %arg0, %arg1 {ignore_index = 1 : i64, label_smoothing = 1.000000e-01 : f64} : (tensor<2x8x100xf32>, tensor<2x8xi32>) -> tensor<f32>
  %1 = moe.cross_entropy %logits, %labels
      {label_smoothing = 1.0e-1 : f64, ignore_index = 1 : i64}
      : (tensor<2x8x100xf32>, tensor<2x8xi32>) -> tensor<f32>
  // CHECK-NEXT: %[[BF:[0-9]+]] = moe.cross_entropy %arg2, %arg3 : (tensor<16x100xbf16>, tensor<16xi32>) -> tensor<f32>
  %2 = moe.cross_entropy %lh, %yh
      : (tensor<16x100xbf16>, tensor<16xi32>) -> tensor<f32>
  // CHECK-NEXT: return %[[DEF]], %[[SMOOTH]], %[[BF]]
  return %0, %1, %2 : tensor<f32>, tensor<f32>, tensor<f32>
}

//===----------------------------------------------------------------------===//
// Mixture-of-Experts ops
//===----------------------------------------------------------------------===//

// 32 tokens (4x8), 4 experts: C = max(ceil(32/4 * capacity_factor * k),
// min_capacity), capped at 32.
// CHECK-LABEL: func.func @gate(
func.func @gate(%x: tensor<4x8x16xf32>, %wg: tensor<16x4xf32>,
                %xh: tensor<32x16xbf16>, %wh: tensor<16x4xbf16>) {
  // Top-1 with every default: ceil(8 * 1.0 * 1) = 8.
  // CHECK: %indices, %locations, %weights, %expert_counts, %aux_loss = moe.gate %arg0, %arg1 {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<4x8x16xf32>, tensor<16x4xf32>) -> (tensor<4x8x1xi32>, tensor<4x8x1xi32>, tensor<4x8x1xf32>, tensor<4xi32>, tensor<f32>)
  %i1, %l1, %w1, %c1, %a1 = moe.gate %x, %wg
      {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64}
      : (tensor<4x8x16xf32>, tensor<16x4xf32>)
        -> (tensor<4x8x1xi32>, tensor<4x8x1xi32>, tensor<4x8x1xf32>,
            tensor<4xi32>, tensor<f32>)
  // Top-2, capacity factor 1.25: ceil(8 * 1.25 * 2) = 20.
  // CHECK-NEXT: %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}} = moe.gate %arg0, %arg1 {capacity = 20 : i64, config = #moe.gating<top_k = 2, capacity_factor = 1.25>, stream = 1 : i64} : (tensor<4x8x16xf32>, tensor<16x4xf32>) -> (tensor<4x8x2xi32>, tensor<4x8x2xi32>, tensor<4x8x2xf32>, tensor<4xi32>, tensor<f32>)
  %i2, %l2, %w2, %c2, %a2 = moe.gate %x, %wg
      {capacity = 20 : i64, config = #moe.gating<top_k = 2, capacity_factor = 1.25>,
       stream = 1 : i64}
      : (tensor<4x8x16xf32>, tensor<16x4xf32>)
        -> (tensor<4x8x2xi32>, tensor<4x8x2xi32>, tensor<4x8x2xf32>,
            tensor<4xi32>, tensor<f32>)
  // Top-3 on bf16 activations (the combine weights stay f32): 8 * 3 = 24.
  // CHECK-NEXT: %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}} = moe.gate %arg2, %arg3 {capacity = 24 : i64, config = #moe.gating<top_k = 3, noise = rsample>, stream = 2 : i64} : (tensor<32x16xbf16>, tensor<16x4xbf16>) -> (tensor<32x3xi32>, tensor<32x3xi32>, tensor<32x3xf32>, tensor<4xi32>, tensor<f32>)
  %i3, %l3, %w3, %c3, %a3 = moe.gate %xh, %wh
      {capacity = 24 : i64, config = #moe.gating<top_k = 3, noise = rsample>,
       stream = 2 : i64}
      : (tensor<32x16xbf16>, tensor<16x4xbf16>)
        -> (tensor<32x3xi32>, tensor<32x3xi32>, tensor<32x3xf32>,
            tensor<4xi32>, tensor<f32>)
  // Eval mode uses eval_capacity_factor: ceil(8 * 2.0 * 1) = 16 (training
  // would give 8).
  // CHECK-NEXT: %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}} = moe.gate %arg0, %arg1 {capacity = 16 : i64, config = #moe.gating<eval_capacity_factor = 2.0, noise = jitter>, eval, stream = 3 : i64} : (tensor<4x8x16xf32>, tensor<16x4xf32>) -> (tensor<4x8x1xi32>, tensor<4x8x1xi32>, tensor<4x8x1xf32>, tensor<4xi32>, tensor<f32>)
  %i4, %l4, %w4, %c4, %a4 = moe.gate %x, %wg
      {capacity = 16 : i64, config = #moe.gating<eval_capacity_factor = 2.0, noise = jitter>,
       stream = 3 : i64, eval}
      : (tensor<4x8x16xf32>, tensor<16x4xf32>)
        -> (tensor<4x8x1xi32>, tensor<4x8x1xi32>, tensor<4x8x1xf32>,
            tensor<4xi32>, tensor<f32>)
  // Dropless routing: the static bound is every token, C = 32.
  // CHECK-NEXT: %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}} = moe.gate %arg0, %arg1 {capacity = 32 : i64, config = #moe.gating<top_k = 2, drop_tokens = false>, stream = 4 : i64} : (tensor<4x8x16xf32>, tensor<16x4xf32>) -> (tensor<4x8x2xi32>, tensor<4x8x2xi32>, tensor<4x8x2xf32>, tensor<4xi32>, tensor<f32>)
  %i5, %l5, %w5, %c5, %a5 = moe.gate %x, %wg
      {capacity = 32 : i64, config = #moe.gating<top_k = 2, drop_tokens = false>,
       stream = 4 : i64}
      : (tensor<4x8x16xf32>, tensor<16x4xf32>)
        -> (tensor<4x8x2xi32>, tensor<4x8x2xi32>, tensor<4x8x2xf32>,
            tensor<4xi32>, tensor<f32>)
  // min_capacity lifts ceil(8 * 0.5) = 4 to 6.
  // CHECK-NEXT: %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}} = moe.gate %arg0, %arg1 {capacity = 6 : i64, config = #moe.gating<capacity_factor = 0.5, min_capacity = 6>, stream = 5 : i64} : (tensor<4x8x16xf32>, tensor<16x4xf32>) -> (tensor<4x8x1xi32>, tensor<4x8x1xi32>, tensor<4x8x1xf32>, tensor<4xi32>, tensor<f32>)
  %i6, %l6, %w6, %c6, %a6 = moe.gate %x, %wg
      {capacity = 6 : i64, config = #moe.gating<capacity_factor = 0.5, min_capacity = 6>,
       stream = 5 : i64}
      : (tensor<4x8x16xf32>, tensor<16x4xf32>)
        -> (tensor<4x8x1xi32>, tensor<4x8x1xi32>, tensor<4x8x1xf32>,
            tensor<4xi32>, tensor<f32>)
  // Gating groups: 4 groups of 8 tokens, each with max(ceil(8 / 4), 4) = 4
  // slots (min_capacity applies per group): capacity = 4 x 4 = 16.
  // CHECK-NEXT: %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}} = moe.gate %arg0, %arg1 {capacity = 16 : i64, config = #moe.gating<groups = 4>, stream = 6 : i64} : (tensor<4x8x16xf32>, tensor<16x4xf32>) -> (tensor<4x8x1xi32>, tensor<4x8x1xi32>, tensor<4x8x1xf32>, tensor<4xi32>, tensor<f32>)
  %i7, %l7, %w7, %c7, %a7 = moe.gate %x, %wg
      {capacity = 16 : i64, config = #moe.gating<groups = 4>, stream = 6 : i64}
      : (tensor<4x8x16xf32>, tensor<16x4xf32>)
        -> (tensor<4x8x1xi32>, tensor<4x8x1xi32>, tensor<4x8x1xf32>,
            tensor<4xi32>, tensor<f32>)
  // Groups with top-2 and a factor: 2 groups of 16, ceil(16 / 4 * 1.25 * 2)
  // = 10 each, 20 in all; groups = 1 is the default and is not printed.
  // CHECK-NEXT: %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}} = moe.gate %arg0, %arg1 {capacity = 20 : i64, config = #moe.gating<top_k = 2, capacity_factor = 1.25, groups = 2>, stream = 7 : i64} : (tensor<4x8x16xf32>, tensor<16x4xf32>) -> (tensor<4x8x2xi32>, tensor<4x8x2xi32>, tensor<4x8x2xf32>, tensor<4xi32>, tensor<f32>)
  %i8, %l8, %w8, %c8, %a8 = moe.gate %x, %wg
      {capacity = 20 : i64, config = #moe.gating<groups = 2, top_k = 2, capacity_factor = 1.25>,
       stream = 7 : i64}
      : (tensor<4x8x16xf32>, tensor<16x4xf32>)
        -> (tensor<4x8x2xi32>, tensor<4x8x2xi32>, tensor<4x8x2xf32>,
            tensor<4xi32>, tensor<f32>)
  // CHECK-NEXT: moe.gate %arg0, %arg1 {capacity = 8 : i64, config = #moe.gating<>, stream = 8 : i64}
  %i9, %l9, %w9, %c9, %a9 = moe.gate %x, %wg
      {capacity = 8 : i64, config = #moe.gating<groups = 1>, stream = 8 : i64}
      : (tensor<4x8x16xf32>, tensor<16x4xf32>)
        -> (tensor<4x8x1xi32>, tensor<4x8x1xi32>, tensor<4x8x1xf32>,
            tensor<4xi32>, tensor<f32>)
  // CHECK-NEXT: return
  return
}

// The expanded MoE block: gate -> dispatch -> expert_ffn -> combine.
// CHECK-LABEL: func.func @expanded(
func.func @expanded(%x: tensor<4x8x16xf32>, %wg: tensor<16x4xf32>,
                    %w1: tensor<4x16x64xf32>, %b1: tensor<4x64xf32>,
                    %w2: tensor<4x64x16xf32>, %b2: tensor<4x16xf32>)
    -> (tensor<4x8x16xf32>, tensor<4xi32>, tensor<f32>) {
  // CHECK: %[[IDX:[a-z_0-9]+]], %[[LOC:[a-z_0-9]+]], %[[W:[a-z_0-9]+]], %[[CNT:[a-z_0-9]+]], %[[AUX:[a-z_0-9]+]] = moe.gate %arg0, %arg1 {capacity = 20 : i64, config = #moe.gating<top_k = 2, capacity_factor = 1.25>, stream = 0 : i64}
  %idx, %loc, %w, %counts, %aux = moe.gate %x, %wg
      {capacity = 20 : i64, config = #moe.gating<top_k = 2, capacity_factor = 1.25>,
       stream = 0 : i64}
      : (tensor<4x8x16xf32>, tensor<16x4xf32>)
        -> (tensor<4x8x2xi32>, tensor<4x8x2xi32>, tensor<4x8x2xf32>,
            tensor<4xi32>, tensor<f32>)
  // CHECK-NEXT: %[[BUF:[0-9]+]] = moe.dispatch %arg0, %[[IDX]], %[[LOC]] : (tensor<4x8x16xf32>, tensor<4x8x2xi32>, tensor<4x8x2xi32>) -> tensor<4x20x16xf32>
  %buf = moe.dispatch %x, %idx, %loc
      : (tensor<4x8x16xf32>, tensor<4x8x2xi32>, tensor<4x8x2xi32>)
        -> tensor<4x20x16xf32>
  // CHECK-NEXT: %[[OUT:[0-9]+]] = moe.expert_ffn gelu %[[BUF]], %arg2, %arg3, %arg4, %arg5 : (tensor<4x20x16xf32>, tensor<4x16x64xf32>, tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>) -> tensor<4x20x16xf32>
  %out = moe.expert_ffn gelu %buf, %w1, %b1, %w2, %b2
      : (tensor<4x20x16xf32>, tensor<4x16x64xf32>, tensor<4x64xf32>,
         tensor<4x64x16xf32>, tensor<4x16xf32>) -> tensor<4x20x16xf32>
  // CHECK-NEXT: %[[Y:[0-9]+]] = moe.combine %[[OUT]], %[[IDX]], %[[LOC]], %[[W]] : (tensor<4x20x16xf32>, tensor<4x8x2xi32>, tensor<4x8x2xi32>, tensor<4x8x2xf32>) -> tensor<4x8x16xf32>
  %y = moe.combine %out, %idx, %loc, %w
      : (tensor<4x20x16xf32>, tensor<4x8x2xi32>, tensor<4x8x2xi32>,
         tensor<4x8x2xf32>) -> tensor<4x8x16xf32>
  // CHECK-NEXT: return %[[Y]], %[[CNT]], %[[AUX]] : tensor<4x8x16xf32>, tensor<4xi32>, tensor<f32>
  return %y, %counts, %aux : tensor<4x8x16xf32>, tensor<4xi32>, tensor<f32>
}

// Dispatch and combine on routing tensors that are function arguments (no
// moe.gate to check against); bf16 token and buffer types, every activation
// kind of expert_ffn.
// CHECK-LABEL: func.func @expert_ops_bf16(
func.func @expert_ops_bf16(%x: tensor<32x16xbf16>, %idx: tensor<32x2xi32>,
                           %loc: tensor<32x2xi32>, %w: tensor<32x2xf32>,
                           %w1: tensor<4x16x8xbf16>, %b1: tensor<4x8xbf16>,
                           %w2: tensor<4x8x16xbf16>, %b2: tensor<4x16xbf16>)
    -> tensor<32x16xbf16> {
  // CHECK: %[[BUF:[0-9]+]] = moe.dispatch %arg0, %arg1, %arg2 : (tensor<32x16xbf16>, tensor<32x2xi32>, tensor<32x2xi32>) -> tensor<4x10x16xbf16>
  %buf = moe.dispatch %x, %idx, %loc
      : (tensor<32x16xbf16>, tensor<32x2xi32>, tensor<32x2xi32>)
        -> tensor<4x10x16xbf16>
  // CHECK-NEXT: %[[RELU:[0-9]+]] = moe.expert_ffn relu %[[BUF]], %arg4, %arg5, %arg6, %arg7 : (tensor<4x10x16xbf16>, tensor<4x16x8xbf16>, tensor<4x8xbf16>, tensor<4x8x16xbf16>, tensor<4x16xbf16>) -> tensor<4x10x16xbf16>
  %0 = moe.expert_ffn relu %buf, %w1, %b1, %w2, %b2
      : (tensor<4x10x16xbf16>, tensor<4x16x8xbf16>, tensor<4x8xbf16>,
         tensor<4x8x16xbf16>, tensor<4x16xbf16>) -> tensor<4x10x16xbf16>
  // CHECK-NEXT: %[[TANH:[0-9]+]] = moe.expert_ffn gelu_tanh %[[RELU]], %arg4, %arg5, %arg6, %arg7 : (tensor<4x10x16xbf16>, tensor<4x16x8xbf16>, tensor<4x8xbf16>, tensor<4x8x16xbf16>, tensor<4x16xbf16>) -> tensor<4x10x16xbf16>
  %1 = moe.expert_ffn gelu_tanh %0, %w1, %b1, %w2, %b2
      : (tensor<4x10x16xbf16>, tensor<4x16x8xbf16>, tensor<4x8xbf16>,
         tensor<4x8x16xbf16>, tensor<4x16xbf16>) -> tensor<4x10x16xbf16>
  // CHECK-NEXT: %[[SILU:[0-9]+]] = moe.expert_ffn silu %[[TANH]], %arg4, %arg5, %arg6, %arg7 : (tensor<4x10x16xbf16>, tensor<4x16x8xbf16>, tensor<4x8xbf16>, tensor<4x8x16xbf16>, tensor<4x16xbf16>) -> tensor<4x10x16xbf16>
  %2 = moe.expert_ffn silu %1, %w1, %b1, %w2, %b2
      : (tensor<4x10x16xbf16>, tensor<4x16x8xbf16>, tensor<4x8xbf16>,
         tensor<4x8x16xbf16>, tensor<4x16xbf16>) -> tensor<4x10x16xbf16>
  // CHECK-NEXT: %[[Y:[0-9]+]] = moe.combine %[[SILU]], %arg1, %arg2, %arg3 : (tensor<4x10x16xbf16>, tensor<32x2xi32>, tensor<32x2xi32>, tensor<32x2xf32>) -> tensor<32x16xbf16>
  %y = moe.combine %2, %idx, %loc, %w
      : (tensor<4x10x16xbf16>, tensor<32x2xi32>, tensor<32x2xi32>,
         tensor<32x2xf32>) -> tensor<32x16xbf16>
  // CHECK-NEXT: return %[[Y]]
  return %y : tensor<32x16xbf16>
}

// CHECK-LABEL: func.func @moe_layer(
func.func @moe_layer(%x: tensor<4x8x16xf32>, %wg: tensor<16x4xf32>,
                     %w1: tensor<4x16x64xf32>, %b1: tensor<4x64xf32>,
                     %w2: tensor<4x64x16xf32>, %b2: tensor<4x16xf32>,
                     %xh: tensor<8x16xf16>, %wgh: tensor<16x4xf16>,
                     %w1h: tensor<4x16x64xf16>, %b1h: tensor<4x64xf16>,
                     %w2h: tensor<4x64x16xf16>, %b2h: tensor<4x16xf16>)
    -> (tensor<4x8x16xf32>, tensor<4xi32>, tensor<f32>, tensor<4x8x16xf32>,
        tensor<8x16xf16>) {
  // CHECK: %[[LY:[a-z_0-9]+]], %[[LC:[a-z_0-9]+]], %[[LA:[a-z_0-9]+]] = moe.moe_layer gelu %arg0, %arg1, %arg2, %arg3, %arg4, %arg5 {config = #moe.gating<top_k = 2, capacity_factor = 1.25>, stream = 0 : i64} : (tensor<4x8x16xf32>, tensor<16x4xf32>, tensor<4x16x64xf32>, tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>) -> (tensor<4x8x16xf32>, tensor<4xi32>, tensor<f32>)
  %y, %counts, %aux = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2
      {config = #moe.gating<top_k = 2, capacity_factor = 1.25>, stream = 0 : i64}
      : (tensor<4x8x16xf32>, tensor<16x4xf32>, tensor<4x16x64xf32>,
         tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>)
        -> (tensor<4x8x16xf32>, tensor<4xi32>, tensor<f32>)
  // CHECK-NEXT: %[[EY:[a-z_0-9]+]], %[[EC:[a-z_0-9]+]], %[[EA:[a-z_0-9]+]] = moe.moe_layer relu %[[LY]], %arg1, %arg2, %arg3, %arg4, %arg5 {config = #moe.gating<>, eval, stream = 1 : i64} : (tensor<4x8x16xf32>, tensor<16x4xf32>, tensor<4x16x64xf32>, tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>) -> (tensor<4x8x16xf32>, tensor<4xi32>, tensor<f32>)
  %e, %ec, %ea = moe.moe_layer relu %y, %wg, %w1, %b1, %w2, %b2
      {config = #moe.gating<>, stream = 1 : i64, eval}
      : (tensor<4x8x16xf32>, tensor<16x4xf32>, tensor<4x16x64xf32>,
         tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>)
        -> (tensor<4x8x16xf32>, tensor<4xi32>, tensor<f32>)
  // CHECK-NEXT: %[[HY:[a-z_0-9]+]], %[[HC:[a-z_0-9]+]], %[[HA:[a-z_0-9]+]] = moe.moe_layer silu %arg6, %arg7, %arg8, %arg9, %arg10, %arg11 {config = #moe.gating<top_k = 4, drop_tokens = false, use_rts = false>, stream = 2 : i64} : (tensor<8x16xf16>, tensor<16x4xf16>, tensor<4x16x64xf16>, tensor<4x64xf16>, tensor<4x64x16xf16>, tensor<4x16xf16>) -> (tensor<8x16xf16>, tensor<4xi32>, tensor<f32>)
  %h, %hc, %ha = moe.moe_layer silu %xh, %wgh, %w1h, %b1h, %w2h, %b2h
      {config = #moe.gating<top_k = 4, drop_tokens = false, use_rts = false>,
       stream = 2 : i64}
      : (tensor<8x16xf16>, tensor<16x4xf16>, tensor<4x16x64xf16>,
         tensor<4x64xf16>, tensor<4x64x16xf16>, tensor<4x16xf16>)
        -> (tensor<8x16xf16>, tensor<4xi32>, tensor<f32>)
  // Gating groups on the composite op (2 groups of the 8 f16 tokens).
  // CHECK-NEXT: %[[GY:[a-z_0-9]+]], %{{[a-z_0-9]+}}, %{{[a-z_0-9]+}} = moe.moe_layer silu %arg6, %arg7, %arg8, %arg9, %arg10, %arg11 {config = #moe.gating<top_k = 2, groups = 2>, stream = 3 : i64}
  %g, %gc, %ga = moe.moe_layer silu %xh, %wgh, %w1h, %b1h, %w2h, %b2h
      {config = #moe.gating<top_k = 2, groups = 2>, stream = 3 : i64}
      : (tensor<8x16xf16>, tensor<16x4xf16>, tensor<4x16x64xf16>,
         tensor<4x64xf16>, tensor<4x64x16xf16>, tensor<4x16xf16>)
        -> (tensor<8x16xf16>, tensor<4xi32>, tensor<f32>)
  // CHECK-NEXT: return %[[LY]], %[[LC]], %[[LA]], %[[EY]], %[[HY]]
  return %y, %counts, %aux, %e, %h : tensor<4x8x16xf32>, tensor<4xi32>,
      tensor<f32>, tensor<4x8x16xf32>, tensor<8x16xf16>
}

//===----------------------------------------------------------------------===//
// Attributes
//===----------------------------------------------------------------------===//

// #moe.gating prints only the parameters that differ from their defaults, in
// declaration order, floats in their shortest round-trip form.
// CHECK-LABEL: func.func private @gating_attributes()
// CHECK-SAME: all_defaults = #moe.gating<>
// CHECK-SAME: all_set = #moe.gating<top_k = 2, capacity_factor = 1.25, eval_capacity_factor = 2.0, min_capacity = 0, drop_tokens = false, use_rts = false, noise = rsample, jitter_eps = 0.05, second_sampling = false>
// CHECK-SAME: defaults_spelled_out = #moe.gating<>
// CHECK-SAME: jitter = #moe.gating<capacity_factor = 0.001, noise = jitter, jitter_eps = 0.99999>
// CHECK-SAME: large = #moe.gating<top_k = 64, capacity_factor = 1.0e+10, min_capacity = 1000000>
// CHECK-SAME: small = #moe.gating<capacity_factor = 1.0e-05, eval_capacity_factor = 123456789.0, jitter_eps = 1.0e-07>
func.func private @gating_attributes() attributes {
  all_defaults = #moe.gating<>,
  all_set = #moe.gating<top_k = 2, capacity_factor = 1.25,
                        eval_capacity_factor = 2.0, min_capacity = 0,
                        drop_tokens = false, use_rts = false, noise = rsample,
                        jitter_eps = 5.0e-2, second_sampling = false>,
  defaults_spelled_out = #moe.gating<top_k = 1, capacity_factor = 1.0,
                                     eval_capacity_factor = 1.0,
                                     min_capacity = 4, drop_tokens = true,
                                     use_rts = true, noise = none,
                                     jitter_eps = 0.01, second_sampling = true>,
  // Parameters in any order.
  jitter = #moe.gating<jitter_eps = 0.99999, noise = jitter,
                       capacity_factor = 1.0e-3>,
  // Exponents print with a mantissa point (1.0e+10), so they parse back.
  large = #moe.gating<top_k = 64, capacity_factor = 1.0e10,
                      min_capacity = 1000000>,
  small = #moe.gating<capacity_factor = 0.00001, jitter_eps = 1.0e-7,
                      eval_capacity_factor = 123456789.0>
}

// #moe.init of every kind, with and without a scale; a scale equal to the
// default (1.0) is not printed. Function argument and result annotations.
// CHECK-LABEL: func.func @annotations(
// CHECK-SAME: %arg0: tensor<16x4xf32> {moe.init = #moe.init<normal, scale = 0.02>, moe.param = "w"}
// CHECK-SAME: %arg1: tensor<4xf32> {moe.init = #moe.init<zeros>, moe.param = "b"}
// CHECK-SAME: %arg2: tensor<16xf32> {moe.init = #moe.init<ones>, moe.param = "ln.scale"}
// CHECK-SAME: %arg3: tensor<16x4xf32> {moe.init = #moe.init<uniform, scale = 0.5>, moe.param = "u"}
// CHECK-SAME: %arg4: tensor<16x4xf32> {moe.init = #moe.init<xavier_uniform>, moe.param = "x1"}
// CHECK-SAME: %arg5: tensor<16x4xf32> {moe.init = #moe.init<xavier_uniform>, moe.param = "x2"}
// CHECK-SAME: %arg6: tensor<16x4xf32> {moe.init = #moe.init<xavier_uniform, scale = 1.4142135623730951>, moe.param = "x3"}
// CHECK-SAME: %arg7: tensor<4xf32> {moe.init = #moe.init<zeros, scale = 3.0>, moe.param = "z"}
// CHECK-SAME: %arg8: tensor<16xbf16> {moe.param = "no_init"}
// CHECK-SAME: %arg9: tensor<2x8xi32> {moe.input = "src_tokens"}
// CHECK-SAME: %arg10: tensor<2x8xi32>)
// CHECK-SAME: -> (tensor<f32> {moe.role = "loss"}, tensor<f32> {moe.role = "aux_loss"}, tensor<4xi32> {moe.role = "expert_counts"}, tensor<f32> {moe.role = "metric"}, tensor<f32>)
func.func @annotations(
    %w: tensor<16x4xf32> {moe.param = "w", moe.init = #moe.init<normal, scale = 2.0e-2>},
    %b: tensor<4xf32> {moe.param = "b", moe.init = #moe.init<zeros>},
    %g: tensor<16xf32> {moe.param = "ln.scale", moe.init = #moe.init<ones>},
    %u: tensor<16x4xf32> {moe.param = "u", moe.init = #moe.init<uniform, scale = 0.5>},
    %x1: tensor<16x4xf32> {moe.param = "x1", moe.init = #moe.init<xavier_uniform>},
    %x2: tensor<16x4xf32> {moe.param = "x2", moe.init = #moe.init<xavier_uniform, scale = 1.0>},
    %x3: tensor<16x4xf32> {moe.param = "x3", moe.init = #moe.init<xavier_uniform, scale = 1.4142135623730951>},
    %z: tensor<4xf32> {moe.param = "z", moe.init = #moe.init<zeros, scale = 3.0>},
    %n: tensor<16xbf16> {moe.param = "no_init"},
    %tok: tensor<2x8xi32> {moe.input = "src_tokens"},
    %plain: tensor<2x8xi32>)
    -> (tensor<f32> {moe.role = "loss"}, tensor<f32> {moe.role = "aux_loss"},
        tensor<4xi32> {moe.role = "expert_counts"},
        tensor<f32> {moe.role = "metric"}, tensor<f32>) {
  %e = tensor.empty() : tensor<f32>
  %c = tensor.empty() : tensor<4xi32>
  return %e, %e, %c, %e, %e
      : tensor<f32>, tensor<f32>, tensor<4xi32>, tensor<f32>, tensor<f32>
}

// Annotations on a declaration are verified as well.
// CHECK-LABEL: func.func private @declaration(tensor<4xf32> {moe.init = #moe.init<ones>, moe.param = "p"}) -> (tensor<f32> {moe.role = "loss"})
func.func private @declaration(tensor<4xf32> {moe.param = "p", moe.init = #moe.init<ones>})
    -> (tensor<f32> {moe.role = "loss"})

// Gradient buckets: pack two tensors, take them back out.
// CHECK-LABEL: func.func @bucket
// CHECK: %[[FLAT:.*]] = moe.pack %{{.*}}, %{{.*}} : tensor<4x8xf32>, tensor<8xf32> -> tensor<40xf32>
// CHECK: moe.unpack %[[FLAT]] {offset = 0 : i64} : tensor<40xf32> -> tensor<4x8xf32>
// CHECK: moe.unpack %[[FLAT]] {offset = 32 : i64} : tensor<40xf32> -> tensor<8xf32>
func.func @bucket(%a: tensor<4x8xf32>, %b: tensor<8xf32>)
    -> (tensor<4x8xf32>, tensor<8xf32>) {
  %flat = moe.pack %a, %b : tensor<4x8xf32>, tensor<8xf32> -> tensor<40xf32>
  %x = moe.unpack %flat {offset = 0 : i64} : tensor<40xf32> -> tensor<4x8xf32>
  %y = moe.unpack %flat {offset = 32 : i64} : tensor<40xf32> -> tensor<8xf32>
  return %x, %y : tensor<4x8xf32>, tensor<8xf32>
}

// Incremental decoding: the embedding of one new token per sequence at a
// runtime position, its keys written into a cache.
// CHECK-LABEL: func.func @decode_ops
// CHECK: %[[H:.*]] = moe.embedding_at sinusoidal %{{.*}}, %{{.*}} offset %[[POS:.*]] {scaled} : (tensor<2x1xi32>, tensor<16x8xf32>, tensor<i32>) -> tensor<2x1x8xf32>
// CHECK: moe.embedding_at learned %{{.*}}, %{{.*}} positions %{{.*}} offset %[[POS]] : (tensor<2x1xi32>, tensor<16x8xf32>, tensor<6x8xf32>, tensor<i32>) -> tensor<2x1x8xf32>
// CHECK: moe.cache_update %{{.*}}, %[[H]], %[[POS]] : (tensor<2x6x8xf32>, tensor<2x1x8xf32>, tensor<i32>) -> tensor<2x6x8xf32>
func.func @decode_ops(%tokens: tensor<2x1xi32>, %table: tensor<16x8xf32>,
                      %positions: tensor<6x8xf32>, %pos: tensor<i32>,
                      %cache: tensor<2x6x8xf32>)
    -> (tensor<2x1x8xf32>, tensor<2x6x8xf32>) {
  %h = moe.embedding_at sinusoidal %tokens, %table offset %pos {scaled}
      : (tensor<2x1xi32>, tensor<16x8xf32>, tensor<i32>) -> tensor<2x1x8xf32>
  %l = moe.embedding_at learned %tokens, %table positions %positions offset %pos
      : (tensor<2x1xi32>, tensor<16x8xf32>, tensor<6x8xf32>, tensor<i32>) -> tensor<2x1x8xf32>
  %c = moe.cache_update %cache, %h, %pos
      : (tensor<2x6x8xf32>, tensor<2x1x8xf32>, tensor<i32>) -> tensor<2x6x8xf32>
  return %l, %c : tensor<2x1x8xf32>, tensor<2x6x8xf32>
}
