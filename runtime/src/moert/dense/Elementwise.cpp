//===- Elementwise.cpp - moe.add and moe.padding_mask ---------------------===//
#include "moert/dense/Elementwise.h"

namespace moert {
namespace dense {

namespace {
constexpr int64_t kParallelThreshold = 1 << 16;
} // namespace

void add(int64_t count, const float *lhs, const float *rhs, float *output) {
#pragma omp parallel for schedule(static) if (count > kParallelThreshold)
  for (int64_t i = 0; i < count; ++i)
    output[i] = lhs[i] + rhs[i];
}

void addInPlace(int64_t count, float *lhs, const float *rhs) {
  add(count, lhs, rhs, lhs);
}

void paddingMask(int64_t count, const int32_t *tokens, int64_t padId,
                 uint8_t *mask) {
  for (int64_t i = 0; i < count; ++i)
    mask[i] = tokens[i] != padId ? 1 : 0;
}

} // namespace dense
} // namespace moert
