// RUN: moe-opt %s --split-input-file --verify-diagnostics
// RUN: not moe-opt %s --split-input-file 2>&1 | FileCheck %s --check-prefix=ERR

// Malformed moe IR that the parser rejects. Each case is checked twice: by
// --verify-diagnostics, and (ERR) as plain moe-opt output, which must fail
// and report every error at its file, line and column.

// A binary op with one operand.
func.func @missing_operand(%x: tensor<4xf32>) {
  // ERR: {{.*}}invalid-syntax.mlir:[[@LINE+2]]:{{[0-9]+}}: error: expected ','
  // expected-error @+1 {{expected ','}}
  %0 = moe.add %x : tensor<4xf32>
  return
}

// -----

func.func @undefined_operand(%x: tensor<4xf32>) {
  // ERR: {{.*}}invalid-syntax.mlir:[[@LINE+2]]:{{[0-9]+}}: error: use of undeclared SSA value name
  // expected-error @+1 {{use of undeclared SSA value name}}
  %0 = moe.add %x, %y : tensor<4xf32>
  return
}

// -----

func.func @unknown_op(%x: tensor<4xf32>) {
  // ERR: {{.*}}invalid-syntax.mlir:[[@LINE+2]]:{{[0-9]+}}: error: custom op 'moe.nope' is unknown
  // expected-error @+1 {{custom op 'moe.nope' is unknown}}
  %0 = moe.nope %x : tensor<4xf32>
  return
}

// -----

func.func @missing_type(%x: tensor<4xf32>) {
  // ERR: {{.*}}invalid-syntax.mlir:[[@LINE+2]]:{{[0-9]+}}: error: expected ':'
  // expected-error @+1 {{expected ':'}}
  %0 = moe.activation relu %x
  return
}

// -----

func.func @unknown_activation(%x: tensor<4xf32>) {
  // ERR: {{.*}}invalid-syntax.mlir:[[@LINE+2]]:{{[0-9]+}}: error: custom op 'moe.activation' expected string or keyword containing one of the following enum values for attribute 'kind' [relu, gelu, gelu_tanh, silu]
  // expected-error @+1 {{custom op 'moe.activation' expected string or keyword containing one of the following enum values for attribute 'kind' [relu, gelu, gelu_tanh, silu]}}
  %0 = moe.activation tanh %x : tensor<4xf32>
  return
}

// -----

func.func @unknown_position(%t: tensor<2x8xi32>, %e: tensor<10x4xf32>) {
  // ERR: {{.*}}invalid-syntax.mlir:[[@LINE+2]]:{{[0-9]+}}: error: custom op 'moe.embedding' expected string or keyword containing one of the following enum values for attribute 'position' [none, sinusoidal, learned]
  // expected-error @+1 {{custom op 'moe.embedding' expected string or keyword containing one of the following enum values for attribute 'position' [none, sinusoidal, learned]}}
  %0 = moe.embedding absolute %t, %e : (tensor<2x8xi32>, tensor<10x4xf32>) -> tensor<2x8x4xf32>
  return
}

// -----

// The custom form of an op with one type requires a ranked tensor.
func.func @unranked_custom_type(%x: tensor<*xf32>) {
  // ERR: {{.*}}invalid-syntax.mlir:[[@LINE+2]]:{{[0-9]+}}: error: custom op 'moe.activation' invalid kind of type specified: expected builtin.tensor, but found 'tensor<*xf32>'
  // expected-error @+1 {{custom op 'moe.activation' invalid kind of type specified: expected builtin.tensor, but found 'tensor<*xf32>'}}
  %0 = moe.activation gelu %x : tensor<*xf32>
  return
}

// -----

func.func @operand_type_count(%x: tensor<4x16xf32>, %w: tensor<16x8xf32>) {
  // ERR: {{.*}}invalid-syntax.mlir:[[@LINE+2]]:{{[0-9]+}}: error: custom op 'moe.linear' number of operands and types do not match: got 2 operands and 1 types
  // expected-error @+1 {{custom op 'moe.linear' number of operands and types do not match: got 2 operands and 1 types}}
  %0 = moe.linear %x, %w : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @result_count(%x: tensor<32x16xf32>, %wg: tensor<16x4xf32>) {
  // ERR: {{.*}}invalid-syntax.mlir:[[@LINE+2]]:{{[0-9]+}}: error: operation defines 2 results but was provided 5 to bind
  // expected-error @+1 {{operation defines 2 results but was provided 5 to bind}}
  %i, %l, %w, %c, %a = moe.gate %x, %wg {capacity = 8 : i64, config = #moe.gating<>, stream = 0 : i64} : (tensor<32x16xf32>, tensor<16x4xf32>) -> (tensor<32x1xi32>, tensor<32x1xi32>)
  return
}

// -----

// ERR: {{.*}}invalid-syntax.mlir:[[@LINE+4]]:{{[0-9]+}}: error: expected integer value
// ERR: {{.*}}invalid-syntax.mlir:[[@LINE+3]]:{{[0-9]+}}: error: failed to parse Moe_GatingAttr parameter 'top_k' which is to be a `int64_t`
// expected-error @+2 {{expected integer value}}
// expected-error @+1 {{failed to parse Moe_GatingAttr parameter 'top_k' which is to be a `int64_t`}}
func.func private @gating_truncated() attributes {c = #moe.gating<top_k = >}

// -----

// ERR: {{.*}}invalid-syntax.mlir:[[@LINE+2]]:{{[0-9]+}}: error: unbalanced '<' character in pretty dialect name
// expected-error @+1 {{unbalanced '<' character in pretty dialect name}}
func.func private @gating_unterminated() attributes {c = #moe.gating<top_k = 2}

// -----

// ERR: {{.*}}invalid-syntax.mlir:[[@LINE+2]]:{{[0-9]+}}: error: duplicate or unknown struct parameter name: topk
// expected-error @+1 {{duplicate or unknown struct parameter name: topk}}
func.func private @gating_unknown_parameter() attributes {c = #moe.gating<topk = 2>}

// -----

// ERR: {{.*}}invalid-syntax.mlir:[[@LINE+2]]:{{[0-9]+}}: error: duplicate or unknown struct parameter name: top_k
// expected-error @+1 {{duplicate or unknown struct parameter name: top_k}}
func.func private @gating_duplicate_parameter() attributes {c = #moe.gating<top_k = 2, top_k = 3>}

// -----

// ERR: {{.*}}invalid-syntax.mlir:[[@LINE+6]]:{{[0-9]+}}: error: unexpected decimal integer literal for a floating point value
// ERR: {{.*}}invalid-syntax.mlir:[[@LINE+5]]:{{[0-9]+}}: note: add a trailing dot to make the literal a float
// ERR: {{.*}}invalid-syntax.mlir:[[@LINE+4]]:{{[0-9]+}}: error: failed to parse Moe_GatingAttr parameter 'capacity_factor' which is to be a `::llvm::APFloat`
// expected-error @+3 {{unexpected decimal integer literal for a floating point value}}
// expected-note @+2 {{add a trailing dot to make the literal a float}}
// expected-error @+1 {{failed to parse Moe_GatingAttr parameter 'capacity_factor' which is to be a `::llvm::APFloat`}}
func.func private @gating_integer_for_float() attributes {c = #moe.gating<capacity_factor = 2>}

// -----

// ERR: {{.*}}invalid-syntax.mlir:[[@LINE+4]]:{{[0-9]+}}: error: expected integer value
// ERR: {{.*}}invalid-syntax.mlir:[[@LINE+3]]:{{[0-9]+}}: error: failed to parse Moe_GatingAttr parameter 'top_k' which is to be a `int64_t`
// expected-error @+2 {{expected integer value}}
// expected-error @+1 {{failed to parse Moe_GatingAttr parameter 'top_k' which is to be a `int64_t`}}
func.func private @gating_float_for_integer() attributes {c = #moe.gating<top_k = 2.0>}

// -----

// ERR: {{.*}}invalid-syntax.mlir:[[@LINE+4]]:{{[0-9]+}}: error: expected valid keyword
// ERR: {{.*}}invalid-syntax.mlir:[[@LINE+3]]:{{[0-9]+}}: error: failed to parse Moe_GatingAttr parameter 'drop_tokens' which is to be a `bool`
// expected-error @+2 {{expected valid keyword}}
// expected-error @+1 {{failed to parse Moe_GatingAttr parameter 'drop_tokens' which is to be a `bool`}}
func.func private @gating_bool_missing() attributes {c = #moe.gating<drop_tokens = >}

// -----

// ERR: {{.*}}invalid-syntax.mlir:[[@LINE+2]]:{{[0-9]+}}: error: expected 'scale'
// expected-error @+1 {{expected 'scale'}}
func.func private @init_wrong_keyword() attributes {c = #moe.init<normal, std = 0.02>}

// -----

// ERR: {{.*}}invalid-syntax.mlir:[[@LINE+2]]:{{[0-9]+}}: error: unbalanced '<' character in pretty dialect name
// expected-error @+1 {{unbalanced '<' character in pretty dialect name}}
func.func private @init_unterminated() attributes {c = #moe.init<normal, scale = 0.02}

// -----

// ERR: {{.*}}invalid-syntax.mlir:[[@LINE+2]]:{{[0-9]+}}: error: unknown attribute `foo` in dialect `moe`
// expected-error @+1 {{unknown attribute `foo` in dialect `moe`}}
func.func private @unknown_attribute() attributes {c = #moe.foo<>}
