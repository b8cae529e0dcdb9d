//===- GateCapacity.h - Expert capacity shared by compiler and runtime ----===//
//
// The one definition of expert capacity. The compiler uses it to infer the
// static shape of dispatch buffers; the runtime uses it to size and check them.
// Header-only and dependency-free so both sides include the same code.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_GATECAPACITY_H
#define MOERT_GATECAPACITY_H

#include "moert/HostDevice.h"

#include <cmath>
#include <cstdint>

namespace moert {

/// Capacity C of each expert for a gate over `numTokens` tokens routed to
/// `numExperts` experts with `topK` choices per token, following DeepSpeed-MoE:
///   C = max(ceil(numTokens / numExperts * capacityFactor * topK), minCapacity)
/// Without token dropping ("dropless"), the static bound is every token, since
/// no expert can receive more than numTokens assignments (one per token).
/// The result is never larger than numTokens * topK (all assignments) and
/// never below 1 when there is at least one token.
/// Returns -1 for arguments that admit no capacity (non-positive sizes or
/// factor, topK > numExperts).
MOERT_HOST_DEVICE inline int64_t expertCapacity(int64_t numTokens, int64_t numExperts,
                              int64_t topK, double capacityFactor,
                              int64_t minCapacity, bool dropTokens) {
  if (numTokens <= 0 || numExperts <= 0 || topK <= 0 || topK > numExperts ||
      !(capacityFactor > 0.0) || minCapacity < 0)
    return -1;
  if (!dropTokens)
    return numTokens;
  double perExpert = static_cast<double>(numTokens) /
                     static_cast<double>(numExperts) * capacityFactor *
                     static_cast<double>(topK);
  // More slots than tokens is never useful (one token takes at most one slot
  // of a given expert); clamping before the conversion also keeps a huge
  // factor from overflowing int64_t.
  if (!(perExpert < static_cast<double>(numTokens)))
    perExpert = static_cast<double>(numTokens);
  // Guard the ceil against representation error (e.g. 64/8*1.0*1 = 8.0000001).
  int64_t capacity = static_cast<int64_t>(std::ceil(perExpert - 1e-9));
  if (capacity < minCapacity)
    capacity = minCapacity;
  if (capacity < 1)
    capacity = 1;
  if (capacity > numTokens)
    capacity = numTokens;
  return capacity;
}

/// Total slots per expert of a gate whose `numTokens` tokens are split into
/// `groups` equal contiguous groups that are routed independently (GShard's
/// G dimension): each group gets expertCapacity(numTokens / groups, ...)
/// slots, and group g owns slots [g * Cg, (g + 1) * Cg) of every expert, so
/// the dispatch buffer holds groups * Cg slots per expert. groups = 1 is the
/// ungrouped capacity. Returns -1 when groups < 1, groups does not divide
/// numTokens, or a group admits no capacity.
MOERT_HOST_DEVICE inline int64_t groupedExpertCapacity(int64_t numTokens, int64_t groups,
                                     int64_t numExperts, int64_t topK,
                                     double capacityFactor, int64_t minCapacity,
                                     bool dropTokens) {
  if (groups < 1 || numTokens <= 0 || numTokens % groups != 0)
    return -1;
  const int64_t perGroup =
      expertCapacity(numTokens / groups, numExperts, topK, capacityFactor,
                     minCapacity, dropTokens);
  // perGroup <= numTokens / groups, so the product cannot overflow.
  return perGroup < 0 ? -1 : groups * perGroup;
}

} // namespace moert

#endif // MOERT_GATECAPACITY_H
