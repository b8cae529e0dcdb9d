//===----------------------------------------------------------------------===//
// moe.moe_layer
//===----------------------------------------------------------------------===//

func.func @moe_layer_dynamic(%x: tensor<?x16xf32>, %wg: tensor<16x4xf32>, %w1: tensor<4x16x64xf32>, %b1: tensor<4x64xf32>, %w2: tensor<4x64x16xf32>, %b2: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.moe_layer' op operand #0 must have a static shape, found 'tensor<?x16xf32>'}}
  %y, %c, %a = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2 {config = #moe.gating<>, stream = 0 : i64} : (tensor<?x16xf32>, tensor<16x4xf32>, tensor<4x16x64xf32>, tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>) -> (tensor<?x16xf32>, tensor<4xi32>, tensor<f32>)
  return
}
