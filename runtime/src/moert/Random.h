//===- Random.h - Counter-based random numbers (Philox-4x32-10) ---------===//
//
// Every random number of the runtime (dropout masks, gate noise, Random
// Token Selection priorities) is a pure function
//     value = f(key = seed, counter = (element index, stream, step))
// computed with the Philox-4x32-10 bijection (Salmon, Moraes, Dror, Shaw,
// "Parallel random numbers: as easy as 1, 2, 3", SC'11). There is no
// generator state: the number for global element i of a stream does not
// depend on which process, thread or shard computes it, nor on what was drawn
// before, so a partitioned run sees exactly the randomness of the 1-rank run.
//
// Counter layout: one Philox call yields four 32-bit words, so element i
// uses lane i % 4 of the block whose counter is
//     (block = i / 4 as 64 bits [words 0, 1], stream [word 2], step [word 3])
// and the key is the 64-bit seed. `stream` names the consumer (one per
// random op of the model, assigned by the compiler) and `step` the training
// step, so every op and every step draws fresh numbers.
//
// Consumers of many consecutive elements (dropout masks, per-token gate
// noise) should draw them with randomBitsRange, which computes each block
// once for its 4 elements and uses SIMD where the CPU has it; the values
// are those of randomBits, element by element.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_RANDOM_H
#define MOERT_RANDOM_H

#include "moert/HostDevice.h"

#include <array>
#include <cmath>
#include <cstdint>

namespace moert {

using PhiloxCounter = std::array<uint32_t, 4>;
using PhiloxKey = std::array<uint32_t, 2>;

/// The Philox-4x32 bijection with 10 rounds, the parameters of Random123
/// (multipliers 0xD2511F53 / 0xCD9E8D57, Weyl increments 0x9E3779B9 /
/// 0xBB67AE85).
MOERT_HOST_DEVICE inline PhiloxCounter philox4x32x10(PhiloxCounter counter, PhiloxKey key) {
  constexpr uint64_t kMultiplier0 = 0xD2511F53u;
  constexpr uint64_t kMultiplier1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u;
  constexpr uint32_t kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const uint64_t product0 = kMultiplier0 * counter[0];
    const uint64_t product1 = kMultiplier1 * counter[2];
    counter = {static_cast<uint32_t>(product1 >> 32) ^ counter[1] ^ key[0],
               static_cast<uint32_t>(product1),
               static_cast<uint32_t>(product0 >> 32) ^ counter[3] ^ key[1],
               static_cast<uint32_t>(product0)};
    // The key schedule is bumped between rounds; after the last round the
    // bumped key is unused, which matches the reference implementation.
    key[0] += kWeyl0;
    key[1] += kWeyl1;
  }
  return counter;
}

/// Where a consumer's numbers come from: the run's seed, the consumer's
/// stream id and the step.
struct RandomStream {
  uint64_t seed = 0;
  uint32_t stream = 0;
  uint32_t step = 0;
};

/// 32 uniformly distributed bits for global element `index`.
MOERT_HOST_DEVICE inline uint32_t randomBits(const RandomStream &source, uint64_t index) {
  const uint64_t block = index / 4;
  const PhiloxCounter bits = philox4x32x10(
      {static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
       source.stream, source.step},
      {static_cast<uint32_t>(source.seed),
       static_cast<uint32_t>(source.seed >> 32)});
  return bits[index % 4];
}

/// Bulk generation, defined in Random.cpp (moert library; the rest of this
/// header is inline). The vector kernels compute 8 or 16 Philox blocks at
/// once; all kernels give the same bits.
enum class RandomBitsKernel { Scalar, Avx2, Avx512 };

/// Whether this build and CPU can run `kernel` (Scalar always can).
bool randomBitsKernelSupported(RandomBitsKernel kernel);

/// The kernel randomBitsRange uses: the widest supported one.
RandomBitsKernel bestRandomBitsKernel();

/// out[k] = randomBits(source, firstIndex + k) for k in [0, count), for any
/// firstIndex (not only multiples of 4) and count >= 0, computing each
/// Philox block once.
void randomBitsRange(const RandomStream &source, uint64_t firstIndex,
                     int64_t count, uint32_t *out);

/// The same numbers with a given kernel (Scalar where `kernel` is not
/// supported), for tests and benchmarks.
void randomBitsRange(RandomBitsKernel kernel, const RandomStream &source,
                     uint64_t firstIndex, int64_t count, uint32_t *out);

/// Maps 32 random bits to a float uniform in [0, 1): the top 24 bits scaled
/// by 2^-24, so every value is exactly representable and 1.0 never occurs
/// (a plain bits * 2^-32 would round up to 1.0f for the largest inputs).
MOERT_HOST_DEVICE inline float bitsToUniform(uint32_t bits) {
  return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f);
}

/// Uniform in [0, 1) for global element `index`.
MOERT_HOST_DEVICE inline float uniform01(const RandomStream &source, uint64_t index) {
  return bitsToUniform(randomBits(source, index));
}

/// Uniform in [low, high) for global element `index`.
MOERT_HOST_DEVICE inline float uniformRange(const RandomStream &source, uint64_t index, float low,
                          float high) {
  return low + (high - low) * uniform01(source, index);
}

/// u in (0, 1) from 32 random bits: the top 23 bits plus one half, scaled
/// by 2^-23. Every value is exact in float (24 significant bits), so u is
/// never 0 and never rounds up to 1; with 24 bits the largest value,
/// (2^24 - 1/2) 2^-24, would round to 1.0f.
MOERT_HOST_DEVICE inline float bitsToOpenUniform(uint32_t bits) {
  return (static_cast<float>(bits >> 9) + 0.5f) * (1.0f / 8388608.0f);
}

/// Standard Gumbel sample -log(-log(u)) for global element `index`, with
/// u = bitsToOpenUniform(bits) in (0, 1), so the result is always finite:
/// within about [-2.8, 16.6].
MOERT_HOST_DEVICE inline float gumbel(const RandomStream &source, uint64_t index) {
  const float u = bitsToOpenUniform(randomBits(source, index));
  return -std::log(-std::log(u));
}

} // namespace moert

#endif // MOERT_RANDOM_H
