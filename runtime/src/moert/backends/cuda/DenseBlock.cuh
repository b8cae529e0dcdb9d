//===- DenseBlock.cuh - Block reductions, device error record --*- CUDA -*-===//
//-*-===//
//
// Device code shared by the dense kernels that depends on nothing of the
// CUDA runtime (the CPU tests run it on the host, DenseCudaEmulation.h):
// block-wide sums and maxima in a fixed order, and the record of
// data-dependent errors.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_BACKENDS_CUDA_DENSEBLOCK_CUH
#define MOERT_BACKENDS_CUDA_DENSEBLOCK_CUH

#include "moert/exec/DeviceErrors.h"
#include "moert/backends/cuda/DenseWarp.cuh"

#include <cstdint>

namespace moert {
namespace cuda {
namespace dense_device {

/// What a data-dependent check found: `code` (0: nothing) and the smallest
/// offending flat index. The CPU kernels return such errors at once; a
/// kernel on the GPU cannot, so it records them here, skips the offending
/// element (never reading out of bounds) and carries on.
// The record is the executor's (exec/DeviceErrors.h): one per run, read
// and reset by the executor at the end of the run.
using exec::DeviceErrorRecord;
using exec::kCacheOffsetOutOfRange;
using exec::kLabelOutOfRange;
using exec::kNoDeviceError;
using exec::kPositionOutOfRange;
using exec::kTokenOutOfVocabulary;

__device__ inline void recordError(DeviceErrorRecord *record, unsigned int code,
                                   int64_t index) {
  if (!record)
    return;
  atomicCAS(&record->code, 0u, code);
  atomicMin(&record->index, static_cast<unsigned long long>(index));
}

/// Sum over the block (blockDim.x a multiple of 32, at most 1024); every
/// thread gets the result. `shared` holds 32 values; the call synchronizes
/// the block, so it must be reached by all threads.
template <typename T> __device__ inline T blockSum(T value, T *shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int warps = blockDim.x / 32;
  value = warpSum(value);
  __syncthreads(); // `shared` may still be read by a previous call
  if (lane == 0)
    shared[warp] = value;
  __syncthreads();
  T total = lane < warps ? shared[lane] : T(0);
  return warpSum(total);
}
template <typename T>
__device__ inline T blockMax(T value, T *shared, T lowest) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int warps = blockDim.x / 32;
  value = warpMax(value);
  __syncthreads();
  if (lane == 0)
    shared[warp] = value;
  __syncthreads();
  T total = lane < warps ? shared[lane] : lowest;
  return warpMax(total);
}

/// Threads per block for a per-row kernel over rows of `width` elements:
/// a multiple of 32 between 32 and `maxThreads`.
inline int rowThreads(int64_t width, int maxThreads = 512) {
  int threads = 32;
  while (threads < maxThreads && threads < width)
    threads *= 2;
  return threads;
}

} // namespace dense_device
} // namespace cuda
} // namespace moert

#endif // MOERT_BACKENDS_CUDA_DENSEBLOCK_CUH
