//===- KernelCodegen.h - The MoE data-movement kernels, generated -*- C++ -*-===//
//
// The token dispatch and combine of an MoE layer as kernels the compiler
// writes in MLIR (scf loops over routing entries / tokens and the model
// dimension, strided by block and thread; loads and stores through LLVM
// pointers) and lowers itself:
//   - for NVIDIA GPUs through gpu -> nvvm -> PTX (gpu-module-to-binary,
//     format isa) for each requested SM; the plan carries the PTX and the
//     CUDA backend loads it with the driver API (docs/codegen.md);
//   - for the host, the same kernel body inside loops over every (block,
//     thread) pair, lowered to LLVM and run by the JIT (moe-kernel-check),
//     so that every machine tests the generated logic against the CPU
//     kernels (moert/kernels/DispatchCombine.h).
// Kernels (all indices 64-bit; entry i = token * top_k + choice; a routing
// entry with slot -1, an expert outside [0, E) or a slot outside [0, C) is
// skipped):
//   moe_dispatch(x, experts, slots, buffer, S, k, M, E, C):
//       buffer[e, c, :] = x[s, :] for each kept entry (the buffer is zeroed
//       before the launch);
//   moe_combine(buffer, experts, slots, weights, y, S, k, M, E, C):
//       y[s, :] = sum over kept choices j (in order) of w[s, j] buffer[e, c, :];
//   moe_dispatch_grad(bufferGrad, experts, slots, xGrad, S, k, M, E, C):
//       xGrad[s, :] = sum over kept choices j (in order) of bufferGrad[e, c, :].
//
//===----------------------------------------------------------------------===//
#ifndef COMPILER_KERNELCODEGEN_H
#define COMPILER_KERNELCODEGEN_H

#include "mlir/IR/MLIRContext.h"
#include "mlir/Support/LLVM.h"

#include <string>
#include <vector>

namespace mlir {
namespace moe {

/// The generated kernels' names, in the order above.
const std::vector<std::string> &moeKernelNames();

/// MLIR source of the kernels: as one `gpu.module @moe_kernels` of
/// `gpu.func` kernels (`forGpu`), or as host functions `<name>_host` that
/// take two more i64 arguments (blocks, threads) and run every (block,
/// thread) pair in order.
std::string moeKernelSource(bool forGpu);

/// PTX of every kernel for `sm` (e.g. 80, 90), lowered in a context of its
/// own. Needs the NVPTX target in the LLVM build (Debian's has it).
FailureOr<std::string> moeKernelPtx(int sm, std::string *error);

} // namespace moe
} // namespace mlir

#endif // COMPILER_KERNELCODEGEN_H
