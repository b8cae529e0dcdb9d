// The byte size of every tensor must fit int64 (and 2^48 bytes): a
// vocabulary of 2^62 rows would otherwise give a buffer of size 0.
func.func @embedding_table_too_large(%tok: tensor<2x8xi32>, %table: tensor<4611686018427387904x4xf32>) {
  // expected-error @+1 {{'moe.embedding' op operand #1 ('tensor<4611686018427387904x4xf32>') is too large: its byte size overflows int64 or exceeds 2^48 bytes (256 TiB)}}
  %1 = moe.embedding sinusoidal %tok, %table : (tensor<2x8xi32>, tensor<4611686018427387904x4xf32>) -> tensor<2x8x4xf32>
  return
}
