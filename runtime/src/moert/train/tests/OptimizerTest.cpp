//===- OptimizerTest.cpp - AdamW, clipping and LR schedule ----------------===//
#include "moert/train/Optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

using namespace moert::train;

namespace {

TEST(Optimizer, SumSquares) {
  std::vector<float> v = {1.0f, -2.0f, 3.0f};
  EXPECT_DOUBLE_EQ(sumSquares(3, v.data()), 14.0);
  EXPECT_DOUBLE_EQ(sumSquares(0, v.data()), 0.0);
}

TEST(Optimizer, ClipScalesOnlyAboveTheBound) {
  ClipResult small = clipByGlobalNorm(0.25, 1.0); // norm 0.5
  EXPECT_FLOAT_EQ(small.norm, 0.5f);
  EXPECT_FLOAT_EQ(small.scale, 1.0f);
  ClipResult large = clipByGlobalNorm(16.0, 1.0); // norm 4
  EXPECT_FLOAT_EQ(large.norm, 4.0f);
  EXPECT_NEAR(large.scale, 0.25f, 1e-6);
  // Disabled clipping (infinite bound) never scales.
  EXPECT_FLOAT_EQ(
      clipByGlobalNorm(1e12, std::numeric_limits<double>::infinity()).scale,
      1.0f);
}

TEST(Optimizer, NonFiniteNormSkipsTheGradient) {
  ClipResult r = clipByGlobalNorm(std::numeric_limits<double>::infinity(), 1.0);
  EXPECT_EQ(r.scale, 0.0f);
  r = clipByGlobalNorm(std::nan(""), 1.0);
  EXPECT_EQ(r.scale, 0.0f);
}

TEST(Optimizer, InverseSqrtScheduleWithWarmup) {
  EXPECT_FLOAT_EQ(inverseSqrtLr(1, 1e-3, 4), 2.5e-4f);
  EXPECT_FLOAT_EQ(inverseSqrtLr(2, 1e-3, 4), 5e-4f);
  EXPECT_FLOAT_EQ(inverseSqrtLr(4, 1e-3, 4), 1e-3f); // the peak
  EXPECT_FLOAT_EQ(inverseSqrtLr(16, 1e-3, 4), 5e-4f);
  EXPECT_FLOAT_EQ(inverseSqrtLr(9, 1.0, 0), 1.0f / 3.0f);
}

/// AdamW as in torch.optim.AdamW, in double.
void referenceAdamW(const AdamWConfig &c, std::vector<double> &p,
                    const std::vector<double> &g, std::vector<double> &m,
                    std::vector<double> &v, double lr, int step) {
  for (size_t i = 0; i < p.size(); ++i) {
    p[i] *= 1.0 - lr * c.weightDecay;
    m[i] = c.beta1 * m[i] + (1 - c.beta1) * g[i];
    v[i] = c.beta2 * v[i] + (1 - c.beta2) * g[i] * g[i];
    double mHat = m[i] / (1 - std::pow(c.beta1, step));
    double vHat = v[i] / (1 - std::pow(c.beta2, step));
    p[i] -= lr * mHat / (std::sqrt(vHat) + c.epsilon);
  }
}

TEST(Optimizer, AdamWMatchesReferenceOverSteps) {
  AdamWConfig config{0.9, 0.98, 1e-8, 0.1};
  std::vector<float> p = {0.5f, -1.0f, 2.0f, 0.0f}, m(4, 0.0f), v(4, 0.0f);
  std::vector<double> pRef(p.begin(), p.end()), mRef(4, 0.0), vRef(4, 0.0);
  for (int step = 1; step <= 10; ++step) {
    std::vector<float> g = {0.1f * step, -0.3f, 0.05f, 1.0f / step};
    std::vector<double> gRef(g.begin(), g.end());
    adamwUpdate(config, 4, p.data(), g.data(), m.data(), v.data(), 1e-2f, 1.0f,
                step);
    referenceAdamW(config, pRef, gRef, mRef, vRef, 1e-2, step);
    for (int i = 0; i < 4; ++i) {
      EXPECT_NEAR(p[i], pRef[i], 1e-6) << "step " << step << " element " << i;
      EXPECT_NEAR(m[i], mRef[i], 1e-6);
      EXPECT_NEAR(v[i], vRef[i], 1e-7);
    }
  }
}

TEST(Optimizer, FirstStepMovesByLearningRate) {
  // At step 1, m_hat / sqrt(v_hat) = sign(g): every weight moves by ~lr.
  AdamWConfig config;
  std::vector<float> p = {1.0f, 1.0f}, g = {3.0f, -0.01f}, m(2), v(2);
  adamwUpdate(config, 2, p.data(), g.data(), m.data(), v.data(), 0.1f, 1.0f, 1);
  EXPECT_NEAR(p[0], 0.9f, 1e-5);
  EXPECT_NEAR(p[1], 1.1f, 1e-4);
}

TEST(Optimizer, GradScaleAppliesBeforeTheMoments) {
  AdamWConfig config;
  std::vector<float> p = {0.0f}, g = {4.0f}, m = {0.0f}, v = {0.0f};
  adamwUpdate(config, 1, p.data(), g.data(), m.data(), v.data(), 1e-3f, 0.25f,
              1);
  EXPECT_NEAR(m[0], (1 - 0.9) * 1.0, 1e-7);
  EXPECT_NEAR(v[0], (1 - 0.98) * 1.0, 1e-7);
  // A zero scale (skipped step) leaves a zero-moment parameter unchanged.
  std::vector<float> q = {2.0f}, mq = {0.0f}, vq = {0.0f};
  adamwUpdate(config, 1, q.data(), g.data(), mq.data(), vq.data(), 1e-3f, 0.0f,
              1);
  EXPECT_EQ(q[0], 2.0f);
}

TEST(Optimizer, DecoupledWeightDecay) {
  // Zero gradient: only the decay acts, p *= (1 - lr * wd).
  AdamWConfig config{0.9, 0.98, 1e-8, 0.5};
  std::vector<float> p = {2.0f}, g = {0.0f}, m = {0.0f}, v = {0.0f};
  adamwUpdate(config, 1, p.data(), g.data(), m.data(), v.data(), 0.1f, 1.0f, 1);
  EXPECT_NEAR(p[0], 2.0f * (1.0f - 0.05f), 1e-6);
}

std::vector<float> randomValues(size_t count, std::mt19937 &rng, float low,
                                float high) {
  std::uniform_real_distribution<float> dist(low, high);
  std::vector<float> values(count);
  for (float &v : values)
    v = dist(rng);
  return values;
}

// Several blocks and a remainder of every vector width.
constexpr int64_t kManyElements = 3 * 16384 + 1001;

TEST(Optimizer, SumSquaresIsPreciseAndTheSameForEveryVariant) {
  std::mt19937 rng(11);
  const std::vector<float> v = randomValues(kManyElements, rng, -3.0f, 3.0f);
  long double exact = 0.0L;
  for (float x : v)
    exact += static_cast<long double>(x) * x;
  const double sum = sumSquares(kManyElements, v.data());
  EXPECT_NEAR(sum, static_cast<double>(exact), 1e-12 * sum);
  for (moert::dense::Isa isa : moert::dense::supportedIsas()) {
    EXPECT_EQ(detail::sumSquaresVariant(isa, kManyElements, v.data()), sum)
        << moert::dense::isaName(isa);
    for (int64_t count : {0, 1, 15, 17, 16384, 16385})
      EXPECT_EQ(detail::sumSquaresVariant(isa, count, v.data()),
                detail::sumSquaresVariant(moert::dense::Isa::Baseline, count,
                                          v.data()))
          << moert::dense::isaName(isa) << " count " << count;
  }
}

TEST(Optimizer, AdamWIsTheSameForEveryVariant) {
  std::mt19937 rng(12);
  AdamWConfig config{0.9, 0.98, 1e-8, 0.01};
  const std::vector<float> p0 = randomValues(kManyElements, rng, -1.0f, 1.0f);
  const std::vector<float> m0 = randomValues(kManyElements, rng, -1e-2f, 1e-2f);
  const std::vector<float> v0 = randomValues(kManyElements, rng, 0.0f, 1e-4f);
  const std::vector<float> g = randomValues(kManyElements, rng, -1.0f, 1.0f);
  std::vector<float> pBase = p0, mBase = m0, vBase = v0;
  detail::adamwUpdateVariant(moert::dense::Isa::Baseline, config, kManyElements,
                             pBase.data(), g.data(), mBase.data(), vBase.data(),
                             3e-3f, 0.5f, 7);
  for (moert::dense::Isa isa : moert::dense::supportedIsas()) {
    std::vector<float> p = p0, m = m0, v = v0;
    detail::adamwUpdateVariant(isa, config, kManyElements, p.data(), g.data(),
                               m.data(), v.data(), 3e-3f, 0.5f, 7);
    EXPECT_EQ(p, pBase) << moert::dense::isaName(isa);
    EXPECT_EQ(m, mBase) << moert::dense::isaName(isa);
    EXPECT_EQ(v, vBase) << moert::dense::isaName(isa);
  }
  // The dispatched kernel (threaded at this size) gives the same bits.
  std::vector<float> p = p0, m = m0, v = v0;
  adamwUpdate(config, kManyElements, p.data(), g.data(), m.data(), v.data(),
              3e-3f, 0.5f, 7);
  EXPECT_EQ(p, pBase);
  EXPECT_EQ(m, mBase);
  EXPECT_EQ(v, vBase);
}

} // namespace
