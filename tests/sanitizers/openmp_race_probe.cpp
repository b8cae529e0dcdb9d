//===- openmp_race_probe.cpp - A data race ThreadSanitizer must report ----===//
//
// scripts/sanitize-threads.sh builds this with the flags of the `tsan`
// preset and runs it with the same environment as the runtime's tests
// before trusting a clean result: the unsynchronized sum below is a data
// race between OpenMP threads, so the run must end with ThreadSanitizer's
// report and exit code 66. If it does not (libarcher not loaded, an option
// that hides OpenMP threads), a clean run of the tests would prove nothing.
//
//===----------------------------------------------------------------------===//
#include <cstdio>

int main() {
  long shared = 0;
#pragma omp parallel for
  for (int i = 0; i < 100000; ++i)
    shared += i; // unsynchronized read-modify-write from every thread
  std::printf("%ld\n", shared);
  return 0;
}
