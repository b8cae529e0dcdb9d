//===- CorpusTest.cpp - gettext catalogs to a cleaned parallel corpus ------===//
#include "moert/data/Corpus.h"
#include "moert/data/MultitaskSource.h"
#include "moert/data/Tokenizer.h"

#include "FuzzInputs.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <sys/stat.h>
#include <unistd.h>

namespace moert {
namespace data {
namespace {

namespace fs = std::filesystem;

/// A .mo catalog of (original, translation) pairs in either byte order,
/// laid out as msgfmt does (header, two tables, then the strings).
std::string moBytes(const std::vector<std::pair<std::string, std::string>> &entries,
                    bool bigEndian) {
  std::string out;
  auto word = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) {
      const int shift = bigEndian ? 24 - 8 * i : 8 * i;
      out.push_back(static_cast<char>((v >> shift) & 0xFF));
    }
  };
  const uint32_t n = static_cast<uint32_t>(entries.size());
  const uint32_t originals = 28, translations = originals + 8 * n;
  uint32_t strings = translations + 8 * n;
  word(0x950412de);
  word(0);
  word(n);
  word(originals);
  word(translations);
  word(0);
  word(0);
  std::string data;
  std::vector<std::pair<uint32_t, uint32_t>> table[2];
  for (int side = 0; side < 2; ++side)
    for (const auto &entry : entries) {
      const std::string &text = side == 0 ? entry.first : entry.second;
      table[side].push_back({static_cast<uint32_t>(text.size()),
                             strings + static_cast<uint32_t>(data.size())});
      data += text;
      data.push_back('\0');
    }
  for (int side = 0; side < 2; ++side)
    for (auto [length, offset] : table[side]) {
      word(length);
      word(offset);
    }
  return out + data;
}

const std::vector<std::pair<std::string, std::string>> kEntries = {
    {"", "Content-Type: text/plain; charset=UTF-8\n"}, // header
    {"_Open", "Ö_ffnen"},
    {"menu\x04Save", "Speichern"},
    {std::string("One file\0%d files", 17), std::string("Eine Datei\0%d Dateien", 21)},
    {"Copied %s to %s", "%s nach %s kopiert"},
    {"Delete %s?", "Löschen?"},
    {"<b>Bold</b> text", "Fetter Text"},
    {"Untranslated", "Untranslated"},
    {"Two\nlines", "Zwei\nZeilen"},
    {"Open", "Öffnen"}, // after accelerator removal: a duplicate of _Open
};

TEST(CorpusTest, ParsesBothByteOrdersContextsAndPlurals) {
  for (bool bigEndian : {false, true}) {
    Expected<std::vector<CatalogEntry>> entries =
        parseMoCatalog(moBytes(kEntries, bigEndian), "test.mo");
    ASSERT_TRUE(entries.ok()) << entries.status().toString();
    ASSERT_EQ(entries->size(), kEntries.size());
    EXPECT_EQ((*entries)[2].context, "menu");
    EXPECT_EQ((*entries)[2].source, "Save");
    EXPECT_EQ((*entries)[3].source, "One file");
    EXPECT_EQ((*entries)[3].translation, "Eine Datei");
  }
}

TEST(CorpusTest, MalformedCatalogsAreErrorsNamingTheFile) {
  Expected<std::vector<CatalogEntry>> shortFile =
      parseMoCatalog("abc", "short.mo");
  ASSERT_FALSE(shortFile.ok());
  EXPECT_NE(shortFile.status().message().find(
                "short.mo: not a valid .mo catalog: expected a header"),
            std::string::npos);
  std::string bytes = moBytes(kEntries, false);
  bytes[0] = 'X';
  Expected<std::vector<CatalogEntry>> badMagic = parseMoCatalog(bytes, "m.mo");
  ASSERT_FALSE(badMagic.ok());
  EXPECT_NE(badMagic.status().message().find("expected the magic number"),
            std::string::npos);
  bytes = moBytes(kEntries, false);
  bytes.resize(bytes.size() - 30); // the last strings are cut off
  Expected<std::vector<CatalogEntry>> truncated =
      parseMoCatalog(bytes, "t.mo");
  ASSERT_FALSE(truncated.ok());
  EXPECT_NE(truncated.status().message().find("lies outside the file"),
            std::string::npos)
      << truncated.status().toString();
}

TEST(CorpusTest, CleaningKeepsConsistentPairsAndSaysWhyOthersGo) {
  CleaningOptions options;
  Pair pair;
  auto verdict = [&](const std::string &source, const std::string &target) {
    return clean({"", source, target}, options, pair);
  };
  EXPECT_EQ(verdict("_Open", "Ö_ffnen"), Verdict::Kept);
  EXPECT_EQ(pair.source, "Open");
  EXPECT_EQ(pair.target, "Öffnen");
  EXPECT_EQ(verdict("_Open", "開く(_O)"), Verdict::Kept);
  EXPECT_EQ(pair.target, "開く");
  EXPECT_EQ(verdict("&File", "&Datei"), Verdict::Kept);
  EXPECT_EQ(pair.source, "File");
  EXPECT_EQ(verdict("Copied %s to %s", "%s nach %s kopiert"), Verdict::Kept);
  EXPECT_EQ(verdict("%1$s of %2$d", "%2$d von %1$s"), Verdict::Kept);
  EXPECT_EQ(verdict("100%% done", "100 %% fertig"), Verdict::Kept);
  EXPECT_EQ(verdict("Delete %s?", "Löschen?"), Verdict::FormatMismatch);
  EXPECT_EQ(verdict("Hello {name}", "Hallo"), Verdict::FormatMismatch);
  EXPECT_EQ(verdict("Path ${HOME}", "Pfad"), Verdict::FormatMismatch);
  EXPECT_EQ(verdict("<b>Bold</b> text", "Fetter Text"),
            Verdict::MarkupMismatch);
  EXPECT_EQ(verdict("<b>Bold</b>", "<b>Fett</b>"), Verdict::Kept);
  EXPECT_EQ(verdict("Untranslated", "Untranslated"), Verdict::Untranslated);
  EXPECT_EQ(verdict("Two\nlines", "Zwei\nZeilen"), Verdict::MultiLine);
  EXPECT_EQ(verdict("", "x"), Verdict::Empty);
  EXPECT_EQ(verdict("A rather long English sentence here",
                    "Kurz"),
            Verdict::LengthRatio);
  EXPECT_EQ(verdict(std::string(300, 'a'), std::string(300, 'b')),
            Verdict::TooLong);
  EXPECT_EQ(verdict("file_name", "Dateiname"), Verdict::Kept);
  EXPECT_EQ(pair.source, "file_name"); // not an accelerator
  // Text that spells a tokenizer tag would be encoded as the tag.
  EXPECT_EQ(verdict("Open <mask> file", "Datei <mask> öffnen"),
            Verdict::TagText);
  EXPECT_EQ(verdict("Use <2de> here", "Hier <2de> nutzen"), Verdict::TagText);
  EXPECT_EQ(verdict("Mode <mt>", "Modus"), Verdict::TagText);
  EXPECT_EQ(verdict("Language", "Sprache <2pt_BR>"), Verdict::TagText);
  EXPECT_EQ(verdict("1 <2 and 3 > 2", "1 <2 und 3 > 2"), Verdict::Kept);
  EXPECT_EQ(verdict("<i>Mask</i>", "<i>Maske</i>"), Verdict::Kept);
}

TEST(CorpusTest, BuildsDeterministicDisjointSplitsAndSkipsBadCatalogs) {
  const fs::path root =
      fs::temp_directory_path() / ("moe-corpus-" + std::to_string(::getpid()));
  fs::remove_all(root);
  auto write = [&](const std::string &language, const std::string &file,
                   const std::string &bytes) {
    fs::create_directories(root / language / "LC_MESSAGES");
    std::ofstream(root / language / "LC_MESSAGES" / file, std::ios::binary)
        << bytes;
  };
  std::vector<std::pair<std::string, std::string>> many = {{"", "header"}};
  for (int i = 0; i < 400; ++i)
    many.push_back({"Message number " + std::to_string(i),
                    "Nachricht Nummer " + std::to_string(i)});
  write("de", "a.mo", moBytes(kEntries, false));
  write("de", "b.mo", moBytes(many, true));
  write("de", "broken.mo", "not a catalog at all, but long enough");
  write("fr", "a.mo", moBytes({{"", "h"}, {"Open", "Ouvrir"}}, false));
  write("en_GB", "a.mo", moBytes({{"", "h"}, {"Color", "Colour"}}, false));
  CorpusOptions options;
  options.minPairs = 1;
  options.languages = 0;
  CorpusReport report;
  Expected<std::vector<LanguageCorpus>> corpus =
      buildCorpus(root.string(), options, report);
  ASSERT_TRUE(corpus.ok()) << corpus.status().toString();
  EXPECT_EQ(report.catalogs, 4); // en_GB skipped
  EXPECT_EQ(report.malformed, 1);
  ASSERT_EQ(report.problems.size(), 1u);
  EXPECT_NE(report.problems[0].find("broken.mo"), std::string::npos);
  ASSERT_EQ(corpus->size(), 2u);
  const LanguageCorpus &de = (*corpus)[0];
  EXPECT_EQ(de.language, "de"); // the larger language first
  // 400 numbered + Open, Save, One file, Copied (the duplicate Open once).
  EXPECT_EQ(de.size(), 404u);
  EXPECT_GT(de.train.size(), 350u);
  std::set<std::string> train, held;
  for (const Pair &p : de.train)
    train.insert(p.source);
  for (const auto *split : {&de.valid, &de.test})
    for (const Pair &p : *split)
      held.insert(p.source);
  for (const std::string &source : held)
    EXPECT_EQ(train.count(source), 0u) << source;
  EXPECT_FALSE(held.empty());
  // Deterministic: the same seed gives the same splits, another seed others.
  CorpusReport again;
  Expected<std::vector<LanguageCorpus>> same =
      buildCorpus(root.string(), options, again);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ((*same)[0].test.size(), de.test.size());
  // Files.
  ASSERT_TRUE(writeCorpus(*corpus, (root / "out").string()).ok());
  std::ifstream index(root / "out" / "languages.tsv");
  std::stringstream text;
  text << index.rdbuf();
  EXPECT_NE(text.str().find("de\t" + std::to_string(de.train.size())),
            std::string::npos)
      << text.str();
  EXPECT_TRUE(fs::exists(root / "out" / "test.fr.tsv"));
  // A missing locale tree is an error.
  EXPECT_FALSE(buildCorpus((root / "none").string(), options, again).ok());
  fs::remove_all(root);
}

// The shared SentencePiece model: trained on a small two-language corpus,
// with the tags as single pieces; encoding writes id shards that read back.
TEST(TokenizerTest, TrainsEncodesAndReadsShards) {
  const fs::path dir = fs::temp_directory_path() /
                       ("moe-spm-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const char *words[] = {"open", "close", "file", "window", "save", "print",
                         "help", "about", "edit", "view", "tools", "search"};
  const char *german[] = {"öffnen", "schließen", "Datei", "Fenster",
                          "speichern", "drucken", "Hilfe", "über",
                          "bearbeiten", "Ansicht", "Werkzeuge", "suchen"};
  const char *french[] = {"ouvrir", "fermer", "fichier", "fenêtre",
                          "enregistrer", "imprimer", "aide", "à propos",
                          "éditer", "vue", "outils", "chercher"};
  for (auto [language, target] :
       {std::pair<const char *, const char **>{"de", german}, {"fr", french}})
    for (const char *split : {"train", "valid", "test"}) {
      std::ofstream out(dir / (std::string(split) + "." + language + ".tsv"));
      for (int i = 0; i < 300; ++i)
        out << words[i % 12] << " " << words[(i / 12) % 12] << "\t"
            << target[i % 12] << " " << target[(i / 12) % 12] << "\n";
    }
  std::ofstream(dir / "languages.tsv")
      << "language\ttrain\tvalid\ttest\nde\t300\t300\t300\nfr\t300\t300\t300\n";
  TokenizerOptions options;
  options.vocabSize = 120;
  Status trained = trainTokenizer(dir.string(), options);
  ASSERT_TRUE(trained.ok()) << trained.toString();
  ASSERT_TRUE(fs::exists(dir / "spm.model"));
  Status encoded = encodeCorpus(dir.string());
  ASSERT_TRUE(encoded.ok()) << encoded.toString();
  Expected<std::vector<EncodedPair>> shard =
      readIdShard((dir / "train.de.ids").string());
  ASSERT_TRUE(shard.ok()) << shard.status().toString();
  ASSERT_EQ(shard->size(), 300u);
  for (const EncodedPair &pair : *shard) {
    EXPECT_FALSE(pair.source.empty());
    EXPECT_FALSE(pair.target.empty());
    for (int32_t id : pair.source)
      EXPECT_GT(id, 3); // no pad/unk/bos/eos inside text
  }
  // Multitask batches from the encoded corpus.
  runner::SyntheticTaskConfig shape;
  shape.batchSize = 32;
  shape.srcLen = 12;
  shape.tgtLen = 10;
  shape.vocabSize = 200;
  shape.padId = 0;
  MultitaskOptions tasks;
  tasks.denoising = 0.4;
  Expected<std::unique_ptr<MultitaskSource>> source =
      MultitaskSource::create(dir.string(), shape, tasks);
  ASSERT_TRUE(source.ok()) << source.status().toString();
  EXPECT_EQ((*source)->languages(), (std::vector<std::string>{"de", "fr"}));
  EXPECT_NEAR((*source)->languageProbabilities()[0], 0.5, 1e-12);
  Expected<runner::SeqBatch> a = (*source)->batch(7, 3);
  Expected<runner::SeqBatch> again = (*source)->batch(7, 3);
  Expected<runner::SeqBatch> other = (*source)->batch(7, 4);
  ASSERT_TRUE(a.ok() && again.ok() && other.ok());
  EXPECT_EQ(a->srcTokens, again->srcTokens); // a function of (seed, step)
  EXPECT_EQ(a->labels, again->labels);
  EXPECT_NE(a->srcTokens, other->srcTokens);
  int denoisingRows = 0;
  for (int64_t b = 0; b < shape.batchSize; ++b) {
    const int32_t *src = a->srcTokens.data() + b * shape.srcLen;
    const int32_t *tgt = a->tgtTokens.data() + b * shape.tgtLen;
    const int32_t *labels = a->labels.data() + b * shape.tgtLen;
    // The source ends with </s> (3) before its pads; the decoder input is
    // <s> (2) and the labels shifted by one.
    int64_t length = 0;
    while (length < shape.srcLen && src[length] != 0)
      ++length;
    ASSERT_GT(length, 1);
    EXPECT_EQ(src[length - 1], 3) << "row " << b;
    EXPECT_EQ(tgt[0], 2);
    for (int64_t i = 1; i < shape.tgtLen && labels[i] != 0; ++i)
      EXPECT_EQ(tgt[i], labels[i - 1]);
    // The pieces after pad, unk, <s>, </s>: <mt> 4, <dae> 5, <mask> 6,
    // <2en> 7, <2de> 8, <2fr> 9. Rows start with a target-language tag
    // (translation) or <dae> and the text's language tag (denoising).
    if (src[0] == 5) {
      ++denoisingRows;
      EXPECT_TRUE(src[1] == 8 || src[1] == 9) << "row " << b;
      EXPECT_GT(std::count(src, src + length, 6), 0) << "row " << b;
    } else {
      EXPECT_TRUE(src[0] == 7 || src[0] == 8 || src[0] == 9) << "row " << b;
      EXPECT_EQ(std::count(src, src + length, 6), 0) << "row " << b;
    }
  }
  EXPECT_GT(denoisingRows, 0);
  EXPECT_LT(denoisingRows, shape.batchSize);
  // A plan vocabulary smaller than the tokenizer's is a clear error.
  runner::SyntheticTaskConfig small = shape;
  small.vocabSize = 50;
  Expected<std::unique_ptr<MultitaskSource>> tooSmall =
      MultitaskSource::create(dir.string(), small);
  ASSERT_FALSE(tooSmall.ok());
  EXPECT_NE(tooSmall.status().message().find("compile a model with "
                                             "vocab_size >="),
            std::string::npos)
      << tooSmall.status().toString();

  // A truncated shard is an error naming the pair.
  {
    std::ifstream in(dir / "train.de.ids", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    bytes.resize(bytes.size() - 6);
    std::ofstream(dir / "cut.ids", std::ios::binary) << bytes;
  }
  Expected<std::vector<EncodedPair>> cut =
      readIdShard((dir / "cut.ids").string());
  ASSERT_FALSE(cut.ok());
  EXPECT_NE(cut.status().message().find("pair 299 of 300 is truncated"),
            std::string::npos)
      << cut.status().toString();
  EXPECT_FALSE(readIdShard((dir / "languages.tsv").string()).ok());
  // No corpus index: a clear error.
  EXPECT_NE(trainTokenizer((dir / "none").string(), options)
                .message()
                .find("languages.tsv' is missing"),
            std::string::npos);
  fs::remove_all(dir);
}

/// The bytes of an id shard: the magic, `count` and the pairs.
std::string shardBytes(uint64_t count, const std::vector<EncodedPair> &pairs) {
  std::string out("MOEIDS1\0", 8);
  out.append(reinterpret_cast<const char *>(&count), sizeof(count));
  for (const EncodedPair &pair : pairs) {
    const uint32_t lengths[2] = {static_cast<uint32_t>(pair.source.size()),
                                 static_cast<uint32_t>(pair.target.size())};
    out.append(reinterpret_cast<const char *>(lengths), sizeof(lengths));
    out.append(reinterpret_cast<const char *>(pair.source.data()),
               pair.source.size() * 4);
    out.append(reinterpret_cast<const char *>(pair.target.data()),
               pair.target.size() * 4);
  }
  return out;
}

// A shard's pair count is checked against its bytes before anything is
// allocated, its pairs must lie inside them and nothing may follow them.
TEST(TokenizerTest, MalformedShardsAreErrorsNamingTheShard) {
  const std::vector<EncodedPair> two = {{{5, 6}, {7}}, {{}, {8, 9, 10}}};
  Expected<std::vector<EncodedPair>> good =
      parseIdShard(shardBytes(2, two), "good.ids");
  ASSERT_TRUE(good.ok()) << good.status().toString();
  ASSERT_EQ(good->size(), 2u);
  EXPECT_EQ((*good)[0].source, (std::vector<int32_t>{5, 6}));
  EXPECT_TRUE((*good)[1].source.empty());
  EXPECT_EQ((*good)[1].target, (std::vector<int32_t>{8, 9, 10}));
  Expected<std::vector<EncodedPair>> empty =
      parseIdShard(shardBytes(0, {}), "empty.ids");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());

  auto error = [](const std::string &bytes) {
    Expected<std::vector<EncodedPair>> shard = parseIdShard(bytes, "bad.ids");
    return shard.ok() ? std::string("accepted") : shard.status().message();
  };
  EXPECT_EQ(error(shardBytes(uint64_t(1) << 60, {})),
            "bad.ids: claims 1152921504606846976 pairs in 16 bytes");
  EXPECT_EQ(error(shardBytes(3, two)),
            "bad.ids: pair 2 of 3 is truncated (the file ends first)");
  std::string cut = shardBytes(2, two);
  cut.resize(cut.size() - 4);
  EXPECT_EQ(error(cut),
            "bad.ids: pair 1 of 2 is truncated (the file ends first)");
  // A length that reaches past the end (2^32 - 1 ids in a few bytes).
  std::string huge = shardBytes(1, {{{1}, {}}});
  huge[16] = huge[17] = huge[18] = huge[19] = '\xff';
  EXPECT_EQ(error(huge),
            "bad.ids: pair 0 of 1 is truncated (the file ends first)");
  EXPECT_EQ(error(shardBytes(1, two)),
            "bad.ids: 20 bytes follow the last of its 1 pairs");
  EXPECT_EQ(error(shardBytes(2, two) + "x"),
            "bad.ids: 1 bytes follow the last of its 2 pairs");
  EXPECT_NE(error("MOEIDS1").find("bad.ids: not an id shard"),
            std::string::npos);
  EXPECT_NE(error(std::string(24, '\0')).find("bad.ids: not an id shard"),
            std::string::npos);
}

// A shard read through a pipe (a FIFO, the shell's <(...)): the size of the
// bytes read counts, not a seek position (which a pipe does not have: a
// claim of 2^60 pairs was once taken at its word and allocated).
TEST(TokenizerTest, ShardsReadThroughAPipe) {
  const fs::path dir =
      fs::temp_directory_path() / ("moe-fifo-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path fifo = dir / "shard.ids";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto throughPipe = [&](const std::string &bytes) {
    std::thread writer([&] { std::ofstream(fifo, std::ios::binary) << bytes; });
    Expected<std::vector<EncodedPair>> shard = readIdShard(fifo.string());
    writer.join();
    return shard;
  };
  Expected<std::vector<EncodedPair>> claims =
      throughPipe(shardBytes(uint64_t(1) << 60, {}) + std::string(64, '\0'));
  ASSERT_FALSE(claims.ok());
  EXPECT_EQ(claims.status().message(),
            fifo.string() + ": claims 1152921504606846976 pairs in 80 bytes");
  const std::vector<EncodedPair> two = {{{5, 6}, {7}}, {{4}, {8, 9, 10}}};
  Expected<std::vector<EncodedPair>> good = throughPipe(shardBytes(2, two));
  ASSERT_TRUE(good.ok()) << good.status().toString();
  ASSERT_EQ(good->size(), 2u);
  EXPECT_EQ((*good)[1].target, (std::vector<int32_t>{8, 9, 10}));
  fs::remove_all(dir);
}

TEST(TokenizerTest, SplitFilesNeedOneTabPerLine) {
  Expected<std::vector<std::pair<std::string, std::string>>> pairs =
      parseTextPairs("Open\tUfna\nSave file\tSepa fyl\nQuit\tKwit", "s.tsv");
  ASSERT_TRUE(pairs.ok()) << pairs.status().toString();
  ASSERT_EQ(pairs->size(), 3u);
  EXPECT_EQ((*pairs)[1].first, "Save file");
  EXPECT_EQ((*pairs)[2].second, "Kwit");
  Expected<std::vector<std::pair<std::string, std::string>>> limited =
      parseTextPairs("a\tb\nc\td\n", "s.tsv", 1);
  ASSERT_TRUE(limited.ok());
  EXPECT_EQ(limited->size(), 1u);
  Expected<std::vector<std::pair<std::string, std::string>>> bad =
      parseTextPairs("a\tb\nc\td\te\n", "s.tsv");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "s.tsv:2: expected 'source<TAB>target', found 2 tabs");
  EXPECT_FALSE(parseTextPairs("a\tb\n\n", "s.tsv").ok()); // an empty line
}

// SentencePiece takes time quadratic in the length of a run of characters
// outside its vocabulary (1 MiB: 28 s): longer texts than kMaxTextBytes
// are refused, by the model and by the corpus encoder (naming the line).
TEST(TokenizerTest, TextsOverTheLimitAreRefused) {
  const fs::path model = fs::path(MOE_FUZZ_DIR) / "tokenizer" / "spm.model";
  Expected<std::unique_ptr<SentencePieceModel>> spm =
      SentencePieceModel::load(model.string());
  ASSERT_TRUE(spm.ok()) << spm.status().toString();
  // 'x' is not in the toy model's vocabulary.
  Expected<std::vector<int32_t>> longest =
      (*spm)->encode(std::string(kMaxTextBytes, 'x'));
  ASSERT_TRUE(longest.ok()) << longest.status().toString();
  Expected<std::vector<int32_t>> tooLong =
      (*spm)->encode(std::string(kMaxTextBytes + 1, 'x'));
  ASSERT_FALSE(tooLong.ok());
  EXPECT_EQ(tooLong.status().message(),
            "a text of 16385 bytes is longer than the tokenizer takes (16384 "
            "bytes)");

  const fs::path dir =
      fs::temp_directory_path() / ("moe-long-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy_file(model, dir / "spm.model");
  std::ofstream(dir / "languages.tsv")
      << "language\ttrain\tvalid\ttest\nxa\t2\t0\t0\n";
  std::ofstream(dir / "train.xa.tsv")
      << "Open file\tUfna fyl\nSave\t" << std::string(kMaxTextBytes + 1, 'x')
      << "\n";
  Status encoded = encodeCorpus(dir.string());
  ASSERT_FALSE(encoded.ok());
  EXPECT_EQ(encoded.message(),
            (dir / "train.xa.tsv").string() +
                ":2: the target of 16385 bytes is longer than the tokenizer "
                "takes (16384 bytes)");
  fs::remove_all(dir);
}

// Every single-byte corruption of a catalog (each byte XOR 0xFF, and every
// truncation length) is either parsed or reported as an error naming the
// file: never a crash, never an endless loop.
TEST(CorpusTest, ByteFlippedAndTruncatedCatalogsNeverCrash) {
  const std::string good = moBytes(kEntries, false);
  int64_t rejected = 0;
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bytes = good;
    bytes[i] = static_cast<char>(bytes[i] ^ 0xFF);
    Expected<std::vector<CatalogEntry>> parsed =
        parseMoCatalog(bytes, "flipped.mo");
    if (!parsed.ok()) {
      ++rejected;
      EXPECT_NE(parsed.status().message().find("flipped.mo"),
                std::string::npos);
    }
  }
  for (size_t length = 0; length < good.size(); ++length) {
    Expected<std::vector<CatalogEntry>> parsed =
        parseMoCatalog(good.substr(0, length), "cut.mo");
    EXPECT_FALSE(parsed.ok() && length < 28) << "length " << length;
  }
  // Flips of the header's offsets and counts are caught.
  EXPECT_GT(rejected, 0);
}

// Temperature sampling and text infilling with exact expectations: two
// languages with 400 and 25 training pairs; p_l = n_l^(1/T) / sum, and every
// denoising row masks round(0.35 |x|) tokens of its text.
TEST(MultitaskTest, TemperatureSamplingAndSpanMaskingAreExact) {
  const fs::path dir =
      fs::temp_directory_path() / ("moe-mt-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const char *words[] = {"alpha", "beta",  "gamma", "delta", "epsilon", "zeta",
                         "eta",   "theta", "iota",  "kappa", "lambda",  "mu"};
  const std::pair<const char *, int> sizes[] = {{"aa", 400}, {"bb", 25}};
  for (auto [language, count] : sizes)
    for (const char *split : {"train", "valid", "test"}) {
      std::ofstream out(dir / (std::string(split) + "." + language + ".tsv"));
      for (int i = 0; i < count; ++i)
        out << words[i % 12] << " " << words[(i / 12) % 12] << " "
            << words[(i / 7) % 12] << "\t" << language << words[i % 12] << " "
            << language << words[(i / 12) % 12] << " " << language
            << words[(i / 5) % 12] << " " << words[(i / 3) % 12] << "\n";
    }
  std::ofstream(dir / "languages.tsv")
      << "language\ttrain\tvalid\ttest\naa\t400\t400\t400\nbb\t25\t25\t25\n";
  TokenizerOptions options;
  options.vocabSize = 100;
  ASSERT_TRUE(trainTokenizer(dir.string(), options).ok());
  ASSERT_TRUE(encodeCorpus(dir.string()).ok());
  Expected<std::unique_ptr<SentencePieceModel>> spm =
      SentencePieceModel::load((dir / "spm.model").string());
  ASSERT_TRUE(spm.ok()) << spm.status().toString();

  runner::SyntheticTaskConfig shape;
  shape.batchSize = 64;
  shape.srcLen = 40;
  shape.tgtLen = 40;
  shape.vocabSize = (*spm)->size();
  shape.padId = 0;
  for (double temperature : {1.0, 5.0}) {
    MultitaskOptions tasks;
    tasks.temperature = temperature;
    Expected<std::unique_ptr<MultitaskSource>> source =
        MultitaskSource::create(dir.string(), shape, tasks);
    ASSERT_TRUE(source.ok()) << source.status().toString();
    const double a = std::pow(400.0, 1.0 / temperature),
                 b = std::pow(25.0, 1.0 / temperature);
    EXPECT_NEAR((*source)->languageProbabilities()[0], a / (a + b), 1e-12);
    EXPECT_NEAR((*source)->languageProbabilities()[1], b / (a + b), 1e-12);
  }
  MultitaskOptions tasks; // T = 5: p(aa) = 400^0.2 / (400^0.2 + 25^0.2)
  Expected<std::unique_ptr<MultitaskSource>> source =
      MultitaskSource::create(dir.string(), shape, tasks);
  ASSERT_TRUE(source.ok());
  const int32_t dae = *(*spm)->pieceId("<dae>");
  const int32_t mask = *(*spm)->pieceId("<mask>");
  const int32_t tagA = *(*spm)->pieceId("<2aa>");
  const int32_t tagB = *(*spm)->pieceId("<2bb>");
  const int32_t tagEn = *(*spm)->pieceId("<2en>");
  int64_t rows = 0, rowsA = 0, denoising = 0, toEnglish = 0;
  for (int64_t step = 1; step <= 60; ++step) {
    Expected<runner::SeqBatch> batch = (*source)->batch(11, step);
    ASSERT_TRUE(batch.ok());
    for (int64_t r = 0; r < shape.batchSize; ++r, ++rows) {
      const int32_t *src = batch->srcTokens.data() + r * shape.srcLen;
      const int32_t *labels = batch->labels.data() + r * shape.tgtLen;
      int64_t srcLength = 0, tgtLength = 0;
      while (srcLength < shape.srcLen && src[srcLength] != 0)
        ++srcLength;
      while (tgtLength < shape.tgtLen && labels[tgtLength] != 0)
        ++tgtLength;
      const int64_t text = tgtLength - 1; // without </s>
      if (src[0] == dae) {
        ++denoising;
        rowsA += src[1] == tagA;
        // <dae> <2xx> kept-or-<mask>... </s>: the kept tokens plus the
        // masked ones are the text, and round(0.35 |x|) are masked.
        int64_t kept = 0;
        for (int64_t i = 2; i + 1 < srcLength; ++i)
          kept += src[i] != mask;
        EXPECT_EQ(text - kept, std::llround(0.35 * static_cast<double>(text)))
            << "step " << step << " row " << r;
      } else if (src[0] == tagEn) {
        ++toEnglish;
      } else {
        EXPECT_TRUE(src[0] == tagA || src[0] == tagB);
        rowsA += src[0] == tagA;
      }
    }
  }
  // 3840 rows: X->English rows name no language in their tag, so the
  // language share is measured on the others (about 0.6 of the rows).
  const double others = static_cast<double>(rows - toEnglish);
  const double pA = std::pow(400.0, 0.2) /
                    (std::pow(400.0, 0.2) + std::pow(25.0, 0.2)); // 0.635
  EXPECT_NEAR(rowsA / others, pA, 0.035);
  EXPECT_NEAR(denoising / static_cast<double>(rows), 0.2, 0.03);
  EXPECT_NEAR(toEnglish / static_cast<double>(rows), 0.4, 0.03);
  fs::remove_all(dir);
}

// The .mo reader fuzzer's seeds (fuzz/corpus/mo-reader, written by
// fuzz/make_mo_seeds.py) are valid catalogs, in both byte orders, that the
// reader takes apart as written; every committed regression input
// (fuzz/regressions/mo-reader: minimized crashers) gives an entry list or a
// Status naming the file, never a crash.
TEST(CorpusTest, FuzzCorpusReplays) {
  namespace fs = std::filesystem;
  auto read = [](const fs::path &path) {
    std::vector<uint8_t> bytes = moe::fuzz::readBytes(path.string());
    return std::string(bytes.begin(), bytes.end());
  };
  const fs::path corpus = fs::path(MOE_FUZZ_DIR) / "corpus" / "mo-reader";
  Expected<std::vector<CatalogEntry>> little =
      parseMoCatalog(read(corpus / "simple-le.mo"), "simple-le.mo");
  Expected<std::vector<CatalogEntry>> big =
      parseMoCatalog(read(corpus / "simple-be.mo"), "simple-be.mo");
  Expected<std::vector<CatalogEntry>> features =
      parseMoCatalog(read(corpus / "features.mo"), "features.mo");
  ASSERT_TRUE(little.ok()) << little.status().toString();
  ASSERT_TRUE(big.ok()) << big.status().toString();
  ASSERT_TRUE(features.ok()) << features.status().toString();
  ASSERT_EQ(little->size(), 3u);
  EXPECT_EQ((*little)[1].source, "Open file");
  EXPECT_EQ((*little)[1].translation, "Datei \xc3\xb6"
                                      "ffnen");
  ASSERT_EQ(big->size(), 3u);
  EXPECT_EQ((*big)[2].translation, "Quitter");
  ASSERT_EQ(features->size(), 7u);
  bool context = false, plural = false;
  for (const CatalogEntry &entry : *features) {
    context |= entry.context == "menu" && entry.source == "_Open";
    plural |= entry.source == "%d file" && entry.translation == "%d Datei";
  }
  EXPECT_TRUE(context);
  EXPECT_TRUE(plural);
  for (const std::string &path : moe::fuzz::filesIn(std::string(MOE_FUZZ_DIR) +
                                                    "/regressions/mo-reader")) {
    const std::string name = fs::path(path).filename().string();
    Expected<std::vector<CatalogEntry>> parsed =
        parseMoCatalog(read(path), name);
    if (!parsed.ok())
      EXPECT_NE(parsed.status().message().find(name), std::string::npos);
  }
}

// The tokenizer fuzzer's inputs (fuzz/corpus/tokenizer, written by
// fuzz/make_tokenizer_seeds.py with the committed model fuzz/tokenizer/
// spm.model): its id shards are what that model makes of its split files,
// and every committed input (seeds and fuzz/regressions/tokenizer) gives,
// as text, ids of the model that decode; as a shard and as a split file,
// pairs or a Status naming the file, never a crash.
TEST(TokenizerTest, FuzzCorpusReplays) {
  auto read = [](const fs::path &path) {
    std::vector<uint8_t> bytes = moe::fuzz::readBytes(path.string());
    return std::string(bytes.begin(), bytes.end());
  };
  const fs::path fuzzDir(MOE_FUZZ_DIR);
  Expected<std::unique_ptr<SentencePieceModel>> spm =
      SentencePieceModel::load((fuzzDir / "tokenizer" / "spm.model").string());
  ASSERT_TRUE(spm.ok()) << spm.status().toString();
  ASSERT_EQ((*spm)->size(), 200);
  const fs::path corpus = fuzzDir / "corpus" / "tokenizer";
  for (auto [split, count] :
       {std::pair<std::string, size_t>{"test.xa", 100}, {"valid.xb", 50}}) {
    Expected<std::vector<EncodedPair>> shard =
        readIdShard((corpus / (split + ".ids")).string());
    Expected<std::vector<std::pair<std::string, std::string>>> text =
        readTextPairs((corpus / (split + ".tsv")).string());
    ASSERT_TRUE(shard.ok()) << shard.status().toString();
    ASSERT_TRUE(text.ok()) << text.status().toString();
    ASSERT_EQ(shard->size(), count);
    ASSERT_EQ(text->size(), count);
    for (size_t i = 0; i < count; ++i) {
      EXPECT_EQ(*(*spm)->encode((*text)[i].first), (*shard)[i].source)
          << split << " pair " << i;
      EXPECT_EQ(*(*spm)->encode((*text)[i].second), (*shard)[i].target)
          << split << " pair " << i;
      EXPECT_EQ(*(*spm)->decode((*shard)[i].target), (*text)[i].second);
    }
  }
  Expected<std::vector<EncodedPair>> empty =
      readIdShard((corpus / "empty.ids").string());
  ASSERT_TRUE(empty.ok()) << empty.status().toString();
  EXPECT_TRUE(empty->empty());

  std::vector<std::string> inputs = moe::fuzz::filesIn(corpus.string());
  for (const std::string &path :
       moe::fuzz::filesIn((fuzzDir / "regressions" / "tokenizer").string()))
    inputs.push_back(path);
  EXPECT_GE(inputs.size(), 10u);
  for (const std::string &path : inputs) {
    const std::string name = fs::path(path).filename().string();
    const std::string bytes = read(path);
    Expected<std::vector<int32_t>> ids = (*spm)->encode(bytes);
    ASSERT_TRUE(ids.ok()) << name << ": " << ids.status().toString();
    for (int32_t id : *ids)
      ASSERT_TRUE(id >= 0 && id < (*spm)->size()) << name << ": id " << id;
    EXPECT_TRUE((*spm)->decode(*ids).ok()) << name;
    Expected<std::vector<EncodedPair>> shard = parseIdShard(bytes, name);
    if (!shard.ok())
      EXPECT_EQ(shard.status().message().rfind(name + ": ", 0), 0u)
          << shard.status().toString();
    Expected<std::vector<std::pair<std::string, std::string>>> pairs =
        parseTextPairs(bytes, name);
    if (!pairs.ok())
      EXPECT_EQ(pairs.status().message().rfind(name + ":", 0), 0u)
          << pairs.status().toString();
  }
}

} // namespace
} // namespace data
} // namespace moert
