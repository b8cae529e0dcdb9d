//===- Decode.cpp - Greedy and beam-search decoding -----------------------===//
#include "moert/eval/Decode.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace moert {
namespace eval {

namespace {

Status checkRows(const std::vector<std::vector<float>> &rows, size_t want) {
  if (rows.size() != want)
    return internalError("the model returned " + std::to_string(rows.size()) +
                         " distributions for " + std::to_string(want) +
                         " prefixes");
  for (const std::vector<float> &row : rows)
    if (row.empty() || row.size() != rows.front().size())
      return internalError("the model returned distributions of different "
                           "or zero sizes");
  return Status::success();
}

size_t argmax(const std::vector<float> &row) {
  size_t best = 0;
  for (size_t i = 1; i < row.size(); ++i)
    if (row[i] > row[best])
      best = i;
  return best;
}

double lengthNormalized(double logProb, int64_t length, double alpha) {
  if (alpha == 0.0)
    return logProb;
  return logProb / std::pow((5.0 + static_cast<double>(length)) / 6.0, alpha);
}

} // namespace

std::vector<float> logSoftmax(const float *logits, int64_t size) {
  if (size <= 0)
    return {};
  const float largest = *std::max_element(logits, logits + size);
  double sum = 0.0;
  for (int64_t v = 0; v < size; ++v)
    sum += std::exp(static_cast<double>(logits[v] - largest));
  const float logSum = static_cast<float>(std::log(sum)) + largest;
  std::vector<float> out(logits, logits + size);
  for (float &value : out)
    value -= logSum;
  return out;
}

Expected<std::vector<std::vector<int32_t>>>
greedyDecode(int64_t numSources, const NextTokenFn &next,
             const DecodeOptions &options) {
  if (numSources < 0 || options.maxLength < 1)
    return invalidArgument("greedy decoding needs sources >= 0 and a length "
                           "limit >= 1");
  std::vector<std::vector<int32_t>> prefixes(
      static_cast<size_t>(numSources), std::vector<int32_t>{options.bos});
  std::vector<bool> done(static_cast<size_t>(numSources), false);
  for (int64_t step = 0; step < options.maxLength; ++step) {
    std::vector<int64_t> active;
    std::vector<std::vector<int32_t>> activePrefixes;
    for (int64_t s = 0; s < numSources; ++s)
      if (!done[s]) {
        active.push_back(s);
        activePrefixes.push_back(prefixes[s]);
      }
    if (active.empty())
      break;
    MOERT_ASSIGN_OR_RETURN(std::vector<std::vector<float>> rows,
                           next(active, activePrefixes));
    MOERT_RETURN_IF_ERROR(checkRows(rows, active.size()));
    for (size_t i = 0; i < active.size(); ++i) {
      const int32_t token = static_cast<int32_t>(argmax(rows[i]));
      if (token == options.eos)
        done[active[i]] = true;
      else
        prefixes[active[i]].push_back(token);
    }
  }
  for (std::vector<int32_t> &prefix : prefixes)
    prefix.erase(prefix.begin()); // <s>
  return prefixes;
}

Expected<std::vector<std::vector<int32_t>>>
beamSearch(int64_t numSources, const NextTokenFn &next,
           const DecodeOptions &options) {
  if (numSources < 0 || options.maxLength < 1 || options.beam < 1)
    return invalidArgument("beam search needs sources >= 0, a length limit "
                           ">= 1 and a beam >= 1");
  struct Hypothesis {
    std::vector<int32_t> tokens; // starts with <s>
    double logProb = 0.0;
  };
  struct Finished {
    std::vector<int32_t> tokens; // without <s> and </s>
    double score = -std::numeric_limits<double>::infinity();
    bool any = false;
  };
  std::vector<std::vector<Hypothesis>> beams(static_cast<size_t>(numSources));
  for (std::vector<Hypothesis> &beam : beams)
    beam.push_back({{options.bos}, 0.0});
  std::vector<Finished> best(static_cast<size_t>(numSources));
  for (int64_t step = 0; step < options.maxLength; ++step) {
    std::vector<int64_t> sources;
    std::vector<std::vector<int32_t>> prefixes;
    for (int64_t s = 0; s < numSources; ++s)
      for (const Hypothesis &h : beams[s]) {
        sources.push_back(s);
        prefixes.push_back(h.tokens);
      }
    if (sources.empty())
      break;
    MOERT_ASSIGN_OR_RETURN(std::vector<std::vector<float>> rows,
                           next(sources, prefixes));
    MOERT_RETURN_IF_ERROR(checkRows(rows, sources.size()));
    size_t row = 0;
    for (int64_t s = 0; s < numSources; ++s) {
      struct Candidate {
        double logProb;
        size_t parent;
        int32_t token;
      };
      std::vector<Candidate> candidates;
      for (size_t h = 0; h < beams[s].size(); ++h, ++row)
        for (size_t t = 0; t < rows[row].size(); ++t)
          candidates.push_back({beams[s][h].logProb + rows[row][t], h,
                                static_cast<int32_t>(t)});
      // The 2 * beam best continuations (enough to keep `beam` alive when
      // some of them end), highest first, earlier parents / tokens first
      // on ties.
      const size_t take =
          std::min(candidates.size(), static_cast<size_t>(2 * options.beam));
      std::partial_sort(candidates.begin(), candidates.begin() + take,
                        candidates.end(),
                        [](const Candidate &a, const Candidate &b) {
                          if (a.logProb != b.logProb)
                            return a.logProb > b.logProb;
                          if (a.parent != b.parent)
                            return a.parent < b.parent;
                          return a.token < b.token;
                        });
      std::vector<Hypothesis> nextBeam;
      for (size_t c = 0; c < take &&
                         static_cast<int64_t>(nextBeam.size()) < options.beam;
           ++c) {
        const Candidate &cand = candidates[c];
        std::vector<int32_t> tokens = beams[s][cand.parent].tokens;
        const bool ended =
            cand.token == options.eos || step + 1 == options.maxLength;
        if (cand.token != options.eos)
          tokens.push_back(cand.token);
        if (ended) {
          const int64_t length = static_cast<int64_t>(tokens.size()) -
                                 (cand.token == options.eos ? 0 : 1) + 0;
          const double score =
              lengthNormalized(cand.logProb, length, options.lengthPenalty);
          if (!best[s].any || score > best[s].score) {
            best[s].any = true;
            best[s].score = score;
            best[s].tokens.assign(tokens.begin() + 1, tokens.end());
          }
          continue;
        }
        nextBeam.push_back({std::move(tokens), cand.logProb});
      }
      // Stop a source once no live hypothesis can beat its best finished
      // one (log-probabilities only fall).
      if (best[s].any && !nextBeam.empty()) {
        double bestLive = -std::numeric_limits<double>::infinity();
        for (const Hypothesis &h : nextBeam)
          bestLive = std::max(
              bestLive,
              lengthNormalized(h.logProb,
                               static_cast<int64_t>(options.maxLength),
                               options.lengthPenalty));
        if (bestLive <= best[s].score)
          nextBeam.clear();
      }
      beams[s] = std::move(nextBeam);
    }
  }
  std::vector<std::vector<int32_t>> out;
  for (const Finished &f : best)
    out.push_back(f.tokens);
  return out;
}

} // namespace eval
} // namespace moert
