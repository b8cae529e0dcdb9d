//===- AttentionTest.cpp - Multi-head attention values and gradients ------===//
#include "moert/dense/Attention.h"

#include "GradCheck.h"

namespace moert {
namespace dense {
namespace {

using testing::expectGradientMatches;
using testing::project;
using testing::randomFloats;

// Straightforward per-head loops in double, with -inf masking: the
// reference for the forward pass.
std::vector<float> referenceAttention(const AttentionShape &s,
                                      const std::vector<float> &q,
                                      const std::vector<float> &k,
                                      const std::vector<float> &v,
                                      const uint8_t *keyMask) {
  const int64_t dh = s.modelDim / s.numHeads;
  std::vector<float> out(s.batch * s.queryLen * s.modelDim, 0.0f);
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t h = 0; h < s.numHeads; ++h)
      for (int64_t i = 0; i < s.queryLen; ++i) {
        std::vector<double> scores(s.keyLen);
        std::vector<bool> visible(s.keyLen);
        double maxScore = -1e300;
        bool any = false;
        for (int64_t j = 0; j < s.keyLen; ++j) {
          visible[j] =
              !(s.causal && j > i) && !(keyMask && !keyMask[b * s.keyLen + j]);
          double dot = 0.0;
          for (int64_t c = 0; c < dh; ++c)
            dot += static_cast<double>(
                       q[(b * s.queryLen + i) * s.modelDim + h * dh + c]) *
                   k[(b * s.keyLen + j) * s.modelDim + h * dh + c];
          scores[j] = dot / std::sqrt(static_cast<double>(dh));
          if (visible[j]) {
            maxScore = std::max(maxScore, scores[j]);
            any = true;
          }
        }
        if (!any)
          continue;
        double sum = 0.0;
        for (int64_t j = 0; j < s.keyLen; ++j) {
          scores[j] = visible[j] ? std::exp(scores[j] - maxScore) : 0.0;
          sum += scores[j];
        }
        for (int64_t c = 0; c < dh; ++c) {
          double acc = 0.0;
          for (int64_t j = 0; j < s.keyLen; ++j)
            acc += scores[j] / sum *
                   v[(b * s.keyLen + j) * s.modelDim + h * dh + c];
          out[(b * s.queryLen + i) * s.modelDim + h * dh + c] =
              static_cast<float>(acc);
        }
      }
  return out;
}

struct AttentionCase {
  const char *name;
  AttentionShape shape;
  bool withKeyMask;
};

class AttentionTest : public ::testing::TestWithParam<AttentionCase> {
protected:
  // Key mask with trailing padding that differs per batch row; the last
  // batch row also masks its first key so causal rows 0 are fully masked.
  std::vector<uint8_t> makeKeyMask(const AttentionShape &s) {
    std::vector<uint8_t> mask(s.batch * s.keyLen, 1);
    for (int64_t b = 0; b < s.batch; ++b)
      for (int64_t j = s.keyLen - b; j < s.keyLen; ++j)
        mask[b * s.keyLen + j] = 0;
    mask[(s.batch - 1) * s.keyLen] = 0;
    return mask;
  }
};

TEST_P(AttentionTest, ForwardMatchesReference) {
  const AttentionCase c = GetParam();
  const AttentionShape &s = c.shape;
  std::mt19937 rng(10);
  auto q = randomFloats(s.batch * s.queryLen * s.modelDim, rng, -2.0f, 2.0f);
  auto k = randomFloats(s.batch * s.keyLen * s.modelDim, rng, -2.0f, 2.0f);
  auto v = randomFloats(s.batch * s.keyLen * s.modelDim, rng);
  const auto mask = makeKeyMask(s);
  const uint8_t *maskPtr = c.withKeyMask ? mask.data() : nullptr;
  std::vector<float> out(q.size(), 42.0f), probs(attentionProbsSize(s));
  attentionForward(s, q.data(), k.data(), v.data(), maskPtr, out.data(),
                   probs.data());
  const auto expected = referenceAttention(s, q, k, v, maskPtr);
  for (size_t i = 0; i < out.size(); ++i)
    EXPECT_NEAR(out[i], expected[i], 1e-5) << i;
  // Without saving the probabilities the output is bitwise the same.
  std::vector<float> again(q.size());
  attentionForward(s, q.data(), k.data(), v.data(), maskPtr, again.data(),
                   nullptr);
  EXPECT_EQ(out, again);
}

TEST_P(AttentionTest, GradientsMatchFiniteDifferences) {
  const AttentionCase c = GetParam();
  const AttentionShape &s = c.shape;
  std::mt19937 rng(11);
  auto q = randomFloats(s.batch * s.queryLen * s.modelDim, rng);
  auto k = randomFloats(s.batch * s.keyLen * s.modelDim, rng);
  auto v = randomFloats(s.batch * s.keyLen * s.modelDim, rng);
  const auto mask = makeKeyMask(s);
  const uint8_t *maskPtr = c.withKeyMask ? mask.data() : nullptr;
  const auto outputGrad = randomFloats(q.size(), rng);
  auto loss = [&] {
    std::vector<float> out(q.size());
    attentionForward(s, q.data(), k.data(), v.data(), maskPtr, out.data(),
                     nullptr);
    return project(out, outputGrad);
  };
  std::vector<float> dq(q.size()), dk(k.size()), dv(v.size());
  attentionBackward(s, outputGrad.data(), q.data(), k.data(), v.data(), maskPtr,
                    nullptr, dq.data(), dk.data(), dv.data());
  expectGradientMatches("dq", q, dq, loss);
  expectGradientMatches("dk", k, dk, loss);
  expectGradientMatches("dv", v, dv, loss);

  // The saved-probabilities path must agree bitwise with recomputation.
  std::vector<float> out(q.size()), probs(attentionProbsSize(s));
  attentionForward(s, q.data(), k.data(), v.data(), maskPtr, out.data(),
                   probs.data());
  std::vector<float> dq2(q.size()), dk2(k.size()), dv2(v.size());
  attentionBackward(s, outputGrad.data(), q.data(), k.data(), v.data(), maskPtr,
                    probs.data(), dq2.data(), dk2.data(), dv2.data());
  EXPECT_EQ(dq, dq2);
  EXPECT_EQ(dk, dk2);
  EXPECT_EQ(dv, dv2);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AttentionTest,
    ::testing::Values(
        AttentionCase{"SelfNoMask", {2, 4, 4, 6, 2, false}, false},
        AttentionCase{"CausalWithPadding", {3, 5, 5, 4, 2, true}, true},
        AttentionCase{"CrossWithPadding", {2, 3, 5, 6, 3, false}, true},
        AttentionCase{"CausalOneHead", {1, 4, 4, 3, 1, true}, false}),
    [](const ::testing::TestParamInfo<AttentionCase> &info) {
      return std::string(info.param.name);
    });

TEST(Attention, FullyMaskedRowsGiveZerosAndZeroGradients) {
  const AttentionShape s{1, 2, 3, 4, 2, false};
  std::mt19937 rng(12);
  auto q = randomFloats(2 * 4, rng), k = randomFloats(3 * 4, rng),
       v = randomFloats(3 * 4, rng);
  const std::vector<uint8_t> mask(3, 0); // every key is padding
  std::vector<float> out(q.size(), 9.0f);
  attentionForward(s, q.data(), k.data(), v.data(), mask.data(), out.data(),
                   nullptr);
  for (float x : out)
    EXPECT_EQ(x, 0.0f);
  const std::vector<float> dout(q.size(), 1.0f);
  std::vector<float> dq(q.size(), 9.0f), dk(k.size(), 9.0f), dv(v.size(), 9.0f);
  attentionBackward(s, dout.data(), q.data(), k.data(), v.data(), mask.data(),
                    nullptr, dq.data(), dk.data(), dv.data());
  for (const auto *grad : {&dq, &dk, &dv})
    for (float x : *grad)
      EXPECT_EQ(x, 0.0f);
}

TEST(Attention, LargeLogitsStayFinite) {
  // Scores of order 1e4 would overflow exp() without the max subtraction.
  const AttentionShape s{1, 3, 3, 2, 1, true};
  const std::vector<float> q = {100, 100, -100, 50, 70, -80};
  const std::vector<float> k = {100, 100, 90, -90, -100, 100};
  const std::vector<float> v = {1, 2, 3, 4, 5, 6};
  std::vector<float> out(6);
  attentionForward(s, q.data(), k.data(), v.data(), nullptr, out.data(),
                   nullptr);
  for (float x : out)
    EXPECT_TRUE(std::isfinite(x));
  EXPECT_FLOAT_EQ(out[0], 1.0f); // row 0 sees key 0 only
  EXPECT_FLOAT_EQ(out[1], 2.0f);
}

TEST(Attention, ResultIsDeterministicAcrossRuns) {
  const AttentionShape s{4, 33, 33, 64, 4, true};
  std::mt19937 rng(13);
  auto q = randomFloats(4 * 33 * 64, rng), k = randomFloats(q.size(), rng),
       v = randomFloats(q.size(), rng), dout = randomFloats(q.size(), rng);
  std::vector<float> dq1(q.size()), dk1(q.size()), dv1(q.size());
  std::vector<float> dq2(q.size()), dk2(q.size()), dv2(q.size());
  attentionBackward(s, dout.data(), q.data(), k.data(), v.data(), nullptr,
                    nullptr, dq1.data(), dk1.data(), dv1.data());
  attentionBackward(s, dout.data(), q.data(), k.data(), v.data(), nullptr,
                    nullptr, dq2.data(), dk2.data(), dv2.data());
  EXPECT_EQ(dq1, dq2);
  EXPECT_EQ(dk1, dk2);
  EXPECT_EQ(dv1, dv2);
}

} // namespace
} // namespace dense
} // namespace moert
