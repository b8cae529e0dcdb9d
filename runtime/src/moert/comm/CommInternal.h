//===- CommInternal.h - Pieces shared by the communicators --------------===//
//
// Argument checks, the element-wise reductions and the grid/axis helpers
// that the single-rank and the MPI communicators share, so that both reject
// the same calls with the same messages and reduce with the same arithmetic.
// Not part of the library's interface.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_COMM_COMMINTERNAL_H
#define MOERT_COMM_COMMINTERNAL_H

#include "moert/comm/Communicator.h"

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace moert::comm::detail {

/// Checks what every collective needs: a known element type, count >= 0,
/// groupSize * count * elementSize within int64, and non-null buffers when
/// count > 0. `where` names the call and the group in messages.
Status checkCollectiveArgs(const std::string &where, int64_t count,
                           int64_t groupSize, ElementType type,
                           std::initializer_list<const void *> buffers);

/// Reductions exist for F32 (sum, mean, max, min) and I32/I64 (sum, max,
/// min).
Status checkReduction(const std::string &where, ElementType type, ReduceOp op);

/// accumulator[i] = accumulator[i] (op) input[i] for i < count; Mean
/// accumulates like Sum (divideForMean finishes it). Integer sums wrap
/// (two's complement) rather than being undefined.
void reduceInto(void *accumulator, const void *input, int64_t count,
                ElementType type, ReduceOp op);

/// data[i] /= groupSize (F32 only; a no-op for groupSize 1).
void divideForMean(void *data, int64_t count, ElementType type,
                   int64_t groupSize);

/// Every axis >= 1 and the product within int (MPI ranks are ints); names,
/// when given, one per axis.
Status checkGridShape(const std::vector<int64_t> &shape,
                      const std::vector<std::string> &axisNames);

/// "dp=2 x ep=2 x tp=1" with names, "2 x 2 x 1" without, "[]" for no axes.
std::string describeGrid(const std::vector<int64_t> &shape,
                         const std::vector<std::string> &axisNames);

/// "{dp, ep}" with names, "{0, 1}" without.
std::string describeAxes(const std::vector<int> &axes,
                         const std::vector<std::string> &axisNames);

/// The axes sorted, after checking that each is in [0, gridRank) and
/// appears once.
Expected<std::vector<int>> canonicalAxes(const std::vector<int> &axes,
                                         size_t gridRank);

/// Whether [a, a + aBytes) and [b, b + bBytes) share a byte.
bool overlaps(const void *a, int64_t aBytes, const void *b, int64_t bBytes);

} // namespace moert::comm::detail

#endif // MOERT_COMM_COMMINTERNAL_H
