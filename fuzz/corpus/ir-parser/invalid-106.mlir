//===----------------------------------------------------------------------===//
// moe.dispatch
//===----------------------------------------------------------------------===//

func.func @dispatch_dynamic(%x: tensor<32x16xf32>, %i: tensor<32x1xi32>) {
  // expected-error @+1 {{'moe.dispatch' op result #0 must have a static shape, found 'tensor<4x?x16xf32>'}}
  %0 = moe.dispatch %x, %i, %i : (tensor<32x16xf32>, tensor<32x1xi32>, tensor<32x1xi32>) -> tensor<4x?x16xf32>
  return
}
