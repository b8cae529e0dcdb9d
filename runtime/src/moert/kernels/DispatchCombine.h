//===- DispatchCombine.h - Index-based token dispatch and combine -------===//
//
// moe.dispatch moves tokens into per-expert buffers and moe.combine brings
// the expert outputs back, both driven by the gate's (expert, slot) pairs.
// Each token row is copied once per kept choice, O(S * k * M) work: never the
// GShard one-hot einsum formulation, whose dispatch mask alone is
// O(S * E * C) and whose einsum is O(S * E * C * M).
//
//   dispatch:  buffer[e, c, :] = x[s, :]  for each kept (s, j) with
//              experts[s, j] = e, slots[s, j] = c; unused slots are zero.
//   combine:   y[s, :] = sum_j weights[s, j] * buffer[experts[s, j],
//              slots[s, j], :] over kept choices (dropped ones add nothing).
//
// Backward passes: dispatch's is a gather-add (dx[s] = sum_j dbuffer[e, c]);
// combine's gives dbuffer (dy scaled by the weight, zero in unused slots)
// and dweights[s, j] = <dy[s], buffer[e, c]> (zero for dropped choices).
//
// All entry points validate the routing first (expert ids in range, slots in
// [-1, C), no slot claimed twice) and write nothing when it is wrong. Output
// tensors are overwritten, not accumulated.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_KERNELS_DISPATCHCOMBINE_H
#define MOERT_KERNELS_DISPATCHCOMBINE_H

#include "moert/Status.h"

#include <cstdint>

namespace moert {

struct DispatchShape {
  int64_t numTokens = 0;  // S
  int64_t modelDim = 0;   // M
  int64_t numExperts = 0; // E (experts held in the buffer)
  int64_t topK = 0;       // k choices per token
  /// C of the buffer [E, C, M]. May exceed the gate's capacity (e.g. a
  /// dropless gate writing into a buffer sized for the static bound S).
  int64_t capacity = 0;
};

/// The gate's routing: experts / slots [S, k] (slot -1 = dropped).
struct TokenRouting {
  const int32_t *experts = nullptr;
  const int32_t *slots = nullptr;
};

/// Checks sizes and routing: the shared validation of every entry point.
Status checkRouting(const DispatchShape &shape, const TokenRouting &routing);

/// x [S, M] -> buffer [E, C, M].
Status dispatchTokens(const DispatchShape &shape, const TokenRouting &routing,
                      const float *x, float *buffer);

/// dbuffer [E, C, M] -> dx [S, M].
Status dispatchTokensBackward(const DispatchShape &shape,
                              const TokenRouting &routing,
                              const float *bufferGrad, float *xGrad);

/// buffer [E, C, M], weights [S, k] -> y [S, M].
Status combineTokens(const DispatchShape &shape, const TokenRouting &routing,
                     const float *weights, const float *buffer, float *y);

/// dy [S, M] -> dbuffer [E, C, M] and dweights [S, k]; either output may be
/// null to skip it.
Status combineTokensBackward(const DispatchShape &shape,
                             const TokenRouting &routing, const float *weights,
                             const float *buffer, const float *yGrad,
                             float *bufferGrad, float *weightsGrad);

} // namespace moert

#endif // MOERT_KERNELS_DISPATCHCOMBINE_H
