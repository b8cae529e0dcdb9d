//===- LayerNormTest.cpp - Layer norm values and gradients ----------------===//
#include "moert/dense/LayerNorm.h"

#include "GradCheck.h"

namespace moert {
namespace dense {
namespace {

using testing::expectGradientMatches;
using testing::project;
using testing::randomFloats;

TEST(LayerNorm, ForwardNormalisesEachRow) {
  std::mt19937 rng(4);
  const int64_t rows = 3, dim = 16;
  // A large common offset checks the two-pass variance.
  auto x = randomFloats(rows * dim, rng, 999.0f, 1001.0f);
  std::vector<float> gamma(dim, 1.0f), beta(dim, 0.0f), y(rows * dim);
  std::vector<float> mean(rows), rstd(rows);
  layerNormForward(rows, dim, 1e-5f, x.data(), gamma.data(), beta.data(),
                   y.data(), mean.data(), rstd.data());
  for (int64_t r = 0; r < rows; ++r) {
    double sum = 0.0, squares = 0.0;
    for (int64_t i = 0; i < dim; ++i)
      sum += y[r * dim + i];
    for (int64_t i = 0; i < dim; ++i)
      squares += (y[r * dim + i] - sum / dim) * (y[r * dim + i] - sum / dim);
    EXPECT_NEAR(sum / dim, 0.0, 1e-4);
    // var(y) = var / (var + eps): slightly below 1 for these small variances.
    const double var = 1.0 / (static_cast<double>(rstd[r]) * rstd[r]) - 1e-5;
    EXPECT_NEAR(squares / dim, var / (var + 1e-5), 1e-3);
    EXPECT_NEAR(mean[r], 1000.0, 1.0);
  }
}

TEST(LayerNorm, GradientsMatchFiniteDifferences) {
  std::mt19937 rng(5);
  const int64_t rows = 3, dim = 6;
  const float eps = 1e-5f;
  auto x = randomFloats(rows * dim, rng, -2.0f, 2.0f);
  auto gamma = randomFloats(dim, rng, 0.5f, 1.5f);
  auto beta = randomFloats(dim, rng);
  const auto outputGrad = randomFloats(rows * dim, rng);
  auto loss = [&] {
    std::vector<float> y(x.size());
    layerNormForward(rows, dim, eps, x.data(), gamma.data(), beta.data(),
                     y.data(), nullptr, nullptr);
    return project(y, outputGrad);
  };
  std::vector<float> dx(x.size()), dgamma(dim), dbeta(dim);
  layerNormBackward(rows, dim, eps, outputGrad.data(), x.data(), gamma.data(),
                    nullptr, nullptr, dx.data(), dgamma.data(), dbeta.data());
  // Normalisation is strongly curved in x; a smaller step keeps the
  // truncation error of the quotient within tolerance.
  expectGradientMatches("dx", x, dx, loss, 2e-3f);
  expectGradientMatches("dgamma", gamma, dgamma, loss);
  expectGradientMatches("dbeta", beta, dbeta, loss);
}

TEST(LayerNorm, SavedStatisticsGiveTheSameGradients) {
  std::mt19937 rng(6);
  const int64_t rows = 33, dim = 70;
  auto x = randomFloats(rows * dim, rng);
  auto gamma = randomFloats(dim, rng);
  auto beta = randomFloats(dim, rng);
  auto dy = randomFloats(rows * dim, rng);
  std::vector<float> y(x.size()), mean(rows), rstd(rows);
  layerNormForward(rows, dim, 1e-5f, x.data(), gamma.data(), beta.data(),
                   y.data(), mean.data(), rstd.data());
  std::vector<float> dx1(x.size()), dg1(dim), db1(dim);
  std::vector<float> dx2(x.size()), dg2(dim), db2(dim);
  layerNormBackward(rows, dim, 1e-5f, dy.data(), x.data(), gamma.data(),
                    mean.data(), rstd.data(), dx1.data(), dg1.data(),
                    db1.data());
  layerNormBackward(rows, dim, 1e-5f, dy.data(), x.data(), gamma.data(),
                    nullptr, nullptr, dx2.data(), dg2.data(), db2.data());
  EXPECT_EQ(dx1, dx2);
  EXPECT_EQ(dg1, dg2);
  EXPECT_EQ(db1, db2);
}

} // namespace
} // namespace dense
} // namespace moert
