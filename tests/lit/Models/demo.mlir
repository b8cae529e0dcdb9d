// The demo model: round-trips, expands to the four-op MoE form, and reports
// its parameter counts.
// RUN: moe-opt %models/demo.mlir | moe-opt | FileCheck %s --check-prefix=ROUNDTRIP
// RUN: moe-opt %models/demo.mlir --mlir-print-op-generic | moe-opt | FileCheck %s --check-prefix=ROUNDTRIP
// RUN: moe-opt %models/demo.mlir --moe-expand-moe-layer | FileCheck %s --check-prefix=EXPANDED
// RUN: moe-opt %models/demo.mlir --moe-expand-moe-layer | moe-opt --verify-diagnostics | FileCheck %s --check-prefix=EXPANDED
// RUN: moe-opt %models/demo.mlir --moe-param-report -o /dev/null | FileCheck %s --check-prefix=REPORT
// The committed model is exactly what the generator makes from its config.
// RUN: moe-model-gen %models/demo.json | diff - %models/demo.mlir
// RUN: moe-opt %models/demo.mlir --moe-expand-moe-layer | FileCheck %s --check-prefix=COUNT-OPS
// Differentiation gives one gradient per parameter (91) and re-verifies.
// RUN: moe-opt %models/demo.mlir --moe-expand-moe-layer --moe-differentiate | moe-opt | FileCheck %s --check-prefix=GRAD
// RUN: moe-opt %models/demo.mlir --moe-expand-moe-layer --moe-differentiate | grep -o 'moe.role = "grad"' | count 91

// ROUNDTRIP: module attributes {moe.model = "demo"}
// ROUNDTRIP: func.func @forward(
// ROUNDTRIP-SAME: moe.param = "embed.weight"
// ROUNDTRIP-SAME: moe.input = "src_tokens"
// ROUNDTRIP-SAME: moe.input = "tgt_tokens"
// ROUNDTRIP-SAME: moe.input = "labels"
// ROUNDTRIP-SAME: -> (tensor<f32> {moe.role = "loss"}, tensor<f32> {moe.role = "aux_loss"}, tensor<8xi32> {moe.role = "expert_counts"}, tensor<8xi32> {moe.role = "expert_counts"})
// ROUNDTRIP: moe.embedding sinusoidal
// ROUNDTRIP: moe.attention {{.*}} key_mask
// ROUNDTRIP: moe.moe_layer gelu
// ROUNDTRIP-SAME: config = #moe.gating<top_k = 2, eval_capacity_factor = 2.0, groups = 4>
// ROUNDTRIP: moe.attention {{.*}}causal
// ROUNDTRIP: moe.cross_entropy
// ROUNDTRIP-SAME: label_smoothing = 1.000000e-01 : f64

// 8x32 = 256 tokens in 4 gating groups of 64, 8 experts, top-2,
// capacity_factor 1: 16 slots per group, C = 4 x 16 = 64.
// EXPANDED-NOT: moe.moe_layer
// EXPANDED: moe.gate {{.*}}capacity = 64 : i64
// EXPANDED-NEXT: moe.dispatch {{.*}} -> tensor<8x64x128xf32>
// EXPANDED-NEXT: moe.expert_ffn gelu {{.*}} -> tensor<8x64x128xf32>
// EXPANDED-NEXT: moe.combine {{.*}} -> tensor<8x32x128xf32>
// EXPANDED-NOT: moe.moe_layer

// Two MoE layers (encoder layer 1, decoder layer 1), each expanded once.
// COUNT-OPS-COUNT-2: moe.gate
// COUNT-OPS-NOT: moe.gate

// REPORT: parameters of @forward: 91 tensors
// REPORT-NEXT: total 2903296 (2.90M)
// REPORT-NEXT: dense 795904 (795.90K)
// REPORT-NEXT: expert 2107392 (2.11M)
// REPORT-NEXT: active per token 1322752 (1.32M)
// REPORT-NEXT: moe layers 2 (8 experts, top-2)

// GRAD: func.func @forward_grad(
// GRAD-COUNT-2: moe.gate_grad
// GRAD-NOT: moe.gate_grad
