//===- Decode.h - Greedy and beam-search decoding ---------------*- C++ -*-===//
//
// Sequence generation for an encoder-decoder, independent of how the model
// computes its next-token distribution: a NextTokenFn maps a batch of
// target prefixes (each starting with <s>) to log-probabilities over the
// vocabulary for the token after each prefix. A plan-backed model supplies
// it by running the decoder on the prefixes (padded to the plan's length).
//
//   - greedy: the most probable token at each step, until </s> or the
//     length limit; all sources of a batch advance together;
//   - beam search: the `beam` best prefixes per source by total
//     log-probability, finished hypotheses ranked by the length-normalized
//     score log p / ((5 + |y|) / 6)^alpha (GNMT's length penalty; alpha = 0
//     is the raw log-probability), ties to the earlier-found hypothesis.
// Returned sequences exclude <s> and </s>.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_EVAL_DECODE_H
#define MOERT_EVAL_DECODE_H

#include "moert/Status.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace moert {
namespace eval {

/// log p(next | source s, prefixes[i]) for every i: rows[i] has the
/// vocabulary's log-probabilities. `sources[i]` names the source of row i.
using NextTokenFn = std::function<Expected<std::vector<std::vector<float>>>(
    const std::vector<int64_t> &sources,
    const std::vector<std::vector<int32_t>> &prefixes)>;

/// log softmax of `size` logits (the largest subtracted first, the sum in
/// double).
std::vector<float> logSoftmax(const float *logits, int64_t size);

struct DecodeOptions {
  int32_t bos = 2, eos = 3;
  int64_t maxLength = 64; // generated tokens, </s> included
  int64_t beam = 4;
  double lengthPenalty = 0.6; // alpha
};

/// The greedy output for each of `numSources` sources.
Expected<std::vector<std::vector<int32_t>>>
greedyDecode(int64_t numSources, const NextTokenFn &next,
             const DecodeOptions &options);

/// The best beam-search hypothesis for each source.
Expected<std::vector<std::vector<int32_t>>>
beamSearch(int64_t numSources, const NextTokenFn &next,
           const DecodeOptions &options);

} // namespace eval
} // namespace moert

#endif // MOERT_EVAL_DECODE_H
