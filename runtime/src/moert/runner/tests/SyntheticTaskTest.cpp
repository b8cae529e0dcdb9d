//===- SyntheticTaskTest.cpp - The reversal task's batches ----------------===//
#include "moert/runner/SyntheticTask.h"

#include <gtest/gtest.h>

using namespace moert::runner;

namespace {

SyntheticTaskConfig config(int64_t vocab, int32_t pad, int64_t alphabet) {
  SyntheticTaskConfig c;
  c.batchSize = 4;
  c.srcLen = 12;
  c.tgtLen = 13;
  c.vocabSize = vocab;
  c.padId = pad;
  c.alphabet = alphabet;
  return c;
}

TEST(SyntheticTask, TargetIsTheReversedSourceThenEos) {
  auto task = SyntheticTask::create(config(64, 0, 10));
  ASSERT_TRUE(task.ok());
  SeqBatch batch = task->batch(1, 5);
  for (int64_t b = 0; b < 4; ++b) {
    std::vector<int32_t> src;
    for (int64_t i = 0; i < 12 && batch.srcTokens[b * 12 + i] != 0; ++i)
      src.push_back(batch.srcTokens[b * 12 + i]);
    ASSERT_GE(src.size(), 1u);
    for (size_t i = 0; i < src.size(); ++i)
      EXPECT_EQ(batch.labels[b * 13 + i], src[src.size() - 1 - i]);
    EXPECT_EQ(batch.labels[b * 13 + src.size()], task->eosId());
    // Decoder input: BOS, then the labels shifted right.
    EXPECT_EQ(batch.tgtTokens[b * 13], task->bosId());
    for (size_t i = 1; i <= src.size(); ++i)
      EXPECT_EQ(batch.tgtTokens[b * 13 + i], batch.labels[b * 13 + i - 1]);
  }
}

TEST(SyntheticTask, BatchesArePureFunctionsOfSeedAndStep) {
  auto task = SyntheticTask::create(config(64, 0, 10));
  ASSERT_TRUE(task.ok());
  EXPECT_EQ(task->batch(1, 5).srcTokens, task->batch(1, 5).srcTokens);
  EXPECT_NE(task->batch(1, 5).srcTokens, task->batch(1, 6).srcTokens);
  EXPECT_NE(task->batch(1, 5).srcTokens, task->batch(2, 5).srcTokens);
}

TEST(SyntheticTask, TokensStayInTheVocabularyForAnyPadId) {
  // A pad id in the middle of the vocabulary with the whole vocabulary as
  // alphabet: content ids wrap and never hit pad, BOS or EOS.
  for (int32_t pad : {0, 1, 30, 47}) {
    auto task = SyntheticTask::create(config(48, pad, 0));
    ASSERT_TRUE(task.ok());
    for (int64_t step = 1; step <= 20; ++step) {
      SeqBatch batch = task->batch(3, step);
      for (int32_t id : batch.srcTokens) {
        EXPECT_GE(id, 0);
        EXPECT_LT(id, 48);
        EXPECT_NE(id, task->bosId());
        EXPECT_NE(id, task->eosId());
      }
      for (int32_t id : batch.labels) {
        EXPECT_GE(id, 0);
        EXPECT_LT(id, 48);
      }
    }
  }
}

TEST(SyntheticTask, RejectsImpossibleConfigurations) {
  auto tiny = SyntheticTask::create(config(4, 0, 0));
  ASSERT_FALSE(tiny.ok());
  EXPECT_NE(tiny.status().message().find("at least 5 ids"), std::string::npos);
  auto pad = SyntheticTask::create(config(64, 64, 0));
  ASSERT_FALSE(pad.ok());
  EXPECT_NE(pad.status().message().find("pad id 64 outside"),
            std::string::npos);
}

} // namespace
