//===- Tokenizer.h - The shared SentencePiece vocabulary -------*- C++ -*-===//
//
// One SentencePiece model (Debian's libsentencepiece) for every language of
// the corpus, trained on a balanced sample of its training pairs (both
// sides), with the special pieces the multitask data path needs: pad 0,
// unk 1, bos 2, eos 3, the language tags <2xx> (the target language of a
// translation, as in multilingual NMT), the task tags <mt> and <dae>, and
// <mask> for the denoising task's masked spans.
//
// Encoded corpora are id shards: "MOEIDS1\0", the pair count (u64), then
// per pair its source and target lengths (u32 each) and their ids (i32).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_DATA_TOKENIZER_H
#define MOERT_DATA_TOKENIZER_H

#include "moert/Status.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace moert {
namespace data {

/// The longest text the tokenizer encodes, in bytes. SentencePiece's
/// unigram encoder (Debian's 0.1.97) takes time, and allocates bytes in
/// all, quadratic in the length of a run of characters outside the
/// vocabulary (measured: 16 KiB 0.01 s, 256 KiB 1.6 s, 1 MiB 28 s; under
/// AddressSanitizer 64 KiB reach 2.8 GB of RSS). The corpus keeps at most
/// 200 bytes a side by default (moe-data corpus --max-chars), and
/// SentencePiece's trainer skips sentences over 4192 bytes.
constexpr size_t kMaxTextBytes = 16 * 1024;

struct TokenizerOptions {
  int vocabSize = 8000;
  /// Lines of the training sample per language (target side); the English
  /// side gets as many in all.
  int64_t linesPerLanguage = 3000;
  uint64_t seed = 1;
};

/// Trains <corpusDir>/spm.model (and spm.vocab) from the train.<lang>.tsv
/// files listed in <corpusDir>/languages.tsv.
Status trainTokenizer(const std::string &corpusDir,
                      const TokenizerOptions &options);

/// The language tag piece of a language ("<2de>").
std::string languageTag(const std::string &language);

struct EncodedPair {
  std::vector<int32_t> source, target;
};

/// Encodes <corpusDir>/<split>.<lang>.tsv with <corpusDir>/spm.model into
/// <corpusDir>/<split>.<lang>.ids for every language and split; a side over
/// kMaxTextBytes is an error naming the file and line.
Status encodeCorpus(const std::string &corpusDir);

/// Reads an id shard; errors name the file and the pair.
Expected<std::vector<EncodedPair>> readIdShard(const std::string &path);

/// The same from the bytes of a shard (`name` in errors): a pair count the
/// bytes cannot hold is refused before anything is allocated, every pair
/// must lie inside the bytes and nothing may follow the last one.
Expected<std::vector<EncodedPair>> parseIdShard(const std::string &bytes,
                                                const std::string &name);

/// The languages of <corpusDir>/languages.tsv, in its order.
Expected<std::vector<std::string>>
corpusLanguages(const std::string &corpusDir);

/// The (English, X) text pairs of a corpus split file
/// (<corpusDir>/<split>.<lang>.tsv); at most `limit` (0: all).
Expected<std::vector<std::pair<std::string, std::string>>>
readTextPairs(const std::string &path, int64_t limit = 0);

/// The same from the bytes of a split file (`name` in errors): one
/// 'source<TAB>target' pair per line.
Expected<std::vector<std::pair<std::string, std::string>>>
parseTextPairs(const std::string &bytes, const std::string &name,
               int64_t limit = 0);

/// A loaded SentencePiece model: text to ids and back, special pieces.
class SentencePieceModel {
public:
  static Expected<std::unique_ptr<SentencePieceModel>>
  load(const std::string &path);
  ~SentencePieceModel();

  /// Text to ids; a text over kMaxTextBytes is an error.
  Expected<std::vector<int32_t>> encode(const std::string &text) const;
  /// Ids to text; special pieces (<s>, </s>, tags) are dropped.
  Expected<std::string> decode(const std::vector<int32_t> &ids) const;
  /// The id of a piece such as "<2de>"; an error naming it if unknown.
  Expected<int32_t> pieceId(const std::string &piece) const;
  int32_t bos() const;
  int32_t eos() const;
  int64_t size() const;

private:
  SentencePieceModel();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace data
} // namespace moert

#endif // MOERT_DATA_TOKENIZER_H
