//===- LinearTest.cpp - Forward values and gradients of the linear kernel -===//
#include "moert/dense/Linear.h"

#include "GradCheck.h"

namespace moert {
namespace dense {
namespace {

using testing::expectGradientMatches;
using testing::project;
using testing::randomFloats;

struct LinearCase {
  bool transposeWeight;
  bool withBias;
};

class LinearTest : public ::testing::TestWithParam<LinearCase> {};

// Naive triple loop in double: the reference for the forward GEMM.
std::vector<float> referenceLinear(const LinearShape &shape,
                                   const std::vector<float> &x,
                                   const std::vector<float> &w,
                                   const float *bias) {
  std::vector<float> y(shape.rows * shape.outFeatures);
  for (int64_t r = 0; r < shape.rows; ++r)
    for (int64_t n = 0; n < shape.outFeatures; ++n) {
      double sum = bias ? bias[n] : 0.0;
      for (int64_t k = 0; k < shape.inFeatures; ++k) {
        const float weight = shape.transposeWeight
                                 ? w[n * shape.inFeatures + k]
                                 : w[k * shape.outFeatures + n];
        sum += static_cast<double>(x[r * shape.inFeatures + k]) * weight;
      }
      y[r * shape.outFeatures + n] = static_cast<float>(sum);
    }
  return y;
}

TEST_P(LinearTest, ForwardMatchesNaiveLoop) {
  const LinearCase c = GetParam();
  std::mt19937 rng(1);
  const LinearShape shape{7, 5, 6, c.transposeWeight};
  auto x = randomFloats(shape.rows * shape.inFeatures, rng);
  auto w = randomFloats(shape.inFeatures * shape.outFeatures, rng);
  auto b = randomFloats(shape.outFeatures, rng);
  std::vector<float> y(shape.rows * shape.outFeatures);
  const float *bias = c.withBias ? b.data() : nullptr;
  linearForward(shape, x.data(), w.data(), bias, y.data());
  const auto expected = referenceLinear(shape, x, w, bias);
  for (size_t i = 0; i < y.size(); ++i)
    EXPECT_NEAR(y[i], expected[i], 1e-5) << i;
}

TEST_P(LinearTest, GradientsMatchFiniteDifferences) {
  const LinearCase c = GetParam();
  std::mt19937 rng(2);
  const LinearShape shape{4, 3, 5, c.transposeWeight};
  auto x = randomFloats(shape.rows * shape.inFeatures, rng);
  auto w = randomFloats(shape.inFeatures * shape.outFeatures, rng);
  auto b = randomFloats(shape.outFeatures, rng);
  const auto outputGrad = randomFloats(shape.rows * shape.outFeatures, rng);
  auto loss = [&] {
    std::vector<float> y(outputGrad.size());
    linearForward(shape, x.data(), w.data(), c.withBias ? b.data() : nullptr,
                  y.data());
    return project(y, outputGrad);
  };
  std::vector<float> dx(x.size()), dw(w.size()), db(b.size());
  linearBackward(shape, outputGrad.data(), x.data(), w.data(), dx.data(),
                 dw.data(), db.data());
  expectGradientMatches("dx", x, dx, loss);
  expectGradientMatches("dw", w, dw, loss);
  if (c.withBias)
    expectGradientMatches("db", b, db, loss);
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, LinearTest,
    ::testing::Values(LinearCase{false, true}, LinearCase{true, true},
                      LinearCase{false, false}, LinearCase{true, false}),
    [](const ::testing::TestParamInfo<LinearCase> &info) {
      return std::string(info.param.transposeWeight ? "TransposedWeight"
                                                    : "PlainWeight") +
             (info.param.withBias ? "WithBias" : "NoBias");
    });

TEST(LinearDegenerate, ZeroRowsGiveZeroWeightGradients) {
  const LinearShape shape{0, 3, 2, false};
  std::vector<float> w(6, 1.0f), dw(6, 7.0f), db(2, 7.0f);
  linearBackward(shape, nullptr, nullptr, w.data(), nullptr, dw.data(),
                 db.data());
  for (float v : dw)
    EXPECT_EQ(v, 0.0f);
  for (float v : db)
    EXPECT_EQ(v, 0.0f);
}

TEST(SumRows, IsDeterministicAndExact) {
  std::mt19937 rng(3);
  const int64_t rows = 1000, cols = 130;
  auto m = randomFloats(rows * cols, rng);
  std::vector<float> first(cols), second(cols);
  sumRows(rows, cols, m.data(), first.data());
  sumRows(rows, cols, m.data(), second.data());
  for (int64_t c = 0; c < cols; ++c) {
    double expected = 0.0;
    for (int64_t r = 0; r < rows; ++r)
      expected += m[r * cols + c];
    EXPECT_EQ(first[c], second[c]);
    EXPECT_NEAR(first[c], expected, 1e-4);
  }
}

} // namespace
} // namespace dense
} // namespace moert
