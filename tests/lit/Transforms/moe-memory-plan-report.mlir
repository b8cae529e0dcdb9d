// RUN: moe-opt %s --moe-memory-plan-report -o /dev/null | FileCheck %s
// RUN: moe-opt %s --moe-memory-plan-report="alignment=256" -o /dev/null | FileCheck %s --check-prefix=ALIGN

// Three 64-byte tensors in a chain: %a dies when %b is made, so %c reuses
// %a's bytes. The arena is two buffers, not three.
// CHECK: memory plan of @chain: 3 buffers
// CHECK-NEXT: arena (peak) 128 bytes
// CHECK-NEXT: live lower bound 128 bytes
// CHECK-NEXT: without reuse 192 bytes
// CHECK-NEXT: arguments (persistent) 64 bytes
// ALIGN: memory plan of @chain: 3 buffers
// ALIGN-NEXT: arena (peak) 512 bytes
func.func @chain(%x: tensor<16xf32>) -> tensor<16xf32> {
  %a = moe.activation relu %x : tensor<16xf32>
  %b = moe.activation relu %a : tensor<16xf32>
  %c = moe.activation relu %b : tensor<16xf32>
  return %c : tensor<16xf32>
}

// A value used late keeps its bytes: %a lives until the add, so nothing can
// reuse it and all three buffers are live at once.
// CHECK: memory plan of @residual: 3 buffers
// CHECK-NEXT: arena (peak) 192 bytes
// CHECK-NEXT: live lower bound 192 bytes
func.func @residual(%x: tensor<16xf32>) -> tensor<16xf32> {
  %a = moe.activation relu %x : tensor<16xf32>
  %b = moe.activation gelu %a : tensor<16xf32>
  %c = moe.add %a, %b : tensor<16xf32>
  return %c : tensor<16xf32>
}
