//===- TranslationEval.cpp - BLEU, chrF2 and loss of held-out pairs -------===//
#include "moert/data/TranslationEval.h"

#include "moert/checkpoint/Json.h"
#include "moert/eval/Decode.h"

#include <chrono>
#include <filesystem>

namespace moert {
namespace data {

namespace fs = std::filesystem;

Expected<std::vector<DirectionScore>> evaluateTranslation(
    runner::Trainer &trainer, const SentencePieceModel &spm,
    const TranslationEvalOptions &options,
    const std::function<Status(const DirectionScore &)> &onDirection) {
  std::vector<DirectionScore> scores;
  for (const std::string &language : options.languages) {
    MOERT_ASSIGN_OR_RETURN(
        auto pairs,
        readTextPairs((fs::path(options.corpus) /
                       (options.split + "." + language + ".tsv"))
                          .string(),
                      options.sentences));
    if (pairs.empty())
      continue;
    std::vector<bool> directions; // into English?
    if (options.fromEnglish)
      directions.push_back(false);
    if (options.toEnglish)
      directions.push_back(true);
    for (bool intoEnglish : directions) {
      DirectionScore score;
      score.source = intoEnglish ? language : "en";
      score.target = intoEnglish ? "en" : language;
      MOERT_ASSIGN_OR_RETURN(int32_t tag,
                             spm.pieceId(languageTag(score.target)));
      std::vector<std::vector<int32_t>> sources, targets;
      for (const auto &[english, other] : pairs) {
        const std::string &text = intoEnglish ? other : english;
        const std::string &reference = intoEnglish ? english : other;
        MOERT_ASSIGN_OR_RETURN(std::vector<int32_t> ids, spm.encode(text));
        std::vector<int32_t> source = {tag};
        source.insert(source.end(), ids.begin(), ids.end());
        source.push_back(spm.eos());
        sources.push_back(std::move(source));
        MOERT_ASSIGN_OR_RETURN(std::vector<int32_t> target,
                               spm.encode(reference));
        target.push_back(spm.eos());
        targets.push_back(std::move(target));
        score.sourceText.push_back(text);
        score.references.push_back(reference);
      }
      score.sentences = static_cast<int64_t>(sources.size());
      MOERT_ASSIGN_OR_RETURN(score.loss,
                             trainer.heldOutLoss(sources, targets, spm.bos()));
      MOERT_ASSIGN_OR_RETURN(
          eval::NextTokenFn next,
          trainer.nextTokenFunction(std::move(sources), options.mode));
      eval::DecodeOptions decoding;
      decoding.bos = spm.bos();
      decoding.eos = spm.eos();
      decoding.maxLength = trainer.task().config().tgtLen;
      decoding.beam = options.beam;
      decoding.lengthPenalty = options.lengthPenalty;
      const auto start = std::chrono::steady_clock::now();
      MOERT_ASSIGN_OR_RETURN(
          std::vector<std::vector<int32_t>> decoded,
          options.beam > 1
              ? eval::beamSearch(score.sentences, next, decoding)
              : eval::greedyDecode(score.sentences, next, decoding));
      score.seconds = std::chrono::duration<double>(
                          std::chrono::steady_clock::now() - start)
                          .count();
      for (const std::vector<int32_t> &ids : decoded) {
        score.hypothesisTokens += static_cast<int64_t>(ids.size());
        MOERT_ASSIGN_OR_RETURN(std::string text, spm.decode(ids));
        score.hypotheses.push_back(std::move(text));
      }
      MOERT_ASSIGN_OR_RETURN(score.bleu, eval::corpusBleu(score.hypotheses,
                                                          {score.references}));
      MOERT_ASSIGN_OR_RETURN(score.chrf, eval::corpusChrf(score.hypotheses,
                                                          {score.references}));
      MOERT_ASSIGN_OR_RETURN(
          score.copyBleu, eval::corpusBleu(score.sourceText, {score.references}));
      MOERT_ASSIGN_OR_RETURN(
          score.copyChrf, eval::corpusChrf(score.sourceText, {score.references}));
      if (onDirection)
        MOERT_RETURN_IF_ERROR(onDirection(score));
      scores.push_back(std::move(score));
    }
  }
  if (scores.empty())
    return invalidArgument("the " + options.split +
                           " split has no pairs for the languages asked");
  return scores;
}

TranslationSummary summarize(const std::vector<DirectionScore> &scores) {
  TranslationSummary s;
  int64_t lossTokens = 0;
  for (const DirectionScore &score : scores) {
    s.bleu += score.bleu.score;
    s.chrf += score.chrf.score;
    s.copyBleu += score.copyBleu.score;
    s.copyChrf += score.copyChrf.score;
    s.loss += score.loss.loss * static_cast<double>(score.loss.tokens);
    lossTokens += score.loss.tokens;
    s.seconds += score.seconds;
    s.sentences += score.sentences;
    s.aboveCopy += score.bleu.score > score.copyBleu.score;
  }
  const double n = scores.empty() ? 1.0 : static_cast<double>(scores.size());
  s.bleu /= n;
  s.chrf /= n;
  s.copyBleu /= n;
  s.copyChrf /= n;
  s.loss = lossTokens ? s.loss / static_cast<double>(lossTokens) : 0.0;
  return s;
}

void writeDirectionJson(std::ostream &out, const DirectionScore &score) {
  out << "{\"source\": " << checkpoint::quoteJson(score.source)
      << ", \"target\": " << checkpoint::quoteJson(score.target)
      << ", \"sentences\": " << score.sentences
      << ", \"bleu\": " << score.bleu.score
      << ", \"chrf2\": " << score.chrf.score
      << ", \"copy_bleu\": " << score.copyBleu.score
      << ", \"copy_chrf2\": " << score.copyChrf.score
      << ", \"hypothesis_tokens\": " << score.hypothesisTokens
      << ", \"loss\": " << score.loss.loss
      << ", \"loss_tokens\": " << score.loss.tokens
      << ", \"seconds\": " << score.seconds << "}";
}

} // namespace data
} // namespace moert
