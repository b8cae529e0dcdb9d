//===- DenseMathTest.cpp - CPU tests of the CUDA dense kernels' host code -===//
//
// The per-element code the CUDA dense kernels run (DenseMath.h) and the
// column-major GEMM mapping of moe.linear (DenseGemm.h) are plain C++ as
// well; these tests run them on the CPU against the CPU kernels of
// moert/dense, so they need no GPU.
//
//===----------------------------------------------------------------------===//
#include "moert/backends/cuda/DenseMath.h"
#include "moert/backends/cuda/DenseGemm.h"

#include "moert/dense/Activation.h"
#include "moert/dense/Attention.h"
#include "moert/dense/Dropout.h"
#include "moert/dense/Embedding.h"
#include "moert/dense/Linear.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <random>
#include <vector>

namespace moert {
namespace cuda {
namespace {

std::vector<float> randomValues(size_t count, uint32_t seed) {
  std::mt19937 engine(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(count);
  for (float &v : values)
    v = normal(engine);
  return values;
}

uint32_t bitsOf(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

//===----------------------------------------------------------------------===//
// Dropout: the mask of each Philox block, applied block by block the way the
// GPU threads do, must give the CPU kernel's bits.
//===----------------------------------------------------------------------===//

std::vector<float> dropoutByBlocks(const dense::DropoutParams &params,
                                   int64_t offset,
                                   const std::vector<float> &in) {
  dense_math::DropoutBlockParams p;
  p.source = {params.seed, params.stream, params.step};
  const uint64_t threshold = dense_math::dropoutKeepThreshold(params.rate);
  EXPECT_LE(threshold, 0xffffffffu);
  p.keepFrom = static_cast<uint32_t>(threshold);
  p.keptScale = static_cast<float>(1.0 / (1.0 - params.rate));
  p.logicalOffset = static_cast<uint64_t>(offset);
  p.count = static_cast<int64_t>(in.size());
  std::vector<float> out(in.size(), -7.0f);
  const uint64_t first = dense_math::dropoutFirstBlock(p);
  const uint64_t blocks = dense_math::dropoutBlockCount(p);
  for (uint64_t b = 0; b < blocks; ++b)
    dense_math::dropoutPhiloxBlock(p, first + b, in.data(), out.data());
  return out;
}

struct DropoutCase {
  double rate;
  int64_t offset, count;
};

class DropoutBlocksTest : public ::testing::TestWithParam<DropoutCase> {};

TEST_P(DropoutBlocksTest, MatchesCpuBitForBit) {
  const DropoutCase c = GetParam();
  dense::DropoutParams params;
  params.rate = c.rate;
  params.seed = 0x0123456789abcdefull;
  params.stream = 7;
  params.step = 11;
  std::vector<float> in = randomValues(static_cast<size_t>(c.count), 3);
  if (c.count > 5) { // dropped non-finite values become +0 on both sides
    in[1] = std::numeric_limits<float>::quiet_NaN();
    in[4] = -std::numeric_limits<float>::infinity();
  }
  std::vector<float> expected(in.size());
  dense::dropoutForward(params,
                        dense::contiguousDropoutLayout(c.count, c.offset),
                        in.data(), expected.data());
  const std::vector<float> actual = dropoutByBlocks(params, c.offset, in);
  int64_t dropped = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    ASSERT_EQ(bitsOf(actual[i]), bitsOf(expected[i])) << "element " << i;
    dropped += expected[i] == 0.0f && bitsOf(expected[i]) == 0u;
  }
  if (c.count >= 1000) // the mask is not trivial
    EXPECT_NEAR(static_cast<double>(dropped) / c.count, c.rate, 0.05);
}

INSTANTIATE_TEST_SUITE_P(
    Shards, DropoutBlocksTest,
    ::testing::Values(DropoutCase{0.1, 0, 4096}, DropoutCase{0.5, 0, 1001},
                      DropoutCase{0.3, 4096, 4096}, // second of two shards
                      DropoutCase{0.25, 3, 17},     // unaligned both ends
                      DropoutCase{0.9, 6, 2},       // inside one block
                      DropoutCase{0.5, 5, 1}));

TEST(DropoutThresholdTest, MatchesTheCpuKeepDecision) {
  // keep iff bits >= threshold, for the rates' edge cases.
  for (double rate : {0.0, 1e-12, 0.1, 0.5, 1.0 - 1e-12}) {
    dense::DropoutParams params;
    params.rate = rate;
    params.seed = 99;
    const uint64_t threshold = dense_math::dropoutKeepThreshold(rate);
    for (uint64_t i = 0; i < 64; ++i) {
      const uint32_t bits = randomBits({params.seed, 0, 0}, i);
      EXPECT_EQ(bits >= threshold, dense::dropoutKeeps(params, i))
          << "rate " << rate << " element " << i;
    }
  }
  EXPECT_EQ(dense_math::dropoutKeepThreshold(1.0), uint64_t{1} << 32);
}

//===----------------------------------------------------------------------===//
// Sinusoidal positions
//===----------------------------------------------------------------------===//

TEST(SinusoidalPositionTest, MatchesCpuTable) {
  for (int64_t dim : {1, 6, 7, 64}) {
    const int64_t seqLen = 37;
    std::vector<float> table(static_cast<size_t>(seqLen * dim));
    dense::sinusoidalPositions(seqLen, dim, table.data());
    for (int64_t s = 0; s < seqLen; ++s)
      for (int64_t d = 0; d < dim; ++d)
        ASSERT_EQ(bitsOf(dense_math::sinusoidalPosition(s, d, dim)),
                  bitsOf(table[s * dim + d]))
            << "s " << s << " d " << d << " M " << dim;
  }
}

//===----------------------------------------------------------------------===//
// Activations: within a few 1e-7 of the CPU's (different exp/erf).
//===----------------------------------------------------------------------===//

template <int Kind> void checkActivation(dense::ActivationKind kind) {
  // A dense grid over [-12, 12] plus zeros and far-out values.
  constexpr size_t kGrid = 1847;
  const float extremes[] = {0.0f, -0.0f, 30.0f, -30.0f, 1e20f, -1e20f};
  std::vector<float> z(kGrid + std::size(extremes));
  for (size_t i = 0; i < kGrid; ++i)
    z[i] = -12.0f + 0.013f * static_cast<float>(i);
  std::copy(std::begin(extremes), std::end(extremes), z.begin() + kGrid);
  std::vector<float> value(z.size()), grad(z.size());
  const std::vector<float> ones(z.size(), 1.0f);
  dense::activationForward(kind, static_cast<int64_t>(z.size()), z.data(),
                           value.data());
  dense::activationBackward(kind, static_cast<int64_t>(z.size()), ones.data(),
                            z.data(), grad.data());
  for (size_t i = 0; i < z.size(); ++i) {
    const float tolerance = 2e-6f * (1.0f + std::fabs(z[i]));
    EXPECT_NEAR(dense_math::activationValue<Kind>(z[i]), value[i], tolerance)
        << dense::activationName(kind) << "(" << z[i] << ")";
    EXPECT_NEAR(dense_math::activationDerivative<Kind>(z[i]), grad[i],
                tolerance)
        << dense::activationName(kind) << "'(" << z[i] << ")";
  }
}

TEST(ActivationMathTest, ReluIsExact) {
  for (float z : {-1.5f, -0.0f, 0.0f, 2.5f}) {
    EXPECT_EQ(dense_math::activationValue<dense_math::kRelu>(z),
              z > 0 ? z : 0.0f);
    EXPECT_EQ(dense_math::activationDerivative<dense_math::kRelu>(z),
              z > 0 ? 1.0f : 0.0f);
  }
  checkActivation<dense_math::kRelu>(dense::ActivationKind::Relu);
}
TEST(ActivationMathTest, GeluMatchesCpu) {
  checkActivation<dense_math::kGelu>(dense::ActivationKind::Gelu);
}
TEST(ActivationMathTest, GeluTanhMatchesCpu) {
  checkActivation<dense_math::kGeluTanh>(dense::ActivationKind::GeluTanh);
}
TEST(ActivationMathTest, SiluMatchesCpu) {
  checkActivation<dense_math::kSilu>(dense::ActivationKind::Silu);
}

//===----------------------------------------------------------------------===//
// GEMM mapping: a plain column-major GEMM driven by the mapping reproduces
// the CPU linear layer.
//===----------------------------------------------------------------------===//

void columnMajorGemm(const ColumnMajorGemm &g, const float *a, const float *b,
                     float *c) {
  for (int64_t j = 0; j < g.n; ++j)
    for (int64_t i = 0; i < g.m; ++i) {
      double sum = 0.0;
      for (int64_t p = 0; p < g.k; ++p) {
        const float av = g.transA ? a[p + i * g.lda] : a[i + p * g.lda];
        const float bv = g.transB ? b[j + p * g.ldb] : b[p + j * g.ldb];
        sum += static_cast<double>(av) * bv;
      }
      c[i + j * g.ldc] = static_cast<float>(sum);
    }
}

const float *pick(LinearOperand which, const float *input, const float *weight,
                  const float *outputGrad) {
  switch (which) {
  case LinearOperand::Input:
    return input;
  case LinearOperand::Weight:
    return weight;
  case LinearOperand::OutputGrad:
    return outputGrad;
  }
  return nullptr;
}

class LinearGemmTest : public ::testing::TestWithParam<bool> {};

TEST_P(LinearGemmTest, MappingMatchesCpuLinear) {
  const bool transposed = GetParam();
  const int64_t rows = 5, k = 3, n = 4;
  const std::vector<float> x = randomValues(rows * k, 1);
  const std::vector<float> w = randomValues(k * n, 2);
  const std::vector<float> dy = randomValues(rows * n, 3);
  dense::LinearShape shape{rows, k, n, transposed};

  std::vector<float> y(rows * n), dx(rows * k), dw(k * n);
  dense::linearForward(shape, x.data(), w.data(), nullptr, y.data());
  dense::linearBackward(shape, dy.data(), x.data(), w.data(), dx.data(),
                        dw.data(), nullptr);

  auto run = [&](const ColumnMajorGemm &g, size_t size) {
    std::vector<float> out(size, -1.0f);
    columnMajorGemm(g, pick(g.a, x.data(), w.data(), dy.data()),
                    pick(g.b, x.data(), w.data(), dy.data()), out.data());
    return out;
  };
  const std::vector<float> y2 =
      run(linearForwardGemm(rows, k, n, transposed), y.size());
  const std::vector<float> dx2 =
      run(linearInputGradGemm(rows, k, n, transposed), dx.size());
  const std::vector<float> dw2 =
      run(linearWeightGradGemm(rows, k, n, transposed), dw.size());
  for (size_t i = 0; i < y.size(); ++i)
    EXPECT_NEAR(y2[i], y[i], 1e-5f) << "y " << i;
  for (size_t i = 0; i < dx.size(); ++i)
    EXPECT_NEAR(dx2[i], dx[i], 1e-5f) << "dx " << i;
  for (size_t i = 0; i < dw.size(); ++i)
    EXPECT_NEAR(dw2[i], dw[i], 1e-5f) << "dW " << i;
}

INSTANTIATE_TEST_SUITE_P(Weights, LinearGemmTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool> &info) {
                           return info.param ? "TransposedWeight" : "Weight";
                         });

//===----------------------------------------------------------------------===//
// Attention GEMM mapping (the unfused path): plain head-batched GEMMs driven
// by the mapping, with the row softmax in between, reproduce the CPU
// attention forward and backward.
//===----------------------------------------------------------------------===//

struct AttentionBuffers {
  const float *query, *key, *value, *outputGrad;
  float *probs, *scoreGrad, *output, *queryGrad, *keyGrad, *valueGrad;
  float *operator[](AttentionOperand which) const {
    switch (which) {
    case AttentionOperand::Query:
      return const_cast<float *>(query);
    case AttentionOperand::Key:
      return const_cast<float *>(key);
    case AttentionOperand::Value:
      return const_cast<float *>(value);
    case AttentionOperand::OutputGrad:
      return const_cast<float *>(outputGrad);
    case AttentionOperand::Probs:
      return probs;
    case AttentionOperand::ScoreGrad:
      return scoreGrad;
    case AttentionOperand::Output:
      return output;
    case AttentionOperand::QueryGrad:
      return queryGrad;
    case AttentionOperand::KeyGrad:
      return keyGrad;
    case AttentionOperand::ValueGrad:
      return valueGrad;
    }
    return nullptr;
  }
};

void headBatchedGemm(const HeadBatchedGemm &g, int64_t heads,
                     const AttentionBuffers &buffers) {
  for (int64_t h = 0; h < heads; ++h) {
    ColumnMajorGemm plain;
    plain.transA = g.transA;
    plain.transB = g.transB;
    plain.m = g.m;
    plain.n = g.n;
    plain.k = g.k;
    plain.lda = g.lda;
    plain.ldb = g.ldb;
    plain.ldc = g.ldc;
    float *c = buffers[g.c] + h * g.strideC;
    // Through a dense [m, n] column-major temporary: C may be a strided
    // view (ldc > m) whose gaps belong to other heads.
    std::vector<float> dense(static_cast<size_t>(g.m * g.n));
    ColumnMajorGemm packed = plain;
    packed.ldc = g.m;
    columnMajorGemm(packed, buffers[g.a] + h * g.strideA,
                    buffers[g.b] + h * g.strideB, dense.data());
    for (int64_t j = 0; j < g.n; ++j)
      for (int64_t i = 0; i < g.m; ++i)
        c[i + j * g.ldc] = g.alpha * dense[i + j * g.m];
  }
}

/// The row operations of the unfused CUDA path, as the CPU defines them.
void maskedSoftmaxRows(const dense::AttentionShape &s, int64_t b,
                       const uint8_t *mask, float *probs) {
  for (int64_t row = 0; row < s.numHeads * s.queryLen; ++row) {
    const int64_t i = row % s.queryLen;
    float *p = probs + row * s.keyLen;
    auto visible = [&](int64_t j) {
      return (!s.causal || j <= i) && (!mask || mask[b * s.keyLen + j]);
    };
    float rowMax = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < s.keyLen; ++j)
      if (visible(j))
        rowMax = std::max(rowMax, p[j]);
    double sum = 0.0;
    for (int64_t j = 0; j < s.keyLen; ++j) {
      p[j] = visible(j) && rowMax != -std::numeric_limits<float>::infinity()
                 ? std::exp(p[j] - rowMax)
                 : 0.0f;
      sum += p[j];
    }
    const float inverse = sum > 0.0 ? static_cast<float>(1.0 / sum) : 0.0f;
    for (int64_t j = 0; j < s.keyLen; ++j)
      p[j] *= inverse;
  }
}

void softmaxBackwardRows(const dense::AttentionShape &s, const float *probs,
                         float *scoreGrad) {
  for (int64_t row = 0; row < s.numHeads * s.queryLen; ++row) {
    const float *p = probs + row * s.keyLen;
    float *d = scoreGrad + row * s.keyLen;
    double dot = 0.0;
    for (int64_t j = 0; j < s.keyLen; ++j)
      dot += static_cast<double>(d[j]) * p[j];
    for (int64_t j = 0; j < s.keyLen; ++j)
      d[j] = p[j] * (d[j] - static_cast<float>(dot));
  }
}

TEST(AttentionGemmTest, MappingMatchesCpuAttention) {
  for (bool causal : {false, true}) {
    dense::AttentionShape s{2, 7, causal ? 7 : 5, 12, 3, causal};
    const int64_t qCount = s.batch * s.queryLen * s.modelDim;
    const int64_t kCount = s.batch * s.keyLen * s.modelDim;
    const std::vector<float> q = randomValues(qCount, 4),
                             k = randomValues(kCount, 5),
                             v = randomValues(kCount, 6),
                             dOut = randomValues(qCount, 7);
    std::vector<uint8_t> mask(s.batch * s.keyLen, 1);
    mask[0] = 0; // leading padding of batch 0
    mask[s.keyLen + s.keyLen - 1] = 0;
    std::vector<float> out(qCount), dq(qCount), dk(kCount), dv(kCount);
    dense::attentionForward(s, q.data(), k.data(), v.data(), mask.data(),
                            out.data(), nullptr);
    dense::attentionBackward(s, dOut.data(), q.data(), k.data(), v.data(),
                             mask.data(), nullptr, dq.data(), dk.data(),
                             dv.data());

    AttentionGemmDims d{s.queryLen, s.keyLen, s.modelDim, s.numHeads};
    const float scale = 1.0f / std::sqrt(static_cast<float>(d.headDim()));
    std::vector<float> out2(qCount), dq2(qCount), dk2(kCount), dv2(kCount);
    std::vector<float> probs(s.numHeads * d.tile()), scoreGrad(probs.size());
    for (int64_t b = 0; b < s.batch; ++b) {
      const int64_t qOff = b * s.queryLen * s.modelDim;
      const int64_t kOff = b * s.keyLen * s.modelDim;
      AttentionBuffers buffers{q.data() + qOff,    k.data() + kOff,
                               v.data() + kOff,    dOut.data() + qOff,
                               probs.data(),       scoreGrad.data(),
                               out2.data() + qOff, dq2.data() + qOff,
                               dk2.data() + kOff,  dv2.data() + kOff};
      headBatchedGemm(attentionScoresGemm(d, scale), s.numHeads, buffers);
      maskedSoftmaxRows(s, b, mask.data(), probs.data());
      headBatchedGemm(attentionOutputGemm(d), s.numHeads, buffers);
      headBatchedGemm(attentionValueGradGemm(d), s.numHeads, buffers);
      headBatchedGemm(attentionProbsGradGemm(d), s.numHeads, buffers);
      softmaxBackwardRows(s, probs.data(), scoreGrad.data());
      headBatchedGemm(attentionQueryGradGemm(d, scale), s.numHeads, buffers);
      headBatchedGemm(attentionKeyGradGemm(d, scale), s.numHeads, buffers);
    }
    for (int64_t i = 0; i < qCount; ++i) {
      ASSERT_NEAR(out2[i], out[i], 1e-5f) << "output " << i;
      ASSERT_NEAR(dq2[i], dq[i], 1e-5f) << "dQ " << i;
    }
    for (int64_t i = 0; i < kCount; ++i) {
      ASSERT_NEAR(dk2[i], dk[i], 1e-5f) << "dK " << i;
      ASSERT_NEAR(dv2[i], dv[i], 1e-5f) << "dV " << i;
    }
  }
}

} // namespace
} // namespace cuda
} // namespace moert
