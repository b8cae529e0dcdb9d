//===- Tokenizer.cpp - The shared SentencePiece vocabulary ----------------===//
#include "moert/data/Tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <random>
#include <sstream>

namespace moert {
namespace data {

namespace fs = std::filesystem;

namespace {

constexpr char kShardMagic[8] = {'M', 'O', 'E', 'I', 'D', 'S', '1', '\0'};

Expected<std::vector<std::string>> languagesOf(const std::string &dir) {
  std::ifstream index(fs::path(dir) / "languages.tsv");
  if (!index)
    return invalidArgument("'" + dir +
                           "/languages.tsv' is missing (run moe-data corpus "
                           "first)");
  std::vector<std::string> languages;
  std::string line;
  std::getline(index, line); // header
  for (int number = 2; std::getline(index, line); ++number) {
    const size_t tab = line.find('\t');
    if (tab == 0 || tab == std::string::npos)
      return invalidArgument(dir + "/languages.tsv:" + std::to_string(number) +
                             ": expected 'language<TAB>train<TAB>valid<TAB>"
                             "test', found '" +
                             line + "'");
    languages.push_back(line.substr(0, tab));
  }
  if (languages.empty())
    return invalidArgument(dir + "/languages.tsv lists no language");
  return languages;
}

using PairVisitor =
    std::function<Status(const std::string &, const std::string &)>;

/// Visits the 'source<TAB>target' lines of `in`; errors name `name` and
/// the line.
Status forEachPairIn(std::istream &in, const std::string &name,
                     const PairVisitor &visit) {
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    const size_t tab = line.find('\t');
    if (tab == std::string::npos || line.find('\t', tab + 1) != std::string::npos)
      return invalidArgument(
          name + ":" + std::to_string(number) +
          ": expected 'source<TAB>target', found " +
          std::to_string(std::count(line.begin(), line.end(), '\t')) + " tabs");
    MOERT_RETURN_IF_ERROR(visit(line.substr(0, tab), line.substr(tab + 1)));
  }
  return Status::success();
}

/// Encodes `text` into `ids`; `what` names it in errors.
Status encodeText(const sentencepiece::SentencePieceProcessor &processor,
                  const std::string &text, const std::string &what,
                  std::vector<int> &ids) {
  if (text.size() > kMaxTextBytes)
    return invalidArgument(what + " of " + std::to_string(text.size()) +
                           " bytes is longer than the tokenizer takes (" +
                           std::to_string(kMaxTextBytes) + " bytes)");
  if (!processor.Encode(text, &ids).ok())
    return invalidArgument("cannot encode '" + text + "'");
  return Status::success();
}

Status forEachPair(const fs::path &path, const PairVisitor &visit) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return invalidArgument("cannot open '" + path.string() + "'");
  return forEachPairIn(in, path.string(), visit);
}

} // namespace

std::string languageTag(const std::string &language) {
  return "<2" + language + ">";
}

Status trainTokenizer(const std::string &corpusDir,
                      const TokenizerOptions &options) {
  MOERT_ASSIGN_OR_RETURN(std::vector<std::string> languages,
                         languagesOf(corpusDir));
  // A balanced sample: up to linesPerLanguage pairs of every language.
  const fs::path sample = fs::path(corpusDir) / "spm-sample.txt";
  {
    std::ofstream out(sample, std::ios::binary | std::ios::trunc);
    std::mt19937_64 rng(options.seed);
    for (const std::string &language : languages) {
      std::vector<std::pair<std::string, std::string>> pairs;
      MOERT_RETURN_IF_ERROR(forEachPair(
          fs::path(corpusDir) / ("train." + language + ".tsv"),
          [&](const std::string &s, const std::string &t) {
            pairs.emplace_back(s, t);
            return Status::success();
          }));
      std::shuffle(pairs.begin(), pairs.end(), rng);
      if (static_cast<int64_t>(pairs.size()) > options.linesPerLanguage)
        pairs.resize(static_cast<size_t>(options.linesPerLanguage));
      const size_t englishLines =
          std::max<size_t>(1, pairs.size() / languages.size());
      for (size_t i = 0; i < pairs.size(); ++i) {
        out << pairs[i].second << '\n';
        if (i < englishLines)
          out << pairs[i].first << '\n';
      }
    }
    if (!out)
      return dataLoss("cannot write '" + sample.string() + "'");
  }
  std::string symbols = "<mt>,<dae>,<mask>," + languageTag("en");
  for (const std::string &language : languages)
    symbols += "," + languageTag(language);
  std::ostringstream args;
  args << "--input=" << sample.string()
       << " --model_prefix=" << (fs::path(corpusDir) / "spm").string()
       << " --vocab_size=" << options.vocabSize
       << " --model_type=unigram --character_coverage=0.9995"
       << " --pad_id=0 --unk_id=1 --bos_id=2 --eos_id=3"
       << " --user_defined_symbols=" << symbols
       << " --input_sentence_size=2000000 --shuffle_input_sentence=true"
       << " --hard_vocab_limit=false --minloglevel=2";
  // Sampling and shuffling in the trainer draw from this seed.
  sentencepiece::SetRandomGeneratorSeed(static_cast<unsigned>(options.seed));
  const sentencepiece::util::Status status =
      sentencepiece::SentencePieceTrainer::Train(args.str());
  std::error_code ignored;
  fs::remove(sample, ignored);
  if (!status.ok())
    return invalidArgument("training the SentencePiece model failed: " +
                           std::string(status.ToString()));
  return Status::success();
}

Status encodeCorpus(const std::string &corpusDir) {
  MOERT_ASSIGN_OR_RETURN(std::vector<std::string> languages,
                         languagesOf(corpusDir));
  sentencepiece::SentencePieceProcessor processor;
  const std::string model = (fs::path(corpusDir) / "spm.model").string();
  if (!processor.Load(model).ok())
    return invalidArgument("cannot load the SentencePiece model '" + model +
                           "' (run moe-data spm first)");
  for (const std::string &language : languages)
    for (const char *split : {"train", "valid", "test"}) {
      std::vector<EncodedPair> pairs;
      const fs::path text =
          fs::path(corpusDir) / (std::string(split) + "." + language + ".tsv");
      int64_t line = 0;
      MOERT_RETURN_IF_ERROR(forEachPair(text, [&](const std::string &s,
                                                  const std::string &t) {
        const std::string where = text.string() + ":" + std::to_string(++line);
        EncodedPair pair;
        std::vector<int> ids;
        MOERT_RETURN_IF_ERROR(
            encodeText(processor, s, where + ": the source", ids));
        pair.source.assign(ids.begin(), ids.end());
        MOERT_RETURN_IF_ERROR(
            encodeText(processor, t, where + ": the target", ids));
        pair.target.assign(ids.begin(), ids.end());
        pairs.push_back(std::move(pair));
        return Status::success();
      }));
      const fs::path path =
          fs::path(corpusDir) / (std::string(split) + "." + language + ".ids");
      const fs::path temporary = path.string() + ".tmp";
      {
        std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
        out.write(kShardMagic, sizeof(kShardMagic));
        const uint64_t count = pairs.size();
        out.write(reinterpret_cast<const char *>(&count), sizeof(count));
        for (const EncodedPair &pair : pairs) {
          const uint32_t lengths[2] = {
              static_cast<uint32_t>(pair.source.size()),
              static_cast<uint32_t>(pair.target.size())};
          out.write(reinterpret_cast<const char *>(lengths), sizeof(lengths));
          out.write(reinterpret_cast<const char *>(pair.source.data()),
                    static_cast<std::streamsize>(pair.source.size() * 4));
          out.write(reinterpret_cast<const char *>(pair.target.data()),
                    static_cast<std::streamsize>(pair.target.size() * 4));
        }
        if (!out)
          return dataLoss("cannot write '" + temporary.string() + "'");
      }
      std::error_code ec;
      fs::rename(temporary, path, ec);
      if (ec)
        return dataLoss("cannot rename '" + temporary.string() + "'");
    }
  return Status::success();
}

Expected<std::vector<EncodedPair>> parseIdShard(const std::string &bytes,
                                                const std::string &name) {
  const uint64_t size = bytes.size();
  uint64_t count = 0;
  if (size < 16 || std::memcmp(bytes.data(), kShardMagic, 8) != 0)
    return invalidArgument(name + ": not an id shard (expected the magic "
                                  "'MOEIDS1' and a pair count)");
  std::memcpy(&count, bytes.data() + 8, sizeof(count));
  // Every pair takes at least its two lengths: a count the bytes cannot
  // hold is refused before the pairs are allocated.
  if (count > (size - 16) / 8)
    return invalidArgument(name + ": claims " + std::to_string(count) +
                           " pairs in " + std::to_string(size) + " bytes");
  std::vector<EncodedPair> pairs(static_cast<size_t>(count));
  uint64_t at = 16;
  auto truncated = [&](uint64_t i) {
    return invalidArgument(name + ": pair " + std::to_string(i) + " of " +
                           std::to_string(count) +
                           " is truncated (the file ends first)");
  };
  auto take = [&](std::vector<int32_t> &ids, uint32_t length) {
    ids.resize(length);
    if (length != 0)
      std::memcpy(ids.data(), bytes.data() + at, size_t(length) * 4);
    at += uint64_t(length) * 4;
  };
  for (uint64_t i = 0; i < count; ++i) {
    uint32_t lengths[2] = {};
    if (size - at < sizeof(lengths))
      return truncated(i);
    std::memcpy(lengths, bytes.data() + at, sizeof(lengths));
    at += sizeof(lengths);
    if ((uint64_t(lengths[0]) + lengths[1]) * 4 > size - at)
      return truncated(i);
    take(pairs[i].source, lengths[0]);
    take(pairs[i].target, lengths[1]);
  }
  if (at != size)
    return invalidArgument(name + ": " + std::to_string(size - at) +
                           " bytes follow the last of its " +
                           std::to_string(count) + " pairs");
  return pairs;
}

Expected<std::vector<EncodedPair>> readIdShard(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return invalidArgument("cannot open the id shard '" + path + "'");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad())
    return dataLoss("cannot read the id shard '" + path + "'");
  return parseIdShard(buffer.str(), path);
}

Expected<std::vector<std::string>>
corpusLanguages(const std::string &corpusDir) {
  return languagesOf(corpusDir);
}

namespace {
/// A visitor that keeps at most `limit` pairs (0: all).
PairVisitor keepPairs(std::vector<std::pair<std::string, std::string>> &pairs,
                      int64_t limit) {
  return [&pairs, limit](const std::string &source, const std::string &target) {
    if (limit <= 0 || static_cast<int64_t>(pairs.size()) < limit)
      pairs.emplace_back(source, target);
    return Status::success();
  };
}
} // namespace

Expected<std::vector<std::pair<std::string, std::string>>>
readTextPairs(const std::string &path, int64_t limit) {
  std::vector<std::pair<std::string, std::string>> pairs;
  MOERT_RETURN_IF_ERROR(forEachPair(path, keepPairs(pairs, limit)));
  return pairs;
}

Expected<std::vector<std::pair<std::string, std::string>>>
parseTextPairs(const std::string &bytes, const std::string &name,
               int64_t limit) {
  std::istringstream in(bytes);
  std::vector<std::pair<std::string, std::string>> pairs;
  MOERT_RETURN_IF_ERROR(forEachPairIn(in, name, keepPairs(pairs, limit)));
  return pairs;
}

namespace {
/// The task and language tags moe-data spm adds as user-defined pieces.
bool isSpecialPiece(const std::string &piece) {
  return piece == "<mt>" || piece == "<dae>" || piece == "<mask>" ||
         (piece.size() > 3 && piece.compare(0, 2, "<2") == 0 &&
          piece.back() == '>');
}
} // namespace

struct SentencePieceModel::Impl {
  sentencepiece::SentencePieceProcessor processor;
};

SentencePieceModel::SentencePieceModel() : impl_(std::make_unique<Impl>()) {}
SentencePieceModel::~SentencePieceModel() = default;

Expected<std::unique_ptr<SentencePieceModel>>
SentencePieceModel::load(const std::string &path) {
  std::unique_ptr<SentencePieceModel> model(new SentencePieceModel());
  const sentencepiece::util::Status status = model->impl_->processor.Load(path);
  if (!status.ok())
    return invalidArgument("cannot load the SentencePiece model '" + path +
                           "': " + status.ToString());
  return model;
}

Expected<std::vector<int32_t>>
SentencePieceModel::encode(const std::string &text) const {
  std::vector<int> ids;
  MOERT_RETURN_IF_ERROR(encodeText(impl_->processor, text, "a text", ids));
  return std::vector<int32_t>(ids.begin(), ids.end());
}

Expected<std::string>
SentencePieceModel::decode(const std::vector<int32_t> &ids) const {
  std::vector<int> pieces;
  pieces.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || id >= impl_->processor.GetPieceSize())
      return invalidArgument("token " + std::to_string(id) +
                             " is outside the vocabulary of " +
                             std::to_string(impl_->processor.GetPieceSize()));
    // Control pieces (<s>, </s>) and the tags (<2de>, <mask>) are not text.
    if (impl_->processor.IsControl(id) ||
        isSpecialPiece(impl_->processor.IdToPiece(id)))
      continue;
    pieces.push_back(id);
  }
  std::string text;
  if (!impl_->processor.Decode(pieces, &text).ok())
    return invalidArgument("cannot decode " + std::to_string(ids.size()) +
                           " tokens");
  return text;
}

Expected<int32_t> SentencePieceModel::pieceId(const std::string &piece) const {
  const int id = impl_->processor.PieceToId(piece);
  if (id == impl_->processor.unk_id() && piece != "<unk>")
    return invalidArgument("the SentencePiece model has no piece '" + piece +
                           "'");
  return static_cast<int32_t>(id);
}

int32_t SentencePieceModel::bos() const { return impl_->processor.bos_id(); }
int32_t SentencePieceModel::eos() const { return impl_->processor.eos_id(); }
int64_t SentencePieceModel::size() const {
  return impl_->processor.GetPieceSize();
}

} // namespace data
} // namespace moert
