func.func @dropout_missing_rate(%x: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.dropout' op requires attribute 'rate'}}
  %0 = moe.dropout %x {stream = 0 : i64} : tensor<4x16xf32>
  return
}
