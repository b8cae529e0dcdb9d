//===- TokenizerFuzzer.cpp - libFuzzer target: the tokenizer's inputs -----===//
//
// Every input goes through the three readers of the tokenizer path:
//
// - as text to SentencePieceModel::encode, with the model in
//   fuzz/tokenizer/spm.model (trained by moe-data spm on the toy corpus of
//   tests/lit/Eval): a text up to kMaxTextBytes must encode (a longer one
//   must not) into pieces of the model, never pad, <s> or </s> (the data
//   path adds those itself), and decoding them must succeed;
// - as an id shard to parseIdShard: a Status, or pairs that account for
//   every byte of the input; each pair's ids are decoded (ids outside the
//   vocabulary must give a Status, ids inside it text);
// - as a split file to parseTextPairs: a Status, or one pair per line with
//   neither side holding a tab or a line break; both sides are encoded and
//   decoded as above.
//
// SentencePiece itself (Debian's libsentencepiece) is not instrumented:
// errors inside it are seen where they reach our code or the heap.
//
//===----------------------------------------------------------------------===//
#include "moert/data/Tokenizer.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace {

using moert::Expected;
using moert::data::SentencePieceModel;

std::unique_ptr<SentencePieceModel> model;
int32_t padId = -1;

bool inVocabulary(const std::vector<int32_t> &ids) {
  for (int32_t id : ids)
    if (id < 0 || id >= model->size())
      return false;
  return true;
}

/// Ids in the vocabulary decode to text; others are a Status.
void decode(const std::vector<int32_t> &ids) {
  Expected<std::string> text = model->decode(ids);
  if (!text.ok() && inVocabulary(ids))
    std::abort(); // a sequence of the model's own pieces did not decode
}

void encodeAndDecode(const std::string &text) {
  Expected<std::vector<int32_t>> ids = model->encode(text);
  if (ids.ok() != (text.size() <= moert::data::kMaxTextBytes))
    std::abort(); // every text up to the limit must encode, none longer
  if (!ids.ok())
    return;
  if (!inVocabulary(*ids))
    std::abort(); // an id that is not a piece of the model
  for (int32_t id : *ids)
    if (id == padId || id == model->bos() || id == model->eos())
      std::abort(); // a control piece inside encoded text
  if (!model->decode(*ids).ok())
    std::abort(); // the ids encode produced did not decode
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  Expected<std::unique_ptr<SentencePieceModel>> loaded =
      SentencePieceModel::load(MOE_FUZZ_TOKENIZER_MODEL);
  Expected<int32_t> pad =
      loaded.ok() ? (*loaded)->pieceId("<pad>") : Expected<int32_t>(0);
  if (!loaded.ok() || !pad.ok()) {
    std::fprintf(
        stderr, "fuzz-tokenizer: %s\n",
        (loaded.ok() ? pad.status() : loaded.status()).toString().c_str());
    std::abort();
  }
  model = std::move(*loaded);
  padId = *pad;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  using namespace moert::data;
  const std::string bytes(reinterpret_cast<const char *>(data), size);
  encodeAndDecode(bytes);

  Expected<std::vector<EncodedPair>> shard = parseIdShard(bytes, "<fuzz>");
  if (shard.ok()) {
    uint64_t used = 16;
    for (const EncodedPair &pair : *shard) {
      used += 8 + 4 * (uint64_t(pair.source.size()) + pair.target.size());
      decode(pair.source);
      decode(pair.target);
    }
    if (used != size)
      std::abort(); // the reader skipped or invented bytes
  }

  Expected<std::vector<std::pair<std::string, std::string>>> pairs =
      parseTextPairs(bytes, "<fuzz>");
  if (pairs.ok()) {
    size_t lines = 0;
    for (size_t i = 0; i < size; ++i)
      lines += bytes[i] == '\n' || i + 1 == size;
    if (pairs->size() != lines)
      std::abort(); // a line was dropped or split
    for (const auto &[source, target] : *pairs) {
      if (source.find_first_of("\t\n") != std::string::npos ||
          target.find_first_of("\t\n") != std::string::npos)
        std::abort(); // a side holds a separator
      encodeAndDecode(source);
      encodeAndDecode(target);
    }
  }
  return 0;
}
