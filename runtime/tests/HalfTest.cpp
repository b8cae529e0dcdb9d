//===- HalfTest.cpp - bf16 / f16 conversions, exhaustively
//-----------------===//
//
// Every 16-bit pattern of both formats: decoding against an independent
// formula (ldexp), encoding the decoded value gives the pattern back, and
// every rounding boundary (the midpoint between two neighbours, and one fp32
// ulp on either side of it) rounds to nearest, ties to even. The comparison
// with PyTorch's conversions is check_half_against_torch.py.
//
//===----------------------------------------------------------------------===//
#include "moert/Half.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

using namespace moert;

namespace {

/// The value of a finite f16 pattern from its fields (IEEE 754 binary16).
double f16Value(uint16_t h) {
  int sign = (h >> 15) ? -1 : 1;
  int exponent = (h >> 10) & 0x1F;
  int mantissa = h & 0x3FF;
  if (exponent == 0)
    return sign * std::ldexp(static_cast<double>(mantissa), -24);
  return sign * std::ldexp(1.0 + mantissa / 1024.0, exponent - 15);
}

/// The value of a finite bf16 pattern from its fields.
double bf16Value(uint16_t b) {
  int sign = (b >> 15) ? -1 : 1;
  int exponent = (b >> 7) & 0xFF;
  int mantissa = b & 0x7F;
  if (exponent == 0)
    return sign * std::ldexp(static_cast<double>(mantissa), -133);
  return sign * std::ldexp(1.0 + mantissa / 128.0, exponent - 127);
}

float nextUp(float x) {
  return std::nextafter(x, std::numeric_limits<float>::infinity());
}
float nextDown(float x) {
  return std::nextafter(x, -std::numeric_limits<float>::infinity());
}

TEST(Half, F16DecodesEveryPattern) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float value = f16BitsToFloat(static_cast<uint16_t>(h));
    int exponent = (h >> 10) & 0x1F;
    if (exponent == 0x1F) {
      if (h & 0x3FF)
        ASSERT_TRUE(std::isnan(value)) << std::hex << h;
      else
        ASSERT_EQ(value, (h & 0x8000) ? -INFINITY : INFINITY) << std::hex << h;
      continue;
    }
    ASSERT_EQ(static_cast<double>(value), f16Value(static_cast<uint16_t>(h)))
        << std::hex << h;
    ASSERT_EQ(std::signbit(value), (h & 0x8000) != 0) << std::hex << h;
  }
}

TEST(Half, Bf16DecodesEveryPattern) {
  for (uint32_t b = 0; b < 0x10000; ++b) {
    float value = bf16BitsToFloat(static_cast<uint16_t>(b));
    int exponent = (b >> 7) & 0xFF;
    if (exponent == 0xFF) {
      if (b & 0x7F)
        ASSERT_TRUE(std::isnan(value)) << std::hex << b;
      else
        ASSERT_TRUE(std::isinf(value)) << std::hex << b;
      continue;
    }
    ASSERT_EQ(static_cast<double>(value), bf16Value(static_cast<uint16_t>(b)))
        << std::hex << b;
  }
}

TEST(Half, EveryPatternRoundTrips) {
  for (uint32_t p = 0; p < 0x10000; ++p) {
    uint16_t bits = static_cast<uint16_t>(p);
    float h = f16BitsToFloat(bits);
    if (std::isnan(h))
      ASSERT_EQ(floatToF16Bits(h), (bits & 0x8000) | 0x7E00) << std::hex << p;
    else
      ASSERT_EQ(floatToF16Bits(h), bits) << std::hex << p;
    float b = bf16BitsToFloat(bits);
    if (std::isnan(b))
      ASSERT_EQ(floatToBf16Bits(b), 0x7FC0) << std::hex << p;
    else
      ASSERT_EQ(floatToBf16Bits(b), bits) << std::hex << p;
  }
}

/// For every pair of neighbouring finite values lo < hi of a format (same
/// sign), the midpoint rounds to the one with an even mantissa and one fp32
/// ulp either side rounds to the nearer one.
template <typename Decode, typename Encode>
void checkMidpoints(Decode decode, Encode encode, uint16_t largestFinite) {
  for (uint32_t sign : {0u, 0x8000u}) {
    for (uint32_t p = 0; p < largestFinite; ++p) {
      uint16_t lowBits = static_cast<uint16_t>(sign | p);
      uint16_t highBits = static_cast<uint16_t>(sign | (p + 1));
      float lo = decode(lowBits), hi = decode(highBits);
      float mid = static_cast<float>((static_cast<double>(lo) + hi) / 2);
      ASSERT_EQ(static_cast<double>(mid), (static_cast<double>(lo) + hi) / 2)
          << "midpoint not exact in fp32";
      uint16_t even = (p & 1) ? highBits : lowBits;
      ASSERT_EQ(encode(mid), even) << std::hex << p << " sign " << sign;
      // Towards lo's side and hi's side by one fp32 ulp (in magnitude).
      float towardLo = sign ? nextUp(mid) : nextDown(mid);
      float towardHi = sign ? nextDown(mid) : nextUp(mid);
      ASSERT_EQ(encode(towardLo), lowBits) << std::hex << p;
      ASSERT_EQ(encode(towardHi), highBits) << std::hex << p;
    }
  }
}

TEST(Half, F16RoundsToNearestEvenAtEveryBoundary) {
  checkMidpoints(f16BitsToFloat, floatToF16Bits, 0x7BFF);
}

TEST(Half, Bf16RoundsToNearestEvenAtEveryBoundary) {
  checkMidpoints(bf16BitsToFloat, floatToBf16Bits, 0x7F7F);
}

TEST(Half, F16OverflowAndUnderflow) {
  EXPECT_EQ(floatToF16Bits(65504.0f), 0x7BFF);
  EXPECT_EQ(floatToF16Bits(nextDown(65520.0f)), 0x7BFF);
  EXPECT_EQ(floatToF16Bits(65520.0f), 0x7C00); // the tie rounds to "even" inf
  EXPECT_EQ(floatToF16Bits(-65520.0f), 0xFC00);
  EXPECT_EQ(floatToF16Bits(1e10f), 0x7C00);
  EXPECT_EQ(floatToF16Bits(std::numeric_limits<float>::max()), 0x7C00);
  EXPECT_EQ(floatToF16Bits(INFINITY), 0x7C00);
  EXPECT_EQ(floatToF16Bits(-INFINITY), 0xFC00);
  // Subnormals and the underflow threshold (2^-25 is half of 2^-24).
  EXPECT_EQ(floatToF16Bits(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(floatToF16Bits(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(floatToF16Bits(nextUp(std::ldexp(1.0f, -25))), 0x0001);
  EXPECT_EQ(floatToF16Bits(-std::ldexp(1.0f, -26)), 0x8000); // -0
  EXPECT_EQ(floatToF16Bits(std::ldexp(3.0f, -25)),
            0x0002); // 1.5 ulp: tie -> even 2
  EXPECT_EQ(floatToF16Bits(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(floatToF16Bits(nextDown(std::ldexp(1.0f, -14))),
            0x0400); // -> min normal
  EXPECT_EQ(floatToF16Bits(-0.0f), 0x8000);
  EXPECT_EQ(floatToF16Bits(std::nanf("")), 0x7E00);
  EXPECT_EQ(floatToF16Bits(-std::nanf("")), 0xFE00);
}

TEST(Half, Bf16OverflowAndSubnormals) {
  EXPECT_EQ(floatToBf16Bits(std::numeric_limits<float>::max()), 0x7F80);
  EXPECT_EQ(floatToBf16Bits(-std::numeric_limits<float>::max()), 0xFF80);
  EXPECT_EQ(floatToBf16Bits(bf16BitsToFloat(0x7F7F)), 0x7F7F);
  EXPECT_EQ(floatToBf16Bits(INFINITY), 0x7F80);
  // fp32 subnormals keep their upper half, rounded.
  float tiny = std::numeric_limits<float>::denorm_min();
  EXPECT_EQ(floatToBf16Bits(tiny), 0x0000);
  EXPECT_EQ(floatToBf16Bits(bf16BitsToFloat(0x0001)), 0x0001);
  EXPECT_EQ(floatToBf16Bits(1.0f), 0x3F80);
  EXPECT_EQ(floatToBf16Bits(nextUp(1.0f)), 0x3F80);
  EXPECT_EQ(floatToBf16Bits(std::nanf("")), 0x7FC0);
}

TEST(Half, RoundToComputeAndNames) {
  EXPECT_EQ(roundToCompute(ComputeType::F32, 0.1f), 0.1f);
  EXPECT_EQ(roundToCompute(ComputeType::BF16, 1.0f + 1.0f / 256),
            1.0f); // tie -> even
  EXPECT_EQ(roundToCompute(ComputeType::F16, 1.0f + 1.0f / 4096), 1.0f);
  EXPECT_EQ(roundToCompute(ComputeType::F16, 70000.0f), INFINITY);
  EXPECT_EQ(roundToCompute(ComputeType::BF16, 70000.0f), 70144.0f);
  float values[3] = {0.1f, 3.0e5f, -1e-9f}, out[3];
  roundArrayToCompute(ComputeType::F16, 3, values, out);
  EXPECT_EQ(out[0], f16BitsToFloat(floatToF16Bits(0.1f)));
  EXPECT_EQ(out[1], INFINITY);
  EXPECT_EQ(out[2], -0.0f);
  EXPECT_TRUE(std::signbit(out[2]));
  for (ComputeType type :
       {ComputeType::F32, ComputeType::BF16, ComputeType::F16}) {
    ComputeType parsed = ComputeType::F32;
    ASSERT_TRUE(parseComputeType(computeTypeName(type), parsed));
    EXPECT_EQ(parsed, type);
  }
  ComputeType unchanged = ComputeType::BF16;
  EXPECT_FALSE(parseComputeType("fp16", unchanged));
  EXPECT_EQ(unchanged, ComputeType::BF16);
}

} // namespace
