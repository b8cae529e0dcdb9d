//===- CudaKernels.h - Registration of the CUDA backend's kernels -*- C++ -*-=//
//
// One registration function per kernel file; backends/cpu/CpuKernels.h has
// the same split, so an op's kernel on either backend is in the file of the
// same name (DenseKernels, MoeKernels, OptimizerKernels, PartitionKernels,
// CollectiveKernels).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_BACKENDS_CUDA_CUDAKERNELS_H
#define MOERT_BACKENDS_CUDA_CUDAKERNELS_H

#include "moert/exec/KernelRegistry.h"

namespace moert {
namespace cuda {

void registerDenseKernels(exec::KernelRegistry &registry);
void registerMoeKernels(exec::KernelRegistry &registry);
void registerOptimizerKernels(exec::KernelRegistry &registry);
void registerPartitionKernels(exec::KernelRegistry &registry);
void registerCollectiveKernels(exec::KernelRegistry &registry);

} // namespace cuda
} // namespace moert

#endif // MOERT_BACKENDS_CUDA_CUDAKERNELS_H
