//===- BlasThreads.h - OpenBLAS runs single-threaded in the runtime -------===//
//
// The runtime's thread count is OMP_NUM_THREADS alone: its kernels run their
// own OpenMP teams and call OpenBLAS with one thread, either one GEMM per
// team member (attention heads, the gate's blocks, experts spread over the
// threads) or one GEMM cut into fixed blocks (dense/Gemm.h). OpenBLAS's own
// threading is never used: Debian's OpenBLAS is the pthread build, whose
// workers busy-spin for ~0.1 s after each threaded call, so an OpenMP team
// that follows loses a core to them (measured on 2 cores: the expert FFN 2x
// slower), and inside a team it would run T x T threads. OPENBLAS_NUM_THREADS
// only sizes the idle worker pool OpenBLAS starts with the process.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_BLASTHREADS_H
#define MOERT_BLASTHREADS_H

namespace moert {

/// Sets OpenBLAS to one thread, once per process; cheap after the first
/// call. Every kernel calls it before its first GEMM (dense::gemm does),
/// outside its OpenMP team.
void useSingleThreadedBlas();

} // namespace moert

#endif // MOERT_BLASTHREADS_H
