func.func @dispatch_before_gate_with_bad_weight(%x: tensor<32x16xf32>, %wg: tensor<*xf32>) {
  return
^unreachable:
  %0 = moe.dispatch %x, %i, %l : (tensor<32x16xf32>, tensor<32x1xi32>, tensor<32x1xi32>) -> tensor<4x8x16xf32>
  return
^gate:
  // expected-error @+1 {{'moe.gate' op operand #1 must be ranked tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<*xf32>'}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<*xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}
