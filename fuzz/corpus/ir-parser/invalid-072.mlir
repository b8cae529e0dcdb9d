func.func @cross_entropy_logits_rank(%l: tensor<100xf32>, %y: tensor<i32>) {
  // expected-error @+1 {{'moe.cross_entropy' op expects logits of rank >= 2 ([..., vocab]), found 100}}
  %0 = moe.cross_entropy %l, %y : (tensor<100xf32>, tensor<i32>) -> tensor<f32>
  return
}
