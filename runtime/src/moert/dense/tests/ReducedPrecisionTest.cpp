//===- ReducedPrecisionTest.cpp - Emulated bf16/f16 dense GEMMs -----------===//
//
// A reduced-precision linear layer is the fp32 layer on rounded operands:
// checked bit for bit against the fp32 kernel fed pre-rounded inputs. For
// attention, where intermediate tiles are rounded too, the emulation must
// differ from fp32 by no more than the format's precision allows, and fp16
// (10 mantissa bits) must be closer than bf16 (7). f32 is the default and
// leaves every result unchanged.
//
//===----------------------------------------------------------------------===//
#include "moert/dense/Attention.h"
#include "moert/dense/Linear.h"

#include "GradCheck.h"

#include <cmath>

namespace moert {
namespace dense {
namespace {

using testing::randomFloats;

std::vector<float> rounded(ComputeType type, const std::vector<float> &v) {
  std::vector<float> out(v.size());
  roundArrayToCompute(type, static_cast<int64_t>(v.size()), v.data(),
                      out.data());
  return out;
}

float maxAbsDiff(const std::vector<float> &a, const std::vector<float> &b) {
  float worst = 0;
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::fabs(a[i] - b[i]));
  return worst;
}

class ReducedLinearTest
    : public ::testing::TestWithParam<std::tuple<ComputeType, bool>> {};

TEST_P(ReducedLinearTest, IsTheFp32LayerOnRoundedOperands) {
  auto [type, transposed] = GetParam();
  std::mt19937 rng(11);
  LinearShape reduced{37, 29, 23, transposed};
  reduced.compute = type;
  LinearShape full = reduced;
  full.compute = ComputeType::F32;
  auto x = randomFloats(reduced.rows * reduced.inFeatures, rng);
  auto w = randomFloats(reduced.inFeatures * reduced.outFeatures, rng);
  auto b = randomFloats(reduced.outFeatures, rng);
  auto dy = randomFloats(reduced.rows * reduced.outFeatures, rng);
  auto xr = rounded(type, x), wr = rounded(type, w), dyr = rounded(type, dy);

  std::vector<float> y(reduced.rows * reduced.outFeatures), yRef(y.size()),
      yFull(y.size());
  linearForward(reduced, x.data(), w.data(), b.data(), y.data());
  linearForward(full, xr.data(), wr.data(), b.data(), yRef.data());
  linearForward(full, x.data(), w.data(), b.data(), yFull.data());
  EXPECT_EQ(y, yRef);
  EXPECT_GT(maxAbsDiff(y, yFull), 0.0f) << "the rounding had no effect";

  std::vector<float> dx(x.size()), dw(w.size()), db(b.size());
  std::vector<float> dxRef(x.size()), dwRef(w.size()), dbRef(b.size());
  linearBackward(reduced, dy.data(), x.data(), w.data(), dx.data(), dw.data(),
                 db.data());
  linearBackward(full, dyr.data(), xr.data(), wr.data(), dxRef.data(),
                 dwRef.data(), nullptr);
  // The bias gradient sums the fp32 output gradient.
  linearBackward(full, dy.data(), x.data(), w.data(), nullptr, nullptr,
                 dbRef.data());
  EXPECT_EQ(dx, dxRef);
  EXPECT_EQ(dw, dwRef);
  EXPECT_EQ(db, dbRef);
}

TEST(ReducedLinear, F16OverflowReachesTheOutput) {
  // An fp16 input beyond 65504 becomes inf, as on the GPU: this is what
  // the loss scaler detects.
  LinearShape shape{1, 2, 1, false};
  shape.compute = ComputeType::F16;
  const float x[2] = {70000.0f, 1.0f}, w[2] = {1.0f, 1.0f};
  float y = 0;
  linearForward(shape, x, w, nullptr, &y);
  EXPECT_TRUE(std::isinf(y));
  shape.compute = ComputeType::BF16; // bf16 has fp32's range
  linearForward(shape, x, w, nullptr, &y);
  EXPECT_TRUE(std::isfinite(y));
}

INSTANTIATE_TEST_SUITE_P(
    Types, ReducedLinearTest,
    ::testing::Combine(::testing::Values(ComputeType::BF16, ComputeType::F16),
                       ::testing::Bool()),
    [](const auto &info) {
      return std::string(computeTypeName(std::get<0>(info.param))) +
             (std::get<1>(info.param) ? "_transposed" : "");
    });

struct AttentionRun {
  std::vector<float> out, dq, dk, dv;
};

AttentionRun runAttention(AttentionShape shape, const std::vector<float> &q,
                          const std::vector<float> &k,
                          const std::vector<float> &v,
                          const std::vector<float> &dOut) {
  AttentionRun run;
  run.out.resize(q.size());
  run.dq.resize(q.size());
  run.dk.resize(k.size());
  run.dv.resize(v.size());
  attentionForward(shape, q.data(), k.data(), v.data(), nullptr, run.out.data(),
                   nullptr);
  attentionBackward(shape, dOut.data(), q.data(), k.data(), v.data(), nullptr,
                    nullptr, run.dq.data(), run.dk.data(), run.dv.data());
  return run;
}

TEST(ReducedAttention, ErrorFollowsTheFormatsPrecision) {
  std::mt19937 rng(5);
  AttentionShape shape{2, 9, 11, 16, 2, false};
  auto q = randomFloats(shape.batch * shape.queryLen * shape.modelDim, rng);
  auto k = randomFloats(shape.batch * shape.keyLen * shape.modelDim, rng);
  auto v = randomFloats(shape.batch * shape.keyLen * shape.modelDim, rng);
  auto dOut = randomFloats(q.size(), rng);
  AttentionRun full = runAttention(shape, q, k, v, dOut);
  shape.compute = ComputeType::BF16;
  AttentionRun bf16 = runAttention(shape, q, k, v, dOut);
  shape.compute = ComputeType::F16;
  AttentionRun f16 = runAttention(shape, q, k, v, dOut);
  auto check = [](const char *what, const std::vector<float> &ref,
                  const std::vector<float> &b, const std::vector<float> &h) {
    float scale = 0;
    for (float value : ref)
      scale = std::max(scale, std::fabs(value));
    float errB = maxAbsDiff(ref, b), errH = maxAbsDiff(ref, h);
    // A few ulps of each format, relative to the values' scale (inputs in
    // [-1, 1), sums of at most 16 products): bf16 2^-8, f16 2^-11.
    EXPECT_GT(errB, 0.0f) << what;
    EXPECT_LT(errB, 8 * std::ldexp(1.0f, -8) * scale) << what;
    EXPECT_LT(errH, 8 * std::ldexp(1.0f, -11) * scale) << what;
    EXPECT_LT(errH, errB) << what;
  };
  check("output", full.out, bf16.out, f16.out);
  check("dq", full.dq, bf16.dq, f16.dq);
  check("dk", full.dk, bf16.dk, f16.dk);
  check("dv", full.dv, bf16.dv, f16.dv);
}

TEST(ReducedAttention, RepresentableInputsWithOneKeyAreExact) {
  // One key: P = 1 exactly (representable), so out = v for any precision
  // when v is already representable.
  AttentionShape shape{1, 3, 1, 4, 2, false};
  shape.compute = ComputeType::BF16;
  std::vector<float> q = {0.5f, -1, 2, 0.25f, 1, 1, 1, 1, -3, 0, 0.125f, 4};
  std::vector<float> k = {1, 2, 3, 4};
  std::vector<float> v = {1.5f, -2.25f, 0.75f, 8};
  std::vector<float> out(q.size());
  attentionForward(shape, q.data(), k.data(), v.data(), nullptr, out.data(),
                   nullptr);
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t d = 0; d < 4; ++d)
      EXPECT_EQ(out[i * 4 + d], v[d]);
}

} // namespace
} // namespace dense
} // namespace moert
