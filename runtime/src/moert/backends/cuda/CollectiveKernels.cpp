//===- CollectiveKernels.cpp - Collectives of a CUDA plan over MPI --------===//
//
// The communicator moves host memory (MPI), so on the CUDA backend the
// collectives are the CPU backend's kernels with every operand and result
// host-resident: the executor copies the operand to the host (waiting for
// the work before it), the MPI call runs, and the result is copied back.
// Byte counts and bit-identical reductions are those of the MPI
// communicator. A device communicator (NCCL on the stream) replaces these
// entries without changing the executor.
//
//===----------------------------------------------------------------------===//
#include "moert/backends/cuda/CudaKernels.h"

namespace moert {
namespace cuda {

void registerCollectiveKernels(exec::KernelRegistry &registry) {
  const exec::KernelRegistry &cpu = exec::kernelRegistry(hal::Backend::Cpu);
  for (Op op : {Op::all_reduce, Op::all_gather, Op::reduce_scatter,
                Op::all_to_all, Op::all_slice}) {
    exec::KernelInfo info = *cpu.find(op);
    info.hostOperands = exec::kAllHost;
    info.hostResults = exec::kAllHost;
    registry.add(op, info);
  }
}

} // namespace cuda
} // namespace moert
