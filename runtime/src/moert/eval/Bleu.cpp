//===- Bleu.cpp - Corpus BLEU and chrF as sacreBLEU computes them ---------===//
#include "moert/eval/Bleu.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <unordered_map>

namespace moert {
namespace eval {

namespace {

constexpr int kBleuOrder = 4;
constexpr int kChrfOrder = 6;
constexpr double kChrfBeta = 2.0;

//===----------------------------------------------------------------------===//
// UTF-8 and Python's string semantics
//===----------------------------------------------------------------------===//

/// Decodes UTF-8; false on a malformed sequence.
bool decodeUtf8(const std::string &text, std::u32string &out) {
  out.clear();
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    int length = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3
                                : (c >> 3) == 30 ? 4 : 0;
    if (length == 0 || i + length > text.size())
      return false;
    char32_t code = length == 1 ? c : c & (0x7F >> length);
    for (int k = 1; k < length; ++k) {
      const unsigned char next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80)
        return false;
      code = (code << 6) | (next & 0x3F);
    }
    if ((length == 2 && code < 0x80) || (length == 3 && code < 0x800) ||
        (length == 4 && (code < 0x10000 || code > 0x10FFFF)) ||
        (code >= 0xD800 && code <= 0xDFFF))
      return false;
    out.push_back(code);
    i += length;
  }
  return true;
}

std::string encodeUtf8(const std::u32string &text) {
  std::string out;
  for (char32_t c : text) {
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else if (c < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (c >> 12)));
      out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (c >> 18)));
      out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  return out;
}

/// Python's str.isspace() (what str.split() and str.rstrip() use).
bool isPythonSpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 ||
         c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
         c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

std::vector<std::u32string> splitWhitespace(const std::u32string &text) {
  std::vector<std::u32string> words;
  std::u32string word;
  for (char32_t c : text) {
    if (isPythonSpace(c)) {
      if (!word.empty())
        words.push_back(std::move(word));
      word.clear();
    } else {
      word.push_back(c);
    }
  }
  if (!word.empty())
    words.push_back(std::move(word));
  return words;
}

std::u32string rstrip(std::u32string text) {
  while (!text.empty() && isPythonSpace(text.back()))
    text.pop_back();
  return text;
}

void replaceAll(std::u32string &text, const std::u32string &from,
                const std::u32string &to) {
  size_t at = 0;
  while ((at = text.find(from, at)) != std::u32string::npos) {
    text.replace(at, from.size(), to);
    at += to.size();
  }
}

bool isDigit(char32_t c) { return c >= U'0' && c <= U'9'; }
bool isPeriodOrComma(char32_t c) { return c == U'.' || c == U','; }

/// The characters mteval-v13a puts spaces around: {|}~ [\]^_` space!"#$%&
/// (*+ :;<=>?@ and /.
bool isSeparatedSymbol(char32_t c) {
  return (c >= 0x7B && c <= 0x7E) || (c >= 0x5B && c <= 0x60) ||
         (c >= 0x20 && c <= 0x26) || (c >= 0x28 && c <= 0x2B) ||
         (c >= 0x3A && c <= 0x40) || c == 0x2F;
}

/// 13a on decoded text: tokens.
std::vector<std::u32string> tokens13a(std::u32string line) {
  replaceAll(line, U"<skipped>", U"");
  replaceAll(line, U"-\n", U"");
  replaceAll(line, U"\n", U" ");
  if (line.find(U'&') != std::u32string::npos) {
    replaceAll(line, U"&quot;", U"\"");
    replaceAll(line, U"&amp;", U"&");
    replaceAll(line, U"&lt;", U"<");
    replaceAll(line, U"&gt;", U">");
  }
  line = U" " + line + U" ";
  // Each rule is one left-to-right pass of non-overlapping matches, like
  // the regular-expression substitutions of mteval-v13a.
  std::u32string out;
  for (char32_t c : line) {
    if (isSeparatedSymbol(c)) {
      out.push_back(U' ');
      out.push_back(c);
      out.push_back(U' ');
    } else {
      out.push_back(c);
    }
  }
  auto pass = [](const std::u32string &in, auto matches, auto emit) {
    std::u32string result;
    size_t i = 0;
    while (i < in.size()) {
      if (i + 1 < in.size() && matches(in[i], in[i + 1])) {
        emit(result, in[i], in[i + 1]);
        i += 2;
      } else {
        result.push_back(in[i++]);
      }
    }
    return result;
  };
  // A period or comma not preceded by a digit.
  out = pass(
      out,
      [](char32_t a, char32_t b) { return !isDigit(a) && isPeriodOrComma(b); },
      [](std::u32string &r, char32_t a, char32_t b) {
        r += a;
        r += U' ';
        r += b;
        r += U' ';
      });
  // A period or comma not followed by a digit.
  out = pass(
      out,
      [](char32_t a, char32_t b) { return isPeriodOrComma(a) && !isDigit(b); },
      [](std::u32string &r, char32_t a, char32_t b) {
        r += U' ';
        r += a;
        r += U' ';
        r += b;
      });
  // A dash preceded by a digit.
  out = pass(
      out, [](char32_t a, char32_t b) { return isDigit(a) && b == U'-'; },
      [](std::u32string &r, char32_t a, char32_t b) {
        r += a;
        r += U' ';
        r += b;
        r += U' ';
      });
  return splitWhitespace(out);
}

Expected<std::u32string> decoded(const std::string &text, const char *role,
                                 size_t segment) {
  std::u32string out;
  if (!decodeUtf8(text, out))
    return invalidArgument(std::string(role) + " segment " +
                           std::to_string(segment + 1) +
                           " is not valid UTF-8");
  return out;
}

Status checkStreams(const std::vector<std::string> &hypotheses,
                    const std::vector<std::vector<std::string>> &references) {
  if (references.empty())
    return invalidArgument("expected at least one reference stream, found "
                           "none");
  for (size_t r = 0; r < references.size(); ++r)
    if (references[r].size() != hypotheses.size())
      return invalidArgument(
          "reference stream " + std::to_string(r + 1) + " has " +
          std::to_string(references[r].size()) + " segments, the hypotheses " +
          std::to_string(hypotheses.size()));
  return Status::success();
}

using NgramCounts = std::unordered_map<std::u32string, int64_t>;

/// Word n-grams 1..4 (keys: tokens joined by spaces, which tokens never
/// contain).
NgramCounts wordNgrams(const std::vector<std::u32string> &tokens) {
  NgramCounts counts;
  for (int n = 1; n <= kBleuOrder; ++n)
    for (size_t i = 0; i + n <= tokens.size(); ++i) {
      std::u32string key = tokens[i];
      for (int k = 1; k < n; ++k) {
        key.push_back(U' ');
        key += tokens[i + k];
      }
      ++counts[key];
    }
  return counts;
}

int ngramOrder(const std::u32string &key) {
  return 1 + static_cast<int>(std::count(key.begin(), key.end(), U' '));
}

double flooredLog(double value) {
  return value == 0.0 ? -9999999999.0 : std::log(value);
}

std::string fixed(double value, int width) {
  char text[64];
  std::snprintf(text, sizeof(text), "%.*f", width, value);
  return text;
}

} // namespace

std::string tokenize13a(const std::string &line) {
  std::u32string text;
  if (!decodeUtf8(line, text))
    return line;
  std::u32string joined;
  for (const std::u32string &token : tokens13a(text)) {
    if (!joined.empty())
      joined.push_back(U' ');
    joined += token;
  }
  return encodeUtf8(joined);
}

std::string BleuScore::format(int width) const {
  std::string precisionText;
  for (size_t n = 0; n < precisions.size(); ++n)
    precisionText += (n ? "/" : "") + fixed(precisions[n], 1);
  const double ratio = referenceLength
                           ? static_cast<double>(hypothesisLength) /
                                 static_cast<double>(referenceLength)
                           : 0.0;
  return "BLEU = " + fixed(score, width) + " " + precisionText +
         " (BP = " + fixed(brevityPenalty, 3) + " ratio = " + fixed(ratio, 3) +
         " hyp_len = " + std::to_string(hypothesisLength) +
         " ref_len = " + std::to_string(referenceLength) + ")";
}

Expected<BleuScore>
corpusBleu(const std::vector<std::string> &hypotheses,
           const std::vector<std::vector<std::string>> &references) {
  MOERT_RETURN_IF_ERROR(checkStreams(hypotheses, references));
  std::vector<int64_t> correct(kBleuOrder, 0), total(kBleuOrder, 0);
  int64_t sysLength = 0, refLength = 0;
  for (size_t i = 0; i < hypotheses.size(); ++i) {
    MOERT_ASSIGN_OR_RETURN(std::u32string hyp,
                           decoded(hypotheses[i], "hypothesis", i));
    const std::vector<std::u32string> hypTokens = tokens13a(rstrip(hyp));
    NgramCounts refCounts;
    std::vector<int64_t> refLengths;
    for (const std::vector<std::string> &stream : references) {
      MOERT_ASSIGN_OR_RETURN(std::u32string ref,
                             decoded(stream[i], "reference", i));
      const std::vector<std::u32string> refTokens = tokens13a(rstrip(ref));
      refLengths.push_back(static_cast<int64_t>(refTokens.size()));
      for (const auto &[key, count] : wordNgrams(refTokens)) {
        int64_t &best = refCounts[key];
        best = std::max(best, count);
      }
    }
    const int64_t hypLength = static_cast<int64_t>(hypTokens.size());
    // The closest reference length, the shorter one on ties.
    int64_t closestDiff = -1, closest = -1;
    for (int64_t length : refLengths) {
      const int64_t diff = std::llabs(hypLength - length);
      if (closestDiff == -1 || diff < closestDiff) {
        closestDiff = diff;
        closest = length;
      } else if (diff == closestDiff && length < closest) {
        closest = length;
      }
    }
    sysLength += hypLength;
    refLength += closest;
    for (const auto &[key, count] : wordNgrams(hypTokens)) {
      const int n = ngramOrder(key) - 1;
      total[n] += count;
      auto found = refCounts.find(key);
      if (found != refCounts.end())
        correct[n] += std::min(count, found->second);
    }
  }

  BleuScore score;
  score.correct = correct;
  score.total = total;
  score.hypothesisLength = sysLength;
  score.referenceLength = refLength;
  score.precisions.assign(kBleuOrder, 0.0);
  score.brevityPenalty = 1.0;
  if (sysLength < refLength)
    score.brevityPenalty =
        sysLength > 0 ? std::exp(1.0 - static_cast<double>(refLength) /
                                           static_cast<double>(sysLength))
                      : 0.0;
  if (std::all_of(correct.begin(), correct.end(),
                  [](int64_t c) { return c == 0; }))
    return score;
  double smooth = 1.0;
  for (int n = 0; n < kBleuOrder; ++n) {
    if (total[n] == 0)
      break;
    if (correct[n] == 0) {
      smooth *= 2.0;
      score.precisions[n] = 100.0 / (smooth * static_cast<double>(total[n]));
    } else {
      score.precisions[n] = 100.0 * static_cast<double>(correct[n]) /
                            static_cast<double>(total[n]);
    }
  }
  double logSum = 0.0;
  for (double p : score.precisions)
    logSum += flooredLog(p);
  score.score = score.brevityPenalty * std::exp(logSum / kBleuOrder);
  return score;
}

//===----------------------------------------------------------------------===//
// chrF
//===----------------------------------------------------------------------===//

namespace {

/// Character n-gram counts of orders 1..6 of `text` without whitespace.
std::vector<NgramCounts> charNgrams(const std::u32string &text) {
  std::u32string chars;
  for (char32_t c : text)
    if (!isPythonSpace(c))
      chars.push_back(c);
  std::vector<NgramCounts> counts(kChrfOrder);
  for (int n = 1; n <= kChrfOrder; ++n)
    for (size_t i = 0; i + n <= chars.size(); ++i)
      ++counts[n - 1][chars.substr(i, n)];
  return counts;
}

/// [hyp, ref, match] per order.
struct ChrfStats {
  int64_t values[3 * kChrfOrder] = {};
};

double chrfFromStats(const ChrfStats &stats) {
  const double factor = kChrfBeta * kChrfBeta;
  constexpr double eps = 1e-16;
  double averagePrecision = 0.0, averageRecall = 0.0;
  int effectiveOrder = 0;
  for (int n = 0; n < kChrfOrder; ++n) {
    const double hyp = static_cast<double>(stats.values[3 * n]);
    const double ref = static_cast<double>(stats.values[3 * n + 1]);
    const double match = static_cast<double>(stats.values[3 * n + 2]);
    const double precision = hyp > 0 ? match / hyp : eps;
    const double recall = ref > 0 ? match / ref : eps;
    if (hyp > 0 && ref > 0) {
      averagePrecision += precision;
      averageRecall += recall;
      ++effectiveOrder;
    }
  }
  if (effectiveOrder == 0) {
    averagePrecision = averageRecall = 0.0;
  } else {
    averagePrecision /= effectiveOrder;
    averageRecall /= effectiveOrder;
  }
  if (averagePrecision + averageRecall == 0.0)
    return 0.0;
  return 100.0 * (1 + factor) * averagePrecision * averageRecall /
         (factor * averagePrecision + averageRecall);
}

} // namespace

std::string ChrfScore::format(int width) const {
  return "chrF2 = " + fixed(score, width);
}

Expected<ChrfScore>
corpusChrf(const std::vector<std::string> &hypotheses,
           const std::vector<std::vector<std::string>> &references) {
  MOERT_RETURN_IF_ERROR(checkStreams(hypotheses, references));
  ChrfStats corpus;
  for (size_t i = 0; i < hypotheses.size(); ++i) {
    MOERT_ASSIGN_OR_RETURN(std::u32string hyp,
                           decoded(hypotheses[i], "hypothesis", i));
    const std::vector<NgramCounts> hypNgrams = charNgrams(hyp);
    ChrfStats best;
    double bestScore = -1.0;
    for (const std::vector<std::string> &stream : references) {
      MOERT_ASSIGN_OR_RETURN(std::u32string ref,
                             decoded(stream[i], "reference", i));
      const std::vector<NgramCounts> refNgrams = charNgrams(ref);
      ChrfStats stats;
      for (int n = 0; n < kChrfOrder; ++n) {
        int64_t hypCount = 0, refCount = 0, match = 0;
        for (const auto &[ngram, count] : hypNgrams[n]) {
          hypCount += count;
          auto found = refNgrams[n].find(ngram);
          if (found != refNgrams[n].end())
            match += std::min(count, found->second);
        }
        for (const auto &[ngram, count] : refNgrams[n])
          refCount += count;
        // No hits are counted where the reference has no n-gram at all.
        stats.values[3 * n] = refNgrams[n].empty() ? 0 : hypCount;
        stats.values[3 * n + 1] = refCount;
        stats.values[3 * n + 2] = match;
      }
      const double f = chrfFromStats(stats);
      if (f > bestScore) {
        bestScore = f;
        best = stats;
      }
    }
    for (int k = 0; k < 3 * kChrfOrder; ++k)
      corpus.values[k] += best.values[k];
  }
  ChrfScore score;
  score.score = chrfFromStats(corpus);
  return score;
}

} // namespace eval
} // namespace moert
