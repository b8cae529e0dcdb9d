// RUN: moe-opt %s --split-input-file --verify-diagnostics

// Every verifier rule of the moe dialect (MoeOps.cpp, MoeDialect.cpp) and
// the ODS constraints, one case each. Sections follow the op order of
// MoeOps.td; the attribute and function-annotation rules come last.

//===----------------------------------------------------------------------===//
// moe.embedding
//===----------------------------------------------------------------------===//

func.func @embedding_float_tokens(%tok: tensor<2x8xf32>, %table: tensor<100x16xf32>) {
  // expected-error @+1 {{'moe.embedding' op operand #0 must be ranked tensor of 32-bit signless integer values, but got 'tensor<2x8xf32>'}}
  %0 = moe.embedding none %tok, %table : (tensor<2x8xf32>, tensor<100x16xf32>) -> tensor<2x8x16xf32>
  return
}

// -----

func.func @embedding_integer_table(%tok: tensor<2x8xi32>, %table: tensor<100x16xi32>) {
  // expected-error @+1 {{'moe.embedding' op operand #1 must be ranked tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<100x16xi32>'}}
  %0 = moe.embedding none %tok, %table : (tensor<2x8xi32>, tensor<100x16xi32>) -> tensor<2x8x16xf32>
  return
}

// -----

func.func @embedding_unranked_table(%tok: tensor<2x8xi32>, %table: tensor<*xf32>) {
  // expected-error @+1 {{'moe.embedding' op operand #1 must be ranked tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<*xf32>'}}
  %0 = moe.embedding none %tok, %table : (tensor<2x8xi32>, tensor<*xf32>) -> tensor<2x8x16xf32>
  return
}

// -----

func.func @embedding_dynamic_tokens(%tok: tensor<?x8xi32>, %table: tensor<100x16xf32>) {
  // expected-error @+1 {{'moe.embedding' op operand #0 must have a static shape, found 'tensor<?x8xi32>'}}
  %0 = moe.embedding none %tok, %table : (tensor<?x8xi32>, tensor<100x16xf32>) -> tensor<2x8x16xf32>
  return
}

// -----

func.func @embedding_dynamic_result(%tok: tensor<2x8xi32>, %table: tensor<100x16xf32>) {
  // expected-error @+1 {{'moe.embedding' op result #0 must have a static shape, found 'tensor<2x8x?xf32>'}}
  %0 = moe.embedding none %tok, %table : (tensor<2x8xi32>, tensor<100x16xf32>) -> tensor<2x8x?xf32>
  return
}

// -----

func.func @embedding_table_rank(%tok: tensor<2x8xi32>, %table: tensor<1600xf32>) {
  // expected-error @+1 {{'moe.embedding' op expects table of rank 2, found rank 1 ('tensor<1600xf32>')}}
  %0 = moe.embedding none %tok, %table : (tensor<2x8xi32>, tensor<1600xf32>) -> tensor<2x8x16xf32>
  return
}

// -----

func.func @embedding_scalar_tokens(%tok: tensor<i32>, %table: tensor<100x16xf32>) {
  // expected-error @+1 {{'moe.embedding' op expects tokens of rank >= 1, found a scalar}}
  %0 = moe.embedding none %tok, %table : (tensor<i32>, tensor<100x16xf32>) -> tensor<16xf32>
  return
}

// -----

func.func @embedding_result_shape(%tok: tensor<2x8xi32>, %table: tensor<100x16xf32>) {
  // expected-error @+1 {{'moe.embedding' op expects result of shape 2x8x16, found 2x8x32}}
  %0 = moe.embedding none %tok, %table : (tensor<2x8xi32>, tensor<100x16xf32>) -> tensor<2x8x32xf32>
  return
}

// -----

func.func @embedding_learned_without_positions(%tok: tensor<2x8xi32>, %table: tensor<100x16xf32>) {
  // expected-error @+1 {{'moe.embedding' op with learned positions expects a 'positions' table}}
  %0 = moe.embedding learned %tok, %table : (tensor<2x8xi32>, tensor<100x16xf32>) -> tensor<2x8x16xf32>
  return
}

// -----

func.func @embedding_positions_with_none(%tok: tensor<2x8xi32>, %table: tensor<100x16xf32>, %pos: tensor<8x16xf32>) {
  // expected-error @+1 {{'moe.embedding' op has a 'positions' table but position is 'none'}}
  %0 = moe.embedding none %tok, %table positions %pos : (tensor<2x8xi32>, tensor<100x16xf32>, tensor<8x16xf32>) -> tensor<2x8x16xf32>
  return
}

// -----

func.func @embedding_positions_with_sinusoidal(%tok: tensor<2x8xi32>, %table: tensor<100x16xf32>, %pos: tensor<8x16xf32>) {
  // expected-error @+1 {{'moe.embedding' op has a 'positions' table but position is 'sinusoidal'}}
  %0 = moe.embedding sinusoidal %tok, %table positions %pos : (tensor<2x8xi32>, tensor<100x16xf32>, tensor<8x16xf32>) -> tensor<2x8x16xf32>
  return
}

// -----

func.func @embedding_positions_rank(%tok: tensor<2x8xi32>, %table: tensor<100x16xf32>, %pos: tensor<128xf32>) {
  // expected-error @+1 {{'moe.embedding' op expects positions of rank 2, found rank 1 ('tensor<128xf32>')}}
  %0 = moe.embedding learned %tok, %table positions %pos : (tensor<2x8xi32>, tensor<100x16xf32>, tensor<128xf32>) -> tensor<2x8x16xf32>
  return
}

// -----

func.func @embedding_positions_width(%tok: tensor<2x8xi32>, %table: tensor<100x16xf32>, %pos: tensor<8x32xf32>) {
  // expected-error @+1 {{'moe.embedding' op expects positions of width 16 (the table's), found 32}}
  %0 = moe.embedding learned %tok, %table positions %pos : (tensor<2x8xi32>, tensor<100x16xf32>, tensor<8x32xf32>) -> tensor<2x8x16xf32>
  return
}

// -----

func.func @embedding_too_few_positions(%tok: tensor<2x8xi32>, %table: tensor<100x16xf32>, %pos: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.embedding' op expects at least 8 positions (the sequence length), found 4}}
  %0 = moe.embedding learned %tok, %table positions %pos : (tensor<2x8xi32>, tensor<100x16xf32>, tensor<4x16xf32>) -> tensor<2x8x16xf32>
  return
}

// -----

func.func @embedding_result_element_type(%tok: tensor<2x8xi32>, %table: tensor<100x16xbf16>) {
  // expected-error @+1 {{'moe.embedding' op expects all floating-point operands and results to have element type 'bf16', found 'f32'}}
  %0 = moe.embedding none %tok, %table : (tensor<2x8xi32>, tensor<100x16xbf16>) -> tensor<2x8x16xf32>
  return
}

// -----

func.func @embedding_positions_element_type(%tok: tensor<2x8xi32>, %table: tensor<100x16xf32>, %pos: tensor<8x16xf16>) {
  // expected-error @+1 {{'moe.embedding' op expects all floating-point operands and results to have element type 'f32', found 'f16'}}
  %0 = moe.embedding learned %tok, %table positions %pos : (tensor<2x8xi32>, tensor<100x16xf32>, tensor<8x16xf16>) -> tensor<2x8x16xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.linear
//===----------------------------------------------------------------------===//

func.func @linear_integer_input(%x: tensor<4x16xi32>, %w: tensor<16x8xf32>) {
  // expected-error @+1 {{'moe.linear' op operand #0 must be ranked tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<4x16xi32>'}}
  %0 = moe.linear %x, %w : (tensor<4x16xi32>, tensor<16x8xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @linear_f64_weight(%x: tensor<4x16xf32>, %w: tensor<16x8xf64>) {
  // expected-error @+1 {{'moe.linear' op operand #1 must be ranked tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<16x8xf64>'}}
  %0 = moe.linear %x, %w : (tensor<4x16xf32>, tensor<16x8xf64>) -> tensor<4x8xf32>
  return
}

// -----

func.func @linear_dynamic_input(%x: tensor<?x16xf32>, %w: tensor<16x8xf32>) {
  // expected-error @+1 {{'moe.linear' op operand #0 must have a static shape, found 'tensor<?x16xf32>'}}
  %0 = moe.linear %x, %w : (tensor<?x16xf32>, tensor<16x8xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @linear_weight_rank(%x: tensor<4x16xf32>, %w: tensor<2x16x8xf32>) {
  // expected-error @+1 {{'moe.linear' op expects weight of rank 2, found rank 3 ('tensor<2x16x8xf32>')}}
  %0 = moe.linear %x, %w : (tensor<4x16xf32>, tensor<2x16x8xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @linear_scalar_input(%x: tensor<f32>, %w: tensor<16x8xf32>) {
  // expected-error @+1 {{'moe.linear' op expects input of rank >= 1, found a scalar}}
  %0 = moe.linear %x, %w : (tensor<f32>, tensor<16x8xf32>) -> tensor<8xf32>
  return
}

// -----

func.func @linear_features(%x: tensor<4x16xf32>, %w: tensor<32x8xf32>) {
  // expected-error @+1 {{'moe.linear' op expects input features 16 to match weight dimension 0 (32), weight is 32x8}}
  %0 = moe.linear %x, %w : (tensor<4x16xf32>, tensor<32x8xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @linear_features_transposed(%x: tensor<4x16xf32>, %w: tensor<16x8xf32>) {
  // expected-error @+1 {{'moe.linear' op expects input features 16 to match weight dimension 1 (8), weight is 16x8}}
  %0 = moe.linear %x, %w {transpose_weight} : (tensor<4x16xf32>, tensor<16x8xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @linear_bias_shape(%x: tensor<4x16xf32>, %w: tensor<16x8xf32>, %b: tensor<16xf32>) {
  // expected-error @+1 {{'moe.linear' op expects bias of shape 8, found 16}}
  %0 = moe.linear %x, %w, %b : (tensor<4x16xf32>, tensor<16x8xf32>, tensor<16xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @linear_bias_shape_transposed(%x: tensor<4x16xf32>, %w: tensor<8x16xf32>, %b: tensor<16xf32>) {
  // expected-error @+1 {{'moe.linear' op expects bias of shape 8, found 16}}
  %0 = moe.linear %x, %w, %b {transpose_weight} : (tensor<4x16xf32>, tensor<8x16xf32>, tensor<16xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @linear_result_shape(%x: tensor<2x4x16xf32>, %w: tensor<16x8xf32>) {
  // expected-error @+1 {{'moe.linear' op expects result of shape 2x4x8, found 8x8}}
  %0 = moe.linear %x, %w : (tensor<2x4x16xf32>, tensor<16x8xf32>) -> tensor<8x8xf32>
  return
}

// -----

func.func @linear_weight_element_type(%x: tensor<4x16xf32>, %w: tensor<16x8xbf16>) {
  // expected-error @+1 {{'moe.linear' op expects all floating-point operands and results to have element type 'f32', found 'bf16'}}
  %0 = moe.linear %x, %w : (tensor<4x16xf32>, tensor<16x8xbf16>) -> tensor<4x8xf32>
  return
}

// -----

func.func @linear_bias_element_type(%x: tensor<4x16xbf16>, %w: tensor<16x8xbf16>, %b: tensor<8xf16>) {
  // expected-error @+1 {{'moe.linear' op expects all floating-point operands and results to have element type 'bf16', found 'f16'}}
  %0 = moe.linear %x, %w, %b : (tensor<4x16xbf16>, tensor<16x8xbf16>, tensor<8xf16>) -> tensor<4x8xbf16>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.layer_norm
//===----------------------------------------------------------------------===//

func.func @layer_norm_dynamic(%x: tensor<4x?xf32>, %g: tensor<16xf32>) {
  // expected-error @+1 {{'moe.layer_norm' op operand #0 must have a static shape, found 'tensor<4x?xf32>'}}
  %0 = moe.layer_norm %x, %g, %g : (tensor<4x?xf32>, tensor<16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_norm_scalar(%x: tensor<f32>, %g: tensor<1xf32>) {
  // expected-error @+1 {{'moe.layer_norm' op expects input of rank >= 1, found a scalar}}
  %0 = moe.layer_norm %x, %g, %g : (tensor<f32>, tensor<1xf32>, tensor<1xf32>) -> tensor<f32>
  return
}

// -----

func.func @layer_norm_scale_shape(%x: tensor<4x16xf32>, %g: tensor<4x16xf32>, %b: tensor<16xf32>) {
  // expected-error @+1 {{'moe.layer_norm' op expects scale of shape 16, found 4x16}}
  %0 = moe.layer_norm %x, %g, %b : (tensor<4x16xf32>, tensor<4x16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_norm_bias_shape(%x: tensor<4x16xf32>, %g: tensor<16xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{'moe.layer_norm' op expects bias of shape 16, found 8}}
  %0 = moe.layer_norm %x, %g, %b : (tensor<4x16xf32>, tensor<16xf32>, tensor<8xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_norm_result_type(%x: tensor<4x16xf32>, %g: tensor<16xf32>) {
  // expected-error @+1 {{'moe.layer_norm' op expects the result type 'tensor<2x2x16xf32>' to equal the input type 'tensor<4x16xf32>'}}
  %0 = moe.layer_norm %x, %g, %g : (tensor<4x16xf32>, tensor<16xf32>, tensor<16xf32>) -> tensor<2x2x16xf32>
  return
}

// -----

func.func @layer_norm_result_element_type(%x: tensor<4x16xf32>, %g: tensor<16xf32>) {
  // expected-error @+1 {{'moe.layer_norm' op expects the result type 'tensor<4x16xf16>' to equal the input type 'tensor<4x16xf32>'}}
  %0 = moe.layer_norm %x, %g, %g : (tensor<4x16xf32>, tensor<16xf32>, tensor<16xf32>) -> tensor<4x16xf16>
  return
}

// -----

func.func @layer_norm_zero_epsilon(%x: tensor<4x16xf32>, %g: tensor<16xf32>) {
  // expected-error @+1 {{'moe.layer_norm' op expects epsilon > 0, found 0.000000e+00}}
  %0 = moe.layer_norm %x, %g, %g {epsilon = 0.0 : f64} : (tensor<4x16xf32>, tensor<16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_norm_negative_epsilon(%x: tensor<4x16xf32>, %g: tensor<16xf32>) {
  // expected-error @+1 {{'moe.layer_norm' op expects epsilon > 0, found -1.000000e-05}}
  %0 = moe.layer_norm %x, %g, %g {epsilon = -1.0e-5 : f64} : (tensor<4x16xf32>, tensor<16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_norm_nan_epsilon(%x: tensor<4x16xf32>, %g: tensor<16xf32>) {
  // expected-error @+1 {{'moe.layer_norm' op expects epsilon > 0, found nan}}
  %0 = moe.layer_norm %x, %g, %g {epsilon = 0x7FF8000000000000 : f64} : (tensor<4x16xf32>, tensor<16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_norm_integer_epsilon(%x: tensor<4x16xf32>, %g: tensor<16xf32>) {
  // expected-error @+1 {{'moe.layer_norm' op attribute 'epsilon' failed to satisfy constraint: 64-bit float attribute}}
  %0 = moe.layer_norm %x, %g, %g {epsilon = 1 : i64} : (tensor<4x16xf32>, tensor<16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @layer_norm_scale_element_type(%x: tensor<4x16xf32>, %g: tensor<16xbf16>, %b: tensor<16xf32>) {
  // expected-error @+1 {{'moe.layer_norm' op expects all floating-point operands and results to have element type 'f32', found 'bf16'}}
  %0 = moe.layer_norm %x, %g, %b : (tensor<4x16xf32>, tensor<16xbf16>, tensor<16xf32>) -> tensor<4x16xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.activation, moe.add
//===----------------------------------------------------------------------===//

func.func @activation_integer(%x: tensor<4x16xi32>) {
  // expected-error @+1 {{'moe.activation' op operand #0 must be ranked tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<4x16xi32>'}}
  %0 = moe.activation relu %x : tensor<4x16xi32>
  return
}

// -----

// (The custom form cannot even spell an unranked type: invalid-syntax.mlir.)
func.func @activation_unranked(%x: tensor<*xf32>) {
  // expected-error @+1 {{'moe.activation' op operand #0 must be ranked tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<*xf32>'}}
  %0 = "moe.activation"(%x) <{kind = 1 : i32}> : (tensor<*xf32>) -> tensor<*xf32>
  return
}

// -----

func.func @activation_result_type(%x: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.activation' op requires the same type for all operands and results}}
  %0 = "moe.activation"(%x) <{kind = 3 : i32}> : (tensor<4x16xf32>) -> tensor<4x16xbf16>
  return
}

// -----

func.func @add_operand_types(%x: tensor<4x16xf32>, %y: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.add' op requires the same type for all operands and results}}
  %0 = "moe.add"(%x, %y) : (tensor<4x16xf32>, tensor<4x8xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @add_mask(%x: tensor<4x16xi1>) {
  // expected-error @+1 {{'moe.add' op operand #0 must be ranked tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<4x16xi1>'}}
  %0 = moe.add %x, %x : tensor<4x16xi1>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.dropout
//===----------------------------------------------------------------------===//

func.func @dropout_negative_rate(%x: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.dropout' op expects rate in [0, 1), found -1.000000e-01}}
  %0 = moe.dropout %x {rate = -0.1 : f64, stream = 0 : i64} : tensor<4x16xf32>
  return
}

// -----

func.func @dropout_rate_one(%x: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.dropout' op expects rate in [0, 1), found 1.000000e+00}}
  %0 = moe.dropout %x {rate = 1.0 : f64, stream = 0 : i64} : tensor<4x16xf32>
  return
}

// -----

func.func @dropout_negative_stream(%x: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.dropout' op expects stream >= 0, found -1}}
  %0 = moe.dropout %x {rate = 0.1 : f64, stream = -1 : i64} : tensor<4x16xf32>
  return
}

// -----

func.func @dropout_dynamic(%x: tensor<?x16xf32>) {
  // expected-error @+1 {{'moe.dropout' op operand #0 must have a static shape, found 'tensor<?x16xf32>'}}
  %0 = moe.dropout %x {rate = 0.1 : f64, stream = 0 : i64} : tensor<?x16xf32>
  return
}

// -----

func.func @dropout_missing_rate(%x: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.dropout' op requires attribute 'rate'}}
  %0 = moe.dropout %x {stream = 0 : i64} : tensor<4x16xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.padding_mask
//===----------------------------------------------------------------------===//

func.func @padding_mask_dynamic(%tok: tensor<2x?xi32>) {
  // expected-error @+1 {{'moe.padding_mask' op operand #0 must have a static shape, found 'tensor<2x?xi32>'}}
  %0 = moe.padding_mask %tok {pad_id = 1 : i64} : tensor<2x?xi32> -> tensor<2x8xi1>
  return
}

// -----

func.func @padding_mask_result_shape(%tok: tensor<2x8xi32>) {
  // expected-error @+1 {{'moe.padding_mask' op expects result of shape 2x8, found 16}}
  %0 = moe.padding_mask %tok {pad_id = 1 : i64} : tensor<2x8xi32> -> tensor<16xi1>
  return
}

// -----

func.func @padding_mask_result_element_type(%tok: tensor<2x8xi32>) {
  // expected-error @+1 {{'moe.padding_mask' op result #0 must be ranked tensor of 1-bit signless integer values, but got 'tensor<2x8xi32>'}}
  %0 = moe.padding_mask %tok {pad_id = 1 : i64} : tensor<2x8xi32> -> tensor<2x8xi32>
  return
}

// -----

func.func @padding_mask_negative_pad(%tok: tensor<2x8xi32>) {
  // expected-error @+1 {{'moe.padding_mask' op expects pad_id >= 0 (a token id), found -1}}
  %0 = moe.padding_mask %tok {pad_id = -1 : i64} : tensor<2x8xi32> -> tensor<2x8xi1>
  return
}

// -----

func.func @padding_mask_pad_outside_vocabulary(%tok: tensor<2x8xi32>, %table: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.padding_mask' op expects pad_id in [0, 16) (the vocabulary of the embedding table these tokens index), found 16}}
  %0 = moe.padding_mask %tok {pad_id = 16 : i64} : tensor<2x8xi32> -> tensor<2x8xi1>
  %1 = moe.embedding sinusoidal %tok, %table : (tensor<2x8xi32>, tensor<16x4xf32>) -> tensor<2x8x4xf32>
  return
}

// -----

// The byte size of every tensor must fit int64 (and 2^48 bytes): a
// vocabulary of 2^62 rows would otherwise give a buffer of size 0.
func.func @embedding_table_too_large(%tok: tensor<2x8xi32>, %table: tensor<4611686018427387904x4xf32>) {
  // expected-error @+1 {{'moe.embedding' op operand #1 ('tensor<4611686018427387904x4xf32>') is too large: its byte size overflows int64 or exceeds 2^48 bytes (256 TiB)}}
  %1 = moe.embedding sinusoidal %tok, %table : (tensor<2x8xi32>, tensor<4611686018427387904x4xf32>) -> tensor<2x8x4xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.attention
//===----------------------------------------------------------------------===//

func.func @attention_dynamic(%q: tensor<2x?x16xf32>) {
  // expected-error @+1 {{'moe.attention' op operand #0 must have a static shape, found 'tensor<2x?x16xf32>'}}
  %0 = moe.attention %q, %q, %q {num_heads = 4 : i64} : (tensor<2x?x16xf32>, tensor<2x?x16xf32>, tensor<2x?x16xf32>) -> tensor<2x8x16xf32>
  return
}

// -----

func.func @attention_query_rank(%q: tensor<8x16xf32>, %k: tensor<2x8x16xf32>) {
  // expected-error @+1 {{'moe.attention' op expects query of rank 3, found rank 2 ('tensor<8x16xf32>')}}
  %0 = moe.attention %q, %k, %k {num_heads = 4 : i64} : (tensor<8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>) -> tensor<8x16xf32>
  return
}

// -----

func.func @attention_key_rank(%q: tensor<2x8x16xf32>, %k: tensor<2x2x8x16xf32>) {
  // expected-error @+1 {{'moe.attention' op expects key of rank 3, found rank 4 ('tensor<2x2x8x16xf32>')}}
  %0 = moe.attention %q, %k, %q {num_heads = 4 : i64} : (tensor<2x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
  return
}

// -----

func.func @attention_value_rank(%q: tensor<2x8x16xf32>, %v: tensor<16xf32>) {
  // expected-error @+1 {{'moe.attention' op expects value of rank 3, found rank 1 ('tensor<16xf32>')}}
  %0 = moe.attention %q, %q, %v {num_heads = 4 : i64} : (tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<16xf32>) -> tensor<2x8x16xf32>
  return
}

// -----

func.func @attention_key_batch(%q: tensor<2x8x16xf32>, %k: tensor<4x8x16xf32>) {
  // expected-error @+1 {{'moe.attention' op expects key of shape 2x?x16 (batch and width of the query), found 4x8x16}}
  %0 = moe.attention %q, %k, %k {num_heads = 4 : i64} : (tensor<2x8x16xf32>, tensor<4x8x16xf32>, tensor<4x8x16xf32>) -> tensor<2x8x16xf32>
  return
}

// -----

func.func @attention_key_width(%q: tensor<2x8x16xf32>, %k: tensor<2x12x32xf32>) {
  // expected-error @+1 {{'moe.attention' op expects key of shape 2x?x16 (batch and width of the query), found 2x12x32}}
  %0 = moe.attention %q, %k, %k {num_heads = 4 : i64} : (tensor<2x8x16xf32>, tensor<2x12x32xf32>, tensor<2x12x32xf32>) -> tensor<2x8x16xf32>
  return
}

// -----

func.func @attention_value_shape(%q: tensor<2x8x16xf32>, %k: tensor<2x12x16xf32>) {
  // expected-error @+1 {{'moe.attention' op expects value of shape 2x12x16, found 2x8x16}}
  %0 = moe.attention %q, %k, %q {num_heads = 4 : i64} : (tensor<2x8x16xf32>, tensor<2x12x16xf32>, tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
  return
}

// -----

func.func @attention_zero_heads(%q: tensor<2x8x16xf32>) {
  // expected-error @+1 {{'moe.attention' op expects num_heads >= 1, found 0}}
  %0 = moe.attention %q, %q, %q {num_heads = 0 : i64} : (tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
  return
}

// -----

func.func @attention_negative_heads(%q: tensor<2x8x16xf32>) {
  // expected-error @+1 {{'moe.attention' op expects num_heads >= 1, found -4}}
  %0 = moe.attention %q, %q, %q {num_heads = -4 : i64} : (tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
  return
}

// -----

func.func @attention_heads_divide_width(%q: tensor<2x8x16xf32>) {
  // expected-error @+1 {{'moe.attention' op expects the width 16 to be divisible by num_heads 3}}
  %0 = moe.attention %q, %q, %q {num_heads = 3 : i64} : (tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
  return
}

// -----

func.func @attention_causal_cross(%q: tensor<2x8x16xf32>, %k: tensor<2x12x16xf32>) {
  // expected-error @+1 {{'moe.attention' op causal attention expects as many queries as keys, found 8 queries and 12 keys}}
  %0 = moe.attention %q, %k, %k {num_heads = 4 : i64, causal} : (tensor<2x8x16xf32>, tensor<2x12x16xf32>, tensor<2x12x16xf32>) -> tensor<2x8x16xf32>
  return
}

// -----

func.func @attention_key_mask_shape(%q: tensor<2x8x16xf32>, %k: tensor<2x12x16xf32>, %m: tensor<2x8xi1>) {
  // expected-error @+1 {{'moe.attention' op expects key_mask of shape 2x12, found 2x8}}
  %0 = moe.attention %q, %k, %k key_mask %m {num_heads = 4 : i64} : (tensor<2x8x16xf32>, tensor<2x12x16xf32>, tensor<2x12x16xf32>, tensor<2x8xi1>) -> tensor<2x8x16xf32>
  return
}

// -----

func.func @attention_key_mask_element_type(%q: tensor<2x8x16xf32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{'moe.attention' op operand #3 must be ranked tensor of 1-bit signless integer values, but got 'tensor<2x8xi32>'}}
  %0 = moe.attention %q, %q, %q key_mask %m {num_heads = 4 : i64} : (tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8xi32>) -> tensor<2x8x16xf32>
  return
}

// -----

func.func @attention_result_type(%q: tensor<2x8x16xf32>, %k: tensor<2x12x16xf32>) {
  // expected-error @+1 {{'moe.attention' op expects the result type 'tensor<2x12x16xf32>' to equal the query type 'tensor<2x8x16xf32>'}}
  %0 = moe.attention %q, %k, %k {num_heads = 4 : i64} : (tensor<2x8x16xf32>, tensor<2x12x16xf32>, tensor<2x12x16xf32>) -> tensor<2x12x16xf32>
  return
}

// -----

func.func @attention_element_type(%q: tensor<2x8x16xf32>, %k: tensor<2x8x16xbf16>) {
  // expected-error @+1 {{'moe.attention' op expects all floating-point operands and results to have element type 'f32', found 'bf16'}}
  %0 = moe.attention %q, %k, %k {num_heads = 4 : i64} : (tensor<2x8x16xf32>, tensor<2x8x16xbf16>, tensor<2x8x16xbf16>) -> tensor<2x8x16xf32>
  return
}

// -----

func.func @attention_missing_heads(%q: tensor<2x8x16xf32>) {
  // expected-error @+1 {{'moe.attention' op requires attribute 'num_heads'}}
  %0 = moe.attention %q, %q, %q : (tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.cross_entropy
//===----------------------------------------------------------------------===//

func.func @cross_entropy_dynamic(%l: tensor<?x100xf32>, %y: tensor<16xi32>) {
  // expected-error @+1 {{'moe.cross_entropy' op operand #0 must have a static shape, found 'tensor<?x100xf32>'}}
  %0 = moe.cross_entropy %l, %y : (tensor<?x100xf32>, tensor<16xi32>) -> tensor<f32>
  return
}

// -----

func.func @cross_entropy_logits_rank(%l: tensor<100xf32>, %y: tensor<i32>) {
  // expected-error @+1 {{'moe.cross_entropy' op expects logits of rank >= 2 ([..., vocab]), found 100}}
  %0 = moe.cross_entropy %l, %y : (tensor<100xf32>, tensor<i32>) -> tensor<f32>
  return
}

// -----

func.func @cross_entropy_labels_shape(%l: tensor<2x8x100xf32>, %y: tensor<16xi32>) {
  // expected-error @+1 {{'moe.cross_entropy' op expects labels of shape 2x8, found 16}}
  %0 = moe.cross_entropy %l, %y : (tensor<2x8x100xf32>, tensor<16xi32>) -> tensor<f32>
  return
}

// -----

func.func @cross_entropy_negative_smoothing(%l: tensor<16x100xf32>, %y: tensor<16xi32>) {
  // expected-error @+1 {{'moe.cross_entropy' op expects label_smoothing in [0, 1), found -5.000000e-01}}
  %0 = moe.cross_entropy %l, %y {label_smoothing = -0.5 : f64} : (tensor<16x100xf32>, tensor<16xi32>) -> tensor<f32>
  return
}

// -----

func.func @cross_entropy_smoothing_one(%l: tensor<16x100xf32>, %y: tensor<16xi32>) {
  // expected-error @+1 {{'moe.cross_entropy' op expects label_smoothing in [0, 1), found 1.000000e+00}}
  %0 = moe.cross_entropy %l, %y {label_smoothing = 1.0 : f64} : (tensor<16x100xf32>, tensor<16xi32>) -> tensor<f32>
  return
}

// -----

func.func @cross_entropy_loss_not_scalar(%l: tensor<16x100xf32>, %y: tensor<16xi32>) {
  // expected-error @+1 {{'moe.cross_entropy' op result #0 must be 0D tensor of 32-bit float values, but got 'tensor<16xf32>'}}
  %0 = moe.cross_entropy %l, %y : (tensor<16x100xf32>, tensor<16xi32>) -> tensor<16xf32>
  return
}

// -----

func.func @cross_entropy_loss_bf16(%l: tensor<16x100xbf16>, %y: tensor<16xi32>) {
  // expected-error @+1 {{'moe.cross_entropy' op result #0 must be 0D tensor of 32-bit float values, but got 'tensor<bf16>'}}
  %0 = moe.cross_entropy %l, %y : (tensor<16x100xbf16>, tensor<16xi32>) -> tensor<bf16>
  return
}

// -----

func.func @cross_entropy_float_labels(%l: tensor<16x100xf32>, %y: tensor<16xf32>) {
  // expected-error @+1 {{'moe.cross_entropy' op operand #1 must be ranked tensor of 32-bit signless integer values, but got 'tensor<16xf32>'}}
  %0 = moe.cross_entropy %l, %y : (tensor<16x100xf32>, tensor<16xf32>) -> tensor<f32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.gate
//===----------------------------------------------------------------------===//

func.func @gate_dynamic(%x: tensor<?x16xf32>, %wg: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.gate' op operand #0 must have a static shape, found 'tensor<?x16xf32>'}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<?x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @gate_dynamic_result(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.gate' op result #1 must have a static shape, found 'tensor<?x1xi32>'}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<?x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @gate_input_rank(%x: tensor<16xf32>, %wg: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.gate' op expects input of rank >= 2 ([tokens..., model]), found 16}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 1 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<16xf32>, tensor<16x4xf32>) -> (tensor<1xi32>, tensor<1xi32>, tensor<1xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @gate_weight_rank(%x: tensor<32x16xf32>, %wg: tensor<16xf32>) {
  // expected-error @+1 {{'moe.gate' op expects gate weight of rank 2, found rank 1 ('tensor<16xf32>')}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @gate_weight_model_dim(%x: tensor<32x16xf32>, %wg: tensor<8x4xf32>) {
  // expected-error @+1 {{'moe.gate' op expects gate weight of shape 16xE (model width of the input), found 8x4}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<8x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @gate_no_experts(%x: tensor<32x16xf32>, %wg: tensor<16x0xf32>) {
  // expected-error @+1 {{'moe.gate' op expects at least one expert, found 0}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x0xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<0xi32>, tensor<f32>)
  return
}

// -----

func.func @gate_top_k_exceeds_experts(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.gate' op gating top_k = 5 exceeds the number of experts 4}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 32 : i64, config = #moe.gating<top_k = 5>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x5xi32>, tensor<32x5xi32>, tensor<32x5xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @gate_no_tokens(%x: tensor<0x16xf32>, %wg: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.gate' op expects at least one token, found 0x16}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 1 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<0x16xf32>, tensor<16x4xf32>) -> (tensor<0x1xi32>, tensor<0x1xi32>, tensor<0x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @gate_element_types(%x: tensor<32x16xbf16>, %wg: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.gate' op expects all floating-point operands and results to have element type 'bf16', found 'f32'}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xbf16>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @gate_indices_shape(%x: tensor<4x8x16xf32>, %wg: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.gate' op expects indices of shape 4x8x2, found 4x8x1}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 16 : i64, config = #moe.gating<top_k = 2>, stream = 0 : i64} : (tensor<4x8x16xf32>, tensor<16x4xf32>) -> (tensor<4x8x1xi32>, tensor<4x8x2xi32>, tensor<4x8x2xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @gate_locations_shape(%x: tensor<4x8x16xf32>, %wg: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.gate' op expects locations of shape 4x8x1, found 32x1}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<4x8x16xf32>, tensor<16x4xf32>) -> (tensor<4x8x1xi32>, tensor<32x1xi32>, tensor<4x8x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @gate_weights_shape(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.gate' op expects weights of shape 32x1, found 32}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @gate_expert_counts_shape(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.gate' op expects expert_counts of shape 4, found 8}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<8xi32>, tensor<f32>)
  return
}

// -----

func.func @gate_capacity_training(%x: tensor<4x8x16xf32>, %wg: tensor<16x4xf32>) {
  // ceil(32 / 4 * 1.25 * 2) = 20.
  // expected-error @+1 {{'moe.gate' op capacity 16 does not match the gating configuration: 32 tokens, 4 experts and top_k = 2 give 20 in training mode}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 16 : i64, config = #moe.gating<top_k = 2, capacity_factor = 1.25>, stream = 0 : i64} : (tensor<4x8x16xf32>, tensor<16x4xf32>) -> (tensor<4x8x2xi32>, tensor<4x8x2xi32>, tensor<4x8x2xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @gate_capacity_eval(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>) {
  // The training capacity (8) is wrong in eval mode: ceil(32 / 4 * 2.0) = 16.
  // expected-error @+1 {{'moe.gate' op capacity 8 does not match the gating configuration: 32 tokens, 4 experts and top_k = 1 give 16 in eval mode}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<eval_capacity_factor = 2.0>, stream = 0 : i64, eval} : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @gate_capacity_min_capacity(%x: tensor<8x16xf32>, %wg: tensor<16x4xf32>) {
  // ceil(8 / 4) = 2 is lifted to min_capacity = 4.
  // expected-error @+1 {{'moe.gate' op capacity 2 does not match the gating configuration: 8 tokens, 4 experts and top_k = 1 give 4 in training mode}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 2 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<8x16xf32>, tensor<16x4xf32>) -> (tensor<8x1xi32>, tensor<8x1xi32>, tensor<8x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @gate_capacity_dropless(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>) {
  // Dropless routing bounds the capacity by every token.
  // expected-error @+1 {{'moe.gate' op capacity 8 does not match the gating configuration: 32 tokens, 4 experts and top_k = 1 give 32 in training mode}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<drop_tokens = false>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @gate_capacity_capped(%x: tensor<8x16xf32>, %wg: tensor<16x4xf32>) {
  // ceil(8 / 4 * 10.0 * 2) = 40 is capped at the 8 tokens.
  // expected-error @+1 {{'moe.gate' op capacity 40 does not match the gating configuration: 8 tokens, 4 experts and top_k = 2 give 8 in training mode}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 40 : i64, config = #moe.gating<top_k = 2, capacity_factor = 10.0>, stream = 0 : i64} : (tensor<8x16xf32>, tensor<16x4xf32>) -> (tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x2xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @gate_groups_do_not_divide_tokens(%x: tensor<6x5x16xf32>, %wg: tensor<16x4xf32>) {
  // 30 tokens do not split into 4 equal gating groups.
  // expected-error @+1 {{'moe.gate' op gating groups = 4 does not divide the 30 tokens of input 6x5x16}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 16 : i64, config = #moe.gating<groups = 4>, stream = 0 : i64} : (tensor<6x5x16xf32>, tensor<16x4xf32>) -> (tensor<6x5x1xi32>, tensor<6x5x1xi32>, tensor<6x5x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @gate_capacity_groups(%x: tensor<4x8x16xf32>, %wg: tensor<16x4xf32>) {
  // The capacity is per group: 4 groups of 8 tokens get max(ceil(8 / 4), 4)
  // = 4 slots each (min_capacity applies per group), 16 in all, not the
  // ungrouped 8.
  // expected-error @+1 {{'moe.gate' op capacity 8 does not match the gating configuration: 32 tokens in 4 groups, 4 experts and top_k = 1 give 4 x 4 = 16 in training mode}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<groups = 4>, stream = 0 : i64} : (tensor<4x8x16xf32>, tensor<16x4xf32>) -> (tensor<4x8x1xi32>, tensor<4x8x1xi32>, tensor<4x8x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @gate_capacity_groups_dropless(%x: tensor<4x8x16xf32>, %wg: tensor<16x4xf32>) {
  // Dropless: each of the 2 groups may need all of its 16 tokens.
  // expected-error @+1 {{'moe.gate' op capacity 16 does not match the gating configuration: 32 tokens in 2 groups, 4 experts and top_k = 2 give 2 x 16 = 32 in training mode}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 16 : i64, config = #moe.gating<top_k = 2, drop_tokens = false, groups = 2>, stream = 0 : i64} : (tensor<4x8x16xf32>, tensor<16x4xf32>) -> (tensor<4x8x2xi32>, tensor<4x8x2xi32>, tensor<4x8x2xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @gate_negative_stream(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.gate' op expects stream >= 0, found -1}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = -1 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @gate_aux_loss_not_scalar(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.gate' op result #4 must be 0D tensor of 32-bit float values, but got 'tensor<1xf32>'}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<1xf32>)
  return
}

// -----

func.func @gate_bf16_weights(%x: tensor<32x16xbf16>, %wg: tensor<16x4xbf16>) {
  // expected-error @+1 {{'moe.gate' op result #2 must be ranked tensor of 32-bit float values, but got 'tensor<32x1xbf16>'}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xbf16>, tensor<16x4xbf16>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xbf16>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @gate_i64_indices(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.gate' op result #0 must be ranked tensor of 32-bit signless integer values, but got 'tensor<32x1xi64>'}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi64>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @gate_config_not_gating(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.gate' op attribute 'config' failed to satisfy constraint: configuration of an MoE gate (router)}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.init<ones>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @gate_missing_capacity(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.gate' op requires attribute 'capacity'}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.dispatch
//===----------------------------------------------------------------------===//

func.func @dispatch_dynamic(%x: tensor<32x16xf32>, %i: tensor<32x1xi32>) {
  // expected-error @+1 {{'moe.dispatch' op result #0 must have a static shape, found 'tensor<4x?x16xf32>'}}
  %0 = moe.dispatch %x, %i, %i : (tensor<32x16xf32>, tensor<32x1xi32>, tensor<32x1xi32>) -> tensor<4x?x16xf32>
  return
}

// -----

func.func @dispatch_input_rank(%x: tensor<16xf32>, %i: tensor<1xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects input of rank >= 2 ([tokens..., model]), found 16}}
  %0 = moe.dispatch %x, %i, %i : (tensor<16xf32>, tensor<1xi32>, tensor<1xi32>) -> tensor<4x8x16xf32>
  return
}

// -----

func.func @dispatch_indices_tokens(%x: tensor<4x8x16xf32>, %i: tensor<32x1xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects indices of shape 4x8xk (the token dimensions), found 32x1}}
  %0 = moe.dispatch %x, %i, %i : (tensor<4x8x16xf32>, tensor<32x1xi32>, tensor<32x1xi32>) -> tensor<4x8x16xf32>
  return
}

// -----

func.func @dispatch_indices_rank(%x: tensor<32x16xf32>, %i: tensor<32xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects indices of shape 32xk (the token dimensions), found 32}}
  %0 = moe.dispatch %x, %i, %i : (tensor<32x16xf32>, tensor<32xi32>, tensor<32xi32>) -> tensor<4x8x16xf32>
  return
}

// -----

func.func @dispatch_locations_shape(%x: tensor<32x16xf32>, %i: tensor<32x2xi32>, %l: tensor<32x1xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects indices, locations and weights of one shape, found 32x2 and 32x1}}
  %0 = moe.dispatch %x, %i, %l : (tensor<32x16xf32>, tensor<32x2xi32>, tensor<32x1xi32>) -> tensor<4x8x16xf32>
  return
}

// -----

func.func @dispatch_result_rank(%x: tensor<32x16xf32>, %i: tensor<32x1xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects result of rank 3, found rank 2 ('tensor<32x16xf32>')}}
  %0 = moe.dispatch %x, %i, %i : (tensor<32x16xf32>, tensor<32x1xi32>, tensor<32x1xi32>) -> tensor<32x16xf32>
  return
}

// -----

func.func @dispatch_result_width(%x: tensor<32x16xf32>, %i: tensor<32x1xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects result of shape ExCx16 (model width of the input), found 4x8x32}}
  %0 = moe.dispatch %x, %i, %i : (tensor<32x16xf32>, tensor<32x1xi32>, tensor<32x1xi32>) -> tensor<4x8x32xf32>
  return
}

// -----

func.func @dispatch_experts_vs_gate(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>) {
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  // expected-error @+1 {{'moe.dispatch' op expects result with 4 experts (from its moe.gate), found 8}}
  %0 = moe.dispatch %x, %i, %l : (tensor<32x16xf32>, tensor<32x1xi32>, tensor<32x1xi32>) -> tensor<8x8x16xf32>
  return
}

// -----

func.func @dispatch_capacity_vs_gate(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>) {
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  // expected-error @+1 {{'moe.dispatch' op expects result with capacity 8 (from its moe.gate), found 10}}
  %0 = moe.dispatch %x, %i, %l : (tensor<32x16xf32>, tensor<32x1xi32>, tensor<32x1xi32>) -> tensor<4x10x16xf32>
  return
}

// -----

func.func @dispatch_two_gates(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>) {
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  %i2, %l2, %w2, %c2, %a2 = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 1 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  // expected-error @+1 {{'moe.dispatch' op expects indices and locations from the same moe.gate}}
  %0 = moe.dispatch %x, %i, %l2 : (tensor<32x16xf32>, tensor<32x1xi32>, tensor<32x1xi32>) -> tensor<4x8x16xf32>
  return
}

// -----

func.func @dispatch_locations_not_from_gate(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>, %l: tensor<32x1xi32>) {
  %i, %l0, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  // expected-error @+1 {{'moe.dispatch' op expects indices and locations from the same moe.gate}}
  %0 = moe.dispatch %x, %i, %l : (tensor<32x16xf32>, tensor<32x1xi32>, tensor<32x1xi32>) -> tensor<4x8x16xf32>
  return
}

// -----

func.func @dispatch_element_type(%x: tensor<32x16xf32>, %i: tensor<32x1xi32>) {
  // expected-error @+1 {{'moe.dispatch' op expects all floating-point operands and results to have element type 'f32', found 'bf16'}}
  %0 = moe.dispatch %x, %i, %i : (tensor<32x16xf32>, tensor<32x1xi32>, tensor<32x1xi32>) -> tensor<4x8x16xbf16>
  return
}

// -----

func.func @dispatch_float_indices(%x: tensor<32x16xf32>, %i: tensor<32x1xf32>) {
  // expected-error @+1 {{'moe.dispatch' op operand #1 must be ranked tensor of 32-bit signless integer values, but got 'tensor<32x1xf32>'}}
  %0 = moe.dispatch %x, %i, %i : (tensor<32x16xf32>, tensor<32x1xf32>, tensor<32x1xf32>) -> tensor<4x8x16xf32>
  return
}

// -----

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

// -----

func.func @dispatch_before_gate_with_bad_weight(%x: tensor<32x16xf32>, %wg: tensor<*xf32>) {
  return
^unreachable:
  %0 = moe.dispatch %x, %i, %l : (tensor<32x16xf32>, tensor<32x1xi32>, tensor<32x1xi32>) -> tensor<4x8x16xf32>
  return
^gate:
  // expected-error @+1 {{'moe.gate' op operand #1 must be ranked tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<*xf32>'}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<*xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @combine_before_gate_with_rank1_weight(%y: tensor<4x8x16xf32>, %x: tensor<32x16xf32>, %wg: tensor<64xf32>) {
  return
^unreachable:
  %0 = moe.combine %y, %i, %l, %w : (tensor<4x8x16xf32>, tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>) -> tensor<32x16xf32>
  return
^gate:
  // expected-error @+1 {{'moe.gate' op expects gate weight of rank 2, found rank 1 ('tensor<64xf32>')}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<64xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.expert_ffn
//===----------------------------------------------------------------------===//

func.func @expert_ffn_dynamic(%x: tensor<4x?x16xf32>, %w1: tensor<4x16x64xf32>, %b1: tensor<4x64xf32>, %w2: tensor<4x64x16xf32>, %b2: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.expert_ffn' op operand #0 must have a static shape, found 'tensor<4x?x16xf32>'}}
  %0 = moe.expert_ffn gelu %x, %w1, %b1, %w2, %b2 : (tensor<4x?x16xf32>, tensor<4x16x64xf32>, tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>) -> tensor<4x8x16xf32>
  return
}

// -----

func.func @expert_ffn_input_rank(%x: tensor<32x16xf32>, %w1: tensor<4x16x64xf32>, %b1: tensor<4x64xf32>, %w2: tensor<4x64x16xf32>, %b2: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.expert_ffn' op expects input of rank 3, found rank 2 ('tensor<32x16xf32>')}}
  %0 = moe.expert_ffn gelu %x, %w1, %b1, %w2, %b2 : (tensor<32x16xf32>, tensor<4x16x64xf32>, tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>) -> tensor<32x16xf32>
  return
}

// -----

func.func @expert_ffn_w1_rank(%x: tensor<4x8x16xf32>, %w1: tensor<16x64xf32>, %b1: tensor<4x64xf32>, %w2: tensor<4x64x16xf32>, %b2: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.expert_ffn' op expects w1 of rank 3, found rank 2 ('tensor<16x64xf32>')}}
  %0 = moe.expert_ffn gelu %x, %w1, %b1, %w2, %b2 : (tensor<4x8x16xf32>, tensor<16x64xf32>, tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>) -> tensor<4x8x16xf32>
  return
}

// -----

func.func @expert_ffn_w1_experts(%x: tensor<4x8x16xf32>, %w1: tensor<2x16x64xf32>, %b1: tensor<4x64xf32>, %w2: tensor<4x64x16xf32>, %b2: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.expert_ffn' op expects w1 of shape 4x16x64, found 2x16x64}}
  %0 = moe.expert_ffn gelu %x, %w1, %b1, %w2, %b2 : (tensor<4x8x16xf32>, tensor<2x16x64xf32>, tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>) -> tensor<4x8x16xf32>
  return
}

// -----

func.func @expert_ffn_w1_model(%x: tensor<4x8x16xf32>, %w1: tensor<4x32x64xf32>, %b1: tensor<4x64xf32>, %w2: tensor<4x64x16xf32>, %b2: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.expert_ffn' op expects w1 of shape 4x16x64, found 4x32x64}}
  %0 = moe.expert_ffn gelu %x, %w1, %b1, %w2, %b2 : (tensor<4x8x16xf32>, tensor<4x32x64xf32>, tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>) -> tensor<4x8x16xf32>
  return
}

// -----

func.func @expert_ffn_b1_shape(%x: tensor<4x8x16xf32>, %w1: tensor<4x16x64xf32>, %b1: tensor<4x32xf32>, %w2: tensor<4x64x16xf32>, %b2: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.expert_ffn' op expects b1 of shape 4x64, found 4x32}}
  %0 = moe.expert_ffn gelu %x, %w1, %b1, %w2, %b2 : (tensor<4x8x16xf32>, tensor<4x16x64xf32>, tensor<4x32xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>) -> tensor<4x8x16xf32>
  return
}

// -----

func.func @expert_ffn_w2_shape(%x: tensor<4x8x16xf32>, %w1: tensor<4x16x64xf32>, %b1: tensor<4x64xf32>, %w2: tensor<4x16x64xf32>, %b2: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.expert_ffn' op expects w2 of shape 4x64x16, found 4x16x64}}
  %0 = moe.expert_ffn gelu %x, %w1, %b1, %w2, %b2 : (tensor<4x8x16xf32>, tensor<4x16x64xf32>, tensor<4x64xf32>, tensor<4x16x64xf32>, tensor<4x16xf32>) -> tensor<4x8x16xf32>
  return
}

// -----

func.func @expert_ffn_b2_shape(%x: tensor<4x8x16xf32>, %w1: tensor<4x16x64xf32>, %b1: tensor<4x64xf32>, %w2: tensor<4x64x16xf32>, %b2: tensor<16xf32>) {
  // expected-error @+1 {{'moe.expert_ffn' op expects b2 of shape 4x16, found 16}}
  %0 = moe.expert_ffn gelu %x, %w1, %b1, %w2, %b2 : (tensor<4x8x16xf32>, tensor<4x16x64xf32>, tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<16xf32>) -> tensor<4x8x16xf32>
  return
}

// -----

func.func @expert_ffn_result_type(%x: tensor<4x8x16xf32>, %w1: tensor<4x16x64xf32>, %b1: tensor<4x64xf32>, %w2: tensor<4x64x16xf32>, %b2: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.expert_ffn' op expects the result type 'tensor<32x16xf32>' to equal the input type 'tensor<4x8x16xf32>'}}
  %0 = moe.expert_ffn gelu %x, %w1, %b1, %w2, %b2 : (tensor<4x8x16xf32>, tensor<4x16x64xf32>, tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>) -> tensor<32x16xf32>
  return
}

// -----

func.func @expert_ffn_element_type(%x: tensor<4x8x16xbf16>, %w1: tensor<4x16x64xbf16>, %b1: tensor<4x64xbf16>, %w2: tensor<4x64x16xf32>, %b2: tensor<4x16xbf16>) {
  // expected-error @+1 {{'moe.expert_ffn' op expects all floating-point operands and results to have element type 'bf16', found 'f32'}}
  %0 = moe.expert_ffn gelu %x, %w1, %b1, %w2, %b2 : (tensor<4x8x16xbf16>, tensor<4x16x64xbf16>, tensor<4x64xbf16>, tensor<4x64x16xf32>, tensor<4x16xbf16>) -> tensor<4x8x16xbf16>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.combine
//===----------------------------------------------------------------------===//

func.func @combine_dynamic(%y: tensor<4x8x16xf32>, %i: tensor<?x1xi32>, %w: tensor<?x1xf32>) {
  // expected-error @+1 {{'moe.combine' op operand #1 must have a static shape, found 'tensor<?x1xi32>'}}
  %0 = moe.combine %y, %i, %i, %w : (tensor<4x8x16xf32>, tensor<?x1xi32>, tensor<?x1xi32>, tensor<?x1xf32>) -> tensor<32x16xf32>
  return
}

// -----

func.func @combine_input_rank(%y: tensor<32x16xf32>, %i: tensor<32x1xi32>, %w: tensor<32x1xf32>) {
  // expected-error @+1 {{'moe.combine' op expects input of rank 3, found rank 2 ('tensor<32x16xf32>')}}
  %0 = moe.combine %y, %i, %i, %w : (tensor<32x16xf32>, tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>) -> tensor<32x16xf32>
  return
}

// -----

func.func @combine_result_rank(%y: tensor<4x8x16xf32>, %i: tensor<1xi32>, %w: tensor<1xf32>) {
  // expected-error @+1 {{'moe.combine' op expects result of shape [tokens...]x16 (model width of the input), found 16}}
  %0 = moe.combine %y, %i, %i, %w : (tensor<4x8x16xf32>, tensor<1xi32>, tensor<1xi32>, tensor<1xf32>) -> tensor<16xf32>
  return
}

// -----

func.func @combine_result_width(%y: tensor<4x8x16xf32>, %i: tensor<32x1xi32>, %w: tensor<32x1xf32>) {
  // expected-error @+1 {{'moe.combine' op expects result of shape [tokens...]x16 (model width of the input), found 32x8}}
  %0 = moe.combine %y, %i, %i, %w : (tensor<4x8x16xf32>, tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>) -> tensor<32x8xf32>
  return
}

// -----

func.func @combine_indices_tokens(%y: tensor<4x8x16xf32>, %i: tensor<16x1xi32>, %w: tensor<16x1xf32>) {
  // expected-error @+1 {{'moe.combine' op expects indices of shape 32xk (the token dimensions), found 16x1}}
  %0 = moe.combine %y, %i, %i, %w : (tensor<4x8x16xf32>, tensor<16x1xi32>, tensor<16x1xi32>, tensor<16x1xf32>) -> tensor<32x16xf32>
  return
}

// -----

func.func @combine_locations_shape(%y: tensor<4x8x16xf32>, %i: tensor<32x2xi32>, %l: tensor<32x1xi32>, %w: tensor<32x2xf32>) {
  // expected-error @+1 {{'moe.combine' op expects indices, locations and weights of one shape, found 32x2 and 32x1}}
  %0 = moe.combine %y, %i, %l, %w : (tensor<4x8x16xf32>, tensor<32x2xi32>, tensor<32x1xi32>, tensor<32x2xf32>) -> tensor<32x16xf32>
  return
}

// -----

func.func @combine_weights_shape(%y: tensor<4x8x16xf32>, %i: tensor<32x2xi32>, %w: tensor<32x1xf32>) {
  // expected-error @+1 {{'moe.combine' op expects indices, locations and weights of one shape, found 32x2 and 32x1}}
  %0 = moe.combine %y, %i, %i, %w : (tensor<4x8x16xf32>, tensor<32x2xi32>, tensor<32x2xi32>, tensor<32x1xf32>) -> tensor<32x16xf32>
  return
}

// -----

func.func @combine_experts_vs_gate(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>, %y: tensor<2x8x16xf32>) {
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  // expected-error @+1 {{'moe.combine' op expects input with 4 experts (from its moe.gate), found 2}}
  %0 = moe.combine %y, %i, %l, %w : (tensor<2x8x16xf32>, tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>) -> tensor<32x16xf32>
  return
}

// -----

func.func @combine_capacity_vs_gate(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>, %y: tensor<4x32x16xf32>) {
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  // expected-error @+1 {{'moe.combine' op expects input with capacity 8 (from its moe.gate), found 32}}
  %0 = moe.combine %y, %i, %l, %w : (tensor<4x32x16xf32>, tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>) -> tensor<32x16xf32>
  return
}

// -----

func.func @combine_two_gates(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>, %y: tensor<4x8x16xf32>) {
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  %i2, %l2, %w2, %c2, %a2 = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 1 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>, tensor<4xi32>, tensor<f32>)
  // expected-error @+1 {{'moe.combine' op expects indices and locations from the same moe.gate}}
  %0 = moe.combine %y, %i, %l2, %w : (tensor<4x8x16xf32>, tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>) -> tensor<32x16xf32>
  return
}

// -----

func.func @combine_element_type(%y: tensor<4x8x16xbf16>, %i: tensor<32x1xi32>, %w: tensor<32x1xf32>) {
  // expected-error @+1 {{'moe.combine' op expects all floating-point operands and results to have element type 'bf16', found 'f32'}}
  %0 = moe.combine %y, %i, %i, %w : (tensor<4x8x16xbf16>, tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xf32>) -> tensor<32x16xf32>
  return
}

// -----

func.func @combine_bf16_weights(%y: tensor<4x8x16xbf16>, %i: tensor<32x1xi32>, %w: tensor<32x1xbf16>) {
  // expected-error @+1 {{'moe.combine' op operand #3 must be ranked tensor of 32-bit float values, but got 'tensor<32x1xbf16>'}}
  %0 = moe.combine %y, %i, %i, %w : (tensor<4x8x16xbf16>, tensor<32x1xi32>, tensor<32x1xi32>, tensor<32x1xbf16>) -> tensor<32x16xbf16>
  return
}

// -----

//===----------------------------------------------------------------------===//
// moe.moe_layer
//===----------------------------------------------------------------------===//

func.func @moe_layer_dynamic(%x: tensor<?x16xf32>, %wg: tensor<16x4xf32>, %w1: tensor<4x16x64xf32>, %b1: tensor<4x64xf32>, %w2: tensor<4x64x16xf32>, %b2: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.moe_layer' op operand #0 must have a static shape, found 'tensor<?x16xf32>'}}
  %y, %c, %a = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2 {config = #moe.gating<>, stream = 0 : i64} : (tensor<?x16xf32>, tensor<16x4xf32>, tensor<4x16x64xf32>, tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>) -> (tensor<?x16xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @moe_layer_groups_do_not_divide_tokens(%x: tensor<3x10x16xf32>, %wg: tensor<16x4xf32>, %w1: tensor<4x16x64xf32>, %b1: tensor<4x64xf32>, %w2: tensor<4x64x16xf32>, %b2: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.moe_layer' op gating groups = 4 does not divide the 30 tokens of input 3x10x16}}
  %y, %c, %a = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2 {config = #moe.gating<groups = 4>, stream = 0 : i64} : (tensor<3x10x16xf32>, tensor<16x4xf32>, tensor<4x16x64xf32>, tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>) -> (tensor<3x10x16xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @moe_layer_input_rank(%x: tensor<16xf32>, %wg: tensor<16x4xf32>, %w1: tensor<4x16x64xf32>, %b1: tensor<4x64xf32>, %w2: tensor<4x64x16xf32>, %b2: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.moe_layer' op expects input of rank >= 2 ([tokens..., model]), found 16}}
  %y, %c, %a = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2 {config = #moe.gating<>, stream = 0 : i64} : (tensor<16xf32>, tensor<16x4xf32>, tensor<4x16x64xf32>, tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>) -> (tensor<16xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @moe_layer_gate_weight_rank(%x: tensor<32x16xf32>, %wg: tensor<1x16x4xf32>, %w1: tensor<4x16x64xf32>, %b1: tensor<4x64xf32>, %w2: tensor<4x64x16xf32>, %b2: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.moe_layer' op expects gate weight of rank 2, found rank 3 ('tensor<1x16x4xf32>')}}
  %y, %c, %a = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2 {config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<1x16x4xf32>, tensor<4x16x64xf32>, tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>) -> (tensor<32x16xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @moe_layer_gate_weight_model_dim(%x: tensor<32x16xf32>, %wg: tensor<4x16xf32>, %w1: tensor<4x16x64xf32>, %b1: tensor<4x64xf32>, %w2: tensor<4x64x16xf32>, %b2: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.moe_layer' op expects gate weight of shape 16xE (model width of the input), found 4x16}}
  %y, %c, %a = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2 {config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<4x16xf32>, tensor<4x16x64xf32>, tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>) -> (tensor<32x16xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @moe_layer_no_experts(%x: tensor<32x16xf32>, %wg: tensor<16x0xf32>, %w1: tensor<0x16x64xf32>, %b1: tensor<0x64xf32>, %w2: tensor<0x64x16xf32>, %b2: tensor<0x16xf32>) {
  // expected-error @+1 {{'moe.moe_layer' op expects at least one expert, found 0}}
  %y, %c, %a = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2 {config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x0xf32>, tensor<0x16x64xf32>, tensor<0x64xf32>, tensor<0x64x16xf32>, tensor<0x16xf32>) -> (tensor<32x16xf32>, tensor<0xi32>, tensor<f32>)
  return
}

// -----

func.func @moe_layer_top_k_exceeds_experts(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>, %w1: tensor<4x16x64xf32>, %b1: tensor<4x64xf32>, %w2: tensor<4x64x16xf32>, %b2: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.moe_layer' op gating top_k = 8 exceeds the number of experts 4}}
  %y, %c, %a = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2 {config = #moe.gating<top_k = 8>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>, tensor<4x16x64xf32>, tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>) -> (tensor<32x16xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @moe_layer_no_tokens(%x: tensor<2x0x16xf32>, %wg: tensor<16x4xf32>, %w1: tensor<4x16x64xf32>, %b1: tensor<4x64xf32>, %w2: tensor<4x64x16xf32>, %b2: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.moe_layer' op expects at least one token, found 2x0x16}}
  %y, %c, %a = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2 {config = #moe.gating<>, stream = 0 : i64} : (tensor<2x0x16xf32>, tensor<16x4xf32>, tensor<4x16x64xf32>, tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>) -> (tensor<2x0x16xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @moe_layer_w1_rank(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>, %w1: tensor<16x64xf32>, %b1: tensor<4x64xf32>, %w2: tensor<4x64x16xf32>, %b2: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.moe_layer' op expects w1 of rank 3, found rank 2 ('tensor<16x64xf32>')}}
  %y, %c, %a = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2 {config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>, tensor<16x64xf32>, tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>) -> (tensor<32x16xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @moe_layer_w1_experts(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>, %w1: tensor<8x16x64xf32>, %b1: tensor<4x64xf32>, %w2: tensor<4x64x16xf32>, %b2: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.moe_layer' op expects w1 of shape 4x16x64, found 8x16x64}}
  %y, %c, %a = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2 {config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>, tensor<8x16x64xf32>, tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>) -> (tensor<32x16xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @moe_layer_b1_shape(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>, %w1: tensor<4x16x64xf32>, %b1: tensor<64xf32>, %w2: tensor<4x64x16xf32>, %b2: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.moe_layer' op expects b1 of shape 4x64, found 64}}
  %y, %c, %a = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2 {config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>, tensor<4x16x64xf32>, tensor<64xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>) -> (tensor<32x16xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @moe_layer_w2_shape(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>, %w1: tensor<4x16x64xf32>, %b1: tensor<4x64xf32>, %w2: tensor<4x32x16xf32>, %b2: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.moe_layer' op expects w2 of shape 4x64x16, found 4x32x16}}
  %y, %c, %a = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2 {config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>, tensor<4x16x64xf32>, tensor<4x64xf32>, tensor<4x32x16xf32>, tensor<4x16xf32>) -> (tensor<32x16xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @moe_layer_b2_shape(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>, %w1: tensor<4x16x64xf32>, %b1: tensor<4x64xf32>, %w2: tensor<4x64x16xf32>, %b2: tensor<4x64xf32>) {
  // expected-error @+1 {{'moe.moe_layer' op expects b2 of shape 4x16, found 4x64}}
  %y, %c, %a = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2 {config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>, tensor<4x16x64xf32>, tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x64xf32>) -> (tensor<32x16xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @moe_layer_result_type(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>, %w1: tensor<4x16x64xf32>, %b1: tensor<4x64xf32>, %w2: tensor<4x64x16xf32>, %b2: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.moe_layer' op expects the result type 'tensor<4x8x16xf32>' to equal the input type 'tensor<32x16xf32>'}}
  %y, %c, %a = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2 {config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>, tensor<4x16x64xf32>, tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>) -> (tensor<4x8x16xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @moe_layer_expert_counts_shape(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>, %w1: tensor<4x16x64xf32>, %b1: tensor<4x64xf32>, %w2: tensor<4x64x16xf32>, %b2: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.moe_layer' op expects expert_counts of shape 4, found 1x4}}
  %y, %c, %a = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2 {config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>, tensor<4x16x64xf32>, tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>) -> (tensor<32x16xf32>, tensor<1x4xi32>, tensor<f32>)
  return
}

// -----

func.func @moe_layer_negative_stream(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>, %w1: tensor<4x16x64xf32>, %b1: tensor<4x64xf32>, %w2: tensor<4x64x16xf32>, %b2: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.moe_layer' op expects stream >= 0, found -2}}
  %y, %c, %a = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2 {config = #moe.gating<>, stream = -2 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>, tensor<4x16x64xf32>, tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>) -> (tensor<32x16xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @moe_layer_element_type(%x: tensor<32x16xbf16>, %wg: tensor<16x4xbf16>, %w1: tensor<4x16x64xf16>, %b1: tensor<4x64xbf16>, %w2: tensor<4x64x16xbf16>, %b2: tensor<4x16xbf16>) {
  // expected-error @+1 {{'moe.moe_layer' op expects all floating-point operands and results to have element type 'bf16', found 'f16'}}
  %y, %c, %a = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2 {config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xbf16>, tensor<16x4xbf16>, tensor<4x16x64xf16>, tensor<4x64xbf16>, tensor<4x64x16xbf16>, tensor<4x16xbf16>) -> (tensor<32x16xbf16>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @moe_layer_gate_element_type(%x: tensor<32x16xf32>, %wg: tensor<16x4xf16>, %w1: tensor<4x16x64xf32>, %b1: tensor<4x64xf32>, %w2: tensor<4x64x16xf32>, %b2: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.moe_layer' op expects all floating-point operands and results to have element type 'f32', found 'f16'}}
  %y, %c, %a = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2 {config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf16>, tensor<4x16x64xf32>, tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>) -> (tensor<32x16xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

func.func @moe_layer_aux_loss_not_scalar(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>, %w1: tensor<4x16x64xf32>, %b1: tensor<4x64xf32>, %w2: tensor<4x64x16xf32>, %b2: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.moe_layer' op result #2 must be 0D tensor of 32-bit float values, but got 'tensor<4xf32>'}}
  %y, %c, %a = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2 {config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>, tensor<4x16x64xf32>, tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>) -> (tensor<32x16xf32>, tensor<4xi32>, tensor<4xf32>)
  return
}

// -----

func.func @moe_layer_float_counts(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>, %w1: tensor<4x16x64xf32>, %b1: tensor<4x64xf32>, %w2: tensor<4x64x16xf32>, %b2: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.moe_layer' op result #1 must be ranked tensor of 32-bit signless integer values, but got 'tensor<4xf32>'}}
  %y, %c, %a = moe.moe_layer gelu %x, %wg, %w1, %b1, %w2, %b2 {config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>, tensor<4x16x64xf32>, tensor<4x64xf32>, tensor<4x64x16xf32>, tensor<4x16xf32>) -> (tensor<32x16xf32>, tensor<4xf32>, tensor<f32>)
  return
}

// -----

//===----------------------------------------------------------------------===//
// #moe.gating
//===----------------------------------------------------------------------===//

func.func @gating_top_k_zero(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>) {
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, stream = 0 : i64,
      // expected-error @+1 {{gating top_k must be at least 1, found 0}}
      config = #moe.gating<top_k = 0>}
      : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x0xi32>, tensor<32x0xi32>, tensor<32x0xf32>, tensor<4xi32>, tensor<f32>)
  return
}

// -----

// expected-error @+1 {{gating top_k must be at least 1, found -2}}
func.func private @gating_top_k_negative() attributes {config = #moe.gating<top_k = -2>}

// -----

// expected-error @+1 {{gating capacity_factor must be a finite value > 0, found 0.000000e+00}}
func.func private @gating_capacity_factor_zero() attributes {config = #moe.gating<capacity_factor = 0.0>}

// -----

// expected-error @+1 {{gating capacity_factor must be a finite value > 0, found -1.250000e+00}}
func.func private @gating_capacity_factor_negative() attributes {config = #moe.gating<capacity_factor = -1.25>}

// -----

// expected-error @+1 {{gating capacity_factor must be a finite value > 0, found INF}}
func.func private @gating_capacity_factor_infinite() attributes {config = #moe.gating<capacity_factor = 0x7FF0000000000000>}

// -----

// expected-error @+1 {{gating capacity_factor must be a finite value > 0, found nan}}
func.func private @gating_capacity_factor_nan() attributes {config = #moe.gating<capacity_factor = 0x7FF8000000000000>}

// -----

// expected-error @+1 {{gating eval_capacity_factor must be a finite value > 0, found 0.000000e+00}}
func.func private @gating_eval_capacity_factor_zero() attributes {config = #moe.gating<eval_capacity_factor = 0.0>}

// -----

// expected-error @+1 {{gating eval_capacity_factor must be a finite value > 0, found -2.000000e+00}}
func.func private @gating_eval_capacity_factor_negative() attributes {config = #moe.gating<eval_capacity_factor = -2.0>}

// -----

// expected-error @+1 {{gating eval_capacity_factor must be a finite value > 0, found INF}}
func.func private @gating_eval_capacity_factor_infinite() attributes {config = #moe.gating<eval_capacity_factor = 0x7FF0000000000000>}

// -----

// expected-error @+1 {{gating min_capacity must be >= 0, found -1}}
func.func private @gating_min_capacity_negative() attributes {config = #moe.gating<min_capacity = -1>}

// -----

// expected-error @+1 {{gating jitter_eps must be in (0, 1), found 0.000000e+00}}
func.func private @gating_jitter_eps_zero() attributes {config = #moe.gating<noise = jitter, jitter_eps = 0.0>}

// -----

// expected-error @+1 {{gating jitter_eps must be in (0, 1), found 1.000000e+00}}
func.func private @gating_jitter_eps_one() attributes {config = #moe.gating<noise = jitter, jitter_eps = 1.0>}

// -----

// expected-error @+1 {{gating jitter_eps must be in (0, 1), found -1.000000e-02}}
func.func private @gating_jitter_eps_negative() attributes {config = #moe.gating<jitter_eps = -0.01>}

// -----

// expected-error @+1 {{gating groups must be at least 1, found 0}}
func.func private @gating_groups_zero() attributes {config = #moe.gating<groups = 0>}

// -----

// expected-error @+1 {{gating groups must be at least 1, found -4}}
func.func private @gating_groups_negative() attributes {config = #moe.gating<groups = -4>}

// -----

// expected-error @+2 {{expected 'true' or 'false', found 'yes'}}
// expected-error @+1 {{failed to parse Moe_GatingAttr parameter 'drop_tokens' which is to be a `bool`}}
func.func private @gating_bool_keyword() attributes {config = #moe.gating<drop_tokens = yes>}

// -----

// expected-error @+2 {{expected 'true' or 'false', found 'True'}}
// expected-error @+1 {{failed to parse Moe_GatingAttr parameter 'use_rts' which is to be a `bool`}}
func.func private @gating_bool_capitalised() attributes {config = #moe.gating<use_rts = True>}

// -----

// expected-error @+2 {{expected valid keyword}}
// expected-error @+1 {{failed to parse Moe_GatingAttr parameter 'second_sampling' which is to be a `bool`}}
func.func private @gating_bool_integer() attributes {config = #moe.gating<second_sampling = 1>}

// -----

// expected-error @+2 {{expected one of [none, jitter, rsample] for gate noise policy (training only), got: gaussian}}
// expected-error @+1 {{failed to parse Moe_GatingAttr parameter 'noise' which is to be a `::mlir::moe::NoisePolicy`}}
func.func private @gating_unknown_noise() attributes {config = #moe.gating<noise = gaussian>}

// -----

//===----------------------------------------------------------------------===//
// #moe.init
//===----------------------------------------------------------------------===//

// expected-error @+1 {{init scale must be finite and >= 0, found -2.000000e-02}}
func.func private @init_negative_scale() attributes {init = #moe.init<normal, scale = -0.02>}

// -----

// expected-error @+1 {{init scale must be finite and >= 0, found INF}}
func.func private @init_infinite_scale() attributes {init = #moe.init<uniform, scale = 0x7FF0000000000000>}

// -----

// expected-error @+1 {{init scale must be finite and >= 0, found nan}}
func.func private @init_nan_scale() attributes {init = #moe.init<zeros, scale = 0x7FF8000000000000>}

// -----

// expected-error @+1 {{init 'normal' needs a scale > 0}}
func.func private @init_normal_zero_scale() attributes {init = #moe.init<normal, scale = 0.0>}

// -----

// expected-error @+1 {{init 'uniform' needs a scale > 0}}
func.func private @init_uniform_zero_scale() attributes {init = #moe.init<uniform, scale = 0.0>}

// -----

// expected-error @+1 {{init 'xavier_uniform' needs a scale > 0}}
func.func private @init_xavier_zero_scale() attributes {init = #moe.init<xavier_uniform, scale = 0.0>}

// -----

// expected-error @+2 {{expected ::mlir::moe::InitKind to be one of: zeros, ones, normal, uniform, xavier_uniform}}
// expected-error @+1 {{failed to parse Moe_InitAttr parameter 'kind' which is to be a `::mlir::moe::InitKind`}}
func.func private @init_unknown_kind() attributes {init = #moe.init<gaussian, scale = 1.0>}

// -----

//===----------------------------------------------------------------------===//
// Function argument and result annotations
//===----------------------------------------------------------------------===//

// expected-error @+1 {{argument #0: 'moe.param' must be a non-empty string}}
func.func private @param_not_string(tensor<4xf32> {moe.param = 1 : i64})

// -----

// expected-error @+1 {{argument #1: 'moe.param' must be a non-empty string}}
func.func private @param_empty(tensor<4xf32> {moe.param = "a"}, tensor<4xf32> {moe.param = ""})

// -----

// expected-error @+1 {{argument #0: a parameter must be a ranked tensor, found 'f32'}}
func.func private @param_not_tensor(f32 {moe.param = "w"})

// -----

// expected-error @+1 {{argument #0: a parameter must be a ranked tensor, found 'tensor<*xf32>'}}
func.func private @param_unranked(tensor<*xf32> {moe.param = "w"})

// -----

// expected-error @+1 {{argument #2: parameter name 'ffn.w1' is already used by argument #0}}
func.func @param_duplicate(%a: tensor<4xf32> {moe.param = "ffn.w1"}, %b: tensor<4xf32> {moe.param = "ffn.w2"}, %c: tensor<4xf32> {moe.param = "ffn.w1"}) {
  return
}

// -----

// expected-error @+1 {{argument #0: 'moe.init' must be a #moe.init attribute}}
func.func private @init_not_init_attr(tensor<4xf32> {moe.param = "w", moe.init = #moe.gating<>})

// -----

// expected-error @+1 {{argument #0: 'moe.init' must be a #moe.init attribute}}
func.func private @init_float(tensor<4xf32> {moe.param = "w", moe.init = 0.02 : f64})

// -----

// expected-error @+1 {{argument #1: 'moe.init' needs 'moe.param' on the same argument}}
func.func private @init_without_param(tensor<4xf32> {moe.param = "w"}, tensor<4xf32> {moe.init = #moe.init<zeros>})

// -----

// expected-error @+1 {{argument #0: 'moe.input' must be a non-empty string}}
func.func private @input_empty(tensor<2x8xi32> {moe.input = ""})

// -----

// expected-error @+1 {{argument #0: 'moe.input' must be a non-empty string}}
func.func private @input_not_string(tensor<2x8xi32> {moe.input = unit})

// -----

// expected-error @+1 {{argument #0: an argument cannot be both a parameter and a batch input}}
func.func private @param_and_input(tensor<2x8xi32> {moe.param = "tok", moe.input = "tok"})

// -----

// expected-error @+1 {{argument #1: unknown moe argument attribute 'moe.parameter' (expected moe.param, moe.init}}
func.func private @unknown_arg_attr(tensor<4xf32>, tensor<4xf32> {moe.parameter = "w"})

// -----

// expected-error @+1 {{argument #0: unknown moe argument attribute 'moe.role' (expected moe.param, moe.init}}
func.func private @role_on_argument(tensor<f32> {moe.role = "loss"})

// -----

// expected-error @+1 {{result #1: unknown moe result attribute 'moe.input' (expected moe.role}}
func.func private @unknown_result_attr() -> (tensor<f32> {moe.role = "loss"}, tensor<2x8xi32> {moe.input = "tokens"})

// -----

// Gradient results name their parameter with moe.param.
// expected-error @+1 {{result #0: 'moe.param' must be a non-empty string}}
func.func private @result_param_empty() -> (tensor<4xf32> {moe.param = ""})

// -----

// expected-error @+1 {{must be one of "loss", "aux_loss", "expert_counts", "metric"}}
func.func private @role_unknown() -> (tensor<f32> {moe.role = "accuracy"})

// -----

// expected-error @+1 {{must be one of "loss", "aux_loss", "expert_counts", "metric"}}
func.func private @role_not_string() -> (tensor<f32> {moe.role = 0 : i64})

// -----

// expected-error @+1 {{must be one of "loss", "aux_loss", "expert_counts", "metric"}}
func.func private @role_case() -> (tensor<f32> {moe.role = "loss"}, tensor<f32> {moe.role = "metric"}, tensor<f32> {moe.role = "Loss"})

//===----------------------------------------------------------------------===//
// moe.pack, moe.unpack (gradient buckets)
//===----------------------------------------------------------------------===//

// -----

func.func @pack_wrong_size(%a: tensor<4x8xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{'moe.pack' op result must hold the 40 elements of the operands, found 'tensor<39xf32>'}}
  %0 = moe.pack %a, %b : tensor<4x8xf32>, tensor<8xf32> -> tensor<39xf32>
  return
}

// -----

func.func @pack_not_flat(%a: tensor<4x8xf32>) {
  // expected-error @+1 {{'moe.pack' op result must be 1-D, found 'tensor<4x8xf32>'}}
  %0 = moe.pack %a : tensor<4x8xf32> -> tensor<4x8xf32>
  return
}

// -----

func.func @pack_mixed_types(%a: tensor<4xf32>, %b: tensor<4xbf16>) {
  // expected-error @+1 {{'moe.pack' op operand #1 element type 'bf16' differs from the result's 'f32'}}
  %0 = moe.pack %a, %b : tensor<4xf32>, tensor<4xbf16> -> tensor<8xf32>
  return
}

// -----

func.func @unpack_out_of_range(%flat: tensor<40xf32>) {
  // expected-error @+1 {{'moe.unpack' op elements [36, 44) are not inside the input's 40}}
  %0 = moe.unpack %flat {offset = 36 : i64} : tensor<40xf32> -> tensor<8xf32>
  return
}

// -----

func.func @unpack_negative_offset(%flat: tensor<40xf32>) {
  // expected-error @+1 {{'moe.unpack' op elements [-1, 7) are not inside the input's 40}}
  %0 = moe.unpack %flat {offset = -1 : i64} : tensor<40xf32> -> tensor<8xf32>
  return
}

// -----

func.func @unpack_from_2d(%flat: tensor<5x8xf32>) {
  // expected-error @+1 {{'moe.unpack' op input must be a static 1-D tensor, found 'tensor<5x8xf32>'}}
  %0 = moe.unpack %flat {offset = 0 : i64} : tensor<5x8xf32> -> tensor<8xf32>
  return
}

// -----

func.func @pack_chunks_do_not_divide(%a: tensor<3xf32>, %b: tensor<4xf32>) {
  // expected-error @+1 {{'moe.pack' op operand #0 'tensor<3xf32>' does not split into 2 equal chunks}}
  %0 = moe.pack %a, %b {chunks = 2 : i64} : tensor<3xf32>, tensor<4xf32> -> tensor<7xf32>
  return
}

// -----

func.func @unpack_outside_its_rows(%flat: tensor<40xf32>) {
  // expected-error @+1 {{'moe.unpack' op elements [16, 24) are not inside the input's rows of 20}}
  %0 = moe.unpack %flat {offset = 16 : i64, chunks = 2 : i64} : tensor<40xf32> -> tensor<16xf32>
  return
}

// -----

// moe.embedding_at, moe.cache_update (incremental decoding)

func.func @embedding_at_wrong_result(%t: tensor<2x1xi32>, %w: tensor<16x8xf32>, %p: tensor<i32>) {
  // expected-error @+1 {{'moe.embedding_at' op expects result of shape 2x1x8, found 2x1x4}}
  %0 = moe.embedding_at sinusoidal %t, %w offset %p : (tensor<2x1xi32>, tensor<16x8xf32>, tensor<i32>) -> tensor<2x1x4xf32>
  return
}

// -----

func.func @embedding_at_learned_without_table(%t: tensor<2x1xi32>, %w: tensor<16x8xf32>, %p: tensor<i32>) {
  // expected-error @+1 {{'moe.embedding_at' op with learned positions expects a 'positions' table}}
  %0 = moe.embedding_at learned %t, %w offset %p : (tensor<2x1xi32>, tensor<16x8xf32>, tensor<i32>) -> tensor<2x1x8xf32>
  return
}

// -----

func.func @embedding_at_offset_not_scalar(%t: tensor<2x1xi32>, %w: tensor<16x8xf32>, %p: tensor<2xi32>) {
  // expected-error @+1 {{'moe.embedding_at' op operand #2 must be 0D tensor of 32-bit signless integer values}}
  %0 = moe.embedding_at sinusoidal %t, %w offset %p : (tensor<2x1xi32>, tensor<16x8xf32>, tensor<2xi32>) -> tensor<2x1x8xf32>
  return
}

// -----

func.func @cache_update_wrong_width(%c: tensor<2x6x8xf32>, %r: tensor<2x1x4xf32>, %p: tensor<i32>) {
  // expected-error @+1 {{'moe.cache_update' op expects rows of shape 2xLx8 (the cache's batch and width), found 2x1x4}}
  %0 = moe.cache_update %c, %r, %p : (tensor<2x6x8xf32>, tensor<2x1x4xf32>, tensor<i32>) -> tensor<2x6x8xf32>
  return
}

// -----

func.func @cache_update_too_many_rows(%c: tensor<2x6x8xf32>, %r: tensor<2x7x8xf32>, %p: tensor<i32>) {
  // expected-error @+1 {{'moe.cache_update' op expects at most 6 rows per sequence (the cache's length), found 7}}
  %0 = moe.cache_update %c, %r, %p : (tensor<2x6x8xf32>, tensor<2x7x8xf32>, tensor<i32>) -> tensor<2x6x8xf32>
  return
}

// -----

func.func @cache_update_wrong_result(%c: tensor<2x6x8xf32>, %r: tensor<2x1x8xf32>, %p: tensor<i32>) {
  // expected-error @+1 {{'moe.cache_update' op expects result of shape 2x6x8, found 2x5x8}}
  %0 = moe.cache_update %c, %r, %p : (tensor<2x6x8xf32>, tensor<2x1x8xf32>, tensor<i32>) -> tensor<2x5x8xf32>
  return
}
