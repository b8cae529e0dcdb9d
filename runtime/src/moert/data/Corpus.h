//===- Corpus.h - English->X parallel text from gettext catalogs -*- C++ -*-===//
//
// Every Debian machine carries translated user-interface messages in
// ~180 languages: /usr/share/locale/<lang>/LC_MESSAGES/*.mo. This file
// reads those catalogs (GNU .mo, either byte order, message contexts and
// plural forms) and turns them into a cleaned, deduplicated English->X
// corpus with deterministic train / valid / test splits that never share
// an English source:
//   - contexts are dropped ("ctx\x04msgid" -> msgid); of plural forms the
//     singular pair is kept; the header entry (empty msgid) is skipped;
//   - keyboard accelerators ("_File", "&File") are removed on both sides;
//   - a pair is dropped when its format specifiers (%s, %1$d, {0}, ${x})
//     or its markup tags differ between the two sides, when either side is
//     empty or has a line break, when the translation equals the source
//     (untranslated), when a side is longer than the length limit, or when
//     the length ratio is an outlier;
//   - identical pairs are kept once per language;
//   - the split of a pair is a hash of its English source and the seed.
// Malformed catalogs are reported (with the file and what was wrong) and
// skipped, never fatal.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_DATA_CORPUS_H
#define MOERT_DATA_CORPUS_H

#include "moert/Status.h"

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace moert {
namespace data {

/// One message of a catalog: the original (English) text and its
/// translation (plural forms: the first of each).
struct CatalogEntry {
  std::string context; // empty without msgctxt
  std::string source;
  std::string translation;
};

/// Parses the bytes of a GNU .mo catalog. `name` names it in errors.
Expected<std::vector<CatalogEntry>> parseMoCatalog(const std::string &bytes,
                                                   const std::string &name);

struct Pair {
  std::string source, target;
};

struct CleaningOptions {
  size_t maxChars = 200;      // per side, in bytes of UTF-8
  double maxLengthRatio = 3.0; // longer / shorter side, for sides > 10 bytes
};

/// Why clean() dropped a pair (or Kept).
enum class Verdict {
  Kept,
  Empty,
  Untranslated,
  MultiLine,
  TooLong,
  LengthRatio,
  FormatMismatch,
  MarkupMismatch,
  /// A side spells one of the tokenizer's tag pieces (<mt>, <dae>, <mask>,
  /// a language tag <2xx>): SentencePiece would encode it as the tag.
  TagText,
};
const char *verdictName(Verdict verdict);

/// Cleans one entry into `pair`; the verdict says whether it is kept.
Verdict clean(const CatalogEntry &entry, const CleaningOptions &options,
              Pair &pair);

enum class Split { Train, Valid, Test };
/// The split of every pair with this English source: ~1 % test, ~1 %
/// valid, the rest train.
Split splitOf(const std::string &source, uint64_t seed);

struct LanguageCorpus {
  std::string language; // the locale directory's name: "de", "pt_BR"
  std::vector<Pair> train, valid, test;
  size_t size() const { return train.size() + valid.size() + test.size(); }
};

struct CorpusReport {
  int64_t catalogs = 0, malformed = 0, entries = 0;
  std::map<Verdict, int64_t> verdicts;
  std::vector<std::string> problems; // one line per malformed catalog
};

struct CorpusOptions {
  CleaningOptions cleaning;
  uint64_t seed = 1;
  /// Keep the languages with the most pairs (0: all).
  int64_t languages = 50;
  /// Languages need at least this many pairs.
  int64_t minPairs = 100;
  /// Called every so many catalogs (done, total) for a progress display.
  std::function<void(int64_t, int64_t)> progress;
};

/// Reads every <localeDir>/<lang>/LC_MESSAGES/*.mo, cleans, deduplicates,
/// splits, and keeps the largest languages (sorted by size, largest
/// first). English locales (en, en_*) are skipped.
Expected<std::vector<LanguageCorpus>>
buildCorpus(const std::string &localeDir, const CorpusOptions &options,
            CorpusReport &report);

/// Writes <dir>/{train,valid,test}.<lang>.tsv (source \t target per line)
/// and <dir>/languages.tsv (language \t train \t valid \t test). Files are
/// written atomically (a temporary, then renamed).
Status writeCorpus(const std::vector<LanguageCorpus> &corpus,
                   const std::string &dir);

} // namespace data
} // namespace moert

#endif // MOERT_DATA_CORPUS_H
