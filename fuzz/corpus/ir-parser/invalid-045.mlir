func.func @dropout_rate_one(%x: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.dropout' op expects rate in [0, 1), found 1.000000e+00}}
  %0 = moe.dropout %x {rate = 1.0 : f64, stream = 0 : i64} : tensor<4x16xf32>
  return
}
