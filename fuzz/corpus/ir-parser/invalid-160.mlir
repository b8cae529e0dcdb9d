func.func @moe_layer_element_type(%x: tensor<32x16xbf16>, %wg: tensor<16x4xbf16>, %w1: tensor<4x16x64xf16>, %b1: tensor<4x64xbf16>, %w2: tensor<4x64x16xbf16>, %b2: tensor<4x16xbf16>) {
  // expected-error @+1 {{'moe.moe_layer' op expects all floating-point operands and results to have element type 'bf16', found 'f16'}}
  %y, %c, %a = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2 {config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xbf16>, tensor<16x4xbf16>, tensor<4x16x64xf16>, tensor<4x64xbf16>, tensor<4x64x16xbf16>, tensor<4x16xbf16>) -> (tensor<32x16xbf16>, tensor<4xi32>, tensor<f32>)
  return
}
