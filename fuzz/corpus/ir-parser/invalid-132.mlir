//===----------------------------------------------------------------------===//
// moe.combine
//===----------------------------------------------------------------------===//

func.func @combine_dynamic(%y: tensor<4x8x16xf32>, %i: tensor<?x1xi32>, %w: tensor<?x1xf32>) {
  // expected-error @+1 {{'moe.combine' op operand #1 must have a static shape, found 'tensor<?x1xi32>'}}
  %0 = moe.combine %y, %i, %i, %w : (tensor<4x8x16xf32>, tensor<?x1xi32>, tensor<?x1xi32>, tensor<?x1xf32>) -> tensor<32x16xf32>
  return
}
