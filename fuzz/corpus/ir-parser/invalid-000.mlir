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
