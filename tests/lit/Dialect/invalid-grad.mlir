// Verifier rules of the backward and optimizer ops.
// RUN: moe-opt %s --split-input-file --verify-diagnostics

func.func @f(%dy: tensor<2x7xf32>, %x: tensor<2x6xf32>, %w: tensor<6x8xf32>) {
  // expected-error @+1 {{'moe.linear_grad' op expects result_grad of shape 2x8, found 2x7}}
  %dx, %dw = moe.linear_grad %dy, %x, %w : (tensor<2x7xf32>, tensor<2x6xf32>, tensor<6x8xf32>) -> (tensor<2x6xf32>, tensor<6x8xf32>)
  return
}

// -----

func.func @f(%dy: tensor<2x8xf32>, %x: tensor<2x5xf32>, %w: tensor<6x8xf32>) {
  // expected-error @+1 {{'moe.linear_grad' op expects input features 5 to match weight dimension 0 (6), weight is 6x8}}
  %dx, %dw = moe.linear_grad %dy, %x, %w : (tensor<2x8xf32>, tensor<2x5xf32>, tensor<6x8xf32>) -> (tensor<2x5xf32>, tensor<6x8xf32>)
  return
}

// -----

func.func @f(%dy: tensor<2x8xf32>, %x: tensor<2x6xf32>, %w: tensor<6x8xf32>) {
  // expected-error @+1 {{'moe.linear_grad' op failed to verify that all of {weight, weight_grad} have same type}}
  %dx, %dw = moe.linear_grad %dy, %x, %w : (tensor<2x8xf32>, tensor<2x6xf32>, tensor<6x8xf32>) -> (tensor<2x6xf32>, tensor<8x6xf32>)
  return
}

// -----

func.func @f(%dy: tensor<2x8xf32>, %x: tensor<2x6xf32>, %w: tensor<6x8x1xf32>) {
  // expected-error @+1 {{'moe.linear_grad' op expects weight of rank 2, found rank 3}}
  %dx, %dw = moe.linear_grad %dy, %x, %w : (tensor<2x8xf32>, tensor<2x6xf32>, tensor<6x8x1xf32>) -> (tensor<2x6xf32>, tensor<6x8x1xf32>)
  return
}

// -----

func.func @f(%dy: tensor<2x8xf32>) {
  // expected-error @+1 {{'moe.bias_grad' op expects bias_grad of shape 8, found 2}}
  %db = moe.bias_grad %dy : tensor<2x8xf32> -> tensor<2xf32>
  return
}

// -----

func.func @f(%dy: tensor<f32>) {
  // expected-error @+1 {{'moe.bias_grad' op expects result_grad of rank >= 1, found a scalar}}
  %db = moe.bias_grad %dy : tensor<f32> -> tensor<1xf32>
  return
}

// -----

func.func @f(%dy: tensor<2x6xf32>, %g: tensor<5xf32>) {
  // expected-error @+1 {{'moe.layer_norm_grad' op expects scale of shape 6, found 5}}
  %a, %b, %c = moe.layer_norm_grad %dy, %dy, %g : (tensor<2x6xf32>, tensor<2x6xf32>, tensor<5xf32>) -> (tensor<2x6xf32>, tensor<5xf32>, tensor<5xf32>)
  return
}

// -----

func.func @f(%dy: tensor<2x6xf32>, %g: tensor<6xf32>) {
  // expected-error @+1 {{'moe.layer_norm_grad' op expects epsilon > 0, found 0}}
  %a, %b, %c = moe.layer_norm_grad %dy, %dy, %g {epsilon = 0.0 : f64} : (tensor<2x6xf32>, tensor<2x6xf32>, tensor<6xf32>) -> (tensor<2x6xf32>, tensor<6xf32>, tensor<6xf32>)
  return
}

// -----

func.func @f(%x: tensor<2x?xf32>) {
  // expected-error @+1 {{'moe.activation_grad' op operand #0 must have a static shape, found 'tensor<2x?xf32>'}}
  %dx = moe.activation_grad relu %x, %x : tensor<2x?xf32>
  return
}

// -----

func.func @f(%q: tensor<2x4x6xf32>) {
  // expected-error @+1 {{'moe.attention_grad' op expects the width 6 to be divisible by num_heads 4}}
  %dq, %dk, %dv = moe.attention_grad %q, %q, %q, %q {num_heads = 4 : i64}
      : (tensor<2x4x6xf32>, tensor<2x4x6xf32>, tensor<2x4x6xf32>, tensor<2x4x6xf32>) -> (tensor<2x4x6xf32>, tensor<2x4x6xf32>, tensor<2x4x6xf32>)
  return
}

// -----

func.func @f(%q: tensor<2x4x6xf32>, %k: tensor<2x5x6xf32>) {
  // expected-error @+1 {{'moe.attention_grad' op causal attention expects as many queries as keys, found 4 queries and 5 keys}}
  %dq, %dk, %dv = moe.attention_grad %q, %q, %k, %k {num_heads = 2 : i64, causal}
      : (tensor<2x4x6xf32>, tensor<2x4x6xf32>, tensor<2x5x6xf32>, tensor<2x5x6xf32>) -> (tensor<2x4x6xf32>, tensor<2x5x6xf32>, tensor<2x5x6xf32>)
  return
}

// -----

func.func @f(%q: tensor<2x4x6xf32>, %m: tensor<2x5xi1>) {
  // expected-error @+1 {{'moe.attention_grad' op expects key_mask of shape 2x4, found 2x5}}
  %dq, %dk, %dv = moe.attention_grad %q, %q, %q, %q key_mask %m {num_heads = 2 : i64}
      : (tensor<2x4x6xf32>, tensor<2x4x6xf32>, tensor<2x4x6xf32>, tensor<2x4x6xf32>, tensor<2x5xi1>) -> (tensor<2x4x6xf32>, tensor<2x4x6xf32>, tensor<2x4x6xf32>)
  return
}

// -----

func.func @f(%dl: tensor<f32>, %logits: tensor<2x4x8xf32>, %labels: tensor<2x5xi32>) {
  // expected-error @+1 {{'moe.cross_entropy_grad' op expects labels of shape 2x4, found 2x5}}
  %d = moe.cross_entropy_grad %dl, %logits, %labels : (tensor<f32>, tensor<2x4x8xf32>, tensor<2x5xi32>) -> tensor<2x4x8xf32>
  return
}

// -----

func.func @f(%dl: tensor<f32>, %logits: tensor<2x4x8xf32>, %labels: tensor<2x4xi32>) {
  // expected-error @+1 {{'moe.cross_entropy_grad' op expects label_smoothing in [0, 1), found 1}}
  %d = moe.cross_entropy_grad %dl, %logits, %labels {label_smoothing = 1.0 : f64} : (tensor<f32>, tensor<2x4x8xf32>, tensor<2x4xi32>) -> tensor<2x4x8xf32>
  return
}

// -----

func.func @f(%dy: tensor<2x4x6xf32>, %tokens: tensor<2x4xi32>) {
  // expected-error @+1 {{'moe.embedding_grad' op expects result_grad of shape 2x4x7, found 2x4x6}}
  %dt = moe.embedding_grad %dy, %tokens : (tensor<2x4x6xf32>, tensor<2x4xi32>) -> tensor<100x7xf32>
  return
}

// -----

func.func @f(%dy: tensor<2x4x6xf32>) {
  // expected-error @+1 {{'moe.position_grad' op expects positions_grad of shape Px6 with P >= 4, found 3x6}}
  %dp = moe.position_grad %dy : tensor<2x4x6xf32> -> tensor<3x6xf32>
  return
}

// -----

func.func @f(%dw: tensor<16x2xf32>, %daux: tensor<f32>, %x: tensor<16x4xf32>, %wg: tensor<4x4xf32>,
             %idx: tensor<16x2xi32>, %loc: tensor<16x2xi32>) {
  // expected-error @+1 {{'moe.gate_grad' op capacity 9 does not match the gating configuration: 16 tokens, 4 experts and top_k = 2 give 8 in training mode}}
  %dx, %dwg = moe.gate_grad %dw, %daux, %x, %wg, %idx, %loc
      {capacity = 9 : i64, config = #moe.gating<top_k = 2>, stream = 0 : i64}
      : (tensor<16x2xf32>, tensor<f32>, tensor<16x4xf32>, tensor<4x4xf32>, tensor<16x2xi32>, tensor<16x2xi32>)
        -> (tensor<16x4xf32>, tensor<4x4xf32>)
  return
}

// -----

func.func @f(%dw: tensor<16x2xf32>, %daux: tensor<f32>, %x: tensor<16x4xf32>, %wg: tensor<4x4xf32>,
             %idx: tensor<16x2xi32>, %loc: tensor<16x2xi32>) {
  // 2 groups of 8 tokens: max(ceil(8 / 4 * 0.5 * 2), 4) = 4 slots each;
  // the ungrouped 4 is wrong.
  // expected-error @+1 {{'moe.gate_grad' op capacity 4 does not match the gating configuration: 16 tokens in 2 groups, 4 experts and top_k = 2 give 2 x 4 = 8 in eval mode}}
  %dx, %dwg = moe.gate_grad %dw, %daux, %x, %wg, %idx, %loc
      {capacity = 4 : i64, config = #moe.gating<top_k = 2, eval_capacity_factor = 0.5, groups = 2>, stream = 0 : i64, eval}
      : (tensor<16x2xf32>, tensor<f32>, tensor<16x4xf32>, tensor<4x4xf32>, tensor<16x2xi32>, tensor<16x2xi32>)
        -> (tensor<16x4xf32>, tensor<4x4xf32>)
  return
}

// -----

func.func @f(%dw: tensor<16x2xf32>, %daux: tensor<f32>, %x: tensor<16x4xf32>, %wg: tensor<4x4xf32>,
             %idx: tensor<16x2xi32>, %loc: tensor<16x2xi32>) {
  // expected-error @+1 {{'moe.gate_grad' op gating groups = 3 does not divide the 16 tokens of input 16x4}}
  %dx, %dwg = moe.gate_grad %dw, %daux, %x, %wg, %idx, %loc
      {capacity = 8 : i64, config = #moe.gating<top_k = 2, groups = 3>, stream = 0 : i64}
      : (tensor<16x2xf32>, tensor<f32>, tensor<16x4xf32>, tensor<4x4xf32>, tensor<16x2xi32>, tensor<16x2xi32>)
        -> (tensor<16x4xf32>, tensor<4x4xf32>)
  return
}

// -----

func.func @f(%dw: tensor<16x2xf32>, %daux: tensor<f32>, %x: tensor<16x4xf32>, %wg: tensor<4x4xf32>,
             %idx: tensor<16x2xi32>, %loc: tensor<16x2xi32>) {
  // expected-error @+1 {{'moe.gate_grad' op gating top_k = 5 exceeds the number of experts 4}}
  %dx, %dwg = moe.gate_grad %dw, %daux, %x, %wg, %idx, %loc
      {capacity = 8 : i64, config = #moe.gating<top_k = 5>, stream = 0 : i64}
      : (tensor<16x2xf32>, tensor<f32>, tensor<16x4xf32>, tensor<4x4xf32>, tensor<16x2xi32>, tensor<16x2xi32>)
        -> (tensor<16x4xf32>, tensor<4x4xf32>)
  return
}

// -----

func.func @f(%dw: tensor<16x3xf32>, %daux: tensor<f32>, %x: tensor<16x4xf32>, %wg: tensor<4x4xf32>,
             %idx: tensor<16x2xi32>, %loc: tensor<16x2xi32>) {
  // expected-error @+1 {{'moe.gate_grad' op expects weights_grad of shape 16x2, found 16x3}}
  %dx, %dwg = moe.gate_grad %dw, %daux, %x, %wg, %idx, %loc
      {capacity = 8 : i64, config = #moe.gating<top_k = 2>, stream = 0 : i64}
      : (tensor<16x3xf32>, tensor<f32>, tensor<16x4xf32>, tensor<4x4xf32>, tensor<16x2xi32>, tensor<16x2xi32>)
        -> (tensor<16x4xf32>, tensor<4x4xf32>)
  return
}

// -----

func.func @f(%dbuf: tensor<4x8x4xf32>, %idx: tensor<16x2xi32>, %loc: tensor<16x2xi32>) {
  // expected-error @+1 {{'moe.dispatch_grad' op expects input_grad of shape [tokens...]x4, found 16x5}}
  %dx = moe.dispatch_grad %dbuf, %idx, %loc : (tensor<4x8x4xf32>, tensor<16x2xi32>, tensor<16x2xi32>) -> tensor<16x5xf32>
  return
}

// -----

func.func @f(%dbuf: tensor<4x8x4xf32>, %idx: tensor<15x2xi32>, %loc: tensor<15x2xi32>) {
  // expected-error @+1 {{'moe.dispatch_grad' op expects indices of shape 16xk (the token dimensions), found 15x2}}
  %dx = moe.dispatch_grad %dbuf, %idx, %loc : (tensor<4x8x4xf32>, tensor<15x2xi32>, tensor<15x2xi32>) -> tensor<16x4xf32>
  return
}

// -----

func.func @f(%dy: tensor<16x4xf32>, %buf: tensor<4x8x4xf32>, %idx: tensor<16x2xi32>, %loc: tensor<16x2xi32>, %w: tensor<16x3xf32>) {
  // expected-error @+1 {{'moe.combine_grad' op expects indices, locations and weights of one shape, found 16x2 and 16x3}}
  %db, %dw = moe.combine_grad %dy, %buf, %idx, %loc, %w
      : (tensor<16x4xf32>, tensor<4x8x4xf32>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x3xf32>) -> (tensor<4x8x4xf32>, tensor<16x3xf32>)
  return
}

// -----

func.func @f(%dy: tensor<16x5xf32>, %buf: tensor<4x8x4xf32>, %idx: tensor<16x2xi32>, %loc: tensor<16x2xi32>, %w: tensor<16x2xf32>) {
  // expected-error @+1 {{'moe.combine_grad' op expects result_grad of shape [tokens...]x4, found 16x5}}
  %db, %dw = moe.combine_grad %dy, %buf, %idx, %loc, %w
      : (tensor<16x5xf32>, tensor<4x8x4xf32>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xf32>) -> (tensor<4x8x4xf32>, tensor<16x2xf32>)
  return
}

// -----

func.func @f(%x: tensor<16x4xf32>, %wg: tensor<4x4xf32>) {
  %idx, %loc, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<top_k = 2>, stream = 0 : i64}
      : (tensor<16x4xf32>, tensor<4x4xf32>) -> (tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xf32>, tensor<4xi32>, tensor<f32>)
  %dbuf = arith.constant dense<0.0> : tensor<4x9x4xf32>
  // expected-error @+1 {{'moe.dispatch_grad' op expects result_grad with capacity 8 (from its moe.gate), found 9}}
  %dx = moe.dispatch_grad %dbuf, %idx, %loc : (tensor<4x9x4xf32>, tensor<16x2xi32>, tensor<16x2xi32>) -> tensor<16x4xf32>
  return
}

// -----

func.func @f(%b: tensor<4x8x4xf32>, %w1: tensor<4x4x8xf32>, %b1: tensor<4x7xf32>, %w2: tensor<4x8x4xf32>, %b2: tensor<4x4xf32>) {
  // expected-error @+1 {{'moe.expert_ffn_grad' op expects b1 of shape 4x8, found 4x7}}
  %a, %c, %d, %e, %f = moe.expert_ffn_grad relu %b, %b, %w1, %b1, %w2, %b2
      : (tensor<4x8x4xf32>, tensor<4x8x4xf32>, tensor<4x4x8xf32>, tensor<4x7xf32>, tensor<4x8x4xf32>, tensor<4x4xf32>)
        -> (tensor<4x8x4xf32>, tensor<4x4x8xf32>, tensor<4x7xf32>, tensor<4x8x4xf32>, tensor<4x4xf32>)
  return
}

// -----

func.func @f(%s: tensor<f32>) {
  // expected-error @+1 {{'moe.clip_by_global_norm' op expects max_norm > 0, found 0}}
  %n, %c = moe.clip_by_global_norm %s {max_norm = 0.0 : f64} : tensor<f32> -> (tensor<f32>, tensor<f32>)
  return
}

// -----

func.func @f(%step: tensor<i64>) {
  // expected-error @+1 {{'moe.lr_schedule' op expects peak_lr > 0, found -1}}
  %lr = moe.lr_schedule %step {peak_lr = -1.0 : f64, warmup_steps = 10 : i64} : tensor<i64> -> tensor<f32>
  return
}

// -----

func.func @f(%step: tensor<i64>) {
  // expected-error @+1 {{'moe.lr_schedule' op expects warmup_steps >= 0, found -3}}
  %lr = moe.lr_schedule %step {peak_lr = 1.0 : f64, warmup_steps = -3 : i64} : tensor<i64> -> tensor<f32>
  return
}

// -----

func.func @f(%step: tensor<i32>) {
  // expected-error @+1 {{'moe.lr_schedule' op operand #0 must be 0D tensor of 64-bit signless integer values}}
  %lr = moe.lr_schedule %step {peak_lr = 1.0 : f64, warmup_steps = 3 : i64} : tensor<i32> -> tensor<f32>
  return
}

// -----

func.func @f(%p: tensor<4xf32>, %lr: tensor<f32>, %step: tensor<i64>) {
  // expected-error @+1 {{'moe.adamw' op expects beta1 and beta2 in [0, 1), found 9.000000e-01 and 1.000000e+00}}
  %a, %b, %c = moe.adamw dense %p, %p, %p, %p, %lr, %lr, %step
      {beta1 = 0.9 : f64, beta2 = 1.0 : f64, epsilon = 1.0e-8 : f64, weight_decay = 0.0 : f64}
      : tensor<4xf32>, tensor<f32>, tensor<i64>
  return
}

// -----

func.func @f(%p: tensor<4xf32>, %lr: tensor<f32>, %step: tensor<i64>) {
  // expected-error @+1 {{'moe.adamw' op expects epsilon > 0, found 0}}
  %a, %b, %c = moe.adamw dense %p, %p, %p, %p, %lr, %lr, %step
      {beta1 = 0.9 : f64, beta2 = 0.9 : f64, epsilon = 0.0 : f64, weight_decay = 0.0 : f64}
      : tensor<4xf32>, tensor<f32>, tensor<i64>
  return
}

// -----

func.func @f(%p: tensor<4xf32>, %lr: tensor<f32>, %step: tensor<i64>) {
  // expected-error @+1 {{'moe.adamw' op expects weight_decay >= 0, found -1.000000e-01}}
  %a, %b, %c = moe.adamw dense %p, %p, %p, %p, %lr, %lr, %step
      {beta1 = 0.9 : f64, beta2 = 0.9 : f64, epsilon = 1.0e-8 : f64, weight_decay = -0.1 : f64}
      : tensor<4xf32>, tensor<f32>, tensor<i64>
  return
}

// -----

func.func @f(%p: tensor<4xbf16>, %lr: tensor<f32>, %step: tensor<i64>) {
  // expected-error @+1 {{'moe.adamw' op operand #0 must be ranked tensor of 32-bit float values}}
  %a, %b, %c = moe.adamw dense %p, %p, %p, %p, %lr, %lr, %step
      {beta1 = 0.9 : f64, beta2 = 0.9 : f64, epsilon = 1.0e-8 : f64, weight_decay = 0.0 : f64}
      : tensor<4xbf16>, tensor<f32>, tensor<i64>
  return
}

// -----

func.func @f(%g: tensor<?xf32>) {
  // expected-error @+1 {{'moe.sum_squares' op operand #0 must have a static shape, found 'tensor<?xf32>'}}
  %s = moe.sum_squares dense %g : tensor<?xf32> -> tensor<f32>
  return
}

// -----

func.func @convert_to_itself(%x: tensor<4xf32>) {
  // expected-error @+1 {{'moe.convert' op converts 'f32' to itself; expected two different element types among f32, bf16 and f16}}
  %0 = moe.convert %x : tensor<4xf32> -> tensor<4xf32>
  return
}

// -----

func.func @convert_between_halves(%x: tensor<4xbf16>) {
  // expected-error @+1 {{'moe.convert' op expects f32 on one side, found 'bf16' -> 'f16'}}
  %0 = moe.convert %x : tensor<4xbf16> -> tensor<4xf16>
  return
}

// -----

func.func @convert_reshapes(%x: tensor<4xf32>) {
  // expected-error @+1 {{'moe.convert' op requires the same shape for all operands and results}}
  %0 = moe.convert %x : tensor<4xf32> -> tensor<2x2xbf16>
  return
}

// -----

// expected-error @+1 {{argument #0: 'moe.placement' is only valid on a parameter, an optimizer state or a gradient buffer}}
func.func @placement_on_input(%x: tensor<4xf32> {moe.input = "x", moe.placement = "host"}) {
  return
}

// -----

// expected-error @+1 {{argument #0: 'moe.placement' must be one of "host"}}
func.func @unknown_placement(%x: tensor<4xf32> {moe.param = "x", moe.placement = "device"}) {
  return
}

// -----

// expected-error @+1 {{argument #0: 'moe.device_copy' needs a bf16 or f16 tensor, found 'tensor<4xf32>'}}
func.func @fp32_device_copy(%x: tensor<4xf32> {moe.device_copy = "x"}) {
  return
}
