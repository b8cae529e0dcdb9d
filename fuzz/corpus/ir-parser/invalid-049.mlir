//===----------------------------------------------------------------------===//
// moe.padding_mask
//===----------------------------------------------------------------------===//

func.func @padding_mask_dynamic(%tok: tensor<2x?xi32>) {
  // expected-error @+1 {{'moe.padding_mask' op operand #0 must have a static shape, found 'tensor<2x?xi32>'}}
  %0 = moe.padding_mask %tok {pad_id = 1 : i64} : tensor<2x?xi32> -> tensor<2x8xi1>
  return
}
