//===- KernelRegistry.cpp - The kernel table of each backend --------------===//
#include "moert/exec/KernelRegistry.h"
#include "moert/exec/Executor.h"

namespace moert {
namespace exec {

const KernelRegistry &kernelRegistry(hal::Backend backend) {
  static const KernelRegistry cpu = [] {
    KernelRegistry registry;
    registerCpuKernels(registry);
    return registry;
  }();
#if defined(MOERT_HAVE_CUDA)
  static const KernelRegistry cuda = [] {
    KernelRegistry registry;
    registerCudaKernels(registry);
    return registry;
  }();
#else
  static const KernelRegistry cuda;
#endif
  return backend == hal::Backend::Cuda ? cuda : cpu;
}

const KernelInfo *lookupKernel(const std::string &name) {
  std::optional<Op> op = opFromName(name);
  return op ? kernelRegistry(hal::Backend::Cpu).find(*op) : nullptr;
}

} // namespace exec
} // namespace moert
