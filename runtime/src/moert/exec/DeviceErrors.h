//===- DeviceErrors.h - Data errors found by device kernels ------*- C++ -*-=//
//
// A GPU kernel cannot return a Status when it meets bad data (a token id
// outside the vocabulary in the batch, a label out of range): it records the
// first such error in the run's record (KernelCall::errorRecord()), skips
// the element (never reading out of bounds) and goes on. The executor reads
// the record once at the end of the run and turns it into the error the CPU
// backend would have returned at once, naming the instruction.
//
// The layout is shared with device code: kernels set `code` with atomicCAS
// from 0 and lower `index` with atomicMin; the executor resets the record
// to {0, ~0} after reporting.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_EXEC_DEVICEERRORS_H
#define MOERT_EXEC_DEVICEERRORS_H

#include <cstdint>

namespace moert {
namespace exec {

struct DeviceErrorRecord {
  unsigned int code;
  unsigned int unused;
  unsigned long long index; // the smallest offending flat element index
};
static_assert(sizeof(DeviceErrorRecord) == 16, "shared with device code");

enum DeviceErrorCode : unsigned int {
  kNoDeviceError = 0,
  kTokenOutOfVocabulary = 1, // embedding, embedding_grad
  kLabelOutOfRange = 2,      // cross_entropy, cross_entropy_grad
  // dispatch, combine and their gradients; the index is the routing entry
  // (token * top_k + choice).
  kExpertOutOfRange = 3,
  kSlotOutOfRange = 4,
  kSlotTakenTwice = 5,
  // embedding_at (kPositionOutOfRange) and cache_update
  // (kCacheOffsetOutOfRange): the position offset operand is negative or
  // leaves no room for the tokens / rows (the index is the offset). Two
  // codes, so that the error names the instruction that met it (a
  // sinusoidal embedding_at has no table and accepts an offset its
  // cache_update cannot).
  kPositionOutOfRange = 6,
  kCacheOffsetOutOfRange = 7,
};

} // namespace exec
} // namespace moert

#endif // MOERT_EXEC_DEVICEERRORS_H
