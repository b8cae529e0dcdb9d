//===- Corpus.cpp - English->X parallel text from gettext catalogs --------===//
#include "moert/data/Corpus.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <unordered_set>

namespace moert {
namespace data {

namespace fs = std::filesystem;

//===----------------------------------------------------------------------===//
// .mo catalogs
//===----------------------------------------------------------------------===//

namespace {

uint32_t readWord(const std::string &bytes, size_t at, bool bigEndian) {
  const auto byte = [&](size_t i) {
    return static_cast<uint32_t>(static_cast<unsigned char>(bytes[at + i]));
  };
  return bigEndian
             ? (byte(0) << 24) | (byte(1) << 16) | (byte(2) << 8) | byte(3)
             : (byte(3) << 24) | (byte(2) << 16) | (byte(1) << 8) | byte(0);
}

} // namespace

Expected<std::vector<CatalogEntry>> parseMoCatalog(const std::string &bytes,
                                                   const std::string &name) {
  auto bad = [&](const std::string &why) {
    return invalidArgument(name + ": not a valid .mo catalog: " + why);
  };
  if (bytes.size() < 20)
    return bad("expected a header of at least 20 bytes, found " +
               std::to_string(bytes.size()) + " bytes");
  const uint32_t magic = readWord(bytes, 0, false);
  bool bigEndian = false;
  if (magic == 0xde120495u)
    bigEndian = true;
  else if (magic != 0x950412deu)
    return bad("expected the magic number 0x950412de, found 0x" + [&] {
      char text[16];
      std::snprintf(text, sizeof(text), "%08x", magic);
      return std::string(text);
    }());
  const uint32_t revision = readWord(bytes, 4, bigEndian);
  if ((revision >> 16) > 1)
    return bad("unknown major revision " + std::to_string(revision >> 16));
  const uint64_t count = readWord(bytes, 8, bigEndian);
  const uint64_t originals = readWord(bytes, 12, bigEndian);
  const uint64_t translations = readWord(bytes, 16, bigEndian);
  const uint64_t size = bytes.size();
  if (originals + count * 8 > size || translations + count * 8 > size)
    return bad("its string tables (" + std::to_string(count) +
               " entries) extend past the end of the file (" +
               std::to_string(size) + " bytes)");
  auto stringAt = [&](uint64_t table, uint64_t index,
                      std::string &out) -> bool {
    const uint64_t length = readWord(bytes, table + index * 8, bigEndian);
    const uint64_t offset = readWord(bytes, table + index * 8 + 4, bigEndian);
    if (offset + length > size)
      return false;
    out.assign(bytes, offset, length);
    return true;
  };
  std::vector<CatalogEntry> entries;
  entries.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    std::string original, translation;
    if (!stringAt(originals, i, original) ||
        !stringAt(translations, i, translation))
      return bad("string " + std::to_string(i) +
                 " lies outside the file (" + std::to_string(size) +
                 " bytes)");
    CatalogEntry entry;
    const size_t contextEnd = original.find('\x04');
    if (contextEnd != std::string::npos) {
      entry.context = original.substr(0, contextEnd);
      original.erase(0, contextEnd + 1);
    }
    // Plural forms: "singular\0plural" -> "form0\0form1...".
    entry.source = original.substr(0, original.find('\0'));
    entry.translation = translation.substr(0, translation.find('\0'));
    entries.push_back(std::move(entry));
  }
  return entries;
}

//===----------------------------------------------------------------------===//
// Cleaning
//===----------------------------------------------------------------------===//

const char *verdictName(Verdict verdict) {
  switch (verdict) {
  case Verdict::Kept:
    return "kept";
  case Verdict::Empty:
    return "empty";
  case Verdict::Untranslated:
    return "untranslated";
  case Verdict::MultiLine:
    return "multi-line";
  case Verdict::TooLong:
    return "too long";
  case Verdict::LengthRatio:
    return "length ratio";
  case Verdict::FormatMismatch:
    return "format specifiers differ";
  case Verdict::MarkupMismatch:
    return "markup differs";
  case Verdict::TagText:
    return "spells a tag piece";
  }
  return "?";
}

namespace {

bool isAsciiAlnum(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0;
}

/// printf conversions (with %n$ positions, flags, width, precision and
/// length modifiers), {placeholders} and ${shell} / $name variables, sorted.
std::vector<std::string> formatSpecifiers(const std::string &text) {
  std::vector<std::string> found;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%') {
      if (i + 1 < text.size() && text[i + 1] == '%') {
        ++i;
        continue;
      }
      size_t j = i + 1;
      size_t digits = j;
      while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits])))
        ++digits;
      if (digits > j && digits < text.size() && text[digits] == '$')
        j = digits + 1;
      while (j < text.size() && std::strchr("-+ #0'", text[j]))
        ++j;
      while (j < text.size() &&
             (std::isdigit(static_cast<unsigned char>(text[j])) || text[j] == '*' ||
              text[j] == '.'))
        ++j;
      while (j < text.size() && std::strchr("hlLqjzt", text[j]))
        ++j;
      if (j < text.size() && std::strchr("diouxXeEfFgGaAcspn", text[j])) {
        // Positions do not matter (translations reorder them).
        std::string spec = text.substr(i, j - i + 1);
        const size_t dollar = spec.find('$');
        if (dollar != std::string::npos)
          spec = "%" + spec.substr(dollar + 1);
        found.push_back(spec);
        i = j;
      }
    } else if (c == '{') {
      const size_t close = text.find('}', i);
      if (close != std::string::npos && close - i <= 40 &&
          text.find(' ', i) > close) {
        found.push_back(text.substr(i, close - i + 1));
        i = close;
      }
    } else if (c == '$' && i + 1 < text.size() &&
               (text[i + 1] == '{' || std::isalpha(static_cast<unsigned char>(text[i + 1])))) {
      size_t j = i + 1;
      if (text[j] == '{') {
        const size_t close = text.find('}', j);
        j = close == std::string::npos ? text.size() - 1 : close;
      } else {
        while (j + 1 < text.size() &&
               (isAsciiAlnum(text[j + 1]) || text[j + 1] == '_'))
          ++j;
      }
      found.push_back(text.substr(i, j - i + 1));
      i = j;
    }
  }
  std::sort(found.begin(), found.end());
  return found;
}

/// Names of markup tags ("b", "/b", "a"), sorted.
std::vector<std::string> markupTags(const std::string &text) {
  std::vector<std::string> tags;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '<')
      continue;
    const size_t close = text.find('>', i);
    if (close == std::string::npos)
      break;
    size_t j = i + 1;
    if (j < close && text[j] == '/')
      ++j;
    size_t end = j;
    while (end < close && (isAsciiAlnum(text[end]) || text[end] == '-'))
      ++end;
    if (end > j && std::isalpha(static_cast<unsigned char>(text[j])))
      tags.push_back(text.substr(i + 1, end - i - 1));
    i = close;
  }
  std::sort(tags.begin(), tags.end());
  return tags;
}

/// Removes keyboard accelerators: "(_X)" suffixes of CJK translations, a
/// single '_' before a letter or digit, a single '&' before one (not an
/// entity such as "&amp;").
std::string withoutAccelerators(std::string text) {
  for (size_t at; (at = text.find("(_")) != std::string::npos;) {
    if (at + 3 < text.size() && text[at + 3] == ')' &&
        isAsciiAlnum(text[at + 2]))
      text.erase(at, 4);
    else
      break;
  }
  for (char marker : {'_', '&'}) {
    const size_t first = text.find(marker);
    if (first == std::string::npos || text.find(marker, first + 1) != std::string::npos)
      continue;
    if (first + 1 >= text.size() || !isAsciiAlnum(text[first + 1]))
      continue;
    if (marker == '&') {
      const size_t semicolon = text.find(';', first);
      if (semicolon != std::string::npos && semicolon - first <= 8)
        continue; // an entity
    }
    if (marker == '_' && first > 0 && isAsciiAlnum(text[first - 1]))
      continue; // an identifier such as file_name
    text.erase(first, 1);
  }
  // Whitespace left at the ends by "(_X)".
  while (!text.empty() && text.back() == ' ')
    text.pop_back();
  return text;
}

/// Code points of UTF-8 text.
size_t codePoints(const std::string &text) {
  size_t count = 0;
  for (char c : text)
    count += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return count;
}

std::string trimmed(const std::string &text) {
  const size_t begin = text.find_first_not_of(" \t");
  if (begin == std::string::npos)
    return "";
  const size_t end = text.find_last_not_of(" \t");
  return text.substr(begin, end - begin + 1);
}

uint64_t fnv1a(const std::string &text, uint64_t seed) {
  uint64_t hash = 1469598103934665603ull ^ (seed * 0x9E3779B97F4A7C15ull);
  for (char c : text) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  return hash;
}

/// Whether `text` contains a piece the tokenizer reserves for tags: the
/// task tags <mt>, <dae>, <mask> and the language tags <2xx> (Tokenizer.h).
/// They are user-defined symbols of the SentencePiece model, which match
/// raw text: a sentence spelling one would be encoded as the tag and lose
/// the words when decoded.
bool spellsTagPiece(const std::string &text) {
  for (size_t at = text.find('<'); at != std::string::npos;
       at = text.find('<', at + 1)) {
    const size_t close = text.find('>', at);
    if (close == std::string::npos)
      return false;
    const std::string inner = text.substr(at + 1, close - at - 1);
    if (inner == "mt" || inner == "dae" || inner == "mask")
      return true;
    if (inner.size() >= 2 && inner.size() <= 17 && inner[0] == '2' &&
        std::all_of(inner.begin() + 1, inner.end(), [](unsigned char c) {
          return std::isalnum(c) || c == '_' || c == '@' || c == '-';
        }))
      return true;
  }
  return false;
}

} // namespace

Verdict clean(const CatalogEntry &entry, const CleaningOptions &options,
              Pair &pair) {
  pair.source = trimmed(withoutAccelerators(entry.source));
  pair.target = trimmed(withoutAccelerators(entry.translation));
  if (pair.source.empty() || pair.target.empty())
    return Verdict::Empty;
  if (pair.source.find('\n') != std::string::npos ||
      pair.target.find('\n') != std::string::npos ||
      pair.source.find('\t') != std::string::npos ||
      pair.target.find('\t') != std::string::npos)
    return Verdict::MultiLine;
  if (pair.source == pair.target)
    return Verdict::Untranslated;
  if (pair.source.size() > options.maxChars ||
      pair.target.size() > options.maxChars)
    return Verdict::TooLong;
  const double a = static_cast<double>(codePoints(pair.source));
  const double b = static_cast<double>(codePoints(pair.target));
  if (std::max(a, b) > 10 &&
      std::max(a, b) > options.maxLengthRatio * std::min(a, b))
    return Verdict::LengthRatio;
  if (formatSpecifiers(pair.source) != formatSpecifiers(pair.target))
    return Verdict::FormatMismatch;
  if (spellsTagPiece(pair.source) || spellsTagPiece(pair.target))
    return Verdict::TagText;
  if (markupTags(pair.source) != markupTags(pair.target))
    return Verdict::MarkupMismatch;
  return Verdict::Kept;
}

Split splitOf(const std::string &source, uint64_t seed) {
  const uint64_t bucket = fnv1a(source, seed) % 100;
  return bucket == 0 ? Split::Test : bucket == 1 ? Split::Valid : Split::Train;
}

//===----------------------------------------------------------------------===//
// The corpus
//===----------------------------------------------------------------------===//

namespace {

bool isEnglish(const std::string &language) {
  return language == "en" || language.rfind("en_", 0) == 0 ||
         language.rfind("en@", 0) == 0;
}

bool readFile(const fs::path &path, std::string &bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return false;
  std::ostringstream buffer;
  buffer << in.rdbuf();
  bytes = buffer.str();
  return !in.bad();
}

} // namespace

Expected<std::vector<LanguageCorpus>>
buildCorpus(const std::string &localeDir, const CorpusOptions &options,
            CorpusReport &report) {
  std::error_code ec;
  if (!fs::is_directory(localeDir, ec))
    return invalidArgument("'" + localeDir +
                           "' is not a directory (expected a locale tree "
                           "such as /usr/share/locale)");
  // <lang> -> its catalogs, sorted for a deterministic order.
  std::map<std::string, std::vector<fs::path>> catalogs;
  for (const fs::directory_entry &language :
       fs::directory_iterator(localeDir, ec)) {
    const std::string name = language.path().filename().string();
    if (!language.is_directory() || isEnglish(name))
      continue;
    const fs::path messages = language.path() / "LC_MESSAGES";
    if (!fs::is_directory(messages, ec))
      continue;
    for (const fs::directory_entry &file : fs::directory_iterator(messages, ec))
      if (file.path().extension() == ".mo")
        catalogs[name].push_back(file.path());
  }
  int64_t total = 0;
  for (auto &[language, files] : catalogs) {
    std::sort(files.begin(), files.end());
    total += static_cast<int64_t>(files.size());
  }
  std::vector<LanguageCorpus> corpus;
  for (const auto &[language, files] : catalogs) {
    LanguageCorpus lc;
    lc.language = language;
    std::unordered_set<std::string> seen;
    for (const fs::path &file : files) {
      ++report.catalogs;
      if (options.progress && report.catalogs % 200 == 0)
        options.progress(report.catalogs, total);
      std::string bytes;
      if (!readFile(file, bytes)) {
        ++report.malformed;
        report.problems.push_back(file.string() + ": cannot be read");
        continue;
      }
      Expected<std::vector<CatalogEntry>> entries =
          parseMoCatalog(bytes, file.string());
      if (!entries.ok()) {
        ++report.malformed;
        report.problems.push_back(entries.status().message());
        continue;
      }
      for (const CatalogEntry &entry : *entries) {
        if (entry.source.empty())
          continue; // the catalog's header
        ++report.entries;
        Pair pair;
        const Verdict verdict = clean(entry, options.cleaning, pair);
        ++report.verdicts[verdict];
        if (verdict != Verdict::Kept)
          continue;
        if (!seen.insert(pair.source + '\t' + pair.target).second)
          continue;
        switch (splitOf(pair.source, options.seed)) {
        case Split::Train:
          lc.train.push_back(std::move(pair));
          break;
        case Split::Valid:
          lc.valid.push_back(std::move(pair));
          break;
        case Split::Test:
          lc.test.push_back(std::move(pair));
          break;
        }
      }
    }
    if (static_cast<int64_t>(lc.size()) >= options.minPairs)
      corpus.push_back(std::move(lc));
  }
  if (options.progress)
    options.progress(report.catalogs, total);
  std::stable_sort(corpus.begin(), corpus.end(),
                   [](const LanguageCorpus &a, const LanguageCorpus &b) {
                     return a.size() > b.size();
                   });
  if (options.languages > 0 &&
      static_cast<int64_t>(corpus.size()) > options.languages)
    corpus.resize(static_cast<size_t>(options.languages));
  return corpus;
}

namespace {

Status writeAtomically(const fs::path &path, const std::string &text) {
  const fs::path temporary = path.string() + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) {
      std::error_code ignored;
      fs::remove(temporary, ignored);
      return dataLoss("cannot write '" + temporary.string() + "'");
    }
  }
  std::error_code ec;
  fs::rename(temporary, path, ec);
  if (ec) {
    fs::remove(temporary, ec);
    return dataLoss("cannot rename '" + temporary.string() + "' to '" +
                    path.string() + "'");
  }
  return Status::success();
}

std::string tsv(const std::vector<Pair> &pairs) {
  std::string text;
  for (const Pair &pair : pairs)
    text += pair.source + '\t' + pair.target + '\n';
  return text;
}

} // namespace

Status writeCorpus(const std::vector<LanguageCorpus> &corpus,
                   const std::string &dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return dataLoss("cannot create the directory '" + dir + "': " +
                    ec.message());
  std::string index = "language\ttrain\tvalid\ttest\n";
  for (const LanguageCorpus &lc : corpus) {
    MOERT_RETURN_IF_ERROR(writeAtomically(
        fs::path(dir) / ("train." + lc.language + ".tsv"), tsv(lc.train)));
    MOERT_RETURN_IF_ERROR(writeAtomically(
        fs::path(dir) / ("valid." + lc.language + ".tsv"), tsv(lc.valid)));
    MOERT_RETURN_IF_ERROR(writeAtomically(
        fs::path(dir) / ("test." + lc.language + ".tsv"), tsv(lc.test)));
    index += lc.language + '\t' + std::to_string(lc.train.size()) + '\t' +
             std::to_string(lc.valid.size()) + '\t' +
             std::to_string(lc.test.size()) + '\n';
  }
  return writeAtomically(fs::path(dir) / "languages.tsv", index);
}

} // namespace data
} // namespace moert
