//===- Half.h - bfloat16 / IEEE half conversions (host and device) --------===//
//
// The 16-bit floating-point formats of mixed-precision training, as bit
// patterns in uint16_t:
//   bf16: 1 sign, 8 exponent, 7 mantissa bits (the upper half of an fp32);
//   f16:  1 sign, 5 exponent, 10 mantissa bits (IEEE 754 binary16, largest
//         finite 65504, smallest subnormal 2^-24).
// Conversions from fp32 round to nearest, ties to even, as the GPU's
// conversion instructions and PyTorch's `.to(torch.bfloat16 / float16)` do:
// values beyond the largest finite number round to infinity (f16: from
// 65520 on), values below half the smallest subnormal to a signed zero,
// subnormals are kept. NaN stays NaN with PyTorch's encodings (bf16 0x7FC0,
// f16 sign | 0x7E00), so results can be compared bit for bit. Conversions
// to fp32 are exact.
//
// The functions are plain integer arithmetic on the fp32 bits, usable from
// host code and from CUDA device code (MOERT_HOST_DEVICE expands to
// `__host__ __device__` under nvcc and to nothing otherwise).
//
// ComputeType names the precision of a GEMM's inputs (the `compute_type`
// attribute of a plan instruction: "f32", "bf16", "f16"); roundToCompute
// rounds an fp32 value to the nearest value of that format, which is how the
// CPU backend emulates a bf16/fp16 GEMM with fp32 accumulation.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_HALF_H
#define MOERT_HALF_H

#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__CUDACC__)
#define MOERT_HOST_DEVICE __host__ __device__
#else
#define MOERT_HOST_DEVICE
#endif

namespace moert {

/// The input precision of a GEMM (accumulation is always fp32).
enum class ComputeType : uint8_t { F32 = 0, BF16 = 1, F16 = 2 };

/// The plan spelling: "f32", "bf16", "f16".
inline const char *computeTypeName(ComputeType type) {
  switch (type) {
  case ComputeType::BF16:
    return "bf16";
  case ComputeType::F16:
    return "f16";
  case ComputeType::F32:
    break;
  }
  return "f32";
}

/// Parses the plan spelling; false (and `type` unchanged) for anything else.
inline bool parseComputeType(const char *name, ComputeType &type) {
  if (std::strcmp(name, "f32") == 0)
    type = ComputeType::F32;
  else if (std::strcmp(name, "bf16") == 0)
    type = ComputeType::BF16;
  else if (std::strcmp(name, "f16") == 0)
    type = ComputeType::F16;
  else
    return false;
  return true;
}

MOERT_HOST_DEVICE inline uint32_t floatToBits(float value) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(value);
#else
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
#endif
}

MOERT_HOST_DEVICE inline float bitsToFloat(uint32_t bits) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
#endif
}

//===----------------------------------------------------------------------===//
// bfloat16
//===----------------------------------------------------------------------===//

/// fp32 -> bf16, round to nearest even.
MOERT_HOST_DEVICE inline uint16_t floatToBf16Bits(float value) {
  uint32_t bits = floatToBits(value);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u)
    return 0x7FC0u; // NaN
  // Adding 0x7FFF rounds the upper half up when the dropped half exceeds
  // 0x8000; the extra 1 for an odd upper half turns ties to even. A carry
  // out of the mantissa increments the exponent (and overflows to inf).
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

/// bf16 -> fp32 (exact).
MOERT_HOST_DEVICE inline float bf16BitsToFloat(uint16_t bits) {
  return bitsToFloat(static_cast<uint32_t>(bits) << 16);
}

//===----------------------------------------------------------------------===//
// IEEE half
//===----------------------------------------------------------------------===//

/// fp32 -> f16, round to nearest even; overflow gives infinity.
MOERT_HOST_DEVICE inline uint16_t floatToF16Bits(float value) {
  const uint32_t bits = floatToBits(value);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7FFFFFFFu;
  if (magnitude > 0x7F800000u)
    return sign | 0x7E00u; // NaN
  if (magnitude >= 0x47800000u)
    return sign | 0x7C00u; // >= 2^16 (and inf): beyond every rounding
  if (magnitude >= 0x38800000u) {
    // Normal half (>= 2^-14): rebias the exponent (127 -> 15) and round
    // the 13 dropped mantissa bits to nearest even; a carry runs into the
    // exponent, up to 0x7C00 = inf for [65520, 65536).
    uint32_t rebased = magnitude - 0x38000000u;
    rebased += 0xFFFu + ((rebased >> 13) & 1u);
    return sign | static_cast<uint16_t>(rebased >> 13);
  }
  if (magnitude <= 0x33000000u)
    return sign; // <= 2^-25, half the smallest subnormal: ties to zero
  // Subnormal half: the value in units of 2^-24 is m * 2^(e - 126) with
  // the 24-bit significand m and biased exponent e in [102, 112].
  const uint32_t exponent = magnitude >> 23;
  const uint32_t significand = (magnitude & 0x7FFFFFu) | 0x800000u;
  const uint32_t shift = 126u - exponent; // 14 .. 24
  uint32_t quotient = significand >> shift;
  const uint32_t remainder = significand & ((1u << shift) - 1u);
  const uint32_t halfway = 1u << (shift - 1u);
  if (remainder > halfway || (remainder == halfway && (quotient & 1u)))
    ++quotient; // may become 0x400, the smallest normal: still correct
  return sign | static_cast<uint16_t>(quotient);
}

/// f16 -> fp32 (exact; NaN payloads are kept).
MOERT_HOST_DEVICE inline float f16BitsToFloat(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t exponent = (half >> 10) & 0x1Fu;
  uint32_t mantissa = half & 0x3FFu;
  if (exponent == 0x1Fu)
    return bitsToFloat(sign | 0x7F800000u | (mantissa << 13));
  if (exponent != 0)
    return bitsToFloat(sign | ((exponent + 112u) << 23) | (mantissa << 13));
  if (mantissa == 0)
    return bitsToFloat(sign);
  // Subnormal: normalize (value = mantissa * 2^-24).
  uint32_t biased = 113u;
  while (!(mantissa & 0x400u)) {
    mantissa <<= 1;
    --biased;
  }
  return bitsToFloat(sign | (biased << 23) | ((mantissa & 0x3FFu) << 13));
}

//===----------------------------------------------------------------------===//
// Rounding for emulated low-precision GEMMs
//===----------------------------------------------------------------------===//

/// The fp32 value nearest to `value` that `type` can represent (the value
/// a bf16/f16 GEMM input holds); identity for F32.
MOERT_HOST_DEVICE inline float roundToCompute(ComputeType type, float value) {
  switch (type) {
  case ComputeType::BF16:
    return bf16BitsToFloat(floatToBf16Bits(value));
  case ComputeType::F16:
    return f16BitsToFloat(floatToF16Bits(value));
  case ComputeType::F32:
    break;
  }
  return value;
}

/// to[i] = roundToCompute(type, from[i]) for i < count (to may equal from).
inline void roundArrayToCompute(ComputeType type, int64_t count,
                                const float *from, float *to) {
  if (type == ComputeType::F32) {
    if (to != from)
      std::memcpy(to, from, static_cast<size_t>(count) * sizeof(float));
    return;
  }
#pragma omp parallel for schedule(static) if (count > (int64_t{1} << 18))
  for (int64_t i = 0; i < count; ++i)
    to[i] = roundToCompute(type, from[i]);
}

/// An operand as a GEMM of `type` reads it: the data itself for F32 (or
/// null data), else a copy rounded to `type`, owned by this object. Host
/// only: the CPU backend's emulation of reduced-precision GEMMs.
class RoundedCopy {
public:
  RoundedCopy(ComputeType type, int64_t count, const float *data)
      : data_(data) {
    if (type == ComputeType::F32 || !data)
      return;
    copy_.resize(static_cast<size_t>(count));
    roundArrayToCompute(type, count, data, copy_.data());
    data_ = copy_.data();
  }
  const float *get() const { return data_; }

private:
  const float *data_;
  std::vector<float> copy_;
};

} // namespace moert

#endif // MOERT_HALF_H
