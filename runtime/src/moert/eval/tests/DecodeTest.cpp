//===- DecodeTest.cpp - Greedy and beam search on a model with known answers -===//
#include "moert/eval/Decode.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

namespace moert {
namespace eval {
namespace {

// Tokens: 0 pad, 1 unk, 2 <s>, 3 </s>, 4 a, 5 b. A Markov model on the
// last token: after <s>: a 0.6, b 0.4; after a: </s> 0.4, a 0.3, b 0.3;
// after b: </s> 0.9, a 0.05, b 0.05. Greedy takes "a </s>" (0.24); the
// best sequence is "b </s>" (0.36).
std::vector<float> distribution(int32_t last) {
  std::vector<float> p(6, 0.0f);
  if (last == 2) {
    p[4] = 0.6f;
    p[5] = 0.4f;
  } else if (last == 4) {
    p[3] = 0.4f;
    p[4] = 0.3f;
    p[5] = 0.3f;
  } else {
    p[3] = 0.9f;
    p[4] = 0.05f;
    p[5] = 0.05f;
  }
  std::vector<float> logs(6);
  for (size_t i = 0; i < 6; ++i)
    logs[i] = p[i] > 0 ? std::log(p[i]) : -1e30f;
  return logs;
}

NextTokenFn markov(int64_t *calls) {
  return [calls](const std::vector<int64_t> &sources,
                 const std::vector<std::vector<int32_t>> &prefixes)
             -> Expected<std::vector<std::vector<float>>> {
    ++*calls;
    EXPECT_EQ(sources.size(), prefixes.size());
    std::vector<std::vector<float>> rows;
    for (const std::vector<int32_t> &prefix : prefixes) {
      EXPECT_EQ(prefix.front(), 2);
      rows.push_back(distribution(prefix.back()));
    }
    return rows;
  };
}

TEST(DecodeTest, GreedyTakesTheLocallyBestToken) {
  int64_t calls = 0;
  Expected<std::vector<std::vector<int32_t>>> out =
      greedyDecode(3, markov(&calls), DecodeOptions());
  ASSERT_TRUE(out.ok()) << out.status().toString();
  ASSERT_EQ(out->size(), 3u);
  for (const std::vector<int32_t> &tokens : *out)
    EXPECT_EQ(tokens, (std::vector<int32_t>{4}));
  EXPECT_EQ(calls, 2); // <s> -> a, a -> </s>
}

TEST(DecodeTest, BeamSearchFindsTheMostProbableSequence) {
  int64_t calls = 0;
  DecodeOptions options;
  options.beam = 2;
  options.lengthPenalty = 0.0;
  Expected<std::vector<std::vector<int32_t>>> out =
      beamSearch(2, markov(&calls), options);
  ASSERT_TRUE(out.ok()) << out.status().toString();
  for (const std::vector<int32_t> &tokens : *out)
    EXPECT_EQ(tokens, (std::vector<int32_t>{5}));
  // A beam of one is greedy.
  options.beam = 1;
  out = beamSearch(1, markov(&calls), options);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)[0], (std::vector<int32_t>{4}));
}

TEST(DecodeTest, LengthLimitAndErrors) {
  // A model that never ends: the limit cuts it.
  NextTokenFn forever = [](const std::vector<int64_t> &sources,
                           const std::vector<std::vector<int32_t>> &)
      -> Expected<std::vector<std::vector<float>>> {
    return std::vector<std::vector<float>>(
        sources.size(), std::vector<float>{-9, -9, -9, -9, 0, -9});
  };
  DecodeOptions options;
  options.maxLength = 5;
  Expected<std::vector<std::vector<int32_t>>> greedy =
      greedyDecode(1, forever, options);
  ASSERT_TRUE(greedy.ok());
  EXPECT_EQ((*greedy)[0], std::vector<int32_t>(5, 4));
  Expected<std::vector<std::vector<int32_t>>> beam =
      beamSearch(1, forever, options);
  ASSERT_TRUE(beam.ok());
  EXPECT_EQ((*beam)[0].size(), 5u);
  // A model returning the wrong number of rows is an error, not a crash.
  NextTokenFn broken = [](const std::vector<int64_t> &,
                          const std::vector<std::vector<int32_t>> &)
      -> Expected<std::vector<std::vector<float>>> {
    return std::vector<std::vector<float>>{};
  };
  EXPECT_FALSE(greedyDecode(2, broken, options).ok());
  EXPECT_FALSE(beamSearch(2, broken, options).ok());
  options.beam = 0;
  EXPECT_FALSE(beamSearch(1, forever, options).ok());
}

} // namespace
} // namespace eval
} // namespace moert
