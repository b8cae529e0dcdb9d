//===- CrossEntropyTest.cpp - Loss values and logit gradients -------------===//
#include "moert/dense/CrossEntropy.h"

#include "GradCheck.h"

#include <cmath>
#include <vector>

namespace moert {
namespace dense {
namespace {

using testing::expectGradientMatches;
using testing::randomFloats;

// Direct formula in double: mean over counted tokens of
// (1 - ls) * -log p[y] + ls * mean_v(-log p[v]).
double referenceLoss(int64_t n, int64_t vocab, const std::vector<float> &z,
                     const std::vector<int32_t> &labels, double ls,
                     int64_t ignore) {
  double total = 0.0;
  int64_t counted = 0;
  for (int64_t t = 0; t < n; ++t) {
    if (labels[t] == ignore)
      continue;
    ++counted;
    double sum = 0.0;
    for (int64_t v = 0; v < vocab; ++v)
      sum += std::exp(static_cast<double>(z[t * vocab + v]));
    double meanNegLog = 0.0;
    for (int64_t v = 0; v < vocab; ++v)
      meanNegLog += (std::log(sum) - z[t * vocab + v]) / vocab;
    total +=
        (1 - ls) * (std::log(sum) - z[t * vocab + labels[t]]) + ls * meanNegLog;
  }
  return counted ? total / counted : 0.0;
}

struct CrossEntropyCase {
  const char *name;
  double labelSmoothing;
  int64_t ignoreIndex;
};

class CrossEntropyTest : public ::testing::TestWithParam<CrossEntropyCase> {};

TEST_P(CrossEntropyTest, LossAndGradientsAreCorrect) {
  const CrossEntropyCase c = GetParam();
  std::mt19937 rng(14);
  const int64_t n = 6, vocab = 5;
  auto logits = randomFloats(n * vocab, rng, -3.0f, 3.0f);
  const std::vector<int32_t> labels = {0, 2, 1, 4, 1, 3};
  const CrossEntropyOptions options{c.labelSmoothing, c.ignoreIndex};
  auto loss = [&] {
    float value = 0.0f;
    crossEntropyForward(n, vocab, logits.data(), labels.data(), options, &value,
                        nullptr, nullptr);
    return static_cast<double>(value);
  };
  int64_t counted = -1;
  float value = 0.0f;
  ASSERT_EQ(crossEntropyForward(n, vocab, logits.data(), labels.data(), options,
                                &value, &counted, nullptr),
            kAllLabelsValid);
  EXPECT_EQ(counted, c.ignoreIndex == 1 ? 4 : 6);
  EXPECT_NEAR(
      value,
      referenceLoss(n, vocab, logits, labels, c.labelSmoothing, c.ignoreIndex),
      1e-5);

  // dloss = 1 so the quotient of the loss itself is the gradient.
  std::vector<float> grad(logits.size());
  ASSERT_EQ(crossEntropyBackward(n, vocab, 1.0f, logits.data(), labels.data(),
                                 options, nullptr, grad.data()),
            kAllLabelsValid);
  expectGradientMatches("dlogits", logits, grad, loss);
  for (int64_t t = 0; t < n; ++t) {
    if (labels[t] != c.ignoreIndex)
      continue;
    for (int64_t v = 0; v < vocab; ++v)
      EXPECT_EQ(grad[t * vocab + v], 0.0f);
  }

  // A scaled upstream gradient scales the result; the saved log-sum-exp
  // gives the same gradient.
  std::vector<float> lse(n), scaled(logits.size());
  crossEntropyForward(n, vocab, logits.data(), labels.data(), options, &value,
                      nullptr, lse.data());
  crossEntropyBackward(n, vocab, 2.5f, logits.data(), labels.data(), options,
                       lse.data(), scaled.data());
  for (size_t i = 0; i < grad.size(); ++i)
    EXPECT_NEAR(scaled[i], 2.5f * grad[i], 1e-6);
}

INSTANTIATE_TEST_SUITE_P(
    Options, CrossEntropyTest,
    ::testing::Values(CrossEntropyCase{"Plain", 0.0, -100},
                      CrossEntropyCase{"Smoothed", 0.1, -100},
                      CrossEntropyCase{"SmoothedIgnoring", 0.1, 1},
                      CrossEntropyCase{"Ignoring", 0.0, 1}),
    [](const ::testing::TestParamInfo<CrossEntropyCase> &info) {
      return std::string(info.param.name);
    });

TEST(CrossEntropy, NoCountedTokenGivesZeroLossAndGradient) {
  const std::vector<float> logits = {1, 2, 3, 4, 5, 6};
  const std::vector<int32_t> labels = {0, 0};
  const CrossEntropyOptions options{0.1, 0};
  float loss = 7.0f;
  int64_t counted = -1;
  ASSERT_EQ(crossEntropyForward(2, 3, logits.data(), labels.data(), options,
                                &loss, &counted, nullptr),
            kAllLabelsValid);
  EXPECT_EQ(loss, 0.0f);
  EXPECT_EQ(counted, 0);
  std::vector<float> grad(6, 7.0f);
  crossEntropyBackward(2, 3, 1.0f, logits.data(), labels.data(), options,
                       nullptr, grad.data());
  for (float g : grad)
    EXPECT_EQ(g, 0.0f);
}

TEST(CrossEntropy, ExtremeLogitsStayFinite) {
  const std::vector<float> logits = {1000.0f, -1000.0f, 0.0f};
  const std::vector<int32_t> labels = {1};
  float loss = 0.0f;
  crossEntropyForward(1, 3, logits.data(), labels.data(), {}, &loss, nullptr,
                      nullptr);
  EXPECT_NEAR(loss, 2000.0f, 1e-2);
}

TEST(CrossEntropy, OutOfRangeLabelIsReported) {
  const std::vector<float> logits(6, 0.0f);
  for (int32_t bad : {3, -1}) {
    const std::vector<int32_t> labels = {2, bad};
    float loss = 7.0f;
    EXPECT_EQ(crossEntropyForward(2, 3, logits.data(), labels.data(), {}, &loss,
                                  nullptr, nullptr),
              1);
    EXPECT_EQ(loss, 7.0f);
    std::vector<float> grad(6, 7.0f);
    EXPECT_EQ(crossEntropyBackward(2, 3, 1.0f, logits.data(), labels.data(), {},
                                   nullptr, grad.data()),
              1);
  }
  // -1 is fine when it is the ignore index.
  const std::vector<int32_t> labels = {2, -1};
  float loss = 0.0f;
  EXPECT_EQ(crossEntropyForward(2, 3, logits.data(), labels.data(), {0.0, -1},
                                &loss, nullptr, nullptr),
            kAllLabelsValid);
}

// A vocabulary with a remainder for every vector width, against the softmax
// in double, and every instruction-set variant against the baseline bit for
// bit (the kernels are compiled without FMA contraction).
TEST(CrossEntropy, EveryIsaVariantMatchesDoubleAndBaseline) {
  std::mt19937 rng(31);
  const int64_t n = 67, vocab = 1031;
  const auto logits = randomFloats(n * vocab, rng, -8.0f, 8.0f);
  std::vector<int32_t> labels(n);
  std::uniform_int_distribution<int32_t> label(0, vocab - 1);
  for (int32_t &l : labels)
    l = label(rng);
  labels[3] = labels[40] = -100;
  const CrossEntropyOptions options{0.1, -100};
  const double expected =
      referenceLoss(n, vocab, logits, labels, 0.1, options.ignoreIndex);
  float baseLoss = 0.0f;
  std::vector<float> baseLse(n), baseGrad(logits.size());
  detail::crossEntropyForwardVariant(Isa::Baseline, n, vocab, logits.data(),
                                     labels.data(), options, &baseLoss, nullptr,
                                     baseLse.data());
  detail::crossEntropyBackwardVariant(Isa::Baseline, n, vocab, 1.0f,
                                      logits.data(), labels.data(), options,
                                      nullptr, baseGrad.data());
  EXPECT_NEAR(baseLoss, expected, 1e-6 * expected);
  // dlogits = (softmax - target) / counted, in double.
  const double counted = n - 2;
  for (int64_t t = 0; t < n; ++t) {
    if (labels[t] < 0)
      continue;
    double sum = 0.0;
    for (int64_t v = 0; v < vocab; ++v)
      sum += std::exp(static_cast<double>(logits[t * vocab + v]));
    for (int64_t v = 0; v < vocab; ++v) {
      const double p =
          std::exp(static_cast<double>(logits[t * vocab + v])) / sum;
      const double target = (v == labels[t] ? 0.9 : 0.0) + 0.1 / vocab;
      const double g = (p - target) / counted;
      ASSERT_NEAR(baseGrad[t * vocab + v], g, 1e-9 + 1e-5 * std::fabs(g))
          << "token " << t << " v " << v;
    }
  }
  for (Isa isa : supportedIsas()) {
    float loss = 0.0f;
    std::vector<float> lse(n), grad(logits.size()), gradSaved(logits.size());
    detail::crossEntropyForwardVariant(isa, n, vocab, logits.data(),
                                       labels.data(), options, &loss, nullptr,
                                       lse.data());
    detail::crossEntropyBackwardVariant(isa, n, vocab, 1.0f, logits.data(),
                                        labels.data(), options, nullptr,
                                        grad.data());
    detail::crossEntropyBackwardVariant(isa, n, vocab, 1.0f, logits.data(),
                                        labels.data(), options, lse.data(),
                                        gradSaved.data());
    EXPECT_EQ(loss, baseLoss) << isaName(isa);
    EXPECT_EQ(lse, baseLse) << isaName(isa);
    EXPECT_EQ(grad, baseGrad) << isaName(isa);
    EXPECT_EQ(gradSaved, baseGrad) << isaName(isa);
  }
}

} // namespace
} // namespace dense
} // namespace moert
