//===- IncrementalDecode.cpp - Decoding with the plan's @decode_step ------===//
#include "moert/runner/IncrementalDecode.h"

#include <algorithm>
#include <map>
#include <memory>
#include <string>

namespace moert {
namespace runner {

namespace {

/// The buffers decoding reads and writes, checked against each other.
struct Layout {
  const exec::EntryPoint *encode = nullptr, *step = nullptr;
  int32_t src = -1, tokens = -1, position = -1, selfMask = -1, logits = -1;
  std::vector<int32_t> states;             // persistent, [B, ...]
  std::vector<int32_t> cacheK, cacheV;     // [B, T, D] per layer
  std::vector<int32_t> keyRows, valueRows; // [B, 1, D] per layer
  int64_t batch = 0, srcLen = 0, tgtLen = 0, vocab = 0;
};

Expected<Layout> layoutOf(const exec::Program &program) {
  Layout l;
  l.encode = program.findEntryPoint("encode");
  l.step = program.findEntryPoint("decode_step");
  if (!l.encode || !l.step)
    return failedPrecondition("the plan has no 'encode' and 'decode_step' "
                              "programs (compile with "
                              "--moe-training-pipeline=\"decoder=true\")");
  auto need = [&](const std::vector<int32_t> &ids, const std::string &name,
                  int32_t &id) -> Status {
    id = program.bufferNamed(ids, name);
    if (id < 0)
      return failedPrecondition("the decoding programs have no buffer '" +
                                name + "'");
    return Status::success();
  };
  MOERT_RETURN_IF_ERROR(need(l.encode->inputs, "encode:src_tokens", l.src));
  MOERT_RETURN_IF_ERROR(need(l.step->inputs, "decode_step:tokens", l.tokens));
  MOERT_RETURN_IF_ERROR(
      need(l.step->inputs, "decode_step:position", l.position));
  MOERT_RETURN_IF_ERROR(
      need(l.step->inputs, "decode_step:self_mask", l.selfMask));
  MOERT_RETURN_IF_ERROR(need(l.step->outputs, "decode_step:logits", l.logits));
  for (size_t layer = 0;; ++layer) {
    const std::string n = std::to_string(layer);
    int32_t k = program.bufferNamed(l.step->inputs, "decode_step:cache.k." + n);
    if (k < 0)
      break;
    int32_t v = -1, kr = -1, vr = -1;
    MOERT_RETURN_IF_ERROR(need(l.step->inputs, "decode_step:cache.v." + n, v));
    MOERT_RETURN_IF_ERROR(
        need(l.step->outputs, "decode_step:key_rows." + n, kr));
    MOERT_RETURN_IF_ERROR(
        need(l.step->outputs, "decode_step:value_rows." + n, vr));
    l.cacheK.push_back(k);
    l.cacheV.push_back(v);
    l.keyRows.push_back(kr);
    l.valueRows.push_back(vr);
  }
  for (int32_t id : l.step->inputs)
    if (program.buffers[id].name.rfind("state.", 0) == 0)
      l.states.push_back(id);

  auto type = [&](int32_t id) -> const exec::TensorType & {
    return program.buffers[id].type;
  };
  const exec::TensorType &tokens = type(l.tokens), &src = type(l.src),
                         &mask = type(l.selfMask), &logits = type(l.logits);
  if (tokens.dtype != exec::DType::I32 || tokens.shape.size() != 2 ||
      tokens.shape[1] != 1 || src.dtype != exec::DType::I32 ||
      src.shape.size() != 2 || src.shape[0] != tokens.shape[0] ||
      mask.dtype != exec::DType::Bool || mask.shape.size() != 2 ||
      mask.shape[0] != tokens.shape[0] || logits.dtype != exec::DType::F32 ||
      logits.shape.size() != 3 || logits.shape[0] != tokens.shape[0] ||
      logits.shape[1] != 1 || type(l.position).dtype != exec::DType::I32 ||
      !type(l.position).shape.empty())
    return failedPrecondition(
        "the decoding programs' buffers do not fit together: tokens " +
        tokens.str() + ", sources " + src.str() + ", self mask " + mask.str() +
        ", logits " + logits.str() + ", position " + type(l.position).str() +
        " (expected [B, 1], [B, S], [B, T], [B, 1, V], a scalar)");
  l.batch = tokens.shape[0];
  l.srcLen = src.shape[1];
  l.tgtLen = mask.shape[1];
  l.vocab = logits.shape[2];
  for (size_t layer = 0; layer < l.cacheK.size(); ++layer)
    for (auto [cache, rows] :
         {std::make_pair(l.cacheK[layer], l.keyRows[layer]),
          std::make_pair(l.cacheV[layer], l.valueRows[layer])}) {
      const exec::TensorType &c = type(cache), &r = type(rows);
      if (c.dtype != exec::DType::F32 || c.shape.size() != 3 ||
          c.shape[0] != l.batch || c.shape[1] != l.tgtLen ||
          r.dtype != exec::DType::F32 ||
          r.shape != std::vector<int64_t>{l.batch, 1, c.shape[2]})
        return failedPrecondition(
            "cache " + program.buffers[cache].name + " is " + c.str() +
            " and its new rows " + r.str() + ", expected [" +
            std::to_string(l.batch) + ", " + std::to_string(l.tgtLen) +
            ", D] and [" + std::to_string(l.batch) + ", 1, D]");
    }
  for (int32_t state : l.states)
    if (type(state).shape.empty() || type(state).shape[0] != l.batch)
      return failedPrecondition(
          "encoder state " + program.buffers[state].name + " is " +
          type(state).str() + ", expected the batch (" +
          std::to_string(l.batch) + ") as its first dimension");
  return l;
}

/// The cached key and value rows of one prefix: per layer, its length
/// times the width.
struct CachedRows {
  std::vector<std::vector<float>> keys, values;
};
using Prefix = std::pair<int64_t, std::vector<int32_t>>; // source, tokens

/// The state of one next-token function: the programs' buffers, each
/// source's encoder states and the cached rows of the last call's prefixes.
class Decoder {
public:
  Decoder(exec::Executor &executor, Layout layout,
          std::vector<std::vector<int32_t>> sources, int32_t padId,
          uint64_t seed)
      : executor_(executor), layout_(std::move(layout)),
        sources_(std::move(sources)), padId_(padId),
        context_(exec::RunContext::evaluation(seed)) {}

  Expected<std::vector<std::vector<float>>>
  next(const std::vector<int64_t> &rows,
       const std::vector<std::vector<int32_t>> &prefixes);

private:
  /// Encodes the sources of `batch` not encoded yet and makes the state
  /// buffers hold `batch`'s rows.
  Status placeStates(const std::vector<int64_t> &batch);
  /// One decoder step at `position` for B rows: row b's token is
  /// `tokens[b]`, its earlier positions' rows `parents[b]` (null when
  /// position is 0). Returns the logits [B, V] and the new rows.
  Status step(int64_t position, const std::vector<int32_t> &tokens,
              const std::vector<std::shared_ptr<const CachedRows>> &parents,
              std::vector<float> &logits,
              std::vector<std::shared_ptr<const CachedRows>> &extended);

  exec::Executor &executor_;
  Layout layout_;
  std::vector<std::vector<int32_t>> sources_;
  int32_t padId_;
  exec::RunContext context_;
  // Per source: per encoder state, the bytes of its row.
  std::map<int64_t, std::vector<std::vector<uint8_t>>> encoded_;
  // The sources whose states the state buffers hold, by row.
  std::vector<int64_t> resident_;
  // The prefixes of the last call and their cached rows.
  std::map<Prefix, std::shared_ptr<const CachedRows>> live_;
};

Status Decoder::placeStates(const std::vector<int64_t> &batch) {
  const exec::Program &program = executor_.program();
  const int64_t B = layout_.batch;
  bool missing = false;
  for (int64_t source : batch)
    missing = missing || !encoded_.count(source);
  if (missing) {
    std::vector<int32_t> src(static_cast<size_t>(B * layout_.srcLen), padId_);
    for (int64_t b = 0; b < B; ++b) {
      const std::vector<int32_t> &tokens = sources_[batch[b]];
      std::copy(tokens.begin(), tokens.end(), src.begin() + b * layout_.srcLen);
    }
    MOERT_RETURN_IF_ERROR(executor_.writeBuffer(layout_.src, src.data(),
                                                src.size() * sizeof(int32_t)));
    MOERT_RETURN_IF_ERROR(executor_.run(*layout_.encode, context_));
    for (size_t k = 0; k < layout_.states.size(); ++k) {
      const int64_t bytes = program.buffers[layout_.states[k]].type.byteSize();
      std::vector<uint8_t> whole(static_cast<size_t>(bytes));
      MOERT_RETURN_IF_ERROR(
          executor_.readBuffer(layout_.states[k], whole.data(), whole.size()));
      const size_t rowBytes = static_cast<size_t>(bytes / B);
      for (int64_t b = 0; b < B; ++b) {
        auto &stored = encoded_[batch[b]];
        stored.resize(layout_.states.size());
        if (stored[k].empty())
          stored[k].assign(whole.begin() + b * rowBytes,
                           whole.begin() + (b + 1) * rowBytes);
      }
    }
    resident_ = batch;
  }
  if (resident_ == batch)
    return Status::success();
  for (size_t k = 0; k < layout_.states.size(); ++k) {
    std::vector<uint8_t> whole;
    for (int64_t source : batch) {
      const std::vector<uint8_t> &row = encoded_[source][k];
      whole.insert(whole.end(), row.begin(), row.end());
    }
    MOERT_RETURN_IF_ERROR(
        executor_.writeBuffer(layout_.states[k], whole.data(), whole.size()));
  }
  resident_ = batch;
  return Status::success();
}

Status
Decoder::step(int64_t position, const std::vector<int32_t> &tokens,
              const std::vector<std::shared_ptr<const CachedRows>> &parents,
              std::vector<float> &logits,
              std::vector<std::shared_ptr<const CachedRows>> &extended) {
  const exec::Program &program = executor_.program();
  const int64_t B = layout_.batch, T = layout_.tgtLen;
  const size_t layers = layout_.cacheK.size();
  for (size_t layer = 0; layer < layers; ++layer)
    for (bool values : {false, true}) {
      const int32_t id = values ? layout_.cacheV[layer] : layout_.cacheK[layer];
      const int64_t width = program.buffers[id].type.shape[2];
      std::vector<float> cache(static_cast<size_t>(B * T * width), 0.0f);
      if (position > 0)
        for (int64_t b = 0; b < B; ++b) {
          const std::vector<float> &earlier =
              values ? parents[b]->values[layer] : parents[b]->keys[layer];
          std::copy(earlier.begin(), earlier.end(),
                    cache.begin() + b * T * width);
        }
      MOERT_RETURN_IF_ERROR(executor_.writeBuffer(
          id, cache.data(), cache.size() * sizeof(float)));
    }
  std::vector<uint8_t> mask(static_cast<size_t>(B * T), 0);
  for (int64_t b = 0; b < B; ++b)
    std::fill(mask.begin() + b * T, mask.begin() + b * T + position + 1, 1);
  const int32_t at = static_cast<int32_t>(position);
  MOERT_RETURN_IF_ERROR(executor_.writeBuffer(layout_.tokens, tokens.data(),
                                              tokens.size() * sizeof(int32_t)));
  MOERT_RETURN_IF_ERROR(
      executor_.writeBuffer(layout_.position, &at, sizeof(at)));
  MOERT_RETURN_IF_ERROR(
      executor_.writeBuffer(layout_.selfMask, mask.data(), mask.size()));
  MOERT_RETURN_IF_ERROR(executor_.run(*layout_.step, context_));
  logits.resize(static_cast<size_t>(B * layout_.vocab));
  MOERT_RETURN_IF_ERROR(executor_.readBuffer(layout_.logits, logits.data(),
                                             logits.size() * sizeof(float)));
  std::vector<std::vector<float>> fresh(2 * layers);
  for (size_t layer = 0; layer < layers; ++layer)
    for (bool values : {false, true}) {
      const int32_t id =
          values ? layout_.valueRows[layer] : layout_.keyRows[layer];
      std::vector<float> &rows = fresh[2 * layer + values];
      rows.resize(static_cast<size_t>(program.buffers[id].type.numElements()));
      MOERT_RETURN_IF_ERROR(
          executor_.readBuffer(id, rows.data(), rows.size() * sizeof(float)));
    }
  extended.assign(static_cast<size_t>(B), nullptr);
  for (int64_t b = 0; b < B; ++b) {
    auto rows = std::make_shared<CachedRows>();
    rows->keys.resize(layers);
    rows->values.resize(layers);
    for (size_t layer = 0; layer < layers; ++layer)
      for (bool values : {false, true}) {
        const std::vector<float> &row = fresh[2 * layer + values];
        const size_t width = row.size() / static_cast<size_t>(B);
        std::vector<float> &out =
            values ? rows->values[layer] : rows->keys[layer];
        if (position > 0)
          out = values ? parents[b]->values[layer] : parents[b]->keys[layer];
        out.insert(out.end(), row.begin() + b * width,
                   row.begin() + (b + 1) * width);
      }
    extended[b] = std::move(rows);
  }
  return Status::success();
}

Expected<std::vector<std::vector<float>>>
Decoder::next(const std::vector<int64_t> &rows,
              const std::vector<std::vector<int32_t>> &prefixes) {
  const int64_t B = layout_.batch, T = layout_.tgtLen;
  if (rows.size() != prefixes.size())
    return invalidArgument("decoding got " + std::to_string(rows.size()) +
                           " sources for " + std::to_string(prefixes.size()) +
                           " prefixes");
  // Rows go through the step B at a time, grouped by prefix length (one
  // position per step).
  std::map<size_t, std::vector<size_t>> byLength;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i] < 0 || rows[i] >= static_cast<int64_t>(sources_.size()))
      return invalidArgument("decoding asked for source " +
                             std::to_string(rows[i]) + " of " +
                             std::to_string(sources_.size()));
    const size_t length = prefixes[i].size();
    if (length == 0 || static_cast<int64_t>(length) > T)
      return invalidArgument("a prefix of " + std::to_string(length) +
                             " tokens: the decoder takes 1 to " +
                             std::to_string(T));
    byLength[length].push_back(i);
  }
  std::vector<std::vector<float>> out(rows.size());
  decltype(live_) next;
  std::vector<float> logits;
  for (const auto &[length, members] : byLength)
    for (size_t first = 0; first < members.size();
         first += static_cast<size_t>(B)) {
      const size_t count =
          std::min<size_t>(static_cast<size_t>(B), members.size() - first);
      // Unused rows repeat the chunk's first row (a real sentence, so that
      // the gates see tokens like those of training).
      std::vector<size_t> index; // into rows / prefixes, per batch row
      std::vector<int64_t> batch;
      for (int64_t b = 0; b < B; ++b) {
        index.push_back(members[first + (static_cast<size_t>(b) < count
                                             ? static_cast<size_t>(b)
                                             : 0)]);
        batch.push_back(rows[index.back()]);
      }
      MOERT_RETURN_IF_ERROR(placeStates(batch));
      // The earlier positions' rows: cached for a prefix of the last call
      // one token shorter (greedy and beam search always extend those);
      // otherwise rebuilt by running the earlier positions again.
      std::vector<std::shared_ptr<const CachedRows>> parents(
          static_cast<size_t>(B));
      bool complete = true;
      for (int64_t b = 0; b < B && length > 1; ++b) {
        const std::vector<int32_t> &prefix = prefixes[index[b]];
        auto it = live_.find(
            {batch[b], std::vector<int32_t>(prefix.begin(), prefix.end() - 1)});
        if (it == live_.end())
          complete = false;
        else
          parents[b] = it->second;
      }
      if (!complete) {
        std::fill(parents.begin(), parents.end(), nullptr);
        for (size_t position = 0; position + 1 < length; ++position) {
          std::vector<int32_t> tokens;
          for (int64_t b = 0; b < B; ++b)
            tokens.push_back(prefixes[index[b]][position]);
          std::vector<std::shared_ptr<const CachedRows>> extended;
          MOERT_RETURN_IF_ERROR(step(static_cast<int64_t>(position), tokens,
                                     parents, logits, extended));
          parents = std::move(extended);
        }
      }
      std::vector<int32_t> tokens;
      for (int64_t b = 0; b < B; ++b)
        tokens.push_back(prefixes[index[b]].back());
      std::vector<std::shared_ptr<const CachedRows>> extended;
      MOERT_RETURN_IF_ERROR(step(static_cast<int64_t>(length - 1), tokens,
                                 parents, logits, extended));
      for (size_t b = 0; b < count; ++b) {
        out[index[b]] = eval::logSoftmax(
            logits.data() + static_cast<int64_t>(b) * layout_.vocab,
            layout_.vocab);
        next[{batch[b], prefixes[index[b]]}] = std::move(extended[b]);
      }
    }
  live_ = std::move(next);
  return out;
}

} // namespace

bool hasIncrementalDecoder(const exec::Program &program) {
  return program.findEntryPoint("encode") &&
         program.findEntryPoint("decode_step");
}

Expected<eval::NextTokenFn>
incrementalNextTokenFunction(exec::Executor &executor,
                             std::vector<std::vector<int32_t>> sources,
                             int32_t padId, uint64_t seed) {
  MOERT_ASSIGN_OR_RETURN(Layout layout, layoutOf(executor.program()));
  for (size_t s = 0; s < sources.size(); ++s)
    if (static_cast<int64_t>(sources[s].size()) > layout.srcLen)
      return invalidArgument("source " + std::to_string(s) + " has " +
                             std::to_string(sources[s].size()) +
                             " tokens, the encoder takes at most " +
                             std::to_string(layout.srcLen));
  auto decoder = std::make_shared<Decoder>(executor, std::move(layout),
                                           std::move(sources), padId, seed);
  return eval::NextTokenFn(
      [decoder](const std::vector<int64_t> &rows,
                const std::vector<std::vector<int32_t>> &prefixes) {
        return decoder->next(rows, prefixes);
      });
}

} // namespace runner
} // namespace moert
