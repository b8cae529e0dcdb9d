//===----------------------------------------------------------------------===//
// #moe.gating
//===----------------------------------------------------------------------===//

func.func @gating_top_k_zero(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>) {
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, stream = 0 : i64,
      // expected-error @+1 {{gating top_k must be at least 1, found 0}}
      config = #moe.gating<top_k = 0>}
      : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x0xi32>, tensor<32x0xi32>, tensor<32x0xf32>, tensor<4xi32>, tensor<f32>)
  return
}
