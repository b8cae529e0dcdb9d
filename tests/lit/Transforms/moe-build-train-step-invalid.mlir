// RUN: moe-opt %s --split-input-file --moe-build-train-step --verify-diagnostics
// RUN: not moe-opt %s --split-input-file --moe-differentiate --moe-build-train-step="lr=0" 2>&1 | FileCheck %s --check-prefix=LR
// RUN: not moe-opt %s --split-input-file --moe-differentiate --moe-build-train-step="beta2=1.0" 2>&1 | FileCheck %s --check-prefix=BETA

// RUN: not moe-opt %s --split-input-file --moe-differentiate --moe-build-train-step="lr=inf" 2>&1 | FileCheck %s --check-prefix=LR-INF
// RUN: not moe-opt %s --split-input-file --moe-differentiate --moe-build-train-step="lr=nan" 2>&1 | FileCheck %s --check-prefix=LR-NAN
// RUN: not moe-opt %s --split-input-file --moe-differentiate --moe-build-train-step="clip-norm=inf" 2>&1 | FileCheck %s --check-prefix=CLIP-INF
// RUN: not moe-opt %s --split-input-file --moe-differentiate --moe-build-train-step="epsilon=inf" 2>&1 | FileCheck %s --check-prefix=EPS-INF
// RUN: not moe-opt %s --split-input-file --moe-differentiate="aux-loss-coef=nan" 2>&1 | FileCheck %s --check-prefix=AUX-NAN

// LR: error: moe-build-train-step: lr must be finite and > 0, found 0
// LR-INF: error: moe-build-train-step: lr must be finite and > 0, found INF
// LR-NAN: error: moe-build-train-step: lr must be finite and > 0, found {{-?}}{{[nN]a[nN]}}
// CLIP-INF: error: moe-build-train-step: clip-norm must be finite and >= 0 (0 disables clipping), found INF
// EPS-INF: error: moe-build-train-step: epsilon must be finite and > 0, found INF
// AUX-NAN: error: moe-differentiate: aux-loss-coef must be finite, found {{-?}}nan
// BETA: error: moe-build-train-step: beta1 and beta2 must be in [0, 1)

// expected-error @+1 {{no function @forward_grad (run --moe-differentiate first)}}
module {
  func.func @forward(%w: tensor<4x4xf32> {moe.param = "w"}, %x: tensor<2x4xf32>,
                     %labels: tensor<2xi32>) -> (tensor<f32> {moe.role = "loss"}) {
    %y = moe.linear %x, %w : (tensor<2x4xf32>, tensor<4x4xf32>) -> tensor<2x4xf32>
    %loss = moe.cross_entropy %y, %labels : (tensor<2x4xf32>, tensor<2xi32>) -> tensor<f32>
    return %loss : tensor<f32>
  }
}

// -----

module {
  // expected-error @+1 {{parameter 'w' is not f32; low-precision parameters need fp32 master weights}}
  func.func @forward_grad(%w: tensor<4x4xbf16> {moe.param = "w"})
      -> (tensor<4x4xbf16> {moe.role = "grad", moe.param = "w"}) {
    return %w : tensor<4x4xbf16>
  }
}
