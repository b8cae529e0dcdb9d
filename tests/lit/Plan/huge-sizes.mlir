// A tensor whose byte size overflows int64 (a vocabulary of 2^62 rows gave
// a buffer of 0 bytes in the plan before) is refused: non-zero exit, the
// error names the tensor, and no plan is written.
// RUN: rm -rf %t && mkdir -p %t
// RUN: not moe-opt %s --moe-training-pipeline --moe-emit-plan="output=%t/huge.moeplan" -o /dev/null 2>&1 | FileCheck %s
// RUN: test ! -e %t/huge.moeplan

// CHECK: error: 'moe.embedding' op operand #1 ('tensor<4611686018427387904x8xf32>') is too large: its byte size overflows int64 or exceeds 2^48 bytes (256 TiB)
func.func @forward(%table: tensor<4611686018427387904x8xf32> {moe.param = "embed.weight"},
                   %tokens: tensor<2x4xi32> {moe.input = "src_tokens"},
                   %labels: tensor<2x4xi32> {moe.input = "labels"})
    -> (tensor<f32> {moe.role = "loss"}) {
  %h = moe.embedding none %tokens, %table : (tensor<2x4xi32>, tensor<4611686018427387904x8xf32>) -> tensor<2x4x8xf32>
  %w = arith.constant dense<0.0> : tensor<8x16xf32>
  %logits = moe.linear %h, %w : (tensor<2x4x8xf32>, tensor<8x16xf32>) -> tensor<2x4x16xf32>
  %loss = moe.cross_entropy %logits, %labels : (tensor<2x4x16xf32>, tensor<2x4xi32>) -> tensor<f32>
  return %loss : tensor<f32>
}
