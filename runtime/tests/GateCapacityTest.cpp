//===- GateCapacityTest.cpp - Expert capacity formula ---------------------===//
#include "moert/GateCapacity.h"

#include <gtest/gtest.h>

using moert::expertCapacity;

TEST(GateCapacity, Top1ExactDivision) {
  // 64 tokens over 8 experts at factor 1.0: 8 slots per expert.
  EXPECT_EQ(expertCapacity(64, 8, 1, 1.0, 0, true), 8);
}

TEST(GateCapacity, RoundsUp) {
  // 10 / 4 * 1.0 = 2.5 -> 3.
  EXPECT_EQ(expertCapacity(10, 4, 1, 1.0, 0, true), 3);
  // 64 / 8 * 1.25 = 10.
  EXPECT_EQ(expertCapacity(64, 8, 1, 1.25, 0, true), 10);
}

TEST(GateCapacity, Top2DoublesSlots) {
  EXPECT_EQ(expertCapacity(64, 8, 2, 1.0, 0, true), 16);
}

TEST(GateCapacity, MinCapacityFloor) {
  EXPECT_EQ(expertCapacity(16, 8, 1, 1.0, 4, true), 4);
}

TEST(GateCapacity, NeverMoreThanTokens) {
  EXPECT_EQ(expertCapacity(4, 2, 2, 8.0, 0, true), 4);
  EXPECT_EQ(expertCapacity(4, 2, 1, 1.0, 100, true), 4);
}

TEST(GateCapacity, HugeFactorClampsToTokens) {
  EXPECT_EQ(expertCapacity(64, 8, 1, 1e300, 0, true), 64);
  EXPECT_EQ(expertCapacity(64, 8, 2, 1e18, 0, true), 64);
}

TEST(GateCapacity, DroplessBoundIsAllTokens) {
  EXPECT_EQ(expertCapacity(64, 8, 2, 1.0, 0, false), 64);
}

TEST(GateCapacity, RejectsImpossibleArguments) {
  EXPECT_EQ(expertCapacity(0, 8, 1, 1.0, 0, true), -1);
  EXPECT_EQ(expertCapacity(8, 0, 1, 1.0, 0, true), -1);
  EXPECT_EQ(expertCapacity(8, 4, 5, 1.0, 0, true), -1);
  EXPECT_EQ(expertCapacity(8, 4, 1, 0.0, 0, true), -1);
  EXPECT_EQ(expertCapacity(8, 4, 1, -1.0, 0, true), -1);
  EXPECT_EQ(expertCapacity(8, 4, 1, 1.0, -1, true), -1);
}

TEST(GateCapacity, GroupedIsGroupsTimesPerGroupCapacity) {
  using moert::groupedExpertCapacity;
  // One group is the ungrouped formula.
  EXPECT_EQ(groupedExpertCapacity(64, 1, 8, 1, 1.25, 0, true),
            expertCapacity(64, 8, 1, 1.25, 0, true));
  // 256 tokens in 4 groups of 64, 8 experts, top-2: 4 * 16.
  EXPECT_EQ(groupedExpertCapacity(256, 4, 8, 2, 1.0, 4, true), 64);
  // Rounding and min_capacity apply per group: 4 * max(ceil(10/4), 4).
  EXPECT_EQ(groupedExpertCapacity(40, 4, 4, 1, 1.0, 4, true), 16);
  EXPECT_EQ(groupedExpertCapacity(40, 4, 4, 1, 1.0, 0, true), 12);
  // Dropless: every token of every group.
  EXPECT_EQ(groupedExpertCapacity(64, 4, 8, 2, 1.0, 0, false), 64);
}

TEST(GateCapacity, GroupedRejectsBadGroups) {
  using moert::groupedExpertCapacity;
  EXPECT_EQ(groupedExpertCapacity(64, 0, 8, 1, 1.0, 0, true), -1);
  EXPECT_EQ(groupedExpertCapacity(64, -2, 8, 1, 1.0, 0, true), -1);
  EXPECT_EQ(groupedExpertCapacity(64, 3, 8, 1, 1.0, 0, true), -1);
  EXPECT_EQ(groupedExpertCapacity(64, 4, 8, 9, 1.0, 0, true), -1);
}
