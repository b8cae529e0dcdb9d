//===- BucketCopies.h - The copies of a gradient bucket's pack/unpack -----===//
//
// `pack` and `unpack` (moe-bucket-gradients) are byte copies: each operand
// of a pack into its place in the 1-D result, an unpack's range of its
// operand into its result; with `chunks`, the same in equal rows (the
// buckets of ZeRO's reduce-scatter and all-gather). Which bytes go where, and
// the check that they stay inside the buffers, are the same on every backend; a
// backend only chooses how to copy (memcpy, cudaMemcpyAsync).
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

/// `rows` copies of `bytes` contiguous bytes; row r goes from
/// `from + r * fromPitch` to `to + r * toPitch` (one row: a plain copy).
struct ByteCopy {
  void *to;
  const void *from;
  int64_t bytes;
  int64_t rows = 1;
  int64_t toPitch = 0, fromPitch = 0;
};

/// The copies of a `pack` instruction: operand i to the result, after the
/// bytes of the operands before it; with `chunks = N`, the N equal parts of
/// operand i to the N rows of the result, each after the parts of the
/// operands before it. An error when they overflow the result or an
/// operand does not split into N parts.
Expected<std::vector<ByteCopy>> packCopies(const KernelCall &call);

/// The copy of an `unpack` instruction: the result's bytes from element
/// `offset` of the operand; with `chunks = N`, the result's N parts from
/// element `offset` of the operand's N rows. An error when that range
/// leaves the operand (or its rows).
Expected<ByteCopy> unpackCopy(const KernelCall &call);

} // namespace exec
} // namespace moert

#endif // MOERT_EXEC_BUCKETCOPIES_H
