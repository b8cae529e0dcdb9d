//===- Bleu.h - Corpus BLEU and chrF as sacreBLEU computes them -*- C++ -*-===//
//
// Translation metrics with the definitions of sacreBLEU 2.x's defaults, so
// that scores are comparable with published ones:
//   - BLEU: the 13a tokenizer (mteval-v13a, as WMT uses), word n-grams
//     1..4 with clipped counts summed over the corpus, the closest reference
//     length, brevity penalty exp(1 - r/c), and the 'exp' smoothing (an
//     order with no match counts as 1 / (2^k total)), case-sensitive;
//   - chrF2: character n-grams 1..6 with whitespace removed, per sentence
//     statistics of the best reference summed over the corpus, F-beta with
//     beta 2 over the average precision and recall of the orders present.
// Text is UTF-8; tokenization and whitespace follow Python's string
// semantics (code points, str.split()'s whitespace), as sacreBLEU's do.
// Tested against sacreBLEU's own output (tests/eval).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_EVAL_BLEU_H
#define MOERT_EVAL_BLEU_H

#include "moert/Status.h"

#include <cstdint>
#include <string>
#include <vector>

namespace moert {
namespace eval {

/// sacreBLEU's 13a tokenization of one line (tokens joined by spaces).
std::string tokenize13a(const std::string &line);

struct BleuScore {
  double score = 0.0; // 0..100
  std::vector<int64_t> correct, total; // per n-gram order
  std::vector<double> precisions;      // 0..100
  double brevityPenalty = 0.0;
  int64_t hypothesisLength = 0, referenceLength = 0;
  /// "BLEU = 38.0 88.9/57.1/40.0/25.0 (BP = 0.801 ratio = 0.818 hyp_len = 9
  /// ref_len = 11)" with `width` decimals for the score.
  std::string format(int width = 1) const;
};

/// Corpus BLEU of `hypotheses` against one or more reference streams
/// (`references[r][i]` is reference r of segment i). Every stream must have
/// as many segments as the hypotheses.
Expected<BleuScore>
corpusBleu(const std::vector<std::string> &hypotheses,
           const std::vector<std::vector<std::string>> &references);

struct ChrfScore {
  double score = 0.0; // 0..100
  std::string format(int width = 1) const; // "chrF2 = 60.0"
};

Expected<ChrfScore>
corpusChrf(const std::vector<std::string> &hypotheses,
           const std::vector<std::vector<std::string>> &references);

} // namespace eval
} // namespace moert

#endif // MOERT_EVAL_BLEU_H
