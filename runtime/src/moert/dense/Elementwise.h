//===- Elementwise.h - moe.add and moe.padding_mask -----------------------===//
//
// The trivial kernels. Masks are one byte per element (0 = false,
// 1 = true), the layout the attention kernel reads for its key mask.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_DENSE_ELEMENTWISE_H
#define MOERT_DENSE_ELEMENTWISE_H

#include <cstdint>

namespace moert {
namespace dense {

/// output[i] = lhs[i] + rhs[i]; output may alias either input. The gradient
/// of add passes the output gradient to both operands unchanged.
void add(int64_t count, const float *lhs, const float *rhs, float *output);

/// lhs[i] += rhs[i]: accumulating a gradient.
void addInPlace(int64_t count, float *lhs, const float *rhs);

/// mask[i] = tokens[i] != padId ? 1 : 0.
void paddingMask(int64_t count, const int32_t *tokens, int64_t padId,
                 uint8_t *mask);

} // namespace dense
} // namespace moert

#endif // MOERT_DENSE_ELEMENTWISE_H
