//===- BlasThreads.cpp - OpenBLAS runs single-threaded in the runtime -----===//
#include "moert/BlasThreads.h"

#include <cblas.h>

namespace moert {

void useSingleThreadedBlas() {
  // A function-local static: set once, thread-safe, whichever kernel of
  // whichever entry point (tool, test, benchmark) runs a GEMM first.
  static const bool set = [] {
    openblas_set_num_threads(1);
    return true;
  }();
  (void)set;
}

} // namespace moert
