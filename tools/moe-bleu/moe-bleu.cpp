//===- moe-bleu.cpp - Corpus BLEU and chrF with sacreBLEU's interface -----===//
//
//   moe-bleu REF [REF ...] -i HYP [-m bleu chrf] [-w WIDTH] [-b]
//
// Scores the hypothesis file against one or more reference files (one
// segment per line) with sacreBLEU's default BLEU (13a tokenizer, 'exp'
// smoothing) and chrF2 (moert/eval/Bleu.h) and prints one line per metric:
//   BLEU = 38.0 88.9/57.1/40.0/25.0 (BP = 0.801 ratio = 0.818 hyp_len = 9 ref_len = 11)
//   chrF2 = 60.0
// -w sets the decimals of the scores (default 1), -b prints the scores
// only. Exit status 1 for unreadable or mismatched files (with the file and
// line), 2 for a bad command line.
//
//===----------------------------------------------------------------------===//
#include "moert/eval/Bleu.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace {

const char *kUsage =
    "usage: moe-bleu REF [REF ...] -i HYP [-m bleu chrf] [-w WIDTH] [-b]\n";

int usage(const std::string &why) {
  std::fprintf(stderr, "moe-bleu: %s\n%s", why.c_str(), kUsage);
  return 2;
}

/// The file's lines without their line ends ("\n", "\r\n").
bool readLines(const std::string &path, std::vector<std::string> &lines,
               std::string &error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot open '" + path + "'";
    return false;
  }
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    lines.push_back(line);
  }
  if (in.bad()) {
    error = "reading '" + path + "' failed";
    return false;
  }
  return true;
}

} // namespace

int main(int argc, char **argv) {
  std::vector<std::string> referencePaths, metrics;
  std::string hypothesisPath;
  int width = 1;
  bool scoreOnly = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-i" || arg == "--input") {
      if (++i >= argc)
        return usage("-i expects the hypothesis file");
      hypothesisPath = argv[i];
    } else if (arg == "-m" || arg == "--metrics") {
      while (i + 1 < argc && argv[i + 1][0] != '-') {
        std::string metric = argv[++i];
        if (metric != "bleu" && metric != "chrf")
          return usage("-m expects bleu and/or chrf, found '" + metric + "'");
        metrics.push_back(metric);
      }
      if (metrics.empty())
        return usage("-m expects bleu and/or chrf");
    } else if (arg == "-w" || arg == "--width") {
      char *end = nullptr;
      if (++i >= argc)
        return usage("-w expects a number of decimals");
      long value = std::strtol(argv[i], &end, 10);
      if (!end || *end || value < 0 || value > 16)
        return usage(std::string("-w expects 0..16 decimals, found '") +
                     argv[i] + "'");
      width = static_cast<int>(value);
    } else if (arg == "-b" || arg == "--score-only") {
      scoreOnly = true;
    } else if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (!arg.empty() && arg[0] == '-') {
      return usage("unknown option '" + arg + "'");
    } else {
      referencePaths.push_back(arg);
    }
  }
  if (referencePaths.empty())
    return usage("no reference file given");
  if (hypothesisPath.empty())
    return usage("no hypothesis file given (-i HYP)");
  if (metrics.empty())
    metrics = {"bleu", "chrf"};

  std::string error;
  std::vector<std::string> hypotheses;
  if (!readLines(hypothesisPath, hypotheses, error)) {
    std::fprintf(stderr, "moe-bleu: error: %s\n", error.c_str());
    return 1;
  }
  std::vector<std::vector<std::string>> references(referencePaths.size());
  for (size_t r = 0; r < referencePaths.size(); ++r) {
    if (!readLines(referencePaths[r], references[r], error)) {
      std::fprintf(stderr, "moe-bleu: error: %s\n", error.c_str());
      return 1;
    }
    if (references[r].size() != hypotheses.size()) {
      std::fprintf(stderr,
                   "moe-bleu: error: '%s' has %zu lines, the hypotheses '%s' "
                   "have %zu: every file needs one line per segment\n",
                   referencePaths[r].c_str(), references[r].size(),
                   hypothesisPath.c_str(), hypotheses.size());
      return 1;
    }
  }
  for (const std::string &metric : metrics) {
    if (metric == "bleu") {
      moert::Expected<moert::eval::BleuScore> bleu =
          moert::eval::corpusBleu(hypotheses, references);
      if (!bleu.ok()) {
        std::fprintf(stderr, "moe-bleu: error: %s\n",
                     bleu.status().message().c_str());
        return 1;
      }
      if (scoreOnly)
        std::printf("%.*f\n", width, bleu->score);
      else
        std::printf("%s\n", bleu->format(width).c_str());
    } else {
      moert::Expected<moert::eval::ChrfScore> chrf =
          moert::eval::corpusChrf(hypotheses, references);
      if (!chrf.ok()) {
        std::fprintf(stderr, "moe-bleu: error: %s\n",
                     chrf.status().message().c_str());
        return 1;
      }
      if (scoreOnly)
        std::printf("%.*f\n", width, chrf->score);
      else
        std::printf("%s\n", chrf->format(width).c_str());
    }
  }
  return 0;
}
