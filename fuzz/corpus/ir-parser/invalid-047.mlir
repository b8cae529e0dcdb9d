func.func @dropout_dynamic(%x: tensor<?x16xf32>) {
  // expected-error @+1 {{'moe.dropout' op operand #0 must have a static shape, found 'tensor<?x16xf32>'}}
  %0 = moe.dropout %x {rate = 0.1 : f64, stream = 0 : i64} : tensor<?x16xf32>
  return
}
