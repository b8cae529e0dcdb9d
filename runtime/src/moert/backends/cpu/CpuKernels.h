//===- CpuKernels.h - Registration of the CPU backend's kernels --*- C++ -*-=//
//
// One registration function per kernel file; backends/cuda/CudaKernels.h has
// the same split, so an op's kernel on either backend is in the file of the
// same name (DenseKernels, MoeKernels, OptimizerKernels, PartitionKernels,
// CollectiveKernels).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_BACKENDS_CPU_CPUKERNELS_H
#define MOERT_BACKENDS_CPU_CPUKERNELS_H

#include "moert/exec/KernelRegistry.h"

namespace moert {
namespace cpu {

void registerDenseKernels(exec::KernelRegistry &registry);
void registerMoeKernels(exec::KernelRegistry &registry);
void registerOptimizerKernels(exec::KernelRegistry &registry);
void registerPartitionKernels(exec::KernelRegistry &registry);
void registerCollectiveKernels(exec::KernelRegistry &registry);

} // namespace cpu
} // namespace moert

#endif // MOERT_BACKENDS_CPU_CPUKERNELS_H
