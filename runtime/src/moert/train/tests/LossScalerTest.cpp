//===- LossScalerTest.cpp - Skip/scale decisions of the loss scaler -------===//
//
// Hand-made overflow patterns with the scales DeepSpeed's DynamicLossScaler
// gives for them (worked out from its update_scale rules, written here as
// literal sequences rather than recomputed by the same logic).
//
//===----------------------------------------------------------------------===//
#include "moert/train/LossScaler.h"
#include "moert/train/Optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

using namespace moert;
using namespace moert::train;

namespace {

struct Step {
  bool overflow;
  bool skipped;     // expected decision
  double scaleNext; // expected scale after the step
};

/// Runs `steps` through a scaler and checks every decision.
void expectSequence(const LossScalerConfig &config,
                    const std::vector<Step> &steps) {
  Expected<DynamicLossScaler> scaler = DynamicLossScaler::create(config);
  ASSERT_TRUE(scaler.ok()) << scaler.status().toString();
  for (size_t i = 0; i < steps.size(); ++i) {
    double before = scaler->scale();
    Expected<LossScaleDecision> decision = scaler->update(steps[i].overflow);
    ASSERT_TRUE(decision.ok())
        << "step " << i << ": " << decision.status().toString();
    EXPECT_EQ(decision->overflow, steps[i].skipped) << "step " << i;
    EXPECT_EQ(decision->scaleUsed, before) << "step " << i;
    EXPECT_EQ(decision->nextScale, steps[i].scaleNext) << "step " << i;
    EXPECT_EQ(scaler->scale(), steps[i].scaleNext) << "step " << i;
  }
}

TEST(LossScaler, DeepSpeedDefaults) {
  LossScalerConfig config;
  EXPECT_EQ(config.initialScale, 65536.0);
  EXPECT_EQ(config.window, 1000);
  EXPECT_EQ(config.hysteresis, 2);
  EXPECT_EQ(config.minScale, 1.0);
  EXPECT_EQ(config.factor, 2.0);
  Expected<DynamicLossScaler> scaler = DynamicLossScaler::create(config);
  ASSERT_TRUE(scaler.ok());
  EXPECT_EQ(scaler->scale(), 65536.0);
}

TEST(LossScaler, DoublesAfterExactlyOneThousandCleanSteps) {
  Expected<DynamicLossScaler> scaler = DynamicLossScaler::create({});
  ASSERT_TRUE(scaler.ok());
  for (int i = 0; i < 999; ++i) {
    Expected<LossScaleDecision> d = scaler->update(false);
    ASSERT_TRUE(d.ok());
    ASSERT_FALSE(d->overflow);
    ASSERT_EQ(scaler->scale(), 65536.0) << "after clean step " << i + 1;
  }
  ASSERT_TRUE(scaler->update(false).ok()); // the 1000th clean step
  EXPECT_EQ(scaler->scale(), 131072.0);
  for (int i = 0; i < 999; ++i)
    ASSERT_TRUE(scaler->update(false).ok());
  EXPECT_EQ(scaler->scale(), 131072.0);
  ASSERT_TRUE(scaler->update(false).ok()); // 2000th
  EXPECT_EQ(scaler->scale(), 262144.0);
  EXPECT_EQ(scaler->state().skippedSteps, 0);
}

TEST(LossScaler, HysteresisAbsorbsTheFirstOverflow) {
  // Window 4 to keep the sequences short; the rules are the same.
  LossScalerConfig config;
  config.window = 4;
  expectSequence(config, {
                             {true, true, 65536},   // hysteresis 2 -> 1
                             {true, true, 32768},   // halve
                             {true, true, 16384},   // halve again
                             {false, false, 16384}, // 1 clean
                             {false, false, 16384}, // 2
                             {false, false, 16384}, // 3
                             {false, false, 32768}, // 4: double, refill
                             {true, true, 32768},   // absorbed again
                             {false, false, 32768},
                             {true, true, 16384}, // hysteresis was used up
                         });
}

TEST(LossScaler, CleanStepsDoNotRefillHysteresisBeforeTheWindow) {
  LossScalerConfig config;
  config.window = 3;
  config.initialScale = 1024;
  expectSequence(config, {
                             {true, true, 1024},   // 2 -> 1
                             {false, false, 1024}, // 1 clean
                             {false, false, 1024}, // 2 clean
                             {true, true, 512},    // still 1 left: halve
                             {false, false, 512},
                             {false, false, 512},
                             {false, false, 1024}, // 3 clean: double
                             {false, false, 1024},
                             {false, false, 1024},
                             {false, false, 2048}, // next window
                             {true, true, 2048},   // refilled: absorbed
                         });
}

TEST(LossScaler, WithoutHysteresisEveryOverflowHalves) {
  LossScalerConfig config;
  config.hysteresis = 1;
  config.window = 2;
  config.initialScale = 8;
  expectSequence(config, {
                             {true, true, 4},
                             {true, true, 2},
                             {false, false, 2},
                             {false, false, 4},
                             {true, true, 2},
                         });
}

TEST(LossScaler, FloorHoldsWhenErrorsAreOff) {
  LossScalerConfig config;
  config.hysteresis = 1;
  config.initialScale = 4;
  config.minScale = 1;
  config.errorAtMinScale = false;
  expectSequence(config, {
                             {true, true, 2},
                             {true, true, 1},
                             {true, true, 1}, // at the floor: stays
                             {true, true, 1},
                         });
}

TEST(LossScaler, FloorIsNotUndershotByAnOddScale) {
  LossScalerConfig config;
  config.hysteresis = 1;
  config.initialScale = 3;
  config.minScale = 2;
  config.errorAtMinScale = false;
  expectSequence(config, {{true, true, 2}, {true, true, 2}});
}

TEST(LossScaler, OverflowAtTheMinimumIsAnError) {
  LossScalerConfig config;
  config.hysteresis = 1;
  config.initialScale = 2;
  Expected<DynamicLossScaler> scaler = DynamicLossScaler::create(config);
  ASSERT_TRUE(scaler.ok());
  ASSERT_TRUE(scaler->update(true).ok());
  EXPECT_EQ(scaler->scale(), 1.0);
  LossScalerState before = scaler->state();
  Expected<LossScaleDecision> failed = scaler->update(true);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::FailedPrecondition);
  EXPECT_NE(failed.status().message().find("minimum"), std::string::npos)
      << failed.status().message();
  // The failure leaves the state as it was.
  EXPECT_EQ(scaler->state().iteration, before.iteration);
  EXPECT_EQ(scaler->state().skippedSteps, before.skippedSteps);
}

TEST(LossScaler, CountsSkippedSteps) {
  LossScalerConfig config;
  config.window = 100;
  Expected<DynamicLossScaler> scaler = DynamicLossScaler::create(config);
  ASSERT_TRUE(scaler.ok());
  const bool pattern[] = {false, true, false, true, true, false};
  for (bool overflow : pattern)
    ASSERT_TRUE(scaler->update(overflow).ok());
  EXPECT_EQ(scaler->state().skippedSteps, 3);
  EXPECT_EQ(scaler->state().iteration, 6);
  EXPECT_EQ(scaler->state().lastOverflowIteration, 4);
  EXPECT_EQ(scaler->scale(), 65536.0 / 4); // absorbed, halved, halved
}

TEST(LossScaler, ReductionDecidesForEveryRank) {
  // Two "ranks": only rank 1 overflows; the MAX reduction makes both skip
  // and both follow the same scale sequence.
  LossScalerConfig config;
  config.hysteresis = 1;
  Expected<DynamicLossScaler> rank0 = DynamicLossScaler::create(config);
  Expected<DynamicLossScaler> rank1 = DynamicLossScaler::create(config);
  ASSERT_TRUE(rank0.ok() && rank1.ok());
  const std::vector<std::pair<bool, bool>> local = {
      {false, true}, {false, false}, {true, false}, {true, true}};
  for (auto [flag0, flag1] : local) {
    auto anyRank = [&](bool) -> Expected<bool> { return flag0 || flag1; };
    Expected<LossScaleDecision> d0 = rank0->update(flag0, anyRank);
    Expected<LossScaleDecision> d1 = rank1->update(flag1, anyRank);
    ASSERT_TRUE(d0.ok() && d1.ok());
    EXPECT_EQ(d0->overflow, flag0 || flag1);
    EXPECT_EQ(d0->overflow, d1->overflow);
    EXPECT_EQ(rank0->scale(), rank1->scale());
  }
  EXPECT_EQ(rank0->scale(), 65536.0 / 8);
}

TEST(LossScaler, FailedReductionChangesNothing) {
  Expected<DynamicLossScaler> scaler = DynamicLossScaler::create({});
  ASSERT_TRUE(scaler.ok());
  auto broken = [](bool) -> Expected<bool> {
    return Status(StatusCode::Unavailable, "peer rank 3 is gone");
  };
  Expected<LossScaleDecision> d = scaler->update(true, broken);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("peer rank 3"), std::string::npos);
  EXPECT_EQ(scaler->state().iteration, 0);
  EXPECT_EQ(scaler->scale(), 65536.0);
}

TEST(LossScaler, RestoreContinuesTheSequence) {
  LossScalerConfig config;
  config.window = 3;
  Expected<DynamicLossScaler> a = DynamicLossScaler::create(config);
  ASSERT_TRUE(a.ok());
  const bool pattern[] = {true, false, true, false, false, false, false, true};
  for (int i = 0; i < 4; ++i)
    ASSERT_TRUE(a->update(pattern[i]).ok());
  Expected<DynamicLossScaler> b = DynamicLossScaler::create(config);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(b->restore(a->state()).ok());
  for (int i = 4; i < 8; ++i) {
    Expected<LossScaleDecision> da = a->update(pattern[i]);
    Expected<LossScaleDecision> db = b->update(pattern[i]);
    ASSERT_TRUE(da.ok() && db.ok());
    EXPECT_EQ(da->nextScale, db->nextScale) << "step " << i;
  }
}

TEST(LossScaler, RejectsBadConfigurationsAndStates) {
  auto expectInvalid = [](LossScalerConfig config, const char *what) {
    Expected<DynamicLossScaler> scaler = DynamicLossScaler::create(config);
    ASSERT_FALSE(scaler.ok()) << what;
    EXPECT_EQ(scaler.status().code(), StatusCode::InvalidArgument) << what;
    EXPECT_NE(scaler.status().message().find(what), std::string::npos)
        << scaler.status().message();
  };
  LossScalerConfig c;
  c.initialScale = 0;
  expectInvalid(c, "initial scale");
  c = {};
  c.window = 0;
  expectInvalid(c, "window");
  c = {};
  c.hysteresis = 0;
  expectInvalid(c, "hysteresis");
  c = {};
  c.factor = 1.0;
  expectInvalid(c, "factor");
  c = {};
  c.minScale = 1e6;
  expectInvalid(c, "below the minimum");

  Expected<DynamicLossScaler> scaler = DynamicLossScaler::create({});
  ASSERT_TRUE(scaler.ok());
  LossScalerState bad;
  bad.scale = 0.5; // below the minimum 1
  EXPECT_FALSE(scaler->restore(bad).ok());
  bad = {};
  bad.hysteresisLeft = 3;
  EXPECT_FALSE(scaler->restore(bad).ok());
  bad = {};
  bad.iteration = 2;
  bad.lastOverflowIteration = 5;
  EXPECT_FALSE(scaler->restore(bad).ok());
  EXPECT_EQ(scaler->scale(), 65536.0); // unchanged
}

} // namespace

namespace {

TEST(LossScaler, SkippedStepLeavesAdamWStateUntouched) {
  // An overflowing fp16 step reaches AdamW with clipping factor 0: the
  // parameter, both moments (non-zero here) and the weight decay must all
  // be skipped, even with inf and NaN gradients.
  AdamWConfig config;
  config.weightDecay = 0.1;
  std::vector<float> p = {1.0f, -2.0f, 3.0f}, m = {0.5f, 0.25f, -1.0f},
                     v = {0.1f, 0.2f, 0.3f};
  const std::vector<float> g = {INFINITY, std::nanf(""), 1.0f};
  const std::vector<float> p0 = p, m0 = m, v0 = v;
  adamwUpdate(config, 3, p.data(), g.data(), m.data(), v.data(), 1e-3f, 0.0f,
              7);
  EXPECT_EQ(p, p0);
  EXPECT_EQ(m, m0);
  EXPECT_EQ(v, v0);
  // A non-finite norm is what gives factor 0.
  EXPECT_EQ(clipByGlobalNorm(INFINITY, 1.0).scale, 0.0f);
}

} // namespace
