//===----------------------------------------------------------------------===//
// moe.layer_norm
//===----------------------------------------------------------------------===//

func.func @layer_norm_dynamic(%x: tensor<4x?xf32>, %g: tensor<16xf32>) {
  // expected-error @+1 {{'moe.layer_norm' op operand #0 must have a static shape, found 'tensor<4x?xf32>'}}
  %0 = moe.layer_norm %x, %g, %g : (tensor<4x?xf32>, tensor<16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
  return
}
