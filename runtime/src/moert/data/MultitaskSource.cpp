//===- MultitaskSource.cpp - Multilingual MT + denoising batches ----------===//
#include "moert/data/MultitaskSource.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

namespace moert {
namespace data {

namespace fs = std::filesystem;

Expected<std::unique_ptr<MultitaskSource>>
MultitaskSource::create(const std::string &corpusDir,
                        const runner::SyntheticTaskConfig &shape,
                        const MultitaskOptions &options) {
  std::unique_ptr<MultitaskSource> source(new MultitaskSource());
  source->shape_ = shape;
  source->options_ = options;
  if (!(options.temperature > 0))
    return invalidArgument("the sampling temperature must be positive");
  const double shares =
      options.toTarget + options.toEnglish + options.denoising;
  if (!(shares > 0) || options.toTarget < 0 || options.toEnglish < 0 ||
      options.denoising < 0)
    return invalidArgument("the task shares must be non-negative and not all "
                           "zero");
  if (shape.srcLen < 4 || shape.tgtLen < 2)
    return invalidArgument("the plan's sequences are too short for the "
                           "multitask data (source >= 4, target >= 2)");
  sentencepiece::SentencePieceProcessor processor;
  const std::string model = (fs::path(corpusDir) / "spm.model").string();
  if (!processor.Load(model).ok())
    return invalidArgument("cannot load the SentencePiece model '" + model +
                           "' (run moe-data spm " + corpusDir + ")");
  source->vocabulary_ = processor.GetPieceSize();
  if (source->vocabulary_ > shape.vocabSize)
    return invalidArgument(
        "the tokenizer '" + model + "' has " +
        std::to_string(source->vocabulary_) +
        " pieces, but the plan's vocabulary has " +
        std::to_string(shape.vocabSize) +
        "; compile a model with vocab_size >= " +
        std::to_string(source->vocabulary_));
  if (shape.padId != processor.pad_id())
    return invalidArgument("the plan pads with id " +
                           std::to_string(shape.padId) +
                           ", the tokenizer with id " +
                           std::to_string(processor.pad_id()));
  auto piece = [&](const std::string &name) -> Expected<int32_t> {
    const int id = processor.PieceToId(name);
    if (id == processor.unk_id())
      return invalidArgument("the tokenizer '" + model + "' has no piece '" +
                             name + "'");
    return id;
  };
  MOERT_ASSIGN_OR_RETURN(source->englishTag_, piece(languageTag("en")));
  MOERT_ASSIGN_OR_RETURN(source->daeTag_, piece("<dae>"));
  MOERT_ASSIGN_OR_RETURN(source->maskId_, piece("<mask>"));
  source->bos_ = processor.bos_id();
  source->eos_ = processor.eos_id();

  std::ifstream index(fs::path(corpusDir) / "languages.tsv");
  if (!index)
    return invalidArgument("'" + corpusDir +
                           "/languages.tsv' is missing (run moe-data corpus)");
  std::string line;
  std::getline(index, line);
  while (std::getline(index, line)) {
    const std::string language = line.substr(0, line.find('\t'));
    MOERT_ASSIGN_OR_RETURN(
        std::vector<EncodedPair> pairs,
        readIdShard((fs::path(corpusDir) / ("train." + language + ".ids"))
                        .string()));
    if (pairs.empty())
      continue;
    MOERT_ASSIGN_OR_RETURN(int32_t tag, piece(languageTag(language)));
    for (const EncodedPair &pair : pairs)
      for (const std::vector<int32_t> *side : {&pair.source, &pair.target})
        for (int32_t id : *side)
          if (id < 0 || id >= source->vocabulary_)
            return invalidArgument("train." + language + ".ids: token id " +
                                   std::to_string(id) +
                                   " is outside the tokenizer's " +
                                   std::to_string(source->vocabulary_) +
                                   " pieces (shard from another model?)");
    source->languages_.push_back(language);
    source->languageTags_.push_back(tag);
    source->pairs_.push_back(std::move(pairs));
  }
  if (source->languages_.empty())
    return invalidArgument("'" + corpusDir +
                           "' has no training pairs (run moe-data encode)");
  double total = 0.0;
  for (const std::vector<EncodedPair> &pairs : source->pairs_) {
    source->probabilities_.push_back(
        std::pow(static_cast<double>(pairs.size()), 1.0 / options.temperature));
    total += source->probabilities_.back();
  }
  for (double &p : source->probabilities_)
    p /= total;
  return source;
}

std::string MultitaskSource::describe() const {
  std::ostringstream os;
  os << "multitask data: " << languages_.size()
     << " languages (temperature " << options_.temperature
     << "), MT en->X / X->en / denoising " << options_.toTarget << " / "
     << options_.toEnglish << " / " << options_.denoising;
  return os.str();
}

struct MultitaskSource::RowSampler {
  RowSampler(std::mt19937_64 &rng, const MultitaskOptions &options)
      : rng(rng),
        pickTask({options.toTarget, options.toEnglish, options.denoising}),
        uniform(0.0, 1.0), spanLength(options.spanLambda) {}
  std::mt19937_64 &rng;
  std::discrete_distribution<int> pickTask;
  std::uniform_real_distribution<double> uniform;
  std::poisson_distribution<int> spanLength;
};

void MultitaskSource::writeRow(RowSampler &sampler, size_t l,
                               const EncodedPair &pair,
                               const runner::SyntheticTaskConfig &c, int64_t b,
                               runner::SeqBatch &batch) const {
  std::mt19937_64 &rng = sampler.rng;
  const int task = sampler.pickTask(rng);
  std::vector<int32_t> source, target;
  if (task == 0) { // English -> X
    source.push_back(languageTags_[l]);
    source.insert(source.end(), pair.source.begin(), pair.source.end());
    target = pair.target;
  } else if (task == 1) { // X -> English
    source.push_back(englishTag_);
    source.insert(source.end(), pair.target.begin(), pair.target.end());
    target = pair.source;
  } else { // denoising of the X side: text infilling
    source.push_back(daeTag_);
    source.push_back(languageTags_[l]);
    const std::vector<int32_t> &text = pair.target;
    const int64_t toMask = static_cast<int64_t>(
        std::llround(options_.maskRatio * static_cast<double>(text.size())));
    std::vector<bool> masked(text.size(), false);
    int64_t done = 0;
    for (int attempt = 0; done < toMask && attempt < 64; ++attempt) {
      const int64_t length = std::max(1, sampler.spanLength(rng));
      const int64_t start = static_cast<int64_t>(
          sampler.uniform(rng) * static_cast<double>(text.size()));
      for (int64_t i = start;
           i < std::min<int64_t>(start + length, text.size()) && done < toMask;
           ++i)
        if (!masked[i]) {
          masked[i] = true;
          ++done;
        }
    }
    for (size_t i = 0; i < text.size(); ++i) {
      if (!masked[i])
        source.push_back(text[i]);
      else if (i == 0 || !masked[i - 1])
        source.push_back(maskId_); // one <mask> per span
    }
    target = text;
  }
  // Cut to the plan's lengths, the source keeping its </s>.
  if (static_cast<int64_t>(source.size()) > c.srcLen - 1)
    source.resize(static_cast<size_t>(c.srcLen - 1));
  source.push_back(eos_);
  target.push_back(eos_);
  if (static_cast<int64_t>(target.size()) > c.tgtLen)
    target.resize(static_cast<size_t>(c.tgtLen));
  for (size_t i = 0; i < source.size(); ++i)
    batch.srcTokens[b * c.srcLen + i] = source[i];
  for (size_t i = 0; i < target.size(); ++i) {
    batch.labels[b * c.tgtLen + i] = target[i];
    batch.tgtTokens[b * c.tgtLen + i] = i == 0 ? bos_ : target[i - 1];
  }
  batch.targetTokens += static_cast<int64_t>(target.size());
  batch.sourceTokens += static_cast<int64_t>(source.size());
}

Expected<runner::SeqBatch> MultitaskSource::batch(uint64_t seed,
                                                  int64_t step) {
  if (!buckets_.empty())
    return bucketBatch(bucketAt(seed, step), seed, step);
  const runner::SyntheticTaskConfig &c = shape_;
  runner::SeqBatch batch;
  batch.srcTokens.assign(static_cast<size_t>(c.batchSize * c.srcLen), c.padId);
  batch.tgtTokens.assign(static_cast<size_t>(c.batchSize * c.tgtLen), c.padId);
  batch.labels.assign(static_cast<size_t>(c.batchSize * c.tgtLen), c.padId);
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(step));
  std::discrete_distribution<size_t> pickLanguage(probabilities_.begin(),
                                                  probabilities_.end());
  RowSampler sampler(rng, options_);
  for (int64_t b = 0; b < c.batchSize; ++b) {
    const size_t l = pickLanguage(rng);
    const std::vector<EncodedPair> &pairs = pairs_[l];
    const EncodedPair &pair =
        pairs[std::uniform_int_distribution<size_t>(0, pairs.size() - 1)(rng)];
    writeRow(sampler, l, pair, c, b, batch);
  }
  return batch;
}

Expected<std::unique_ptr<MultitaskSource>> MultitaskSource::createBuckets(
    const std::string &corpusDir,
    const std::vector<runner::SyntheticTaskConfig> &shapes,
    const MultitaskOptions &options) {
  if (shapes.empty())
    return invalidArgument("no length buckets");
  std::vector<BucketShape> order;
  for (size_t b = 0; b < shapes.size(); ++b) {
    const runner::SyntheticTaskConfig &shape = shapes[b];
    const std::string where = "length bucket " + std::to_string(b) + ": ";
    if (shape.srcLen < 4 || shape.tgtLen < 2 || shape.batchSize < 1)
      return invalidArgument(where + "the plan's batch [" +
                             std::to_string(shape.batchSize) + ", " +
                             std::to_string(shape.srcLen) + "/" +
                             std::to_string(shape.tgtLen) +
                             "] is too small for the multitask data "
                             "(source >= 4, target >= 2)");
    if (shape.vocabSize != shapes[0].vocabSize ||
        shape.padId != shapes[0].padId)
      return invalidArgument(where + "vocabulary " +
                             std::to_string(shape.vocabSize) + " and pad id " +
                             std::to_string(shape.padId) +
                             ", expected bucket "
                             "0's " +
                             std::to_string(shapes[0].vocabSize) + " and " +
                             std::to_string(shapes[0].padId));
    order.push_back({shape.batchSize, shape.srcLen, shape.tgtLen});
  }
  MOERT_RETURN_IF_ERROR(checkBucketOrder(order));
  MOERT_ASSIGN_OR_RETURN(std::unique_ptr<MultitaskSource> source,
                         create(corpusDir, shapes[0], options));
  source->buckets_ = shapes;
  const size_t numLanguages = source->pairs_.size();
  source->pools_.assign(shapes.size(),
                        std::vector<std::vector<uint32_t>>(numLanguages));
  for (size_t l = 0; l < numLanguages; ++l)
    for (size_t i = 0; i < source->pairs_[l].size(); ++i) {
      const auto [src, tgt] = rowLengths(source->pairs_[l][i]);
      source->pools_[assignBucket(src, tgt, order)][l].push_back(
          static_cast<uint32_t>(i));
    }
  // Within a bucket a pair keeps its single-shape weight p_l / n_l.
  std::vector<double> weights(shapes.size(), 0.0);
  for (size_t b = 0; b < shapes.size(); ++b) {
    std::vector<double> languages(numLanguages, 0.0);
    for (size_t l = 0; l < numLanguages; ++l) {
      languages[l] = source->probabilities_[l] *
                     static_cast<double>(source->pools_[b][l].size()) /
                     static_cast<double>(source->pairs_[l].size());
      weights[b] += languages[l];
    }
    if (weights[b] > 0)
      for (double &p : languages)
        p /= weights[b];
    source->bucketLanguageProbabilities_.push_back(std::move(languages));
  }
  source->bucketProbabilities_ = bucketProbabilities(weights, order);
  return source;
}

size_t MultitaskSource::bucketAt(uint64_t seed, int64_t step) const {
  return buckets_.empty() ? 0 : pickBucket(bucketProbabilities_, seed, step);
}

std::vector<MultitaskSource::BucketPool> MultitaskSource::bucketPools() const {
  std::vector<BucketPool> pools(buckets_.size());
  for (size_t b = 0; b < buckets_.size(); ++b) {
    pools[b].probability = bucketProbabilities_[b];
    for (size_t l = 0; l < pools_[b].size(); ++l)
      for (uint32_t i : pools_[b][l]) {
        ++pools[b].pairs;
        pools[b].targetTokens +=
            static_cast<int64_t>(pairs_[l][i].target.size()) + 1;
      }
  }
  return pools;
}

Expected<runner::SeqBatch>
MultitaskSource::bucketBatch(size_t bucket, uint64_t seed, int64_t step) {
  if (buckets_.empty()) {
    if (bucket != 0)
      return invalidArgument("the multitask source has one shape, asked "
                             "for bucket " +
                             std::to_string(bucket));
    return batch(seed, step);
  }
  if (bucket >= buckets_.size())
    return invalidArgument("asked for length bucket " + std::to_string(bucket) +
                           " of " + std::to_string(buckets_.size()));
  if (!(bucketProbabilities_[bucket] > 0))
    return failedPrecondition("length bucket " + std::to_string(bucket) +
                              " has no training pairs");
  const runner::SyntheticTaskConfig &c = buckets_[bucket];
  runner::SeqBatch batch;
  batch.srcTokens.assign(static_cast<size_t>(c.batchSize * c.srcLen), c.padId);
  batch.tgtTokens.assign(static_cast<size_t>(c.batchSize * c.tgtLen), c.padId);
  batch.labels.assign(static_cast<size_t>(c.batchSize * c.tgtLen), c.padId);
  // The rows' stream is the single-shape one; the bucket's choice has its
  // own (bucketUniform).
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull +
                      static_cast<uint64_t>(step));
  const std::vector<double> &languages = bucketLanguageProbabilities_[bucket];
  std::discrete_distribution<size_t> pickLanguage(languages.begin(),
                                                  languages.end());
  RowSampler sampler(rng, options_);
  for (int64_t b = 0; b < c.batchSize; ++b) {
    const size_t l = pickLanguage(rng);
    const std::vector<uint32_t> &pool = pools_[bucket][l];
    const EncodedPair &pair =
        pairs_[l][pool[std::uniform_int_distribution<size_t>(0, pool.size() -
                                                                    1)(rng)]];
    writeRow(sampler, l, pair, c, b, batch);
  }
  return batch;
}

} // namespace data
} // namespace moert
