//===- DropoutMask.h - Counter-based random bits for the dropout mask -----===//
//
// The one place where dropout draws its random numbers: 32 random bits for
// logical element `index` of a dropout keyed by (seed, stream, step). Being a
// pure function of those four values, the mask of an element does not depend
// on how the tensor is partitioned or on the thread that computes it.
//
// Philox-4x32-10 (Salmon et al., SC'11): key = seed, counter =
// (index / 4 as 64 bits, stream, step); lane index % 4 of the output block.
// This is a local implementation because the runtime's shared generator
// (moert/Random.h, owned by the runtime core) did not exist when the dense
// kernels were written; switching means replacing the body of
// dropoutRandomBits with a call to it (the dense tests pin only statistical
// properties and partition independence, not the exact bits).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_DENSE_DROPOUTMASK_H
#define MOERT_DENSE_DROPOUTMASK_H

#include <array>
#include <cstdint>

namespace moert {
namespace dense {
namespace detail {

inline std::array<uint32_t, 4> philox4x32x10(std::array<uint32_t, 4> counter,
                                             std::array<uint32_t, 2> key) {
  constexpr uint64_t kMultiplier0 = 0xD2511F53u, kMultiplier1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const uint64_t product0 = kMultiplier0 * counter[0];
    const uint64_t product1 = kMultiplier1 * counter[2];
    counter = {static_cast<uint32_t>(product1 >> 32) ^ counter[1] ^ key[0],
               static_cast<uint32_t>(product1),
               static_cast<uint32_t>(product0 >> 32) ^ counter[3] ^ key[1],
               static_cast<uint32_t>(product0)};
    key[0] += kWeyl0;
    key[1] += kWeyl1;
  }
  return counter;
}

} // namespace detail

/// 32 uniformly distributed bits for logical element `index`.
inline uint32_t dropoutRandomBits(uint64_t seed, uint64_t stream, uint64_t step,
                                  uint64_t index) {
  const uint64_t block = index / 4;
  const std::array<uint32_t, 4> bits = detail::philox4x32x10(
      {static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
       static_cast<uint32_t>(stream), static_cast<uint32_t>(step)},
      {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
  return bits[index % 4];
}

} // namespace dense
} // namespace moert

#endif // MOERT_DENSE_DROPOUTMASK_H
