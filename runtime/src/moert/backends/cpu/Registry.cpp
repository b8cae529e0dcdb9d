//===- Registry.cpp - The CPU backend's kernel table ---------------------===//
#include "moert/backends/cpu/CpuKernels.h"

namespace moert {
namespace exec {

void registerCpuKernels(KernelRegistry &registry) {
  cpu::registerDenseKernels(registry);
  cpu::registerMoeKernels(registry);
  cpu::registerOptimizerKernels(registry);
  cpu::registerPartitionKernels(registry);
  cpu::registerCollectiveKernels(registry);
}

} // namespace exec
} // namespace moert
