// RUN: moe-opt %s --split-input-file --moe-build-decoder --verify-diagnostics
// RUN: not moe-opt %s --split-input-file --moe-build-decoder=batch=-1 2>&1 | FileCheck %s --check-prefix=BATCH
// BATCH: error: moe-build-decoder: batch must be >= 0 (0: the training batch), found -1

// A model without target tokens (a classifier, a decoder-only model fed
// one input) has nothing to decode.
// expected-error @+1 {{moe-build-decoder: needs an encoder-decoder: inputs 'src_tokens' and 'tgt_tokens' of @forward}}
func.func @forward(%w: tensor<4x4xf32> {moe.param = "w"},
                   %x: tensor<2x3x4xf32> {moe.input = "features"},
                   %labels: tensor<2x3xi32> {moe.input = "labels"}) -> (tensor<f32> {moe.role = "loss"}) {
  %y = moe.linear %x, %w : (tensor<2x3x4xf32>, tensor<4x4xf32>) -> tensor<2x3x4xf32>
  %loss = moe.cross_entropy %y, %labels : (tensor<2x3x4xf32>, tensor<2x3xi32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// Bidirectional attention over the target: position t would need the
// later positions, so the decoder cannot run one position at a time.
func.func @forward(%embed: tensor<16x8xf32> {moe.param = "embed"},
                   %src: tensor<2x5xi32> {moe.input = "src_tokens"},
                   %tgt: tensor<2x6xi32> {moe.input = "tgt_tokens"},
                   %labels: tensor<2x6xi32> {moe.input = "labels"}) -> (tensor<f32> {moe.role = "loss"}) {
  %t0 = moe.embedding sinusoidal %tgt, %embed : (tensor<2x6xi32>, tensor<16x8xf32>) -> tensor<2x6x8xf32>
  // expected-error @+1 {{moe-build-decoder: attends over target positions without causal masking: the decoder cannot run one position at a time}}
  %sa = moe.attention %t0, %t0, %t0 {num_heads = 2 : i64} : (tensor<2x6x8xf32>, tensor<2x6x8xf32>, tensor<2x6x8xf32>) -> tensor<2x6x8xf32>
  %logits = moe.linear %sa, %embed {transpose_weight} : (tensor<2x6x8xf32>, tensor<16x8xf32>) -> tensor<2x6x16xf32>
  %loss = moe.cross_entropy %logits, %labels : (tensor<2x6x16xf32>, tensor<2x6xi32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// The target's padding mask read by anything but a causal self-attention.
func.func @forward(%embed: tensor<16x8xf32> {moe.param = "embed"},
                   %src: tensor<2x5xi32> {moe.input = "src_tokens"},
                   %tgt: tensor<2x6xi32> {moe.input = "tgt_tokens"},
                   %labels: tensor<2x6xi32> {moe.input = "labels"}) -> (tensor<f32> {moe.role = "loss"}) {
  %s0 = moe.embedding sinusoidal %src, %embed : (tensor<2x5xi32>, tensor<16x8xf32>) -> tensor<2x5x8xf32>
  %tmask = moe.padding_mask %tgt {pad_id = 0 : i64} : tensor<2x6xi32> -> tensor<2x6xi1>
  %t0 = moe.embedding sinusoidal %tgt, %embed : (tensor<2x6xi32>, tensor<16x8xf32>) -> tensor<2x6x8xf32>
  // expected-error @+1 {{moe-build-decoder: reads the target's padding mask other than as the key mask of a causal self-attention}}
  %x = moe.attention %s0, %t0, %t0 key_mask %tmask {num_heads = 2 : i64} : (tensor<2x5x8xf32>, tensor<2x6x8xf32>, tensor<2x6x8xf32>, tensor<2x6xi1>) -> tensor<2x5x8xf32>
  %sa = moe.attention %t0, %t0, %t0 key_mask %tmask {causal, num_heads = 2 : i64} : (tensor<2x6x8xf32>, tensor<2x6x8xf32>, tensor<2x6x8xf32>, tensor<2x6xi1>) -> tensor<2x6x8xf32>
  %logits = moe.linear %sa, %embed {transpose_weight} : (tensor<2x6x8xf32>, tensor<16x8xf32>) -> tensor<2x6x16xf32>
  %loss = moe.cross_entropy %logits, %labels : (tensor<2x6x16xf32>, tensor<2x6xi32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// The functions exist already (the pass ran before).
// expected-error @+1 {{moe-build-decoder: @decode_step already exists}}
func.func @forward(%embed: tensor<16x8xf32> {moe.param = "embed"},
                   %src: tensor<2x5xi32> {moe.input = "src_tokens"},
                   %tgt: tensor<2x6xi32> {moe.input = "tgt_tokens"},
                   %labels: tensor<2x6xi32> {moe.input = "labels"}) -> (tensor<f32> {moe.role = "loss"}) {
  %t0 = moe.embedding sinusoidal %tgt, %embed : (tensor<2x6xi32>, tensor<16x8xf32>) -> tensor<2x6x8xf32>
  %logits = moe.linear %t0, %embed {transpose_weight} : (tensor<2x6x8xf32>, tensor<16x8xf32>) -> tensor<2x6x16xf32>
  %loss = moe.cross_entropy %logits, %labels : (tensor<2x6x16xf32>, tensor<2x6xi32>) -> tensor<f32>
  return %loss : tensor<f32>
}
func.func @decode_step() {
  return
}
