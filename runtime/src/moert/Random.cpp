//===- Random.cpp - Random bits in bulk, one Philox block per 4 numbers
//----===//
//
// randomBitsRange fills a run of consecutive elements of a stream. Element
// i is lane i % 4 of Philox block i / 4 (Random.h), so a run of n elements
// needs about n / 4 blocks, each computed once, where the per-element
// randomBits computes a whole block to use one lane of it.
//
// The x86 kernels run 8 (AVX2) or 16 (AVX-512) blocks at once in
// structure-of-arrays form: vector w holds counter word w of every block,
// the 32x32 -> 64-bit multiplies use vpmuludq on the even lanes and on the
// odd lanes shifted down, and a transpose at the end writes the blocks in
// element order. All kernels compute the same bijection, so every kernel
// returns exactly randomBits(source, firstIndex + k); the fastest one the
// CPU supports is picked once, at the first call.
//
//===----------------------------------------------------------------------===//
#include "moert/Random.h"

#include <algorithm>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__)
#define MOERT_RANDOM_X86_VARIANTS 1
// GCC 12's AVX-512 intrinsics trip -Wuninitialized on their own
// _mm512_undefined_epi32 (GCC bug 105593, fixed in 12.3).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

namespace moert {

namespace {

constexpr uint32_t kMultiplier0 = 0xD2511F53u;
constexpr uint32_t kMultiplier1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u;
constexpr uint32_t kWeyl1 = 0xBB67AE85u;
constexpr int kRounds = 10;

/// What every block of a run shares: the key schedule of the 10 rounds and
/// counter words 2 and 3.
struct BlockRun {
  uint32_t roundKey0[kRounds];
  uint32_t roundKey1[kRounds];
  uint32_t stream;
  uint32_t step;
};

BlockRun blockRunOf(const RandomStream &source) {
  BlockRun run;
  uint32_t key0 = static_cast<uint32_t>(source.seed);
  uint32_t key1 = static_cast<uint32_t>(source.seed >> 32);
  for (int round = 0; round < kRounds; ++round) {
    run.roundKey0[round] = key0;
    run.roundKey1[round] = key1;
    key0 += kWeyl0;
    key1 += kWeyl1;
  }
  run.stream = source.stream;
  run.step = source.step;
  return run;
}

/// Writes the 4 words of each of `Blocks` consecutive blocks starting at
/// `firstBlock` to out[0, 4 * Blocks).
using GroupKernel = void (*)(const BlockRun &, uint64_t firstBlock,
                             uint32_t *out);

void groupScalar(const BlockRun &run, uint64_t firstBlock, uint32_t *out) {
  const PhiloxCounter bits = philox4x32x10(
      {static_cast<uint32_t>(firstBlock),
       static_cast<uint32_t>(firstBlock >> 32), run.stream, run.step},
      {run.roundKey0[0], run.roundKey1[0]});
  std::memcpy(out, bits.data(), sizeof(bits));
}

#ifdef MOERT_RANDOM_X86_VARIANTS
// Counter word w of block firstBlock + j is lane j of vector w.
__attribute__((target("avx2"))) void
groupAvx2(const BlockRun &run, uint64_t firstBlock, uint32_t *out) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i baseLow = _mm256_set1_epi32(static_cast<int>(firstBlock));
  const __m256i baseHigh =
      _mm256_set1_epi32(static_cast<int>(firstBlock >> 32));
  __m256i c0 = _mm256_add_epi32(baseLow, lane);
  // The low word wrapped iff it came out below the base (unsigned); AVX2
  // compares signed only, so flip the sign bits first. The mask is -1
  // where a carry goes into the high word.
  const __m256i signBit = _mm256_set1_epi32(static_cast<int>(0x80000000u));
  const __m256i carry = _mm256_cmpgt_epi32(_mm256_xor_si256(baseLow, signBit),
                                           _mm256_xor_si256(c0, signBit));
  __m256i c1 = _mm256_sub_epi32(baseHigh, carry);
  __m256i c2 = _mm256_set1_epi32(static_cast<int>(run.stream));
  __m256i c3 = _mm256_set1_epi32(static_cast<int>(run.step));
  const __m256i multiplier0 = _mm256_set1_epi32(static_cast<int>(kMultiplier0));
  const __m256i multiplier1 = _mm256_set1_epi32(static_cast<int>(kMultiplier1));
  for (int round = 0; round < kRounds; ++round) {
    // 64-bit products of the even lanes and of the odd lanes.
    const __m256i even0 = _mm256_mul_epu32(c0, multiplier0);
    const __m256i odd0 =
        _mm256_mul_epu32(_mm256_srli_epi64(c0, 32), multiplier0);
    const __m256i even1 = _mm256_mul_epu32(c2, multiplier1);
    const __m256i odd1 =
        _mm256_mul_epu32(_mm256_srli_epi64(c2, 32), multiplier1);
    const __m256i high0 =
        _mm256_blend_epi32(_mm256_srli_epi64(even0, 32), odd0, 0xAA);
    const __m256i low0 =
        _mm256_blend_epi32(even0, _mm256_slli_epi64(odd0, 32), 0xAA);
    const __m256i high1 =
        _mm256_blend_epi32(_mm256_srli_epi64(even1, 32), odd1, 0xAA);
    const __m256i low1 =
        _mm256_blend_epi32(even1, _mm256_slli_epi64(odd1, 32), 0xAA);
    const __m256i key0 =
        _mm256_set1_epi32(static_cast<int>(run.roundKey0[round]));
    const __m256i key1 =
        _mm256_set1_epi32(static_cast<int>(run.roundKey1[round]));
    c0 = _mm256_xor_si256(_mm256_xor_si256(high1, c1), key0);
    c1 = low1;
    c2 = _mm256_xor_si256(_mm256_xor_si256(high0, c3), key1);
    c3 = low0;
  }
  // Transpose to element order. After the two unpack steps, 128-bit lane L
  // of blocksN holds block 4 L + N.
  const __m256i words01Low = _mm256_unpacklo_epi32(c0, c1);
  const __m256i words01High = _mm256_unpackhi_epi32(c0, c1);
  const __m256i words23Low = _mm256_unpacklo_epi32(c2, c3);
  const __m256i words23High = _mm256_unpackhi_epi32(c2, c3);
  const __m256i blocks0 = _mm256_unpacklo_epi64(words01Low, words23Low);
  const __m256i blocks1 = _mm256_unpackhi_epi64(words01Low, words23Low);
  const __m256i blocks2 = _mm256_unpacklo_epi64(words01High, words23High);
  const __m256i blocks3 = _mm256_unpackhi_epi64(words01High, words23High);
  __m256i *dst = reinterpret_cast<__m256i *>(out);
  _mm256_storeu_si256(dst + 0,
                      _mm256_permute2x128_si256(blocks0, blocks1, 0x20));
  _mm256_storeu_si256(dst + 1,
                      _mm256_permute2x128_si256(blocks2, blocks3, 0x20));
  _mm256_storeu_si256(dst + 2,
                      _mm256_permute2x128_si256(blocks0, blocks1, 0x31));
  _mm256_storeu_si256(dst + 3,
                      _mm256_permute2x128_si256(blocks2, blocks3, 0x31));
}

__attribute__((target("avx512f"))) void
groupAvx512(const BlockRun &run, uint64_t firstBlock, uint32_t *out) {
  const __m512i lane =
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i baseLow = _mm512_set1_epi32(static_cast<int>(firstBlock));
  const __m512i baseHigh =
      _mm512_set1_epi32(static_cast<int>(firstBlock >> 32));
  __m512i c0 = _mm512_add_epi32(baseLow, lane);
  const __mmask16 carry = _mm512_cmplt_epu32_mask(c0, baseLow);
  __m512i c1 =
      _mm512_mask_add_epi32(baseHigh, carry, baseHigh, _mm512_set1_epi32(1));
  __m512i c2 = _mm512_set1_epi32(static_cast<int>(run.stream));
  __m512i c3 = _mm512_set1_epi32(static_cast<int>(run.step));
  const __m512i multiplier0 = _mm512_set1_epi32(static_cast<int>(kMultiplier0));
  const __m512i multiplier1 = _mm512_set1_epi32(static_cast<int>(kMultiplier1));
  constexpr __mmask16 kOddLanes = 0xAAAA;
  // 0x96 is the truth table of a ^ b ^ c.
  constexpr int kXor3 = 0x96;
  for (int round = 0; round < kRounds; ++round) {
    const __m512i even0 = _mm512_mul_epu32(c0, multiplier0);
    const __m512i odd0 =
        _mm512_mul_epu32(_mm512_srli_epi64(c0, 32), multiplier0);
    const __m512i even1 = _mm512_mul_epu32(c2, multiplier1);
    const __m512i odd1 =
        _mm512_mul_epu32(_mm512_srli_epi64(c2, 32), multiplier1);
    const __m512i high0 =
        _mm512_mask_blend_epi32(kOddLanes, _mm512_srli_epi64(even0, 32), odd0);
    const __m512i low0 =
        _mm512_mask_blend_epi32(kOddLanes, even0, _mm512_slli_epi64(odd0, 32));
    const __m512i high1 =
        _mm512_mask_blend_epi32(kOddLanes, _mm512_srli_epi64(even1, 32), odd1);
    const __m512i low1 =
        _mm512_mask_blend_epi32(kOddLanes, even1, _mm512_slli_epi64(odd1, 32));
    const __m512i key0 =
        _mm512_set1_epi32(static_cast<int>(run.roundKey0[round]));
    const __m512i key1 =
        _mm512_set1_epi32(static_cast<int>(run.roundKey1[round]));
    c0 = _mm512_ternarylogic_epi32(high1, c1, key0, kXor3);
    c1 = low1;
    c2 = _mm512_ternarylogic_epi32(high0, c3, key1, kXor3);
    c3 = low0;
  }
  // Transpose to element order: after the unpacks 128-bit lane L of blocksN
  // holds block 4 L + N; the two shuffle steps then transpose the 4 x 4
  // matrix of 128-bit lanes.
  const __m512i words01Low = _mm512_unpacklo_epi32(c0, c1);
  const __m512i words01High = _mm512_unpackhi_epi32(c0, c1);
  const __m512i words23Low = _mm512_unpacklo_epi32(c2, c3);
  const __m512i words23High = _mm512_unpackhi_epi32(c2, c3);
  const __m512i blocks0 = _mm512_unpacklo_epi64(words01Low, words23Low);
  const __m512i blocks1 = _mm512_unpackhi_epi64(words01Low, words23Low);
  const __m512i blocks2 = _mm512_unpacklo_epi64(words01High, words23High);
  const __m512i blocks3 = _mm512_unpackhi_epi64(words01High, words23High);
  // (b0.L0, b0.L1, b1.L0, b1.L1) and so on.
  const __m512i half01Low = _mm512_shuffle_i32x4(blocks0, blocks1, 0x44);
  const __m512i half23Low = _mm512_shuffle_i32x4(blocks2, blocks3, 0x44);
  const __m512i half01High = _mm512_shuffle_i32x4(blocks0, blocks1, 0xEE);
  const __m512i half23High = _mm512_shuffle_i32x4(blocks2, blocks3, 0xEE);
  _mm512_storeu_si512(out + 0,
                      _mm512_shuffle_i32x4(half01Low, half23Low, 0x88));
  _mm512_storeu_si512(out + 16,
                      _mm512_shuffle_i32x4(half01Low, half23Low, 0xDD));
  _mm512_storeu_si512(out + 32,
                      _mm512_shuffle_i32x4(half01High, half23High, 0x88));
  _mm512_storeu_si512(out + 48,
                      _mm512_shuffle_i32x4(half01High, half23High, 0xDD));
}
#endif

struct KernelInfo {
  GroupKernel group;
  int blocksPerGroup;
};

KernelInfo kernelInfo(RandomBitsKernel kernel) {
  switch (kernel) {
#ifdef MOERT_RANDOM_X86_VARIANTS
  case RandomBitsKernel::Avx512:
    return {groupAvx512, 16};
  case RandomBitsKernel::Avx2:
    return {groupAvx2, 8};
#endif
  default:
    return {groupScalar, 1};
  }
}

/// Runs `info` over the groups of blocks covering elements
/// [firstIndex, firstIndex + count), which must not wrap around 2^64.
/// Groups inside the range are written in place; a group that sticks out at
/// either end (unaligned first index, short tail) goes through a buffer.
void rangeByGroups(KernelInfo info, const BlockRun &run, uint64_t firstIndex,
                   int64_t count, uint32_t *out) {
  const int64_t groupWords = 4 * static_cast<int64_t>(info.blocksPerGroup);
  uint64_t block = firstIndex / 4;
  // Position in `out` of the group's first word; negative when the range
  // starts inside the first block.
  int64_t position = -static_cast<int64_t>(firstIndex % 4);
  for (; position < count;
       position += groupWords, block += info.blocksPerGroup) {
    if (position >= 0 && position + groupWords <= count) {
      info.group(run, block, out + position);
      continue;
    }
    const int64_t begin = std::max<int64_t>(position, 0);
    const int64_t end = std::min<int64_t>(position + groupWords, count);
    // One or two blocks (a short row, the end of a run) cost less one by
    // one: a scalar block takes about a third of the time of a vector group
    // of 8 or 16 blocks.
    const int64_t firstBlock = (begin - position) / 4;
    const int64_t lastBlock = (end - 1 - position) / 4;
    const bool fewBlocks =
        info.blocksPerGroup > 1 && lastBlock - firstBlock < 2;
    alignas(64) uint32_t buffer[64];
    if (fewBlocks)
      for (int64_t b = firstBlock; b <= lastBlock; ++b)
        groupScalar(run, block + b, buffer + 4 * b);
    else
      info.group(run, block, buffer);
    std::memcpy(out + begin, buffer + (begin - position),
                static_cast<size_t>(end - begin) * sizeof(uint32_t));
  }
}

} // namespace

bool randomBitsKernelSupported(RandomBitsKernel kernel) {
  switch (kernel) {
  case RandomBitsKernel::Scalar:
    return true;
#ifdef MOERT_RANDOM_X86_VARIANTS
  case RandomBitsKernel::Avx2:
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
  case RandomBitsKernel::Avx512:
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
#endif
  default:
    return false;
  }
}

RandomBitsKernel bestRandomBitsKernel() {
  static const RandomBitsKernel best = [] {
    for (RandomBitsKernel kernel :
         {RandomBitsKernel::Avx512, RandomBitsKernel::Avx2})
      if (randomBitsKernelSupported(kernel))
        return kernel;
    return RandomBitsKernel::Scalar;
  }();
  return best;
}

namespace {

void rangeWithKernel(RandomBitsKernel kernel, const RandomStream &source,
                     uint64_t firstIndex, int64_t count, uint32_t *out) {
  if (count <= 0)
    return;
  const KernelInfo info = kernelInfo(kernel);
  const BlockRun run = blockRunOf(source);
  // Indices are taken mod 2^64 like randomBits does; a range that wraps
  // continues at block 0, not at block 2^62, so split it there.
  const uint64_t beforeWrap = ~firstIndex + 1; // 2^64 - firstIndex
  if (firstIndex != 0 && static_cast<uint64_t>(count) > beforeWrap) {
    rangeByGroups(info, run, firstIndex, static_cast<int64_t>(beforeWrap), out);
    rangeByGroups(info, run, 0, count - static_cast<int64_t>(beforeWrap),
                  out + beforeWrap);
    return;
  }
  rangeByGroups(info, run, firstIndex, count, out);
}

} // namespace

void randomBitsRange(RandomBitsKernel kernel, const RandomStream &source,
                     uint64_t firstIndex, int64_t count, uint32_t *out) {
  rangeWithKernel(randomBitsKernelSupported(kernel) ? kernel
                                                    : RandomBitsKernel::Scalar,
                  source, firstIndex, count, out);
}

void randomBitsRange(const RandomStream &source, uint64_t firstIndex,
                     int64_t count, uint32_t *out) {
  static const RandomBitsKernel kernel = bestRandomBitsKernel();
  rangeWithKernel(kernel, source, firstIndex, count, out);
}

} // namespace moert
