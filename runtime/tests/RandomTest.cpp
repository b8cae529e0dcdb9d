//===- RandomTest.cpp - Philox-4x32-10 and the derived distributions ----===//
#include "moert/Random.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace moert {
namespace {

// Known-answer vectors of Random123 (kat_vectors, philox4x32 with 10
// rounds): counter, key -> output.
TEST(Philox, KnownAnswerZero) {
  PhiloxCounter out = philox4x32x10({0, 0, 0, 0}, {0, 0});
  EXPECT_EQ(
      out, (PhiloxCounter{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
}

TEST(Philox, KnownAnswerAllOnes) {
  PhiloxCounter out =
      philox4x32x10({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
                    {0xffffffffu, 0xffffffffu});
  EXPECT_EQ(
      out, (PhiloxCounter{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
}

TEST(Philox, KnownAnswerPi) {
  PhiloxCounter out =
      philox4x32x10({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
                    {0xa4093822u, 0x299f31d0u});
  EXPECT_EQ(
      out, (PhiloxCounter{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
}

TEST(Philox, ElementMapsToBlockLane) {
  // Element i is lane i % 4 of block i / 4 with (stream, step) in words 2, 3
  // and the seed as the key.
  RandomStream source{0x0123456789abcdefull, 7, 11};
  const uint64_t index = 4 * 1000003ull + 2;
  PhiloxCounter block =
      philox4x32x10({1000003u, 0u, 7u, 11u}, {0x89abcdefu, 0x01234567u});
  EXPECT_EQ(randomBits(source, index), block[2]);
}

TEST(Philox, IndependentOfPartitioning) {
  // A "shard" computing elements [500, 1000) of a stream gets the same
  // numbers as one process computing all of them, in any order.
  RandomStream source{42, 3, 5};
  std::vector<float> whole(1000);
  for (uint64_t i = 0; i < 1000; ++i)
    whole[i] = uniform01(source, i);
  for (uint64_t i = 999; i >= 500; --i)
    EXPECT_EQ(uniform01(source, i), whole[i]);
}

TEST(Philox, StreamsStepsAndSeedsDiffer) {
  const uint32_t base = randomBits({1, 2, 3}, 10);
  EXPECT_NE(randomBits({2, 2, 3}, 10), base);
  EXPECT_NE(randomBits({1, 3, 3}, 10), base);
  EXPECT_NE(randomBits({1, 2, 4}, 10), base);
  EXPECT_NE(randomBits({1, 2, 3}, 11), base);
}

// The bulk generator against the per-element definition, with every kernel
// this CPU runs (the scalar one always).
std::vector<RandomBitsKernel> supportedKernels() {
  std::vector<RandomBitsKernel> kernels;
  for (RandomBitsKernel kernel :
       {RandomBitsKernel::Scalar, RandomBitsKernel::Avx2,
        RandomBitsKernel::Avx512})
    if (randomBitsKernelSupported(kernel))
      kernels.push_back(kernel);
  return kernels;
}

const char *kernelName(RandomBitsKernel kernel) {
  switch (kernel) {
  case RandomBitsKernel::Scalar:
    return "scalar";
  case RandomBitsKernel::Avx2:
    return "avx2";
  case RandomBitsKernel::Avx512:
    return "avx512";
  }
  return "?";
}

// Fills a guarded buffer with the kernel and checks every word against
// randomBits and that nothing outside [0, count) was written.
void expectRangeMatches(RandomBitsKernel kernel, const RandomStream &source,
                        uint64_t firstIndex, int64_t count) {
  constexpr uint32_t kGuard = 0xdeadbeefu;
  constexpr int64_t kGuardWords = 70;
  std::vector<uint32_t> buffer(count + 2 * kGuardWords, kGuard);
  randomBitsRange(kernel, source, firstIndex, count,
                  buffer.data() + kGuardWords);
  int64_t mismatches = 0;
  for (int64_t k = 0; k < count; ++k) {
    const uint32_t expected = randomBits(source, firstIndex + k);
    if (buffer[kGuardWords + k] != expected && ++mismatches <= 3)
      ADD_FAILURE() << kernelName(kernel) << ": seed " << source.seed
                    << " stream " << source.stream << " step " << source.step
                    << " first " << firstIndex << " count " << count
                    << ": element " << k << " is " << buffer[kGuardWords + k]
                    << ", randomBits gives " << expected;
  }
  EXPECT_EQ(mismatches, 0);
  for (int64_t k = 0; k < kGuardWords; ++k) {
    EXPECT_EQ(buffer[k], kGuard) << kernelName(kernel) << " wrote before";
    EXPECT_EQ(buffer[kGuardWords + count + k], kGuard)
        << kernelName(kernel) << " wrote after";
  }
}

TEST(RandomBitsRange, ShortRangesAtEveryAlignment) {
  const RandomStream sources[] = {
      {0, 0, 0}, {42, 3, 5}, {0xfedcba9876543210ull, 0xffffffffu, 0x80000000u}};
  for (RandomBitsKernel kernel : supportedKernels())
    for (const RandomStream &source : sources)
      for (uint64_t first = 0; first < 70; ++first)
        for (int64_t count = 0; count <= 40; ++count)
          expectRangeMatches(kernel, source, first, count);
}

TEST(RandomBitsRange, CarryIntoTheHighCounterWord) {
  // Blocks 2^32 - 1 and 2^32 differ in both low words: runs across that
  // boundary at every alignment and in every position within a vector.
  const RandomStream source{0x0123456789abcdefull, 7, 11};
  const uint64_t boundary = 4ull << 32; // first element of block 2^32
  for (RandomBitsKernel kernel : supportedKernels())
    for (uint64_t before = 0; before <= 70; ++before)
      for (int64_t count : {1, 5, 17, 64, 67, 150})
        expectRangeMatches(kernel, source, boundary - before, count);
  // The same at the high word's own carry (block 2^64 / 4 - 1 is the last).
  for (RandomBitsKernel kernel : supportedKernels())
    for (uint64_t before = 1; before <= 40; ++before)
      expectRangeMatches(kernel, source, (8ull << 32) - before, 90);
}

TEST(RandomBitsRange, WrapsAroundLikeTheIndex) {
  // randomBits takes the index mod 2^64: the element after 2^64 - 1 is 0.
  const RandomStream source{5, 6, 7};
  for (RandomBitsKernel kernel : supportedKernels())
    for (uint64_t before = 1; before <= 9; ++before)
      expectRangeMatches(kernel, source, 0 - before, 30);
}

TEST(RandomBitsRange, LargeRangesManyKeys) {
  std::mt19937_64 rng(2024);
  for (RandomBitsKernel kernel : supportedKernels())
    for (int trial = 0; trial < 12; ++trial) {
      const RandomStream source{rng(), static_cast<uint32_t>(rng()),
                                static_cast<uint32_t>(rng())};
      const uint64_t first =
          trial % 3 == 0 ? rng() % 64 : rng() >> (trial % 2 ? 1 : 30);
      const int64_t count = 20000 + static_cast<int64_t>(rng() % 50000);
      expectRangeMatches(kernel, source, first, count);
    }
}

TEST(RandomBitsRange, DefaultKernelIsTheBestSupported) {
  EXPECT_TRUE(randomBitsKernelSupported(bestRandomBitsKernel()));
  EXPECT_EQ(bestRandomBitsKernel(), supportedKernels().back());
  const RandomStream source{99, 1, 2};
  std::vector<uint32_t> bits(1001);
  randomBitsRange(source, 3, 1001, bits.data());
  for (int64_t k = 0; k < 1001; ++k)
    ASSERT_EQ(bits[k], randomBits(source, 3 + k)) << k;
}

TEST(Uniform, EndpointsOfTheMapping) {
  EXPECT_EQ(bitsToUniform(0u), 0.0f);
  EXPECT_LT(bitsToUniform(0xffffffffu), 1.0f);
  EXPECT_GT(bitsToUniform(0xffffffffu), 0.9999f);
}

// For n i.i.d. U(0,1): mean 1/2, variance 1/12. With n = 2^20 the standard
// error of the mean is sqrt(1/12/n) ~ 2.8e-4 and of the variance ~ 7.3e-5
// (sqrt(1/180/n)); the bounds below are ~7 standard errors, which a wrong
// mapping (e.g. a bias of one lane or a truncated range) exceeds by far.
// The seed is fixed, so the test is deterministic.
TEST(Uniform, MeanAndVarianceFixedSeed) {
  const uint64_t n = 1u << 20;
  RandomStream source{20240917, 1, 0};
  double sum = 0.0, sumSquares = 0.0;
  float low = 1.0f, high = 0.0f;
  std::vector<int> histogram(16, 0);
  for (uint64_t i = 0; i < n; ++i) {
    const float u = uniform01(source, i);
    sum += u;
    sumSquares += static_cast<double>(u) * u;
    low = std::min(low, u);
    high = std::max(high, u);
    ++histogram[static_cast<int>(u * 16)];
  }
  const double mean = sum / n;
  const double variance = sumSquares / n - mean * mean;
  EXPECT_NEAR(mean, 0.5, 2e-3);
  EXPECT_NEAR(variance, 1.0 / 12.0, 5e-4);
  EXPECT_GE(low, 0.0f);
  EXPECT_LT(high, 1.0f);
  // Each of 16 bins holds n/16 = 65536 +- 242 (1 sd); allow 7 sd.
  for (int count : histogram)
    EXPECT_NEAR(count, 65536, 1700);
}

TEST(Uniform, RangeMapping) {
  RandomStream source{9, 0, 0};
  for (uint64_t i = 0; i < 10000; ++i) {
    const float value = uniformRange(source, i, 0.99f, 1.01f);
    EXPECT_GE(value, 0.99f);
    EXPECT_LE(value, 1.01f);
  }
}

// Standard Gumbel: mean = Euler-Mascheroni 0.5772, variance pi^2/6 = 1.645.
// With n = 2^20 the standard errors are 1.25e-3 (mean) and ~3.5e-3
// (variance, whose fourth moment is 14.6 -> sqrt((14.6 - 2.7) / n)); the
// bounds are ~8 standard errors.
TEST(Gumbel, MomentsFixedSeed) {
  const uint64_t n = 1u << 20;
  RandomStream source{77, 4, 2};
  double sum = 0.0, sumSquares = 0.0;
  for (uint64_t i = 0; i < n; ++i) {
    const float g = gumbel(source, i);
    ASSERT_TRUE(std::isfinite(g));
    sum += g;
    sumSquares += static_cast<double>(g) * g;
  }
  const double mean = sum / n;
  const double variance = sumSquares / n - mean * mean;
  EXPECT_NEAR(mean, 0.5772156649, 1e-2);
  EXPECT_NEAR(variance, M_PI * M_PI / 6.0, 3e-2);
}

// The extreme bit patterns stay inside (0, 1) and give finite noise: with
// the top 24 bits, all ones rounded u up to 1.0f and gumbel() to +inf.
TEST(Gumbel, OpenUniformExtremes) {
  for (uint32_t bits : {0u, 1u, 0x1FFu, 0x200u, 0xFFFFFE00u, 0xFFFFFFFFu}) {
    const float u = bitsToOpenUniform(bits);
    EXPECT_GT(u, 0.0f) << bits;
    EXPECT_LT(u, 1.0f) << bits;
    EXPECT_TRUE(std::isfinite(-std::log(-std::log(u)))) << bits;
  }
  EXPECT_EQ(bitsToOpenUniform(0xFFFFFFFFu), 1.0f - 0.5f / 8388608.0f);
  EXPECT_EQ(bitsToOpenUniform(0u), 0.5f / 8388608.0f);
}

} // namespace
} // namespace moert
