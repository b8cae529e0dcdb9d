//===- GatingAttrTest.cpp - #moe.gating parsing, printing, capacity -------===//
#include "compiler/InitAll.h"
#include "dialects/Moe/MoeDialect.h"

#include "mlir/AsmParser/AsmParser.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

using namespace mlir;
using namespace mlir::moe;

namespace {

class GatingAttrTest : public ::testing::Test {
protected:
  GatingAttrTest() {
    DialectRegistry registry;
    registerAllDialects(registry);
    context.appendDialectRegistry(registry);
    context.loadAllAvailableDialects();
  }

  /// Parses `text`, collecting diagnostics instead of printing them.
  Attribute parse(StringRef text) {
    ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
      diagnostics += diag.str() + "\n";
      return success();
    });
    return parseAttribute(text, &context);
  }

  std::string print(Attribute attr) {
    std::string text;
    llvm::raw_string_ostream os(text);
    attr.print(os);
    return text;
  }

  MLIRContext context;
  std::string diagnostics;
};

TEST_F(GatingAttrTest, DefaultsFollowDeepSpeed) {
  auto gating = dyn_cast_or_null<GatingAttr>(parse("#moe.gating<>"));
  ASSERT_TRUE(gating) << diagnostics;
  EXPECT_EQ(gating.getTopK(), 1);
  EXPECT_EQ(gating.getCapacityFactor().convertToDouble(), 1.0);
  EXPECT_EQ(gating.getEvalCapacityFactor().convertToDouble(), 1.0);
  EXPECT_EQ(gating.getMinCapacity(), 4);
  EXPECT_TRUE(gating.getDropTokens());
  EXPECT_TRUE(gating.getUseRts());
  EXPECT_EQ(gating.getNoise(), NoisePolicy::none);
  EXPECT_EQ(gating.getGroups(), 1);
  EXPECT_EQ(print(gating), "#moe.gating<>");
}

TEST_F(GatingAttrTest, RoundTripsEveryParameter) {
  const char *text =
      "#moe.gating<top_k = 2, capacity_factor = 1.25, eval_capacity_factor "
      "= 2.0, min_capacity = 0, drop_tokens = false, use_rts = false, "
      "noise = rsample, jitter_eps = 0.05, second_sampling = false, groups "
      "= 4>";
  auto gating = dyn_cast_or_null<GatingAttr>(parse(text));
  ASSERT_TRUE(gating) << diagnostics;
  EXPECT_EQ(gating.getTopK(), 2);
  EXPECT_EQ(gating.getCapacityFactor().convertToDouble(), 1.25);
  EXPECT_EQ(gating.getJitterEps().convertToDouble(), 0.05);
  EXPECT_FALSE(gating.getSecondSampling());
  EXPECT_EQ(gating.getGroups(), 4);
  EXPECT_EQ(print(gating), text);
  EXPECT_EQ(parse(print(gating)), gating);
}

TEST_F(GatingAttrTest, CapacityByMode) {
  auto gating = cast<GatingAttr>(parse(
      "#moe.gating<top_k = 2, capacity_factor = 1.25, eval_capacity_factor "
      "= 2.0, min_capacity = 0>"));
  // 64 tokens / 8 experts * 1.25 * 2 = 20 in training; * 2.0 * 2 = 32 eval.
  EXPECT_EQ(gating.getCapacity(64, 8, /*training=*/true), 20);
  EXPECT_EQ(gating.getCapacity(64, 8, /*training=*/false), 32);
  // Impossible: more choices than experts.
  EXPECT_EQ(gating.getCapacity(64, 1, /*training=*/true), -1);
}

TEST_F(GatingAttrTest, GroupedCapacityIsPerGroupTimesGroups) {
  auto gating = cast<GatingAttr>(
      parse("#moe.gating<top_k = 2, capacity_factor = 1.25, min_capacity = 0, "
            "groups = 4>"));
  // 64 tokens in 4 groups of 16: ceil(16 / 8 * 1.25 * 2) = 5 per group.
  EXPECT_EQ(gating.getGroupCapacity(64, 8, /*training=*/true), 5);
  EXPECT_EQ(gating.getCapacity(64, 8, /*training=*/true), 20);
  // 60 tokens: 4 groups of 15, ceil(15 / 8 * 2.5) = 5 each; 62 do not split.
  EXPECT_EQ(gating.getCapacity(60, 8, /*training=*/true), 4 * 5);
  EXPECT_EQ(gating.getCapacity(62, 8, /*training=*/true), -1);
  EXPECT_EQ(gating.getGroupCapacity(62, 8, /*training=*/true), -1);
}

TEST_F(GatingAttrTest, RejectsImpossibleConfigurations) {
  struct Case {
    const char *text;
    const char *message;
  } cases[] = {
      {"#moe.gating<top_k = 0>", "top_k must be at least 1, found 0"},
      {"#moe.gating<capacity_factor = 0.0>",
       "capacity_factor must be a finite value > 0"},
      {"#moe.gating<eval_capacity_factor = -1.0>",
       "eval_capacity_factor must be a finite value > 0"},
      {"#moe.gating<min_capacity = -2>", "min_capacity must be >= 0"},
      {"#moe.gating<jitter_eps = 1.5>", "jitter_eps must be in (0, 1)"},
      {"#moe.gating<groups = 0>", "groups must be at least 1, found 0"},
      {"#moe.gating<use_rts = yes>", "expected 'true' or 'false'"},
  };
  for (const Case &c : cases) {
    diagnostics.clear();
    EXPECT_FALSE(parse(c.text)) << c.text;
    EXPECT_NE(diagnostics.find(c.message), std::string::npos)
        << c.text << " gave: " << diagnostics;
  }
}

TEST_F(GatingAttrTest, InitAttrPrintsShortestFloat) {
  auto init =
      dyn_cast_or_null<InitAttr>(parse("#moe.init<normal, scale = 0.1>"));
  ASSERT_TRUE(init) << diagnostics;
  EXPECT_EQ(print(init), "#moe.init<normal, scale = 0.1>");
  EXPECT_EQ(print(parse("#moe.init<zeros>")), "#moe.init<zeros>");
  diagnostics.clear();
  EXPECT_FALSE(parse("#moe.init<normal, scale = 0.0>"));
  EXPECT_NE(diagnostics.find("needs a scale > 0"), std::string::npos)
      << diagnostics;
}

} // namespace
