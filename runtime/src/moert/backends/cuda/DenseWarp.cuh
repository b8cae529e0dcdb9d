//===- DenseWarp.cuh - Warp reductions of the dense kernels -----*- CUDA
//-*-===//
//
// Butterfly sums and maxima over the 32 lanes of a warp: every lane gets
// the result, and the order of the additions is fixed (the same bits on
// every run). Included by the kernel headers and, with the shuffles
// emulated, by the CPU tests that run kernel code on the host.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_BACKENDS_CUDA_DENSEWARP_CUH
#define MOERT_BACKENDS_CUDA_DENSEWARP_CUH

namespace moert {
namespace cuda {
namespace dense_device {

constexpr unsigned kFullMask = 0xffffffffu;

template <typename T> __device__ inline T warpSum(T value) {
  for (int offset = 16; offset > 0; offset /= 2)
    value += __shfl_xor_sync(kFullMask, value, offset);
  return value;
}
template <typename T> __device__ inline T warpMax(T value) {
  for (int offset = 16; offset > 0; offset /= 2)
    value = max(value, __shfl_xor_sync(kFullMask, value, offset));
  return value;
}

} // namespace dense_device
} // namespace cuda
} // namespace moert

#endif // MOERT_BACKENDS_CUDA_DENSEWARP_CUH
