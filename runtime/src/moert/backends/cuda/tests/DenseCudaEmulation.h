//===- DenseCudaEmulation.h - Run CUDA kernel code on the host --*- C++ -*-===//
//
// Just enough of CUDA for the CPU tests to execute the dense kernels'
// device code as it is written: each CUDA thread of a block is an OS thread
// (threadIdx / blockIdx are thread-local), __syncthreads and __syncwarp are
// barriers, warp shuffles exchange values through per-warp slots between
// two barriers, dynamic shared memory is one buffer per block. Blocks run
// one after another. Slow, but it runs the kernels' indexing, tiling,
// synchronization and masking on every machine, against the CPU kernels.
//
// Include before the kernel header; kernels that use something not
// emulated here fail to compile rather than run wrongly.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_BACKENDS_CUDA_TESTS_DENSECUDAEMULATION_H
#define MOERT_BACKENDS_CUDA_TESTS_DENSECUDAEMULATION_H

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __launch_bounds__(threads)
// Static shared arrays: one per function, which the blocks (run one after
// another) take in turn.
#define __shared__ static

namespace moert {
namespace cuda {
namespace emulation {

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};

/// A reusable barrier for `count` threads.
class Barrier {
public:
  explicit Barrier(int count) : count_(count) {}
  void wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    const uint64_t generation = generation_;
    if (++arrived_ == count_) {
      arrived_ = 0;
      ++generation_;
      condition_.notify_all();
      return;
    }
    condition_.wait(lock, [&] { return generation_ != generation; });
  }

private:
  std::mutex mutex_;
  std::condition_variable condition_;
  const int count_;
  int arrived_ = 0;
  uint64_t generation_ = 0;
};

/// The block being run: its barriers, warp slots and shared memory.
struct BlockState {
  std::unique_ptr<Barrier> block;
  std::vector<std::unique_ptr<Barrier>> warps;
  std::vector<uint64_t> slots; // one per thread, for shuffles
  std::vector<float> shared;
};

inline thread_local Dim3 threadIndex, blockIndex;
inline Dim3 blockSize, gridSize;
inline BlockState *currentBlock = nullptr;

/// Runs kernel(args...) over `grid` blocks (x, y) of `block` threads,
/// with `sharedBytes` of dynamic shared memory. Every block has a multiple
/// of 32 threads.
template <typename Kernel, typename... Args>
void launch(Dim3 grid, unsigned block, size_t sharedBytes, Kernel kernel,
            const Args &...args) {
  gridSize = grid;
  blockSize = {block, 1, 1};
  for (unsigned b = 0; b < grid.x * grid.y; ++b) {
    BlockState state;
    state.block = std::make_unique<Barrier>(static_cast<int>(block));
    for (unsigned w = 0; w < block / 32; ++w)
      state.warps.push_back(std::make_unique<Barrier>(32));
    state.slots.assign(block, 0);
    // Garbage, so a read of shared memory nobody wrote shows.
    state.shared.assign(sharedBytes / sizeof(float) + 1, std::nanf(""));
    currentBlock = &state;
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < block; ++t)
      threads.emplace_back([&, t] {
        threadIndex = {t, 0, 0};
        blockIndex = {b % grid.x, b / grid.x, 0};
        kernel(args...);
      });
    for (std::thread &thread : threads)
      thread.join();
    currentBlock = nullptr;
  }
}

template <typename Kernel, typename... Args>
void launch(unsigned grid, unsigned block, size_t sharedBytes, Kernel kernel,
            const Args &...args) {
  launch(Dim3{grid, 1, 1}, block, sharedBytes, kernel, args...);
}

inline float *dynamicShared() { return currentBlock->shared.data(); }

inline std::mutex &atomicMutex() {
  static std::mutex mutex;
  return mutex;
}

} // namespace emulation
} // namespace cuda
} // namespace moert

#define threadIdx (::moert::cuda::emulation::threadIndex)
#define blockIdx (::moert::cuda::emulation::blockIndex)
#define blockDim (::moert::cuda::emulation::blockSize)
#define gridDim (::moert::cuda::emulation::gridSize)
#define MOERT_DENSE_DYNAMIC_SHARED(name)                                       \
  float *name = ::moert::cuda::emulation::dynamicShared()

inline void __syncthreads() {
  ::moert::cuda::emulation::currentBlock->block->wait();
}
inline void __syncwarp(unsigned = 0xffffffffu) {
  ::moert::cuda::emulation::currentBlock->warps[threadIdx.x / 32]->wait();
}

/// The value of lane (lane ^ laneMask) of this warp; all 32 lanes call it.
template <typename T> T __shfl_xor_sync(unsigned, T value, int laneMask) {
  static_assert(sizeof(T) <= sizeof(uint64_t), "shuffles of 8 bytes at most");
  auto &state = *::moert::cuda::emulation::currentBlock;
  const unsigned lane = threadIdx.x % 32, warpBase = threadIdx.x - lane;
  std::memcpy(&state.slots[threadIdx.x], &value, sizeof(T));
  __syncwarp();
  T other;
  std::memcpy(&other, &state.slots[warpBase + (lane ^ laneMask)], sizeof(T));
  __syncwarp(); // the slots are reused by the next shuffle
  return other;
}

inline unsigned atomicCAS(unsigned *address, unsigned compare, unsigned value) {
  std::lock_guard<std::mutex> lock(::moert::cuda::emulation::atomicMutex());
  const unsigned old = *address;
  if (old == compare)
    *address = value;
  return old;
}
inline unsigned long long atomicMin(unsigned long long *address,
                                    unsigned long long value) {
  std::lock_guard<std::mutex> lock(::moert::cuda::emulation::atomicMutex());
  const unsigned long long old = *address;
  *address = std::min(old, value);
  return old;
}

struct float2 {
  float x, y;
};
inline float2 make_float2(float x, float y) { return {x, y}; }

using std::max;
using std::min;

#endif // MOERT_BACKENDS_CUDA_TESTS_DENSECUDAEMULATION_H
