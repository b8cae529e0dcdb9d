func.func @gate_capacity_groups(%x: tensor<4x8x16xf32>, %wg: tensor<16x4xf32>) {
  // The capacity is per group: 4 groups of 8 tokens get max(ceil(8 / 4), 4)
  // = 4 slots each (min_capacity applies per group), 16 in all, not the
  // ungrouped 8.
  // expected-error @+1 {{'moe.gate' op capacity 8 does not match the gating configuration: 32 tokens in 4 groups, 4 experts and top_k = 1 give 4 x 4 = 16 in training mode}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<groups = 4>, stream = 0 : i64} : (tensor<4x8x16xf32>, tensor<16x4xf32>) -> (tensor<4x8x1xi32>, tensor<4x8x1xi32>, tensor<4x8x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}
