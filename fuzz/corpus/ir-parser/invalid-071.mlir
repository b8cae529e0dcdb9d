//===----------------------------------------------------------------------===//
// moe.cross_entropy
//===----------------------------------------------------------------------===//

func.func @cross_entropy_dynamic(%l: tensor<?x100xf32>, %y: tensor<16xi32>) {
  // expected-error @+1 {{'moe.cross_entropy' op operand #0 must have a static shape, found 'tensor<?x100xf32>'}}
  %0 = moe.cross_entropy %l, %y : (tensor<?x100xf32>, tensor<16xi32>) -> tensor<f32>
  return
}
