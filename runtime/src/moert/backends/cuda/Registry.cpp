//===- Registry.cpp - The CUDA backend's kernel table ---------------------===//
#include "moert/backends/cuda/CudaKernels.h"

namespace moert {
namespace exec {

void registerCudaKernels(KernelRegistry &registry) {
  cuda::registerDenseKernels(registry);
  cuda::registerMoeKernels(registry);
  cuda::registerOptimizerKernels(registry);
  cuda::registerPartitionKernels(registry);
  cuda::registerCollectiveKernels(registry);
}

} // namespace exec
} // namespace moert
