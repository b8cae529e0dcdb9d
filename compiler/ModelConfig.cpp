//===- ModelConfig.cpp - JSON model configurations ------------------------===//
#include "compiler/ModelConfig.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MathExtras.h"

#include <cmath>

#include <tuple>

using namespace mlir::moe;
namespace json = llvm::json;

namespace {

/// Reads the fields of one JSON object, remembering the first error and
/// rejecting keys that no reader asked for.
class FieldReader {
public:
  FieldReader(const json::Object &object, std::string where)
      : object(object), where(std::move(where)) {}

  void integer(llvm::StringRef key, int64_t &out) {
    known.insert(key);
    const json::Value *value = object.get(key);
    if (!value)
      return;
    std::optional<int64_t> parsed = value->getAsInteger();
    if (!parsed)
      return fail(key, "an integer", *value);
    out = *parsed;
  }

  void number(llvm::StringRef key, double &out) {
    known.insert(key);
    const json::Value *value = object.get(key);
    if (!value)
      return;
    std::optional<double> parsed = value->getAsNumber();
    if (!parsed)
      return fail(key, "a number", *value);
    out = *parsed;
  }

  void boolean(llvm::StringRef key, bool &out) {
    known.insert(key);
    const json::Value *value = object.get(key);
    if (!value)
      return;
    std::optional<bool> parsed = value->getAsBoolean();
    if (!parsed)
      return fail(key, "true or false", *value);
    out = *parsed;
  }

  void choice(llvm::StringRef key, std::string &out,
              llvm::ArrayRef<llvm::StringRef> allowed) {
    known.insert(key);
    const json::Value *value = object.get(key);
    if (!value)
      return;
    std::optional<llvm::StringRef> parsed = value->getAsString();
    std::string expected =
        "one of \"" + llvm::join(allowed.begin(), allowed.end(), "\", \"") +
        "\"";
    if (!parsed || !llvm::is_contained(allowed, *parsed))
      return fail(key, expected, *value);
    out = parsed->str();
  }

  void string(llvm::StringRef key, std::string &out) {
    known.insert(key);
    const json::Value *value = object.get(key);
    if (!value)
      return;
    std::optional<llvm::StringRef> parsed = value->getAsString();
    if (!parsed)
      return fail(key, "a string", *value);
    out = parsed->str();
  }

  const json::Object *object_(llvm::StringRef key) {
    known.insert(key);
    const json::Value *value = object.get(key);
    if (!value)
      return nullptr;
    const json::Object *parsed = value->getAsObject();
    if (!parsed)
      fail(key, "an object", *value);
    return parsed;
  }

  /// The first error, or one for a key nobody read.
  llvm::Error finish() {
    if (error.empty()) {
      for (const auto &entry : object) {
        if (!known.contains(entry.first)) {
          std::vector<std::string> names;
          for (const auto &name : known)
            names.push_back(name.getKey().str());
          llvm::sort(names);
          error =
              llvm::formatv("{0}: unknown key \"{1}\" (expected one of: "
                            "{2})",
                            where, entry.first.str(), llvm::join(names, ", "));
          break;
        }
      }
    }
    if (error.empty())
      return llvm::Error::success();
    return llvm::createStringError(llvm::inconvertibleErrorCode(), error);
  }

private:
  void fail(llvm::StringRef key, llvm::StringRef expected,
            const json::Value &found) {
    if (!error.empty())
      return;
    std::string text;
    llvm::raw_string_ostream os(text);
    os << found;
    error = llvm::formatv("{0}: key \"{1}\" expects {2}, found {3}", where, key,
                          expected, text);
  }

  const json::Object &object;
  std::string where;
  llvm::StringSet<> known;
  std::string error;
};

llvm::Error makeError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

/// One open object or array of the structure scan.
struct OpenScope {
  bool isObject;
  bool expectKey;
  llvm::StringSet<> keys;
};

} // namespace

/// A single non-recursive pass over the text before the (recursive) JSON
/// parser sees it: refuses nesting deeper than `maxDepth` (so no input can
/// exhaust the stack) and a key that appears twice in one object (JSON
/// leaves duplicates undefined; a parser keeping the last one would hide a
/// typo'd override). Malformed text is left to the parser's diagnostics.
llvm::Error mlir::moe::checkJsonStructure(llvm::StringRef text,
                                          llvm::StringRef sourceName,
                                          unsigned maxDepth) {
  llvm::SmallVector<OpenScope, 8> scopes;
  unsigned line = 1, column = 1;
  size_t i = 0;
  auto advance = [&](size_t n) {
    for (size_t end = std::min(text.size(), i + n); i < end; ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {
        ++column;
      }
    }
  };
  while (i < text.size()) {
    char c = text[i];
    unsigned startLine = line, startColumn = column;
    switch (c) {
    case '{':
    case '[':
      if (scopes.size() >= maxDepth)
        return makeError(llvm::formatv(
            "{0}:{1}:{2}: JSON nested deeper than {3} levels (objects and "
            "arrays); a model configuration needs 2",
            sourceName, startLine, startColumn, maxDepth));
      scopes.push_back({c == '{', c == '{', {}});
      advance(1);
      break;
    case '}':
    case ']':
      if (!scopes.empty())
        scopes.pop_back();
      advance(1);
      break;
    case ',':
      if (!scopes.empty() && scopes.back().isObject)
        scopes.back().expectKey = true;
      advance(1);
      break;
    case '"': {
      // The raw text of the string; escapes are decoded only as far as
      // needed to compare keys ("\u0061" and "a" name the same key).
      std::string value;
      size_t j = i + 1;
      bool closed = false;
      while (j < text.size()) {
        char d = text[j];
        if (d == '"') {
          closed = true;
          break;
        }
        if (d == '\\' && j + 1 < text.size()) {
          char e = text[j + 1];
          if (e == 'u' && j + 5 < text.size()) {
            unsigned code = 0;
            if (!text.substr(j + 2, 4).getAsInteger(16, code) && code < 0x80) {
              value.push_back(static_cast<char>(code));
              j += 6;
              continue;
            }
          }
          value.push_back('\\');
          value.push_back(e);
          j += 2;
          continue;
        }
        value.push_back(d);
        ++j;
      }
      if (!closed)
        return llvm::Error::success(); // the parser reports it
      if (!scopes.empty() && scopes.back().isObject &&
          scopes.back().expectKey) {
        scopes.back().expectKey = false;
        if (!scopes.back().keys.insert(value).second)
          return makeError(llvm::formatv(
              "{0}:{1}:{2}: duplicate key \"{3}\" (each key may appear once "
              "per object)",
              sourceName, startLine, startColumn, value));
      }
      advance(j + 1 - i);
      break;
    }
    default:
      advance(1);
      break;
    }
  }
  return llvm::Error::success();
}

llvm::Expected<ModelConfig>
mlir::moe::parseModelConfig(llvm::StringRef text, llvm::StringRef sourceName) {
  if (llvm::Error error = checkJsonStructure(text, sourceName))
    return std::move(error);
  llvm::Expected<json::Value> parsed = json::parse(text);
  if (!parsed)
    return makeError(sourceName +
                     ": not valid JSON: " + llvm::toString(parsed.takeError()));
  const json::Object *root = parsed->getAsObject();
  if (!root)
    return makeError(sourceName + ": expected a JSON object at the top level");

  ModelConfig config;
  FieldReader top(*root, sourceName.str());
  top.string("name", config.name);
  top.integer("vocab_size", config.vocabSize);
  top.integer("pad_id", config.padId);
  top.integer("d_model", config.modelDim);
  top.integer("num_heads", config.numHeads);
  top.integer("ffn_hidden", config.ffnHidden);
  top.integer("encoder_layers", config.encoderLayers);
  top.integer("decoder_layers", config.decoderLayers);
  top.choice("activation", config.activation,
             {"relu", "gelu", "gelu_tanh", "silu"});
  top.choice("position", config.position, {"none", "sinusoidal", "learned"});
  top.integer("max_positions", config.maxPositions);
  top.choice("init", config.init, {"xavier", "small_normal"});
  top.boolean("tie_embeddings", config.tieEmbeddings);
  top.number("dropout", config.dropout);
  top.number("label_smoothing", config.labelSmoothing);
  top.number("layer_norm_eps", config.layerNormEps);
  top.integer("batch_size", config.batchSize);
  top.integer("src_len", config.srcLen);
  top.integer("tgt_len", config.tgtLen);
  const json::Object *moeObject = top.object_("moe");
  if (llvm::Error error = top.finish())
    return std::move(error);
  if (moeObject) {
    FieldReader moeReader(*moeObject, (sourceName + ": moe").str());
    moeReader.integer("num_experts", config.numExperts);
    moeReader.integer("every", config.moeEvery);
    moeReader.integer("offset", config.moeOffset);
    moeReader.integer("expert_hidden", config.expertHidden);
    GatingConfig &gating = config.gating;
    moeReader.integer("top_k", gating.topK);
    moeReader.number("capacity_factor", gating.capacityFactor);
    moeReader.number("eval_capacity_factor", gating.evalCapacityFactor);
    moeReader.integer("min_capacity", gating.minCapacity);
    moeReader.boolean("drop_tokens", gating.dropTokens);
    moeReader.boolean("use_rts", gating.useRts);
    moeReader.choice("noise", gating.noise, {"none", "jitter", "rsample"});
    moeReader.number("jitter_eps", gating.jitterEps);
    moeReader.boolean("second_sampling", gating.secondSampling);
    moeReader.integer("groups", gating.groups);
    if (llvm::Error error = moeReader.finish())
      return std::move(error);
  }
  // Sizes without a useful default must be given.
  llvm::SmallVector<llvm::StringRef> missing;
  for (llvm::StringRef key :
       {"vocab_size", "d_model", "num_heads", "ffn_hidden", "encoder_layers",
        "decoder_layers", "batch_size", "src_len", "tgt_len"})
    if (!root->get(key))
      missing.push_back(key);
  if (!missing.empty())
    return makeError(
        llvm::formatv("{0}: missing required key{1} \"{2}\"", sourceName,
                      missing.size() > 1 ? "s" : "",
                      llvm::join(missing.begin(), missing.end(), "\", \"")));

  if (llvm::Error error = validateModelConfig(config, sourceName))
    return std::move(error);
  return config;
}

llvm::Error mlir::moe::validateModelConfig(const ModelConfig &c,
                                           llvm::StringRef sourceName) {
  auto positive = [&](llvm::StringRef key, int64_t value) -> llvm::Error {
    if (value > 0)
      return llvm::Error::success();
    return makeError(llvm::formatv("{0}: \"{1}\" must be > 0, found {2}",
                                   sourceName, key, value));
  };
  for (auto [key, value] :
       {std::pair<llvm::StringRef, int64_t>{"vocab_size", c.vocabSize},
        {"d_model", c.modelDim},
        {"num_heads", c.numHeads},
        {"ffn_hidden", c.ffnHidden},
        {"encoder_layers", c.encoderLayers},
        {"decoder_layers", c.decoderLayers},
        {"batch_size", c.batchSize},
        {"src_len", c.srcLen},
        {"tgt_len", c.tgtLen}})
    if (llvm::Error error = positive(key, value))
      return error;
  // The largest tensors of the generated model, each of which must have a
  // byte size the compiler accepts (int64 without overflow, at most 2^48).
  {
    constexpr int64_t kMaxBytes = int64_t(1) << 48;
    int64_t maxLen = std::max(c.srcLen, c.tgtLen);
    int64_t experts = std::max<int64_t>(c.numExperts, 1);
    int64_t hidden =
        c.numExperts > 0 && c.expertHidden > 0 ? c.expertHidden : c.ffnHidden;
    struct Product {
      const char *what;
      std::initializer_list<std::pair<const char *, int64_t>> factors;
    };
    for (const Product &p :
         {Product{"the embedding table",
                  {{"vocab_size", c.vocabSize}, {"d_model", c.modelDim}}},
          Product{"the logits",
                  {{"batch_size", c.batchSize},
                   {"tgt_len", c.tgtLen},
                   {"vocab_size", c.vocabSize}}},
          Product{"the attention probabilities",
                  {{"batch_size", c.batchSize},
                   {"num_heads", c.numHeads},
                   {"max(src_len, tgt_len)", maxLen},
                   {"max(src_len, tgt_len)", maxLen}}},
          Product{"the feed-forward activations",
                  {{"batch_size", c.batchSize},
                   {"max(src_len, tgt_len)", maxLen},
                   {"ffn_hidden", c.ffnHidden}}},
          Product{"the expert weights",
                  {{"num_experts", experts},
                   {"d_model", c.modelDim},
                   {"expert_hidden", hidden}}}}) {
      int64_t bytes = 4;
      bool overflow = false;
      std::string formula;
      for (auto [key, value] : p.factors) {
        formula += llvm::formatv("{0} {1} x ", key, value).str();
        overflow = overflow || llvm::MulOverflow(bytes, value, bytes) ||
                   bytes > kMaxBytes;
      }
      if (overflow)
        return makeError(llvm::formatv(
            "{0}: sizes too large: {1} ({2}4 bytes) overflows int64 or "
            "exceeds 2^48 bytes (256 TiB)",
            sourceName, p.what, formula));
    }
  }
  if (c.modelDim % c.numHeads != 0)
    return makeError(llvm::formatv(
        "{0}: \"d_model\" ({1}) must be divisible by \"num_heads\" ({2})",
        sourceName, c.modelDim, c.numHeads));
  if (c.padId < 0 || c.padId >= c.vocabSize)
    return makeError(llvm::formatv(
        "{0}: \"pad_id\" must be in [0, vocab_size = {1}), found {2}",
        sourceName, c.vocabSize, c.padId));
  if (!(c.dropout >= 0.0 && c.dropout < 1.0))
    return makeError(
        llvm::formatv("{0}: \"dropout\" must be in [0, 1), found {1}",
                      sourceName, c.dropout));
  if (!(c.labelSmoothing >= 0.0 && c.labelSmoothing < 1.0))
    return makeError(
        llvm::formatv("{0}: \"label_smoothing\" must be in [0, 1), found {1}",
                      sourceName, c.labelSmoothing));
  if (!(c.layerNormEps > 0.0 && std::isfinite(c.layerNormEps)))
    return makeError(llvm::formatv(
        "{0}: \"layer_norm_eps\" must be finite and > 0, found {1}", sourceName,
        c.layerNormEps));
  int64_t maxLen = std::max(c.srcLen, c.tgtLen);
  if (c.position == "learned" && c.maxPositions != 0 && c.maxPositions < maxLen)
    return makeError(llvm::formatv(
        "{0}: \"max_positions\" ({1}) must cover the longest sequence ({2})",
        sourceName, c.maxPositions, maxLen));
  if (c.numExperts < 0)
    return makeError(
        llvm::formatv("{0}: moe \"num_experts\" must be >= 0, found {1}",
                      sourceName, c.numExperts));
  if (c.numExperts > 0) {
    if (c.moeEvery < 1 || c.moeOffset < 0 || c.moeOffset >= c.moeEvery)
      return makeError(llvm::formatv(
          "{0}: moe \"every\" must be >= 1 and \"offset\" in [0, every), "
          "found every = {1}, offset = {2}",
          sourceName, c.moeEvery, c.moeOffset));
    if (c.expertHidden < 0)
      return makeError(
          llvm::formatv("{0}: moe \"expert_hidden\" must be >= 0, found {1}",
                        sourceName, c.expertHidden));
    const GatingConfig &g = c.gating;
    if (g.topK < 1 || g.topK > c.numExperts)
      return makeError(llvm::formatv(
          "{0}: moe \"top_k\" must be in [1, num_experts = {1}], found {2}",
          sourceName, c.numExperts, g.topK));
    if (!(g.capacityFactor > 0.0 && std::isfinite(g.capacityFactor)) ||
        !(g.evalCapacityFactor > 0.0 && std::isfinite(g.evalCapacityFactor)))
      return makeError(llvm::formatv("{0}: moe capacity factors must be finite "
                                     "and > 0, found capacity_factor = "
                                     "{1}, eval_capacity_factor = {2}",
                                     sourceName, g.capacityFactor,
                                     g.evalCapacityFactor));
    if (g.minCapacity < 0)
      return makeError(
          llvm::formatv("{0}: moe \"min_capacity\" must be >= 0, found {1}",
                        sourceName, g.minCapacity));
    if (!(g.jitterEps > 0.0 && g.jitterEps < 1.0))
      return makeError(
          llvm::formatv("{0}: moe \"jitter_eps\" must be in (0, 1), found {1}",
                        sourceName, g.jitterEps));
    if (g.groups < 1)
      return makeError(llvm::formatv(
          "{0}: moe \"groups\" must be >= 1, found {1}", sourceName, g.groups));
    // Every gate splits its tokens (batch-major, batch_size * length) into
    // equal groups; a stack without MoE layers has no gate to split.
    for (auto [stack, layers, lengthKey, length] :
         {std::tuple<llvm::StringRef, int64_t, llvm::StringRef, int64_t>{
              "encoder", c.encoderLayers, "src_len", c.srcLen},
          {"decoder", c.decoderLayers, "tgt_len", c.tgtLen}}) {
      bool hasMoe = false;
      for (int64_t layer = 0; layer < layers && !hasMoe; ++layer)
        hasMoe = c.isMoeLayer(layer);
      int64_t tokens = c.batchSize * length;
      if (hasMoe && tokens % g.groups != 0)
        return makeError(llvm::formatv(
            "{0}: moe \"groups\" must divide the {1} tokens of the {2} "
            "(batch_size {3} x {4} {5}), found {6}",
            sourceName, tokens, stack, c.batchSize, lengthKey, length,
            g.groups));
    }
  }
  return llvm::Error::success();
}
