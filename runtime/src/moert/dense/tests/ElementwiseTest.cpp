//===- ElementwiseTest.cpp - add and padding_mask -------------------------===//
#include "moert/dense/Elementwise.h"

#include <gtest/gtest.h>

#include <vector>

namespace moert {
namespace dense {
namespace {

TEST(Elementwise, AddSumsAndAccumulates) {
  const std::vector<float> a = {1, 2, 3}, b = {10, 20, 30};
  std::vector<float> out(3);
  add(3, a.data(), b.data(), out.data());
  EXPECT_EQ(out, (std::vector<float>{11, 22, 33}));
  addInPlace(3, out.data(), a.data());
  EXPECT_EQ(out, (std::vector<float>{12, 24, 36}));
}

TEST(Elementwise, PaddingMaskIsTrueForNonPadTokens) {
  const std::vector<int32_t> tokens = {5, 1, 1, 0, 7};
  std::vector<uint8_t> mask(5, 9);
  paddingMask(5, tokens.data(), 1, mask.data());
  EXPECT_EQ(mask, (std::vector<uint8_t>{1, 0, 0, 1, 1}));
}

} // namespace
} // namespace dense
} // namespace moert
