//===- BlasThreads.h - Keep OpenBLAS single-threaded inside OpenMP teams --===//
//
// Internal to the dense kernels. Debian's OpenBLAS is the pthread build: it
// does not notice that it is called from an OpenMP team and starts its own
// threads for every GEMM, so a team of T threads runs T x T threads (measured
// on 2 cores: attention fwd+bwd 12x slower than with one BLAS thread per
// team member). A kernel that parallelises over independent GEMMs holds this
// scope around its team.
//
// Reproducibility: OpenBLAS GEMM results can differ in the last bits between
// thread counts (measured: 1 vs 2 threads), so results are bitwise
// reproducible run to run for a fixed OPENBLAS_NUM_THREADS/OMP_NUM_THREADS
// (OpenBLAS reads OMP_NUM_THREADS too), not across thread counts. The BLAS
// thread count is process-wide state: the scope assumes kernels are not run
// concurrently from several host threads (another thread's GEMM would run
// single-threaded meanwhile: slower, and possibly rounded differently).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_DENSE_BLASTHREADS_H
#define MOERT_DENSE_BLASTHREADS_H

#include <cblas.h>

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

/// Sets OpenBLAS to one thread when `active`, restoring the previous count
/// on destruction.
class SingleThreadedBlasScope {
public:
  explicit SingleThreadedBlasScope(bool active)
      : savedThreads_(active ? openblas_get_num_threads() : 0) {
    if (savedThreads_ > 1)
      openblas_set_num_threads(1);
  }
  ~SingleThreadedBlasScope() {
    if (savedThreads_ > 1)
      openblas_set_num_threads(savedThreads_);
  }
  SingleThreadedBlasScope(const SingleThreadedBlasScope &) = delete;
  SingleThreadedBlasScope &operator=(const SingleThreadedBlasScope &) = delete;

private:
  int savedThreads_;
};

} // namespace detail
} // namespace dense
} // namespace moert

#endif // MOERT_DENSE_BLASTHREADS_H
