//===- moe-data.cpp - The multilingual corpus from gettext catalogs -------===//
//
//   moe-data corpus --out DIR [--locales /usr/share/locale] [--languages 50]
//                   [--min-pairs 100] [--seed 1] [--max-chars 200]
//
// Reads every gettext catalog under the locale tree, cleans and
// deduplicates the English->X message pairs, splits them (train / valid /
// test by English source) and keeps the languages with the most pairs
// (moert/data/Corpus.h). Writes DIR/{train,valid,test}.<lang>.tsv and
// DIR/languages.tsv, shows progress on stderr, reports malformed catalogs
// (skipped) and prints a summary. Exit status 1 on an error, 2 on a bad
// command line.
//
//===----------------------------------------------------------------------===//
#include "moert/data/Corpus.h"
#include "moert/data/Tokenizer.h"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

const char *kUsage =
    "usage: moe-data corpus --out DIR [--locales DIR] [--languages N]\n"
    "                       [--min-pairs N] [--seed S] [--max-chars N]\n"
    "       moe-data spm DIR [--vocab N] [--lines-per-language N] [--seed S]\n"
    "       moe-data encode DIR\n";

int usage(const std::string &why) {
  std::fprintf(stderr, "moe-data: %s\n%s", why.c_str(), kUsage);
  return 2;
}

bool parseCount(const char *text, int64_t low, int64_t &out) {
  char *end = nullptr;
  const long long value = std::strtoll(text, &end, 10);
  if (!end || *end || end == text || value < low)
    return false;
  out = value;
  return true;
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 2)
    return usage("expected a command (corpus)");
  const std::string command = argv[1];
  if (command == "-h" || command == "--help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (command == "spm" || command == "encode") {
    if (argc < 3 || argv[2][0] == '-')
      return usage(command + " expects the corpus directory");
    const std::string dir = argv[2];
    moert::data::TokenizerOptions options;
    for (int i = 3; i < argc; ++i) {
      const std::string arg = argv[i];
      if (command != "spm" || i + 1 >= argc)
        return usage("unexpected argument '" + arg + "'");
      int64_t number = 0;
      if (!parseCount(argv[++i], 1, number))
        return usage(arg + " expects a positive number, found '" + argv[i] +
                     "'");
      if (arg == "--vocab")
        options.vocabSize = static_cast<int>(number);
      else if (arg == "--lines-per-language")
        options.linesPerLanguage = number;
      else if (arg == "--seed")
        options.seed = static_cast<uint64_t>(number);
      else
        return usage("unknown option '" + arg + "'");
    }
    moert::Status status = command == "spm"
                               ? moert::data::trainTokenizer(dir, options)
                               : moert::data::encodeCorpus(dir);
    if (!status.ok()) {
      std::fprintf(stderr, "moe-data: error: %s\n", status.message().c_str());
      return 1;
    }
    std::printf("moe-data: %s\n",
                command == "spm"
                    ? ("wrote " + dir + "/spm.model").c_str()
                    : ("wrote the id shards of " + dir).c_str());
    return 0;
  }
  if (command != "corpus")
    return usage("unknown command '" + command +
                 "' (expected corpus, spm or encode)");
  std::string out, locales = "/usr/share/locale";
  moert::data::CorpusOptions options;
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc)
      return usage(arg + " expects a value");
    const char *value = argv[++i];
    int64_t number = 0;
    if (arg == "--out") {
      out = value;
    } else if (arg == "--locales") {
      locales = value;
    } else if (arg == "--languages") {
      if (!parseCount(value, 0, options.languages))
        return usage(std::string("--languages expects a count (0 = all), "
                                 "found '") +
                     value + "'");
    } else if (arg == "--min-pairs") {
      if (!parseCount(value, 1, options.minPairs))
        return usage(std::string("--min-pairs expects a positive count, "
                                 "found '") +
                     value + "'");
    } else if (arg == "--seed") {
      if (!parseCount(value, 0, number))
        return usage(std::string("--seed expects a number, found '") + value +
                     "'");
      options.seed = static_cast<uint64_t>(number);
    } else if (arg == "--max-chars") {
      if (!parseCount(value, 1, number))
        return usage(std::string("--max-chars expects a positive count, "
                                 "found '") +
                     value + "'");
      options.cleaning.maxChars = static_cast<size_t>(number);
    } else {
      return usage("unknown option '" + arg + "'");
    }
  }
  if (out.empty())
    return usage("--out DIR is required");
  options.progress = [](int64_t done, int64_t total) {
    std::fprintf(stderr, "\rmoe-data: %lld/%lld catalogs", (long long)done,
                 (long long)total);
    if (done == total)
      std::fputc('\n', stderr);
  };
  moert::data::CorpusReport report;
  moert::Expected<std::vector<moert::data::LanguageCorpus>> corpus =
      moert::data::buildCorpus(locales, options, report);
  if (!corpus.ok()) {
    std::fprintf(stderr, "moe-data: error: %s\n",
                 corpus.status().message().c_str());
    return 1;
  }
  for (size_t i = 0; i < report.problems.size() && i < 10; ++i)
    std::fprintf(stderr, "moe-data: skipped %s\n", report.problems[i].c_str());
  if (report.problems.size() > 10)
    std::fprintf(stderr, "moe-data: ... and %zu more malformed catalogs\n",
                 report.problems.size() - 10);
  if (moert::Status written = moert::data::writeCorpus(*corpus, out);
      !written.ok()) {
    std::fprintf(stderr, "moe-data: error: %s\n", written.message().c_str());
    return 1;
  }
  int64_t train = 0, valid = 0, test = 0;
  for (const auto &lc : *corpus) {
    train += static_cast<int64_t>(lc.train.size());
    valid += static_cast<int64_t>(lc.valid.size());
    test += static_cast<int64_t>(lc.test.size());
  }
  std::printf("moe-data: %lld catalogs (%lld malformed, skipped), %lld "
              "messages\n",
              (long long)report.catalogs, (long long)report.malformed,
              (long long)report.entries);
  for (const auto &[verdict, count] : report.verdicts)
    std::printf("  %-26s %lld\n", moert::data::verdictName(verdict),
                (long long)count);
  std::printf("moe-data: %zu languages, %lld train / %lld valid / %lld test "
              "pairs in %s\n",
              corpus->size(), (long long)train, (long long)valid,
              (long long)test, out.c_str());
  for (size_t i = 0; i < corpus->size() && i < 5; ++i)
    std::printf("  %-8s %zu pairs\n", (*corpus)[i].language.c_str(),
                (*corpus)[i].size());
  return 0;
}
