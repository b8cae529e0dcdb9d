//===- DropoutTest.cpp - Inverted dropout and its counter-based mask ------===//
#include "moert/dense/Dropout.h"

#include "moert/Random.h"

#include "GradCheck.h"

namespace moert {
namespace dense {
namespace {

using testing::expectGradientMatches;
using testing::project;
using testing::randomFloats;

TEST(Dropout, DropsTheRequestedFractionAndRescales) {
  const int64_t count = 200000;
  const DropoutParams params{0.3, 1234, 5, 17, true};
  const std::vector<float> ones(count, 1.0f);
  std::vector<float> out(count);
  dropoutForward(params, contiguousDropoutLayout(count), ones.data(),
                 out.data());
  int64_t dropped = 0;
  for (float v : out) {
    if (v == 0.0f)
      ++dropped;
    else
      EXPECT_FLOAT_EQ(v, 1.0f / 0.7f);
  }
  // Binomial standard deviation: sqrt(n p (1-p)) ~ 205; allow 5 sigma.
  EXPECT_NEAR(static_cast<double>(dropped), 0.3 * count, 1025.0);
}

TEST(Dropout, MaskDependsOnSeedStreamAndStep) {
  const int64_t count = 4096;
  const std::vector<float> ones(count, 1.0f);
  auto maskOf = [&](DropoutParams p) {
    std::vector<float> out(count);
    dropoutForward(p, contiguousDropoutLayout(count), ones.data(), out.data());
    return out;
  };
  const DropoutParams base{0.5, 1, 2, 3, true};
  const auto reference = maskOf(base);
  EXPECT_EQ(maskOf(base), reference); // a pure function of its key
  for (DropoutParams changed :
       {DropoutParams{0.5, 9, 2, 3, true}, DropoutParams{0.5, 1, 9, 3, true},
        DropoutParams{0.5, 1, 2, 9, true}}) {
    const auto other = maskOf(changed);
    int64_t differing = 0;
    for (int64_t i = 0; i < count; ++i)
      differing += (other[i] == 0.0f) != (reference[i] == 0.0f);
    // Independent masks at rate 0.5 differ in about half the elements.
    EXPECT_GT(differing, count / 4);
  }
}

TEST(Dropout, MaskDoesNotDependOnPartitioning) {
  const int64_t rows = 6, cols = 10;
  const DropoutParams params{0.4, 77, 1, 2, true};
  std::mt19937 rng(15);
  const auto x = randomFloats(rows * cols, rng);
  std::vector<float> whole(rows * cols);
  dropoutForward(params, contiguousDropoutLayout(rows * cols), x.data(),
                 whole.data());

  // Contiguous chunks of uneven sizes, each naming its logical offset.
  std::vector<float> chunked(rows * cols);
  for (int64_t begin : {0, 7, 31}) {
    const int64_t end = begin == 31 ? rows * cols : (begin == 0 ? 7 : 31);
    dropoutForward(params, contiguousDropoutLayout(end - begin, begin),
                   x.data() + begin, chunked.data() + begin);
  }
  EXPECT_EQ(chunked, whole);

  // Sharding the last dimension in two (tensor parallelism): each shard is a
  // [rows, cols / 2] buffer whose rows are strided in the logical tensor.
  for (int64_t shard = 0; shard < 2; ++shard) {
    const int64_t localCols = cols / 2;
    std::vector<float> local(rows * localCols), localOut(rows * localCols);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < localCols; ++c)
        local[r * localCols + c] = x[r * cols + shard * localCols + c];
    const DropoutLayout layout{rows, localCols, shard * localCols, cols};
    dropoutForward(params, layout, local.data(), localOut.data());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < localCols; ++c)
        EXPECT_EQ(localOut[r * localCols + c],
                  whole[r * cols + shard * localCols + c]);
  }
}

TEST(Dropout, BackwardAppliesTheForwardMask) {
  const int64_t count = 50;
  const DropoutParams params{0.25, 3, 4, 5, true};
  std::mt19937 rng(16);
  auto x = randomFloats(count, rng);
  const auto outputGrad = randomFloats(count, rng);
  const auto layout = contiguousDropoutLayout(count);
  auto loss = [&] {
    std::vector<float> y(count);
    dropoutForward(params, layout, x.data(), y.data());
    return project(y, outputGrad);
  };
  std::vector<float> dx(count);
  dropoutBackward(params, layout, outputGrad.data(), dx.data());
  expectGradientMatches("dx", x, dx, loss);
  for (int64_t i = 0; i < count; ++i)
    EXPECT_EQ(dx[i] == 0.0f, !dropoutKeeps(params, i));
}

TEST(Dropout, MaskComesFromTheRuntimeGenerator) {
  // Element i is kept iff its Philox bits (moert/Random.h, the generator the
  // gate uses too) are at least rate * 2^32.
  const DropoutParams params{0.5, 0x123456789abcull, 7, 11, true};
  const RandomStream source{params.seed, params.stream, params.step};
  for (uint64_t i = 0; i < 64; ++i)
    EXPECT_EQ(dropoutKeeps(params, i), randomBits(source, i) >= (1ull << 31))
        << i;
}

// The bulk (chunked, threaded) path against the per-element definition
// dropoutKeeps: output[r, c] = x * 1 / (1 - rate) iff logical element
// offset + r * stride + c is kept, else 0.
void expectMatchesPerElementMask(const DropoutParams &params,
                                 const DropoutLayout &layout, uint32_t seed) {
  std::mt19937 rng(seed);
  const int64_t count = layout.rows * layout.cols;
  const auto x = randomFloats(count, rng);
  std::vector<float> out(count), inPlace = x;
  dropoutForward(params, layout, x.data(), out.data());
  dropoutForward(params, layout, inPlace.data(), inPlace.data());
  EXPECT_EQ(inPlace, out);
  const float keptScale = static_cast<float>(1.0 / (1.0 - params.rate));
  int64_t mismatches = 0;
  for (int64_t r = 0; r < layout.rows; ++r)
    for (int64_t c = 0; c < layout.cols; ++c) {
      const int64_t e = r * layout.cols + c;
      const uint64_t logical = static_cast<uint64_t>(
          layout.logicalOffset + r * layout.logicalRowStride + c);
      const float expected =
          dropoutKeeps(params, logical) ? x[e] * keptScale : 0.0f;
      if (out[e] != expected && ++mismatches <= 3)
        ADD_FAILURE() << "rate " << params.rate << " layout [" << layout.rows
                      << ", " << layout.cols << "] offset "
                      << layout.logicalOffset << " stride "
                      << layout.logicalRowStride << ": element (" << r << ", "
                      << c << ") is " << out[e] << ", expected " << expected;
    }
  EXPECT_EQ(mismatches, 0);
}

TEST(Dropout, BulkMaskMatchesPerElementDefinition) {
  uint32_t seed = 100;
  for (double rate : {0.1, 0.5}) {
    const DropoutParams params{rate, 0x5eed0000beefull, 3, 41, true};
    // Contiguous: odd sizes, unaligned offsets, sizes around the chunk and
    // the threading threshold.
    for (int64_t count : {1, 3, 7, 61, 2047, 2049, 4099, 32769, 131075})
      for (int64_t offset : {0, 1, 2, 3, 4093})
        expectMatchesPerElementMask(
            params, contiguousDropoutLayout(count, offset), ++seed);
    // Shards of the last dimension of a [rows, cols * shards] tensor: rows
    // strided in the logical tensor, each starting at an unaligned index.
    for (int64_t shards : {2, 3})
      for (int64_t localCols : {5, 37, 2050})
        for (int64_t shard = 0; shard < shards; ++shard) {
          const int64_t rows = localCols > 1000 ? 9 : 257;
          const DropoutLayout layout{rows, localCols, shard * localCols,
                                     shards * localCols};
          expectMatchesPerElementMask(params, layout, ++seed);
        }
    // A shard of a tensor that is itself at a nonzero logical offset.
    expectMatchesPerElementMask(params, {33, 131, 17, 3 * 131 + 1}, ++seed);
  }
}

TEST(Dropout, RateJustBelowOneDropsEverything) {
  // ceil(rate * 2^32) = 2^32 here, which no 32-bit value reaches.
  const DropoutParams params{1.0 - 1e-12, 1, 1, 1, true};
  const std::vector<float> x(100, 1.0f);
  std::vector<float> out(100, 1.0f);
  dropoutForward(params, contiguousDropoutLayout(100), x.data(), out.data());
  for (int64_t i = 0; i < 100; ++i) {
    EXPECT_EQ(out[i], 0.0f);
    EXPECT_FALSE(dropoutKeeps(params, i));
  }
}

TEST(Dropout, EvaluationAndEdgeRates) {
  const std::vector<float> x = {1, -2, 3, -4};
  std::vector<float> out(4);
  dropoutForward({0.5, 1, 1, 1, false}, contiguousDropoutLayout(4), x.data(),
                 out.data());
  EXPECT_EQ(out, x);
  dropoutForward({0.0, 1, 1, 1, true}, contiguousDropoutLayout(4), x.data(),
                 out.data());
  EXPECT_EQ(out, x);
  dropoutForward({1.0, 1, 1, 1, true}, contiguousDropoutLayout(4), x.data(),
                 out.data());
  for (float v : out)
    EXPECT_EQ(v, 0.0f);
}

} // namespace
} // namespace dense
} // namespace moert
