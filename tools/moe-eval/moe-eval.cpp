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
#include "moert/checkpoint/Json.h"
#include "moert/data/Tokenizer.h"
#include "moert/data/TranslationEval.h"
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
  std::string device = "cpu";
};

const char *kUsage =
    "usage: moe-eval <plan.moeplan> --checkpoint CK.safetensors --data "
    "CORPUS_DIR\n"
    "                [--split test|valid] [--languages L1,L2,...|all] "
    "[--sentences N]\n"
    "                [--direction en-x|x-en|both] [--beam K] "
    "[--length-penalty A]\n"
    "                [--json FILE] [--hypotheses DIR]\n"
    "                [--decoder incremental|reuse-sources|recompute] "
    "[--device cpu|cuda]\n"
    "  translates the first N pairs (default 200) of each language's split "
    "of the encoded corpus (moe-data) with the checkpoint and prints BLEU "
    "and chrF2 (sacreBLEU's defaults) per direction next to the "
    "copy-the-source baseline, and the references' teacher-forced loss per "
    "target token (the training loss, label smoothing included, without "
    "dropout: the plan's evaluate program when compiled with decoder=true, "
    "else the training step's forward)\n"
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
    "  --recompute-sources  the same as --decoder recompute\n"
    "  --device D    run the plan on the CPU (default) or a CUDA GPU\n";

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
    } else if (arg == "--device") {
      ok = cl.value(options.device);
      if (ok && !hal::parseBackend(options.device).ok())
        ok = cl.error("--device expects cpu or cuda, found '" + options.device +
                      "'");
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

using Row = data::DirectionScore;

Status writeLines(const fs::path &path, const std::vector<std::string> &lines) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  for (const std::string &line : lines)
    out << line << '\n';
  out.flush();
  if (!out)
    return dataLoss("cannot write '" + path.string() + "'");
  return Status::success();
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
  Expected<std::unique_ptr<hal::Device>> device = hal::createDevice(
      *hal::parseBackend(options.device), hal::DeviceOptions());
  if (!device.ok())
    return fail(device.takeStatus().withContext("--device " + options.device));
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
  // The references' teacher-forced loss: the plan's evaluate program
  // (decoder=true), or the training step's forward.
  std::printf("%-9s %5s %7s %7s %10s %10s %9s %8s\n", "direction", "sents",
              "BLEU", "chrF2", "copy BLEU", "copy chrF2", "sent/s", "loss");
  std::fflush(stdout);

  data::TranslationEvalOptions evaluation;
  evaluation.corpus = options.data;
  evaluation.split = options.split;
  evaluation.languages = languages;
  evaluation.fromEnglish = options.direction != "x-en";
  evaluation.toEnglish = options.direction != "en-x";
  evaluation.sentences = options.sentences;
  evaluation.beam = options.beam;
  evaluation.lengthPenalty = options.lengthPenalty;
  evaluation.mode = options.mode;
  auto report = [&](const Row &row) -> Status {
    if (!options.hypotheses.empty()) {
      const fs::path base =
          fs::path(options.hypotheses) / (row.source + "-" + row.target);
      for (const auto &[extension, lines] :
           {std::pair<const char *, const std::vector<std::string> *>{
                ".hyp", &row.hypotheses},
            {".ref", &row.references},
            {".src", &row.sourceText}})
        MOERT_RETURN_IF_ERROR(writeLines(base.string() + extension, *lines));
    }
    std::printf("%-9s %5lld %7.2f %7.2f %10.2f %10.2f %9.1f %8.4f\n",
                (row.source + "-" + row.target).c_str(),
                static_cast<long long>(row.sentences), row.bleu.score,
                row.chrf.score, row.copyBleu.score, row.copyChrf.score,
                row.seconds > 0 ? row.sentences / row.seconds : 0.0,
                row.loss.loss);
    std::fflush(stdout);
    return Status::success();
  };
  Expected<std::vector<Row>> scored =
      data::evaluateTranslation(**trainer, **spm, evaluation, report);
  if (!scored.ok())
    return fail(scored.status());
  const std::vector<Row> &rows = *scored;
  const data::TranslationSummary all = data::summarize(rows);
  std::printf("%-9s %5lld %7.2f %7.2f %10.2f %10.2f %9.1f %8.4f\n", "average",
              static_cast<long long>(all.sentences), all.bleu, all.chrf,
              all.copyBleu, all.copyChrf,
              all.seconds > 0 ? all.sentences / all.seconds : 0, all.loss);
  std::printf("moe-eval: BLEU above the copy baseline in %lld of %zu "
              "directions\n",
              static_cast<long long>(all.aboveCopy), rows.size());

  if (!options.json.empty()) {
    const std::string temporary = options.json + ".tmp";
    {
      std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
      out << "{\"checkpoint\": " << checkpoint::quoteJson(options.checkpoint)
          << ", \"step\": " << *step
          << ", \"split\": " << checkpoint::quoteJson(options.split)
          << ", \"beam\": " << options.beam << ", \"rows\": [";
      for (size_t i = 0; i < rows.size(); ++i) {
        out << (i ? ", " : "");
        data::writeDirectionJson(out, rows[i]);
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
