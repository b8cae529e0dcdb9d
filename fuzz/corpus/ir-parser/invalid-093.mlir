func.func @gate_capacity_eval(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>) {
  // The training capacity (8) is wrong in eval mode: ceil(32 / 4 * 2.0) = 16.
  // expected-error @+1 {{'moe.gate' op capacity 8 does not match the gating configuration: 32 tokens, 4 experts and top_k = 1 give 16 in eval mode}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<eval_capacity_factor = 2.0>, stream = 0 : i64, eval} : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}
