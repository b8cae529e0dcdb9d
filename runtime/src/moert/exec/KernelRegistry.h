//===- KernelRegistry.h - Kernels keyed by (op, backend) --------*- C++ -*-===//
//
// Each backend fills one table with a kernel per op of Ops.def
// (backends/cpu/*.cpp, backends/cuda/*.cu); the executor looks kernels up
// by (op, backend) once, when it is made. A kernel may ask for operands or
// results in host memory (like ONNX Runtime's host-resident inputs): on a
// device that is not host-accessible the executor stages those through host
// buffers around the call, so a kernel that must run on the host (an MPI
// collective on a CUDA plan, a scalar read on the CPU) still fits.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_EXEC_KERNELREGISTRY_H
#define MOERT_EXEC_KERNELREGISTRY_H

#include "moert/Ops.h"
#include "moert/hal/Device.h"

#include <array>
#include <cstdint>

namespace moert {
namespace exec {

class KernelCall;
struct Instruction;
struct Program;

using KernelFn = Status (*)(KernelCall &call);
/// Scratch bytes the kernel needs to run `instruction` (its shapes and
/// attributes are final). The executor allocates the largest over the
/// program once, on the device, and hands it to every call.
using WorkspaceFn = int64_t (*)(const Instruction &instruction,
                                const Program &program);

struct KernelInfo {
  KernelFn fn = nullptr;
  /// Bit i: operand / result i must be in host memory during the call.
  uint32_t hostOperands = 0;
  uint32_t hostResults = 0;
  WorkspaceFn workspace = nullptr;
};

/// Every operand / every result in host memory.
constexpr uint32_t kAllHost = ~0u;

class KernelRegistry {
public:
  void add(Op op, KernelInfo info) {
    kernels_[static_cast<size_t>(op)] = info;
  }
  /// Null when this backend has no kernel for `op`.
  const KernelInfo *find(Op op) const {
    const KernelInfo &info = kernels_[static_cast<size_t>(op)];
    return info.fn ? &info : nullptr;
  }

private:
  std::array<KernelInfo, kOpTableSize> kernels_{};
};

/// The table of `backend` (empty for a backend this build does not have).
const KernelRegistry &kernelRegistry(hal::Backend backend);

/// Filled by the backends (called once by kernelRegistry).
void registerCpuKernels(KernelRegistry &registry);
#if defined(MOERT_HAVE_CUDA)
void registerCudaKernels(KernelRegistry &registry);
#endif

} // namespace exec
} // namespace moert

#endif // MOERT_EXEC_KERNELREGISTRY_H
