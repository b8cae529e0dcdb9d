//===- EmbeddingTest.cpp - Embedding lookup, positions and scatter-add ----===//
#include "moert/dense/Embedding.h"

#include "GradCheck.h"

namespace moert {
namespace dense {
namespace {

using testing::expectGradientMatches;
using testing::project;
using testing::randomFloats;

TEST(Embedding, SinusoidalPositionsFollowVaswani) {
  const int64_t seqLen = 5, dim = 6;
  std::vector<float> pe(seqLen * dim);
  sinusoidalPositions(seqLen, dim, pe.data());
  for (int64_t s = 0; s < seqLen; ++s)
    for (int64_t i = 0; 2 * i < dim; ++i) {
      const double angle = s / std::pow(10000.0, 2.0 * i / dim);
      EXPECT_NEAR(pe[s * dim + 2 * i], std::sin(angle), 1e-7);
      EXPECT_NEAR(pe[s * dim + 2 * i + 1], std::cos(angle), 1e-7);
    }
}

TEST(Embedding, ForwardScalesAndAddsPositions) {
  std::mt19937 rng(8);
  const EmbeddingShape shape{2, 3, 5, 4, 3};
  auto table = randomFloats(shape.vocabSize * shape.modelDim, rng);
  auto positions = randomFloats(shape.numPositions * shape.modelDim, rng);
  const std::vector<int32_t> tokens = {4, 0, 4, 1, 2, 3};
  std::vector<float> pe(shape.seqLen * shape.modelDim);
  sinusoidalPositions(shape.seqLen, shape.modelDim, pe.data());
  for (PositionKind kind :
       {PositionKind::None, PositionKind::Sinusoidal, PositionKind::Learned})
    for (bool scaled : {false, true}) {
      std::vector<float> out(tokens.size() * shape.modelDim);
      ASSERT_EQ(embeddingForward(shape, kind, scaled, tokens.data(),
                                 table.data(), positions.data(), out.data()),
                kAllTokensValid);
      for (int64_t t = 0; t < 6; ++t)
        for (int64_t d = 0; d < shape.modelDim; ++d) {
          const int64_t s = t % shape.seqLen;
          float expected = table[tokens[t] * shape.modelDim + d] *
                           (scaled ? 2.0f : 1.0f); // sqrt(4)
          if (kind == PositionKind::Sinusoidal)
            expected += pe[s * shape.modelDim + d];
          if (kind == PositionKind::Learned)
            expected += positions[s * shape.modelDim + d];
          EXPECT_FLOAT_EQ(out[t * shape.modelDim + d], expected);
        }
    }
}

TEST(Embedding, GradientsMatchFiniteDifferences) {
  std::mt19937 rng(9);
  // More positions than the sequence: the extra rows get zero gradient.
  const EmbeddingShape shape{2, 3, 4, 3, 5};
  auto table = randomFloats(shape.vocabSize * shape.modelDim, rng);
  auto positions = randomFloats(shape.numPositions * shape.modelDim, rng);
  const std::vector<int32_t> tokens = {1, 1, 3, 0, 1, 3}; // repeats add up
  const auto outputGrad = randomFloats(tokens.size() * shape.modelDim, rng);
  for (bool scaled : {false, true}) {
    auto loss = [&] {
      std::vector<float> out(outputGrad.size());
      embeddingForward(shape, PositionKind::Learned, scaled, tokens.data(),
                       table.data(), positions.data(), out.data());
      return project(out, outputGrad);
    };
    std::vector<float> dtable(table.size()), dpos(positions.size(), 5.0f);
    ASSERT_EQ(embeddingBackward(shape, scaled, outputGrad.data(), tokens.data(),
                                dtable.data(), dpos.data()),
              kAllTokensValid);
    expectGradientMatches(scaled ? "dtable(scaled)" : "dtable", table, dtable,
                          loss);
    expectGradientMatches("dpositions", positions, dpos, loss);
    // Token 2 never occurs: its row stays exactly zero.
    for (int64_t d = 0; d < shape.modelDim; ++d)
      EXPECT_EQ(dtable[2 * shape.modelDim + d], 0.0f);
  }
}

TEST(Embedding, OutOfRangeTokenIsReportedNotRead) {
  const EmbeddingShape shape{1, 4, 5, 2, 0};
  const std::vector<float> table(10, 1.0f);
  for (int32_t badId : {5, -1, 1 << 30}) {
    const std::vector<int32_t> tokens = {0, 4, badId, 1};
    std::vector<float> out(8, -7.0f), dtable(10, -7.0f);
    EXPECT_EQ(embeddingForward(shape, PositionKind::Sinusoidal, false,
                               tokens.data(), table.data(), nullptr,
                               out.data()),
              2);
    EXPECT_EQ(embeddingBackward(shape, false, out.data(), tokens.data(),
                                dtable.data(), nullptr),
              2);
    // Nothing written half-way.
    for (float v : out)
      EXPECT_EQ(v, -7.0f);
    for (float v : dtable)
      EXPECT_EQ(v, -7.0f);
  }
}

} // namespace
} // namespace dense
} // namespace moert
