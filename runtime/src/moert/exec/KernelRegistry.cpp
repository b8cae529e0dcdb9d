//===- KernelRegistry.cpp - The kernel table of each backend --------------===//
#include "moert/exec/KernelRegistry.h"
#include "moert/exec/Executor.h"

namespace moert {
namespace exec {

namespace {

// One function per table: a backend's registration may read another
// backend's table (the CUDA collectives reuse the CPU's), which must not
// re-enter the initialization of its own.
const KernelRegistry &cpuRegistry() {
  static const KernelRegistry cpu = [] {
    KernelRegistry registry;
    registerCpuKernels(registry);
    return registry;
  }();
  return cpu;
}

const KernelRegistry &cudaRegistry() {
#if defined(MOERT_HAVE_CUDA)
  static const KernelRegistry cuda = [] {
    KernelRegistry registry;
    registerCudaKernels(registry);
    return registry;
  }();
#else
  static const KernelRegistry cuda;
#endif
  return cuda;
}

} // namespace

const KernelRegistry &kernelRegistry(hal::Backend backend) {
  return backend == hal::Backend::Cuda ? cudaRegistry() : cpuRegistry();
}

const KernelInfo *lookupKernel(const std::string &name) {
  std::optional<Op> op = opFromName(name);
  return op ? kernelRegistry(hal::Backend::Cpu).find(*op) : nullptr;
}

} // namespace exec
} // namespace moert
