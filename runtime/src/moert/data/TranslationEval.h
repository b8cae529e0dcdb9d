//===- TranslationEval.h - BLEU, chrF2, loss of held-out pairs -*- C++ -*-===//
//
// What moe-eval prints and moe-train --eval-every logs: for each language
// and direction, the first N pairs of a split of the encoded corpus are
// translated with a trainer's current parameters (greedy or beam search,
// through Trainer::nextTokenFunction), detokenized with the corpus'
// SentencePiece model and scored against the references with sacreBLEU's
// BLEU and chrF2, next to copying the source; the references'
// teacher-forced loss comes from Trainer::heldOutLoss.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_DATA_TRANSLATIONEVAL_H
#define MOERT_DATA_TRANSLATIONEVAL_H

#include "moert/data/Tokenizer.h"
#include "moert/eval/Bleu.h"
#include "moert/runner/Trainer.h"

#include <functional>
#include <ostream>
#include <string>
#include <vector>

namespace moert {
namespace data {

struct TranslationEvalOptions {
  std::string corpus;     // moe-data's directory (languages.tsv, spm.model)
  std::string split = "test";       // test or valid
  std::vector<std::string> languages; // of languages.tsv
  bool toEnglish = false, fromEnglish = true;
  int64_t sentences = 200; // first N pairs per language
  int64_t beam = 1;        // 1: greedy
  double lengthPenalty = 0.6;
  runner::Trainer::DecodeMode mode = runner::Trainer::DecodeMode::Incremental;
};

struct DirectionScore {
  std::string source, target; // language codes
  int64_t sentences = 0, hypothesisTokens = 0;
  double seconds = 0.0; // decoding time
  eval::BleuScore bleu, copyBleu;
  eval::ChrfScore chrf, copyChrf;
  runner::HeldOutLoss loss;
  std::vector<std::string> sourceText, references, hypotheses;
};

/// Scores every direction asked (languages in order, English->X before
/// X->English); `onDirection` (optional) sees each as soon as it is done
/// (progress, files) and may stop the evaluation with an error. Languages
/// without pairs in the split are skipped; none at all is an error.
Expected<std::vector<DirectionScore>> evaluateTranslation(
    runner::Trainer &trainer, const SentencePieceModel &spm,
    const TranslationEvalOptions &options,
    const std::function<Status(const DirectionScore &)> &onDirection = {});

/// Over all directions: BLEU and chrF2 (and the copy baseline's) averaged
/// per direction, the loss per target token, sentences and decoding time
/// summed, the directions whose BLEU is above the copy baseline.
struct TranslationSummary {
  double bleu = 0, chrf = 0, copyBleu = 0, copyChrf = 0;
  double loss = 0, seconds = 0;
  int64_t sentences = 0, aboveCopy = 0;
};
TranslationSummary summarize(const std::vector<DirectionScore> &scores);

/// One direction as a JSON object: languages, sentences, BLEU, chrF2, the
/// copy baseline, hypothesis tokens, loss and its tokens, decoding seconds
/// (numbers at `out`'s precision).
void writeDirectionJson(std::ostream &out, const DirectionScore &score);

} // namespace data
} // namespace moert

#endif // MOERT_DATA_TRANSLATIONEVAL_H
