func.func @dropout_negative_stream(%x: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.dropout' op expects stream >= 0, found -1}}
  %0 = moe.dropout %x {rate = 0.1 : f64, stream = -1 : i64} : tensor<4x16xf32>
  return
}
