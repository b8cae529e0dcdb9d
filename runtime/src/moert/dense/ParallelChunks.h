//===- ParallelChunks.h - Split an element-wise pass over OpenMP threads --===//
//
// Internal to the runtime's kernels. Element-wise passes take one contiguous
// chunk per thread: no scheduling overhead beyond the fork/join, and chunk
// boundaries on whole cache lines so no two threads write the same line.
// Each element's result does not depend on the split, so the passes give
// the same bits for every thread count.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_DENSE_PARALLELCHUNKS_H
#define MOERT_DENSE_PARALLELCHUNKS_H

#include <algorithm>
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace moert {
namespace dense {
namespace detail {

/// Threads an OpenMP team would have here (1 without OpenMP).
inline int maxTeamThreads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

/// Calls body(begin, end) on disjoint ranges covering [0, count), in
/// parallel (one range per OpenMP thread) when count >= minParallel and not
/// already inside a parallel region, else once on the whole range.
template <typename Body>
void forEachChunk(int64_t count, int64_t minParallel, Body &&body) {
#ifdef _OPENMP
  if (count >= minParallel && omp_get_max_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel
    {
      constexpr int64_t kAlign = 16; // floats per 64-byte cache line
      const int64_t threads = omp_get_num_threads();
      const int64_t perThread =
          ((count + threads - 1) / threads + kAlign - 1) / kAlign * kAlign;
      const int64_t begin =
          std::min(count, perThread * int64_t{omp_get_thread_num()});
      const int64_t end = std::min(count, begin + perThread);
      if (begin < end)
        body(begin, end);
    }
    return;
  }
#else
  (void)minParallel;
#endif
  if (count > 0)
    body(int64_t{0}, count);
}

} // namespace detail
} // namespace dense
} // namespace moert

#endif // MOERT_DENSE_PARALLELCHUNKS_H
