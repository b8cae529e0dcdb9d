//===- DispatchCombine.cpp - Index-based token dispatch and combine -----===//
#include "moert/kernels/DispatchCombine.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace moert {
namespace {

std::string shapeText(const DispatchShape &shape) {
  return "S=" + std::to_string(shape.numTokens) +
         ", M=" + std::to_string(shape.modelDim) +
         ", E=" + std::to_string(shape.numExperts) +
         ", k=" + std::to_string(shape.topK) +
         ", C=" + std::to_string(shape.capacity);
}

size_t bufferElements(const DispatchShape &shape) {
  return static_cast<size_t>(shape.numExperts * shape.capacity *
                             shape.modelDim);
}

} // namespace

Status checkRouting(const DispatchShape &shape, const TokenRouting &routing) {
  if (shape.numTokens < 0 || shape.modelDim <= 0 || shape.numExperts <= 0 ||
      shape.topK <= 0 || shape.capacity < 0)
    return invalidArgument("dispatch/combine: expected S >= 0, C >= 0 and "
                           "positive M, E, k, found " +
                           shapeText(shape));
  // Keep E * C * M representable (and addressable).
  const int64_t limit = std::numeric_limits<int64_t>::max() / 4;
  if (shape.capacity > 0 &&
      (shape.numExperts > limit / shape.capacity ||
       shape.numExperts * shape.capacity > limit / shape.modelDim))
    return invalidArgument("dispatch/combine: buffer size E * C * M "
                           "overflows (" +
                           shapeText(shape) + ")");
  if (shape.numTokens > 0 && (!routing.experts || !routing.slots))
    return invalidArgument("dispatch/combine: routing arrays are null");

  // The owner of each buffer slot, to catch two choices writing one slot,
  // which would silently lose a token.
  std::vector<int64_t> owner(
      static_cast<size_t>(shape.numExperts * shape.capacity), -1);
  for (int64_t i = 0; i < shape.numTokens * shape.topK; ++i) {
    const int64_t expert = routing.experts[i], slot = routing.slots[i];
    const std::string where = " at token " + std::to_string(i / shape.topK) +
                              " choice " + std::to_string(i % shape.topK);
    if (slot == -1)
      continue; // dropped: its expert id is not used
    if (expert < 0 || expert >= shape.numExperts)
      return outOfRange("dispatch/combine: expected an expert id in [0, " +
                        std::to_string(shape.numExperts) + "), found " +
                        std::to_string(expert) + where);
    if (slot < 0 || slot >= shape.capacity)
      return outOfRange("dispatch/combine: expected a slot in [-1, " +
                        std::to_string(shape.capacity) + "), found " +
                        std::to_string(slot) + where);
    int64_t &previous = owner[expert * shape.capacity + slot];
    if (previous >= 0)
      return invalidArgument(
          "dispatch/combine: expected each (expert, slot) used once, found "
          "expert " +
          std::to_string(expert) + " slot " + std::to_string(slot) +
          " taken by token " + std::to_string(previous / shape.topK) +
          " choice " + std::to_string(previous % shape.topK) + " and" + where);
    previous = i;
  }
  return Status::success();
}

Status dispatchTokens(const DispatchShape &shape, const TokenRouting &routing,
                      const float *x, float *buffer) {
  MOERT_RETURN_IF_ERROR(checkRouting(shape, routing));
  if ((!x && shape.numTokens > 0) || (!buffer && bufferElements(shape) > 0))
    return invalidArgument("dispatch: input or buffer is null");
  const int64_t S = shape.numTokens, M = shape.modelDim, C = shape.capacity;
  const int64_t k = shape.topK;
  std::fill(buffer, buffer + bufferElements(shape), 0.0f);
  // Every kept choice owns a distinct slot (checked), so tokens can be
  // copied in parallel without races.
#pragma omp parallel for schedule(static)
  for (int64_t s = 0; s < S; ++s)
    for (int64_t j = 0; j < k; ++j) {
      const int64_t slot = routing.slots[s * k + j];
      if (slot < 0)
        continue;
      std::memcpy(buffer + (routing.experts[s * k + j] * C + slot) * M,
                  x + s * M, static_cast<size_t>(M) * sizeof(float));
    }
  return Status::success();
}

Status dispatchTokensBackward(const DispatchShape &shape,
                              const TokenRouting &routing,
                              const float *bufferGrad, float *xGrad) {
  MOERT_RETURN_IF_ERROR(checkRouting(shape, routing));
  if ((!xGrad && shape.numTokens > 0) ||
      (!bufferGrad && bufferElements(shape) > 0))
    return invalidArgument("dispatch backward: gradient buffers are null");
  const int64_t S = shape.numTokens, M = shape.modelDim, C = shape.capacity;
  const int64_t k = shape.topK;
#pragma omp parallel for schedule(static)
  for (int64_t s = 0; s < S; ++s) {
    float *row = xGrad + s * M;
    std::fill(row, row + M, 0.0f);
    for (int64_t j = 0; j < k; ++j) {
      const int64_t slot = routing.slots[s * k + j];
      if (slot < 0)
        continue;
      const float *source =
          bufferGrad + (routing.experts[s * k + j] * C + slot) * M;
      for (int64_t m = 0; m < M; ++m)
        row[m] += source[m];
    }
  }
  return Status::success();
}

Status combineTokens(const DispatchShape &shape, const TokenRouting &routing,
                     const float *weights, const float *buffer, float *y) {
  MOERT_RETURN_IF_ERROR(checkRouting(shape, routing));
  if (shape.numTokens > 0 && (!weights || !y))
    return invalidArgument("combine: weights or output is null");
  if (!buffer && bufferElements(shape) > 0)
    return invalidArgument("combine: buffer is null");
  const int64_t S = shape.numTokens, M = shape.modelDim, C = shape.capacity;
  const int64_t k = shape.topK;
#pragma omp parallel for schedule(static)
  for (int64_t s = 0; s < S; ++s) {
    float *row = y + s * M;
    std::fill(row, row + M, 0.0f);
    for (int64_t j = 0; j < k; ++j) {
      const int64_t slot = routing.slots[s * k + j];
      if (slot < 0)
        continue;
      const float weight = weights[s * k + j];
      const float *source =
          buffer + (routing.experts[s * k + j] * C + slot) * M;
      for (int64_t m = 0; m < M; ++m)
        row[m] += weight * source[m];
    }
  }
  return Status::success();
}

Status combineTokensBackward(const DispatchShape &shape,
                             const TokenRouting &routing, const float *weights,
                             const float *buffer, const float *yGrad,
                             float *bufferGrad, float *weightsGrad) {
  MOERT_RETURN_IF_ERROR(checkRouting(shape, routing));
  if (shape.numTokens > 0 && (!weights || !yGrad))
    return invalidArgument("combine backward: weights or dy is null");
  if (weightsGrad && !buffer && bufferElements(shape) > 0)
    return invalidArgument("combine backward: buffer is null");
  const int64_t S = shape.numTokens, M = shape.modelDim, C = shape.capacity;
  const int64_t k = shape.topK;
  if (bufferGrad)
    std::fill(bufferGrad, bufferGrad + bufferElements(shape), 0.0f);
#pragma omp parallel for schedule(static)
  for (int64_t s = 0; s < S; ++s) {
    const float *dy = yGrad + s * M;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t slot = routing.slots[s * k + j];
      if (slot < 0) {
        if (weightsGrad)
          weightsGrad[s * k + j] = 0.0f;
        continue;
      }
      const int64_t offset = (routing.experts[s * k + j] * C + slot) * M;
      if (bufferGrad) {
        const float weight = weights[s * k + j];
        for (int64_t m = 0; m < M; ++m)
          bufferGrad[offset + m] = weight * dy[m];
      }
      if (weightsGrad) {
        double dot = 0.0;
        for (int64_t m = 0; m < M; ++m)
          dot += static_cast<double>(dy[m]) * buffer[offset + m];
        weightsGrad[s * k + j] = static_cast<float>(dot);
      }
    }
  }
  return Status::success();
}

} // namespace moert
