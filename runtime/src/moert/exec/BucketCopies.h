//===- BucketCopies.h - The copies of a gradient bucket's pack/unpack -----===//
//
// `pack` and `unpack` (moe-bucket-gradients) are byte copies: each operand
// of a pack into its place in the 1-D result, an unpack's range of its
// operand into its result. Which bytes go where, and the check that they
// stay inside the buffers, are the same on every backend; a backend only
// chooses how to copy (memcpy, cudaMemcpyAsync).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_EXEC_BUCKETCOPIES_H
#define MOERT_EXEC_BUCKETCOPIES_H

#include "moert/Status.h"

#include <cstdint>
#include <vector>

namespace moert {
namespace exec {

class KernelCall;

/// One contiguous copy.
struct ByteCopy {
  void *to;
  const void *from;
  int64_t bytes;
};

/// The copies of a `pack` instruction: operand i to the result, after the
/// bytes of the operands before it; an error when they overflow the result.
Expected<std::vector<ByteCopy>> packCopies(const KernelCall &call);

/// The copy of an `unpack` instruction: the result's bytes from element
/// `offset` of the operand; an error when that range leaves the operand.
Expected<ByteCopy> unpackCopy(const KernelCall &call);

} // namespace exec
} // namespace moert

#endif // MOERT_EXEC_BUCKETCOPIES_H
