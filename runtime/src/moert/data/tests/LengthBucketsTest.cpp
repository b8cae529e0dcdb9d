//===- LengthBucketsTest.cpp - Bucket assignment and choice ---------------===//
#include "moert/data/LengthBuckets.h"
#include "moert/data/MultitaskSource.h"
#include "moert/data/Tokenizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <unistd.h>

namespace moert {
namespace data {
namespace {

namespace fs = std::filesystem;

const std::vector<BucketShape> kBuckets = {
    {48, 12, 12}, {24, 24, 24}, {12, 48, 48}};

TEST(LengthBucketsTest, BucketsMustNest) {
  EXPECT_TRUE(checkBucketOrder(kBuckets).ok());
  EXPECT_TRUE(checkBucketOrder({{8, 16, 8}, {8, 16, 9}}).ok());
  Status shorter = checkBucketOrder({{48, 12, 12}, {12, 48, 48}, {24, 24, 24}});
  ASSERT_FALSE(shorter.ok());
  EXPECT_NE(shorter.message().find("length bucket 2 has source/target "
                                   "lengths 24/24, expected both at least "
                                   "bucket 1's 48/48"),
            std::string::npos)
      << shorter.message();
  // The same lengths twice, and a bucket longer on one side only but
  // shorter on the other, do not nest.
  EXPECT_FALSE(checkBucketOrder({{8, 16, 16}, {4, 16, 16}}).ok());
  EXPECT_FALSE(checkBucketOrder({{8, 16, 32}, {8, 32, 16}}).ok());
  EXPECT_FALSE(checkBucketOrder({}).ok());
}

TEST(LengthBucketsTest, RowLengthsCoverEveryTask) {
  EncodedPair pair;
  pair.source.assign(5, 7); // English: 5 tokens
  pair.target.assign(7, 8); // X: 7 tokens
  // Source: <2xx> en </s> = 7, <2en> x </s> = 9, <dae> <2xx> x </s> = 10;
  // target: x </s> = 8, en </s> = 6.
  EXPECT_EQ(rowLengths(pair), std::make_pair(int64_t{10}, int64_t{8}));
  pair.source.assign(9, 7);
  pair.target.assign(2, 8);
  EXPECT_EQ(rowLengths(pair), std::make_pair(int64_t{11}, int64_t{10}));
}

TEST(LengthBucketsTest, EachRowGoesToTheSmallestBucketHoldingIt) {
  EXPECT_EQ(assignBucket(1, 1, kBuckets), 0u);
  EXPECT_EQ(assignBucket(12, 12, kBuckets), 0u);
  EXPECT_EQ(assignBucket(13, 12, kBuckets), 1u); // source too long for 0
  EXPECT_EQ(assignBucket(12, 13, kBuckets), 1u); // target too long for 0
  EXPECT_EQ(assignBucket(24, 24, kBuckets), 1u);
  EXPECT_EQ(assignBucket(25, 2, kBuckets), 2u);
  EXPECT_EQ(assignBucket(48, 48, kBuckets), 2u);
  // Longer than every bucket: the largest, cut there.
  EXPECT_EQ(assignBucket(200, 3, kBuckets), 2u);
  EXPECT_EQ(assignBucket(3, 200, kBuckets), 2u);
}

TEST(LengthBucketsTest, BucketProbabilityIsWeightOverBatchSize) {
  // Weights 0.5, 0.3, 0.2 over batches of 48, 24, 12: 1/96, 1/80, 1/60,
  // that is 5 : 6 : 8.
  std::vector<double> p = bucketProbabilities({0.5, 0.3, 0.2}, kBuckets);
  ASSERT_EQ(p.size(), 3u);
  EXPECT_NEAR(p[0], 5.0 / 19, 1e-15);
  EXPECT_NEAR(p[1], 6.0 / 19, 1e-15);
  EXPECT_NEAR(p[2], 8.0 / 19, 1e-15);
  // An empty bucket gets no chance; 1/96 : 1/24 = 1 : 4.
  p = bucketProbabilities({0.5, 0.0, 0.5}, kBuckets);
  EXPECT_EQ(p[1], 0.0);
  EXPECT_NEAR(p[0], 0.2, 1e-15);
  EXPECT_NEAR(p[2], 0.8, 1e-15);
}

TEST(LengthBucketsTest, BucketChoiceIsAFunctionOfSeedAndStep) {
  // SplitMix64 values computed independently (Python, 2026-12-04).
  EXPECT_EQ(bucketUniform(1, 1), 0.7875868643720109);
  EXPECT_EQ(bucketUniform(0, 0), 0.2085678712002096);
  EXPECT_EQ(bucketUniform(7, 123456789), 0.8256274202635384);
  const std::vector<double> p = {5.0 / 19, 6.0 / 19, 8.0 / 19};
  const std::vector<size_t> seed1 = {2, 2, 2, 2, 0, 1, 2, 0, 2, 1,
                                     0, 1, 2, 0, 1, 2, 1, 1, 0, 2};
  const std::vector<size_t> seed2 = {2, 0, 0, 2, 1, 2, 2, 2, 0, 1,
                                     0, 2, 1, 2, 0, 2, 2, 1, 2, 2};
  for (int64_t step = 1; step <= 20; ++step) {
    EXPECT_EQ(pickBucket(p, 1, step), seed1[step - 1]) << "step " << step;
    EXPECT_EQ(pickBucket(p, 2, step), seed2[step - 1]) << "step " << step;
  }
  // The frequencies follow the probabilities; a bucket without a chance is
  // never picked.
  std::vector<int64_t> counts(3, 0);
  const int64_t steps = 200000;
  for (int64_t step = 1; step <= steps; ++step)
    ++counts[pickBucket({0.25, 0.0, 0.75}, 3, step)];
  EXPECT_EQ(counts[1], 0);
  EXPECT_NEAR(static_cast<double>(counts[0]) / steps, 0.25, 0.005);
  EXPECT_NEAR(static_cast<double>(counts[2]) / steps, 0.75, 0.005);
}

/// A two-language corpus of sentences of 1 to 12 words, encoded.
fs::path bucketCorpus() {
  const fs::path dir =
      fs::temp_directory_path() / ("moe-buckets-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const char *words[] = {"alpha", "beta",  "gamma", "delta", "epsilon", "zeta",
                         "eta",   "theta", "iota",  "kappa", "lambda",  "mu"};
  const std::pair<const char *, int> sizes[] = {{"aa", 600}, {"bb", 120}};
  for (auto [language, count] : sizes)
    for (const char *split : {"train", "valid", "test"}) {
      std::ofstream out(dir / (std::string(split) + "." + language + ".tsv"));
      for (int i = 0; i < count; ++i) {
        const int length = 1 + (i * 7) % 12;
        std::string en, x;
        for (int w = 0; w < length; ++w) {
          en += std::string(w ? " " : "") + words[(i + w * 5) % 12];
          x += std::string(w ? " " : "") + language + words[(i + w * 5) % 12];
        }
        out << en << "\t" << x << "\n";
      }
    }
  std::ofstream(dir / "languages.tsv")
      << "language\ttrain\tvalid\ttest\naa\t600\t600\t600\nbb\t120\t120\t120\n";
  TokenizerOptions options;
  options.vocabSize = 100;
  EXPECT_TRUE(trainTokenizer(dir.string(), options).ok());
  EXPECT_TRUE(encodeCorpus(dir.string()).ok());
  return dir;
}

TEST(LengthBucketsTest, BucketedBatchesHoldTheirPoolsRowsUncut) {
  const fs::path dir = bucketCorpus();
  Expected<std::unique_ptr<SentencePieceModel>> spm =
      SentencePieceModel::load((dir / "spm.model").string());
  ASSERT_TRUE(spm.ok()) << spm.status().toString();
  std::vector<runner::SyntheticTaskConfig> shapes(3);
  const int64_t lengths[3][3] = {{32, 8, 8}, {16, 16, 16}, {8, 32, 32}};
  for (size_t b = 0; b < 3; ++b) {
    shapes[b].batchSize = lengths[b][0];
    shapes[b].srcLen = lengths[b][1];
    shapes[b].tgtLen = lengths[b][2];
    shapes[b].vocabSize = (*spm)->size();
  }
  Expected<std::unique_ptr<MultitaskSource>> made =
      MultitaskSource::createBuckets(dir.string(), shapes);
  ASSERT_TRUE(made.ok()) << made.status().toString();
  MultitaskSource &source = **made;
  ASSERT_EQ(source.numBuckets(), 3u);

  // The pools are the assignment of every training pair.
  std::vector<BucketShape> order;
  for (const runner::SyntheticTaskConfig &s : shapes)
    order.push_back({s.batchSize, s.srcLen, s.tgtLen});
  std::vector<int64_t> expected(3, 0);
  std::vector<double> weights(3, 0.0);
  const std::vector<double> &p = source.languageProbabilities();
  for (size_t l = 0; l < source.languages().size(); ++l) {
    Expected<std::vector<EncodedPair>> pairs = readIdShard(
        (dir / ("train." + source.languages()[l] + ".ids")).string());
    ASSERT_TRUE(pairs.ok());
    for (const EncodedPair &pair : *pairs) {
      const auto [src, tgt] = rowLengths(pair);
      const size_t b = assignBucket(src, tgt, order);
      ++expected[b];
      weights[b] += p[l] / static_cast<double>(pairs->size());
    }
  }
  const std::vector<MultitaskSource::BucketPool> pools = source.bucketPools();
  const std::vector<double> probabilities = bucketProbabilities(weights, order);
  for (size_t b = 0; b < 3; ++b) {
    EXPECT_GT(expected[b], 0) << "bucket " << b;
    EXPECT_EQ(pools[b].pairs, expected[b]) << "bucket " << b;
    EXPECT_NEAR(pools[b].probability, probabilities[b], 1e-12);
  }

  // Every step's bucket is pickBucket's; its batch has the bucket's shape,
  // and no row below the last bucket is cut: every source ends with </s>
  // before the padding and every target with </s> (their pools hold pairs
  // that fit uncut; the last bucket also takes the longer pairs, cut).
  const int32_t eos = 3;
  std::vector<int64_t> seen(3, 0);
  for (int64_t step = 1; step <= 60; ++step) {
    const size_t b = source.bucketAt(11, step);
    EXPECT_EQ(b, pickBucket(pools.size() == 3
                                ? std::vector<double>{pools[0].probability,
                                                      pools[1].probability,
                                                      pools[2].probability}
                                : std::vector<double>(),
                            11, step));
    ++seen[b];
    Expected<runner::SeqBatch> batch = source.bucketBatch(b, 11, step);
    ASSERT_TRUE(batch.ok()) << batch.status().toString();
    const runner::SyntheticTaskConfig &c = shapes[b];
    ASSERT_EQ(batch->srcTokens.size(), size_t(c.batchSize * c.srcLen));
    ASSERT_EQ(batch->labels.size(), size_t(c.batchSize * c.tgtLen));
    int64_t sourceTokens = 0, targetTokens = 0;
    for (int64_t row = 0; row < c.batchSize; ++row) {
      int64_t srcUsed = 0, tgtUsed = 0;
      while (srcUsed < c.srcLen && batch->srcTokens[row * c.srcLen + srcUsed])
        ++srcUsed;
      while (tgtUsed < c.tgtLen && batch->labels[row * c.tgtLen + tgtUsed])
        ++tgtUsed;
      ASSERT_GT(srcUsed, 0);
      EXPECT_EQ(batch->srcTokens[row * c.srcLen + srcUsed - 1], eos);
      if (b + 1 < shapes.size())
        EXPECT_EQ(batch->labels[row * c.tgtLen + tgtUsed - 1], eos)
            << "bucket " << b << " step " << step << " row " << row;
      sourceTokens += srcUsed;
      targetTokens += tgtUsed;
    }
    EXPECT_EQ(batch->sourceTokens, sourceTokens);
    EXPECT_EQ(batch->targetTokens, targetTokens);
    // The same (seed, step) gives the same batch.
    Expected<runner::SeqBatch> again = source.bucketBatch(b, 11, step);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->srcTokens, batch->srcTokens);
    EXPECT_EQ(again->labels, batch->labels);
  }
  for (size_t b = 0; b < 3; ++b)
    EXPECT_GT(seen[b], 0) << "bucket " << b << " never picked in 60 steps";

  // One bucket of the single shape draws the single-shape batches.
  Expected<std::unique_ptr<MultitaskSource>> single =
      MultitaskSource::create(dir.string(), shapes[1]);
  Expected<std::unique_ptr<MultitaskSource>> one =
      MultitaskSource::createBuckets(dir.string(), {shapes[1]});
  ASSERT_TRUE(single.ok() && one.ok());
  for (int64_t step = 1; step <= 5; ++step) {
    EXPECT_EQ((*one)->bucketAt(5, step), 0u);
    Expected<runner::SeqBatch> a = (*single)->batch(5, step);
    Expected<runner::SeqBatch> b = (*one)->bucketBatch(0, 5, step);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->srcTokens, b->srcTokens);
    EXPECT_EQ(a->tgtTokens, b->tgtTokens);
    EXPECT_EQ(a->labels, b->labels);
  }

  // Shapes that do not nest, and a bucket of another vocabulary, are
  // refused.
  Expected<std::unique_ptr<MultitaskSource>> unordered =
      MultitaskSource::createBuckets(dir.string(), {shapes[2], shapes[0]});
  ASSERT_FALSE(unordered.ok());
  EXPECT_NE(unordered.status().message().find("length bucket 1"),
            std::string::npos);
  std::vector<runner::SyntheticTaskConfig> vocab = {shapes[0], shapes[1]};
  vocab[1].vocabSize += 1;
  Expected<std::unique_ptr<MultitaskSource>> otherVocab =
      MultitaskSource::createBuckets(dir.string(), vocab);
  ASSERT_FALSE(otherVocab.ok());
  EXPECT_NE(otherVocab.status().message().find("length bucket 1: vocabulary"),
            std::string::npos)
      << otherVocab.status().message();
  fs::remove_all(dir);
}

} // namespace
} // namespace data
} // namespace moert
