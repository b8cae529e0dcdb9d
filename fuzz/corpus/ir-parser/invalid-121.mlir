func.func @combine_before_gate_with_rank1_weight(%y: tensor<4x8x16xf32>, %x: tensor<32x16xf32>, %wg: tensor<64xf32>) {
  return
^unreachable:
  %0 = moe.combine %y, %i, %l, %w : (tensor<4x8x16xf32>, tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>) -> tensor<32x16xf32>
  return
^gate:
  // expected-error @+1 {{'moe.gate' op expects gate weight of rank 2, found rank 1 ('tensor<64xf32>')}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<64xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}
