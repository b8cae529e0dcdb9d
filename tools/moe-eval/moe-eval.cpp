//===- moe-eval.cpp - Translation quality of a trained checkpoint ---------===//
//
//   moe-eval PLAN --checkpoint CK --data CORPUS [--split test|valid]
//            [--languages de,fr,...|all] [--sentences N]
//            [--direction en-x|x-en|both] [--beam K] [--length-penalty A]
//            [--json FILE] [--hypotheses DIR]
//
// Loads the checkpoint into the plan (one process; the plan of the same
// model compiled without --moe-partition reads a partitioned run's
// checkpoint, which holds logical tensors), translates the first N pairs of
// the corpus split of every language with the plan's forward pass (greedy,
// or beam search with --beam K > 1), turns the ids back into text with the
// corpus' SentencePiece model, and prints corpus BLEU and chrF2 per
// direction as sacreBLEU computes them (moert/eval/Bleu.h) next to the
// copy-the-source baseline, with the decoding speed. --json writes the
// table, --hypotheses DIR one file of translations per direction
// (<dir>/<src>-<tgt>.hyp, with .ref and .src beside it) that moe-bleu or
// sacreBLEU can score again.
//
//===----------------------------------------------------------------------===//
#include "moert/data/Tokenizer.h"
#include "moert/eval/Bleu.h"
#include "moert/eval/Decode.h"
#include "moert/hal/Device.h"
#include "moert/plan/PlanLoader.h"
#include "moert/runner/CommandLine.h"
#include "moert/runner/Trainer.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using namespace moert;
namespace fs = std::filesystem;

namespace {

struct Options {
  std::string plan, checkpoint, data, split = "test", languages = "all";
  std::string direction = "en-x", json, hypotheses;
  int64_t sentences = 200, beam = 1;
  double lengthPenalty = 0.6;
  runner::Trainer::DecodeMode mode = runner::Trainer::DecodeMode::Incremental;
};

const char *kUsage =
    "usage: moe-eval <plan.moeplan> --checkpoint CK.safetensors --data "
    "CORPUS_DIR\n"
    "                [--split test|valid] [--languages L1,L2,...|all] "
    "[--sentences N]\n"
    "                [--direction en-x|x-en|both] [--beam K] "
    "[--length-penalty A]\n"
    "                [--json FILE] [--hypotheses DIR]\n"
    "                [--decoder incremental|reuse-sources|recompute]\n"
    "  translates the first N pairs (default 200) of each language's split "
    "of the encoded corpus (moe-data) with the checkpoint and prints BLEU "
    "and chrF2 (sacreBLEU's defaults) per direction next to the "
    "copy-the-source baseline\n"
    "  --beam K      beam search with K hypotheses (default 1: greedy) and "
    "GNMT's length penalty A (default 0.6)\n"
    "  --hypotheses D  write <D>/<src>-<tgt>.{src,hyp,ref}, one segment per "
    "line\n"
    "  --decoder M   how the model runs: incremental (default: the plan's "
    "encode and decode_step programs, compiled with "
    "--moe-training-pipeline=\"decoder=true\": the encoder once per "
    "source, the decoder one position per token over cached keys and "
    "values; plans without them fall back to reuse-sources), reuse-sources "
    "(the training step's forward, its encoder part once per source, the "
    "decoder over the whole prefix), recompute (the whole forward for "
    "every token: the reference); the translations agree\n"
    "  --recompute-sources  the same as --decoder recompute\n";

bool parseOptions(int argc, char **argv, Options &options) {
  runner::CommandLine cl("moe-eval", kUsage, argc, argv);
  bool ok = true;
  while (ok && cl.next()) {
    const std::string &arg = cl.arg();
    if (arg == "--checkpoint") {
      ok = cl.value(options.checkpoint);
    } else if (arg == "--data") {
      ok = cl.value(options.data);
    } else if (arg == "--split") {
      ok = cl.value(options.split);
      if (ok && options.split != "test" && options.split != "valid")
        ok = cl.error("--split expects test or valid, found '" + options.split +
                      "'");
    } else if (arg == "--languages") {
      ok = cl.value(options.languages);
    } else if (arg == "--sentences") {
      ok = cl.integer(1, options.sentences);
    } else if (arg == "--direction") {
      ok = cl.value(options.direction);
      if (ok && options.direction != "en-x" && options.direction != "x-en" &&
          options.direction != "both")
        ok = cl.error("--direction expects en-x, x-en or both, found '" +
                      options.direction + "'");
    } else if (arg == "--beam") {
      ok = cl.integer(1, options.beam, 64);
    } else if (arg == "--length-penalty") {
      std::string text;
      ok = cl.value(text);
      if (ok) {
        char *end = nullptr;
        options.lengthPenalty = std::strtod(text.c_str(), &end);
        if (end == text.c_str() || *end != '\0' ||
            !(options.lengthPenalty >= 0.0 && options.lengthPenalty <= 10.0))
          ok = cl.error("--length-penalty expects a number in [0, 10], "
                        "found '" +
                        text + "'");
      }
    } else if (arg == "--json") {
      ok = cl.value(options.json);
    } else if (arg == "--hypotheses") {
      ok = cl.value(options.hypotheses);
    } else if (arg == "--recompute-sources") {
      options.mode = runner::Trainer::DecodeMode::Recompute;
    } else if (arg == "--decoder") {
      std::string mode;
      ok = cl.value(mode);
      if (ok && mode == "incremental")
        options.mode = runner::Trainer::DecodeMode::Incremental;
      else if (ok && mode == "reuse-sources")
        options.mode = runner::Trainer::DecodeMode::ReuseSources;
      else if (ok && mode == "recompute")
        options.mode = runner::Trainer::DecodeMode::Recompute;
      else if (ok)
        ok = cl.error("--decoder expects incremental, reuse-sources or "
                      "recompute, found '" +
                      mode + "'");
    } else if (cl.isFlag()) {
      ok = cl.unknownOption();
    } else if (options.plan.empty()) {
      options.plan = arg;
    } else {
      ok = cl.error("expected one plan, found a second: '" + arg + "'");
    }
  }
  if (!ok)
    return false;
  if (options.plan.empty())
    return cl.error("a plan is required");
  if (options.checkpoint.empty())
    return cl.error("--checkpoint is required");
  if (options.data.empty())
    return cl.error("--data is required");
  return true;
}

int fail(const Status &status) {
  std::fprintf(stderr, "moe-eval: error: %s\n", status.toString().c_str());
  return 1;
}

std::vector<std::string> splitList(const std::string &text) {
  std::vector<std::string> items;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ','))
    if (!item.empty())
      items.push_back(item);
  return items;
}

struct Row {
  std::string source, target; // language codes
  int64_t sentences = 0, hypothesisTokens = 0;
  double seconds = 0.0;
  eval::BleuScore bleu, copyBleu;
  eval::ChrfScore chrf, copyChrf;
};

Status writeLines(const fs::path &path, const std::vector<std::string> &lines) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  for (const std::string &line : lines)
    out << line << '\n';
  out.flush();
  if (!out)
    return dataLoss("cannot write '" + path.string() + "'");
  return Status::success();
}

std::string jsonString(const std::string &text) {
  std::string out = "\"";
  for (char ch : text) {
    if (ch == '"' || ch == '\\')
      out += '\\';
    out += ch;
  }
  return out + "\"";
}

} // namespace

int main(int argc, char **argv) {
  Options options;
  if (!parseOptions(argc, argv, options))
    return 2;

  Expected<std::vector<std::string>> corpusLanguages =
      data::corpusLanguages(options.data);
  if (!corpusLanguages.ok())
    return fail(corpusLanguages.status());
  std::vector<std::string> languages = *corpusLanguages;
  if (options.languages != "all") {
    languages = splitList(options.languages);
    for (const std::string &language : languages)
      if (std::find(corpusLanguages->begin(), corpusLanguages->end(),
                    language) == corpusLanguages->end())
        return fail(invalidArgument("--languages: '" + language +
                                    "' is not a language of " + options.data +
                                    "/languages.tsv"));
    if (languages.empty())
      return fail(invalidArgument("--languages names no language"));
  }
  Expected<std::unique_ptr<data::SentencePieceModel>> spm =
      data::SentencePieceModel::load(
          (fs::path(options.data) / "spm.model").string());
  if (!spm.ok())
    return fail(spm.status());

  Expected<plan::LoadedPlan> loaded = plan::loadPlan(options.plan);
  if (!loaded.ok())
    return fail(loaded.status());
  Expected<std::unique_ptr<hal::Device>> device =
      hal::createDevice(hal::Backend::Cpu, hal::DeviceOptions());
  if (!device.ok())
    return fail(device.status());
  Expected<std::unique_ptr<runner::Trainer>> trainer = runner::Trainer::create(
      std::move(*loaded), /*seed=*/1, /*alphabet=*/0, nullptr, device->get());
  if (!trainer.ok())
    return fail(trainer.status());
  if ((*trainer)->task().config().vocabSize != (*spm)->size())
    return fail(failedPrecondition(
        "the plan's vocabulary has " +
        std::to_string((*trainer)->task().config().vocabSize) +
        " tokens, the corpus' SentencePiece model " +
        std::to_string((*spm)->size()) +
        ": compile the model with vocab_size = " +
        std::to_string((*spm)->size())));
  Expected<int64_t> step = (*trainer)->loadCheckpoint(options.checkpoint);
  if (!step.ok())
    return fail(step.status());

  if (!options.hypotheses.empty()) {
    std::error_code ec;
    fs::create_directories(options.hypotheses, ec);
    if (ec)
      return fail(invalidArgument("--hypotheses: cannot create '" +
                                  options.hypotheses + "': " + ec.message()));
  }

  std::printf("moe-eval: %s at step %lld, %s split, up to %lld sentences per "
              "direction, %s\n",
              options.checkpoint.c_str(), static_cast<long long>(*step),
              options.split.c_str(), static_cast<long long>(options.sentences),
              options.beam > 1
                  ? ("beam " + std::to_string(options.beam)).c_str()
                  : "greedy");
  std::printf("%-9s %5s %7s %7s %10s %10s %9s\n", "direction", "sents", "BLEU",
              "chrF2", "copy BLEU", "copy chrF2", "sent/s");
  std::fflush(stdout);

  std::vector<Row> rows;
  for (const std::string &language : languages) {
    Expected<std::vector<std::pair<std::string, std::string>>> pairs =
        data::readTextPairs(
            (fs::path(options.data) / (options.split + "." + language + ".tsv"))
                .string(),
            options.sentences);
    if (!pairs.ok())
      return fail(pairs.status());
    if (pairs->empty())
      continue;
    std::vector<bool> toEnglish;
    if (options.direction != "x-en")
      toEnglish.push_back(false);
    if (options.direction != "en-x")
      toEnglish.push_back(true);
    for (bool intoEnglish : toEnglish) {
      Row row;
      row.source = intoEnglish ? language : "en";
      row.target = intoEnglish ? "en" : language;
      Expected<int32_t> tag = (*spm)->pieceId(data::languageTag(row.target));
      if (!tag.ok())
        return fail(tag.status());
      std::vector<std::vector<int32_t>> sources;
      std::vector<std::string> sourceText, references;
      for (const auto &[english, other] : *pairs) {
        const std::string &text = intoEnglish ? other : english;
        Expected<std::vector<int32_t>> ids = (*spm)->encode(text);
        if (!ids.ok())
          return fail(ids.status());
        std::vector<int32_t> source = {*tag};
        source.insert(source.end(), ids->begin(), ids->end());
        source.push_back((*spm)->eos());
        sources.push_back(std::move(source));
        sourceText.push_back(text);
        references.push_back(intoEnglish ? english : other);
      }
      row.sentences = static_cast<int64_t>(sources.size());
      Expected<eval::NextTokenFn> next = (*trainer)->nextTokenFunction(
          std::move(sources), options.mode);
      if (!next.ok())
        return fail(next.status());
      eval::DecodeOptions decoding;
      decoding.bos = (*spm)->bos();
      decoding.eos = (*spm)->eos();
      decoding.maxLength = (*trainer)->task().config().tgtLen;
      decoding.beam = options.beam;
      decoding.lengthPenalty = options.lengthPenalty;
      const auto start = std::chrono::steady_clock::now();
      Expected<std::vector<std::vector<int32_t>>> decoded =
          options.beam > 1 ? eval::beamSearch(row.sentences, *next, decoding)
                           : eval::greedyDecode(row.sentences, *next, decoding);
      if (!decoded.ok())
        return fail(decoded.status());
      row.seconds = std::chrono::duration<double>(
                        std::chrono::steady_clock::now() - start)
                        .count();
      std::vector<std::string> hypotheses;
      for (const std::vector<int32_t> &ids : *decoded) {
        row.hypothesisTokens += static_cast<int64_t>(ids.size());
        Expected<std::string> text = (*spm)->decode(ids);
        if (!text.ok())
          return fail(text.status());
        hypotheses.push_back(*text);
      }
      Expected<eval::BleuScore> bleu =
          eval::corpusBleu(hypotheses, {references});
      Expected<eval::ChrfScore> chrf =
          eval::corpusChrf(hypotheses, {references});
      Expected<eval::BleuScore> copyBleu =
          eval::corpusBleu(sourceText, {references});
      Expected<eval::ChrfScore> copyChrf =
          eval::corpusChrf(sourceText, {references});
      for (const Status &status :
           {bleu.status(), chrf.status(), copyBleu.status(), copyChrf.status()})
        if (!status.ok())
          return fail(status);
      row.bleu = *bleu;
      row.chrf = *chrf;
      row.copyBleu = *copyBleu;
      row.copyChrf = *copyChrf;
      if (!options.hypotheses.empty()) {
        const fs::path base =
            fs::path(options.hypotheses) / (row.source + "-" + row.target);
        for (const auto &[extension, lines] :
             {std::pair<const char *, const std::vector<std::string> *>{
                  ".hyp", &hypotheses},
              {".ref", &references},
              {".src", &sourceText}})
          if (Status status = writeLines(base.string() + extension, *lines);
              !status.ok())
            return fail(status);
      }
      std::printf("%-9s %5lld %7.2f %7.2f %10.2f %10.2f %9.1f\n",
                  (row.source + "-" + row.target).c_str(),
                  static_cast<long long>(row.sentences), row.bleu.score,
                  row.chrf.score, row.copyBleu.score, row.copyChrf.score,
                  row.seconds > 0 ? row.sentences / row.seconds : 0.0);
      std::fflush(stdout);
      rows.push_back(std::move(row));
    }
  }
  if (rows.empty())
    return fail(invalidArgument("the " + options.split +
                                " split has no pairs for the languages asked"));
  double bleu = 0, chrf = 0, copyBleu = 0, copyChrf = 0, seconds = 0;
  int64_t sentences = 0;
  for (const Row &row : rows) {
    bleu += row.bleu.score;
    chrf += row.chrf.score;
    copyBleu += row.copyBleu.score;
    copyChrf += row.copyChrf.score;
    seconds += row.seconds;
    sentences += row.sentences;
  }
  const double n = static_cast<double>(rows.size());
  std::printf("%-9s %5lld %7.2f %7.2f %10.2f %10.2f %9.1f\n", "average",
              static_cast<long long>(sentences), bleu / n, chrf / n,
              copyBleu / n, copyChrf / n,
              seconds > 0 ? sentences / seconds : 0);
  int64_t better = 0;
  for (const Row &row : rows)
    better += row.bleu.score > row.copyBleu.score;
  std::printf("moe-eval: BLEU above the copy baseline in %lld of %zu "
              "directions\n",
              static_cast<long long>(better), rows.size());

  if (!options.json.empty()) {
    const std::string temporary = options.json + ".tmp";
    {
      std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
      out << "{\"checkpoint\": " << jsonString(options.checkpoint)
          << ", \"step\": " << *step
          << ", \"split\": " << jsonString(options.split)
          << ", \"beam\": " << options.beam << ", \"rows\": [";
      for (size_t i = 0; i < rows.size(); ++i) {
        const Row &row = rows[i];
        out << (i ? ", " : "") << "{\"source\": " << jsonString(row.source)
            << ", \"target\": " << jsonString(row.target)
            << ", \"sentences\": " << row.sentences
            << ", \"bleu\": " << row.bleu.score
            << ", \"chrf2\": " << row.chrf.score
            << ", \"copy_bleu\": " << row.copyBleu.score
            << ", \"copy_chrf2\": " << row.copyChrf.score
            << ", \"hypothesis_tokens\": " << row.hypothesisTokens
            << ", \"seconds\": " << row.seconds << "}";
      }
      out << "]}\n";
      out.flush();
      if (!out)
        return fail(dataLoss("cannot write '" + temporary + "'"));
    }
    std::error_code ec;
    fs::rename(temporary, options.json, ec);
    if (ec)
      return fail(dataLoss("cannot rename '" + temporary + "' to '" +
                           options.json + "': " + ec.message()));
  }
  return 0;
}
