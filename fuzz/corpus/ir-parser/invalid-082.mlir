func.func @gate_weight_rank(%x: tensor<32x16xf32>, %wg: tensor<16xf32>) {
  // expected-error @+1 {{'moe.gate' op expects gate weight of rank 2, found rank 1 ('tensor<16xf32>')}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}
