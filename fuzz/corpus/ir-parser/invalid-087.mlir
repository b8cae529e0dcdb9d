func.func @gate_element_types(%x: tensor<32x16xbf16>, %wg: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.gate' op expects all floating-point operands and results to have element type 'bf16', found 'f32'}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xbf16>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}
