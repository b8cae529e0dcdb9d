//===- LayerNormTest.cpp - Layer norm values and gradients ----------------===//
#include "moert/dense/LayerNorm.h"

#include "GradCheck.h"

#include <cmath>
#include <vector>

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

// A width with a remainder for every vector width and a row count that
// leaves a partial block, against double loops, and every instruction-set
// variant against the baseline bit for bit.
TEST(LayerNorm, EveryIsaVariantMatchesDoubleAndBaseline) {
  std::mt19937 rng(9);
  const int64_t rows = 70, dim = 200;
  const float eps = 1e-5f;
  const auto x = randomFloats(rows * dim, rng, 3.0f, 7.0f);
  const auto gamma = randomFloats(dim, rng, 0.5f, 1.5f);
  const auto beta = randomFloats(dim, rng);
  const auto dy = randomFloats(rows * dim, rng);
  std::vector<double> y(x.size()), dx(x.size()), dgamma(dim), dbeta(dim);
  for (int64_t r = 0; r < rows; ++r) {
    const float *xr = &x[r * dim];
    double mean = 0.0, var = 0.0;
    for (int64_t i = 0; i < dim; ++i)
      mean += xr[i] / static_cast<double>(dim);
    for (int64_t i = 0; i < dim; ++i)
      var += (xr[i] - mean) * (xr[i] - mean) / dim;
    const double rstd = 1.0 / std::sqrt(var + eps);
    double meanG = 0.0, meanGXhat = 0.0;
    for (int64_t i = 0; i < dim; ++i) {
      const double xhat = (xr[i] - mean) * rstd;
      const double g = static_cast<double>(dy[r * dim + i]) * gamma[i];
      y[r * dim + i] = xhat * gamma[i] + beta[i];
      meanG += g / dim;
      meanGXhat += g * xhat / dim;
      dgamma[i] += dy[r * dim + i] * xhat;
      dbeta[i] += dy[r * dim + i];
    }
    for (int64_t i = 0; i < dim; ++i) {
      const double xhat = (xr[i] - mean) * rstd;
      dx[r * dim + i] =
          rstd * (static_cast<double>(dy[r * dim + i]) * gamma[i] - meanG -
                  xhat * meanGXhat);
    }
  }
  auto run = [&](Isa isa, std::vector<float> &yOut, std::vector<float> &dxOut,
                 std::vector<float> &dgOut, std::vector<float> &dbOut) {
    yOut.assign(x.size(), 0.0f);
    dxOut.assign(x.size(), 0.0f);
    dgOut.assign(dim, 0.0f);
    dbOut.assign(dim, 0.0f);
    detail::layerNormForwardVariant(isa, rows, dim, eps, x.data(), gamma.data(),
                                    beta.data(), yOut.data(), nullptr, nullptr);
    detail::layerNormBackwardVariant(isa, rows, dim, eps, dy.data(), x.data(),
                                     gamma.data(), nullptr, nullptr,
                                     dxOut.data(), dgOut.data(), dbOut.data());
  };
  std::vector<float> baseY, baseDx, baseDg, baseDb;
  run(Isa::Baseline, baseY, baseDx, baseDg, baseDb);
  for (size_t i = 0; i < y.size(); ++i) {
    ASSERT_NEAR(baseY[i], y[i], 2e-6 * (1.0 + std::fabs(y[i]))) << i;
    ASSERT_NEAR(baseDx[i], dx[i], 1e-5 * (1.0 + std::fabs(dx[i]))) << i;
  }
  for (int64_t i = 0; i < dim; ++i) {
    EXPECT_NEAR(baseDg[i], dgamma[i], 1e-5 * (1.0 + std::fabs(dgamma[i])));
    EXPECT_NEAR(baseDb[i], dbeta[i], 1e-5 * (1.0 + std::fabs(dbeta[i])));
  }
  for (Isa isa : supportedIsas()) {
    std::vector<float> yv, dxv, dgv, dbv;
    run(isa, yv, dxv, dgv, dbv);
    EXPECT_EQ(yv, baseY) << isaName(isa);
    EXPECT_EQ(dxv, baseDx) << isaName(isa);
    EXPECT_EQ(dgv, baseDg) << isaName(isa);
    EXPECT_EQ(dbv, baseDb) << isaName(isa);
  }
}

} // namespace
} // namespace dense
} // namespace moert
