//===- ExpertFfnPrecisionTest.cpp - Emulated bf16/f16 expert FFN ----------===//
//
// The reduced-precision expert FFN is, expert by expert, two fp32 linear
// layers (dense::linearForward, an independent code path) on operands
// rounded at the documented points: input, W1, W2 and the activated hidden
// layer. With ReLU the composition is exact, so the comparison is bit for
// bit. The backward pass must stay within the format's precision of the
// fp32 gradients, closer for f16 than for bf16.
//
//===----------------------------------------------------------------------===//
#include "moert/dense/Linear.h"
#include "moert/train/ExpertFfn.h"

#include "moert/dense/tests/GradCheck.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace moert;
using namespace moert::train;
using moert::dense::ActivationKind;
using moert::dense::testing::randomFloats;

namespace {

std::vector<float> rounded(ComputeType type, const float *v, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n));
  roundArrayToCompute(type, n, v, out.data());
  return out;
}

float maxAbsDiff(const std::vector<float> &a, const std::vector<float> &b) {
  float worst = 0;
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::fabs(a[i] - b[i]));
  return worst;
}

class ExpertFfnPrecisionTest : public ::testing::TestWithParam<ComputeType> {};

TEST_P(ExpertFfnPrecisionTest, ForwardIsTwoRoundedFp32Layers) {
  const ComputeType type = GetParam();
  std::mt19937 rng(3);
  ExpertFfnShape s{3, 10, 12, 20, ActivationKind::Relu};
  s.compute = type;
  const int64_t E = 3, C = 10, M = 12, H = 20;
  auto x = randomFloats(E * C * M, rng);
  auto w1 = randomFloats(E * M * H, rng), b1 = randomFloats(E * H, rng);
  auto w2 = randomFloats(E * H * M, rng), b2 = randomFloats(E * M, rng);
  std::vector<float> y(E * C * M);
  expertFfnForward(s, x.data(), w1.data(), b1.data(), w2.data(), b2.data(),
                   y.data());

  std::vector<float> expected(E * C * M);
  for (int64_t e = 0; e < E; ++e) {
    auto xr = rounded(type, x.data() + e * C * M, C * M);
    auto w1r = rounded(type, w1.data() + e * M * H, M * H);
    auto w2r = rounded(type, w2.data() + e * H * M, H * M);
    std::vector<float> hidden(C * H);
    dense::linearForward({C, M, H, false}, xr.data(), w1r.data(),
                         b1.data() + e * H, hidden.data());
    for (float &value : hidden)
      value = roundToCompute(type, std::max(value, 0.0f));
    dense::linearForward({C, H, M, false}, hidden.data(), w2r.data(),
                         b2.data() + e * M, expected.data() + e * C * M);
  }
  EXPECT_EQ(y, expected);

  std::vector<float> full(y.size());
  s.compute = ComputeType::F32;
  expertFfnForward(s, x.data(), w1.data(), b1.data(), w2.data(), b2.data(),
                   full.data());
  EXPECT_GT(maxAbsDiff(full, y), 0.0f);
}

INSTANTIATE_TEST_SUITE_P(Types, ExpertFfnPrecisionTest,
                         ::testing::Values(ComputeType::BF16, ComputeType::F16),
                         [](const auto &info) {
                           return std::string(computeTypeName(info.param));
                         });

TEST(ExpertFfnPrecision, BackwardErrorFollowsTheFormatsPrecision) {
  std::mt19937 rng(4);
  ExpertFfnShape s{2, 8, 16, 24, ActivationKind::Gelu};
  const int64_t E = 2, C = 8, M = 16, H = 24;
  auto x = randomFloats(E * C * M, rng), dy = randomFloats(E * C * M, rng);
  auto w1 = randomFloats(E * M * H, rng), b1 = randomFloats(E * H, rng);
  auto w2 = randomFloats(E * H * M, rng);
  struct Grads {
    std::vector<float> dx, dw1, db1, dw2, db2;
  };
  auto run = [&](ComputeType type) {
    s.compute = type;
    Grads g{std::vector<float>(x.size()), std::vector<float>(w1.size()),
            std::vector<float>(b1.size()), std::vector<float>(w2.size()),
            std::vector<float>(E * M)};
    expertFfnBackward(s, dy.data(), x.data(), w1.data(), b1.data(), w2.data(),
                      g.dx.data(), g.dw1.data(), g.db1.data(), g.dw2.data(),
                      g.db2.data());
    return g;
  };
  Grads full = run(ComputeType::F32), bf16 = run(ComputeType::BF16),
        f16 = run(ComputeType::F16);
  auto check = [](const char *what, const std::vector<float> &ref,
                  const std::vector<float> &b, const std::vector<float> &h) {
    float scale = 0;
    for (float value : ref)
      scale = std::max(scale, std::fabs(value));
    float errB = maxAbsDiff(ref, b), errH = maxAbsDiff(ref, h);
    EXPECT_GT(errB, 0.0f) << what;
    EXPECT_LT(errB, 8 * std::ldexp(1.0f, -8) * scale) << what;
    EXPECT_LT(errH, 8 * std::ldexp(1.0f, -11) * scale) << what;
    EXPECT_LT(errH, errB) << what;
  };
  check("dx", full.dx, bf16.dx, f16.dx);
  check("dw1", full.dw1, bf16.dw1, f16.dw1);
  check("db1", full.db1, bf16.db1, f16.db1);
  check("dw2", full.dw2, bf16.dw2, f16.dw2);
  // db2 sums the fp32 output gradient: unchanged by the precision.
  EXPECT_EQ(full.db2, bf16.db2);
  EXPECT_EQ(full.db2, f16.db2);
}

} // namespace
