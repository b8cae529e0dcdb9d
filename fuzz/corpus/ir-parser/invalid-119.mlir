// A use in an unreachable block may be verified before its (invalid) gate:
// the gate's own error is reported, the dispatch does not read its missing
// capacity.
func.func @dispatch_before_invalid_gate(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>) {
  return
^unreachable:
  %0 = moe.dispatch %x, %i, %l : (tensor<32x16xf32>, tensor<32x1xi32>, tensor<32x1xi32>) -> tensor<4x8x16xf32>
  return
^gate:
  // expected-error @+1 {{'moe.gate' op requires attribute 'capacity'}}
  %i, %l, %w, %c, %a = "moe.gate"(%x, %wg) <{config = #moe.gating<>, stream = 0 : i64}> : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}
