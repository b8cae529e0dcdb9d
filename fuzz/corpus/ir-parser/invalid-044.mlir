//===----------------------------------------------------------------------===//
// moe.dropout
//===----------------------------------------------------------------------===//

func.func @dropout_negative_rate(%x: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.dropout' op expects rate in [0, 1), found -1.000000e-01}}
  %0 = moe.dropout %x {rate = -0.1 : f64, stream = 0 : i64} : tensor<4x16xf32>
  return
}
