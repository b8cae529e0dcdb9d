//===- IncrementalDecode.cpp - Decoding with the plan's @decode_step ------===//
#include "moert/runner/IncrementalDecode.h"

#include <algorithm>
#include <map>
#include <memory>
#include <string>

namespace moert {
namespace runner {

namespace {

const exec::EntryPoint *findEntry(const exec::Program &program,
                                  const std::string &name) {
  return program.findEntryPoint(name);
}

/// The buffer of `entry`'s inputs or outputs called `name`, or -1.
int32_t bufferNamed(const exec::Program &program,
                    const std::vector<int32_t> &ids, const std::string &name) {
  for (int32_t id : ids)
    if (program.buffers[id].name == name)
      return id;
  return -1;
}

/// The buffers decoding reads and writes, checked against each other.
struct Layout {
  const exec::EntryPoint *encode = nullptr, *step = nullptr;
  int32_t src = -1, tokens = -1, position = -1, selfMask = -1, logits = -1;
  std::vector<int32_t> states;                   // persistent, [B, ...]
  std::vector<int32_t> cacheK, cacheV;           // [B, T, D] per layer
  std::vector<int32_t> keyRows, valueRows;       // [B, 1, D] per layer
  int64_t batch = 0, srcLen = 0, tgtLen = 0, vocab = 0;
};

Expected<Layout> layoutOf(const exec::Program &program) {
  Layout l;
  l.encode = findEntry(program, "encode");
  l.step = findEntry(program, "decode_step");
  if (!l.encode || !l.step)
    return failedPrecondition("the plan has no 'encode' and 'decode_step' "
                              "programs (compile with "
                              "--moe-training-pipeline=\"decoder=true\")");
  auto need = [&](const std::vector<int32_t> &ids, const std::string &name,
                  int32_t &id) -> Status {
    id = bufferNamed(program, ids, name);
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
    int32_t k = bufferNamed(program, l.step->inputs, "decode_step:cache.k." + n);
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
    for (auto [cache, rows] : {std::make_pair(l.cacheK[layer], l.keyRows[layer]),
                               std::make_pair(l.cacheV[layer],
                                              l.valueRows[layer])}) {
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
      return failedPrecondition("encoder state " + program.buffers[state].name +
                                " is " + type(state).str() +
                                ", expected the batch (" +
                                std::to_string(l.batch) +
                                ") as its first dimension");
  return l;
}

/// The cached key and value rows of one prefix: per layer, its length
/// times the width.
struct CachedRows {
  std::vector<std::vector<float>> keys, values;
};

struct DecoderState {
  // Per source: per encoder state, the bytes of its row.
  std::map<int64_t, std::vector<std::vector<uint8_t>>> encoded;
  // The sources whose states the state buffers hold, by row.
  std::vector<int64_t> resident;
  // The prefixes of the last call (source, tokens) and their rows.
  std::map<std::pair<int64_t, std::vector<int32_t>>,
           std::shared_ptr<const CachedRows>>
      live;
};

} // namespace

bool hasIncrementalDecoder(const exec::Program &program) {
  return program.findEntryPoint("encode") &&
         program.findEntryPoint("decode_step");
}

Expected<eval::NextTokenFn>
incrementalNextTokenFunction(exec::Executor &executor,
                             std::vector<std::vector<int32_t>> sources,
                             int32_t padId, uint64_t seed) {
  const exec::Program &program = executor.program();
  MOERT_ASSIGN_OR_RETURN(Layout layout, layoutOf(program));
  for (size_t s = 0; s < sources.size(); ++s)
    if (static_cast<int64_t>(sources[s].size()) > layout.srcLen)
      return invalidArgument("source " + std::to_string(s) + " has " +
                             std::to_string(sources[s].size()) +
                             " tokens, the encoder takes at most " +
                             std::to_string(layout.srcLen));
  auto state = std::make_shared<DecoderState>();
  return eval::NextTokenFn(
      [&executor, layout, sources = std::move(sources), padId, seed,
       state](const std::vector<int64_t> &rows,
              const std::vector<std::vector<int32_t>> &prefixes)
          -> Expected<std::vector<std::vector<float>>> {
        const exec::Program &program = executor.program();
        const int64_t B = layout.batch, T = layout.tgtLen;
        if (rows.size() != prefixes.size())
          return invalidArgument("decoding got " + std::to_string(rows.size()) +
                                 " sources for " +
                                 std::to_string(prefixes.size()) + " prefixes");
        const size_t length = prefixes.empty() ? 0 : prefixes.front().size();
        for (size_t i = 0; i < rows.size(); ++i) {
          if (rows[i] < 0 || rows[i] >= static_cast<int64_t>(sources.size()))
            return invalidArgument("decoding asked for source " +
                                   std::to_string(rows[i]) + " of " +
                                   std::to_string(sources.size()));
          if (prefixes[i].size() != length || length == 0)
            return invalidArgument(
                "incremental decoding extends prefixes of one length per "
                "call; found lengths " +
                std::to_string(prefixes[i].size()) + " and " +
                std::to_string(length));
        }
        if (static_cast<int64_t>(length) > T)
          return invalidArgument("a prefix of " + std::to_string(length) +
                                 " tokens does not fit the decoder's " +
                                 std::to_string(T) + " positions");
        exec::RunContext context;
        context.seed = seed;
        context.step = 1;
        context.training = false;
        std::vector<std::vector<float>> out;
        out.reserve(rows.size());
        decltype(state->live) next;
        std::vector<float> logits(static_cast<size_t>(B * layout.vocab));
        for (size_t first = 0; first < rows.size();
             first += static_cast<size_t>(B)) {
          const size_t count =
              std::min<size_t>(static_cast<size_t>(B), rows.size() - first);
          // Unused rows repeat the chunk's first row (a real sentence, so
          // that the gates see tokens like those of training).
          auto rowOf = [&](int64_t b) {
            return first + (static_cast<size_t>(b) < count
                                ? static_cast<size_t>(b)
                                : size_t{0});
          };
          std::vector<int64_t> batchSources;
          for (int64_t b = 0; b < B; ++b)
            batchSources.push_back(rows[rowOf(b)]);

          // The encoder, for the sources seen first here.
          bool missing = false;
          for (int64_t source : batchSources)
            missing = missing || !state->encoded.count(source);
          if (missing) {
            std::vector<int32_t> src(static_cast<size_t>(B * layout.srcLen),
                                     padId);
            for (int64_t b = 0; b < B; ++b) {
              const std::vector<int32_t> &tokens = sources[batchSources[b]];
              std::copy(tokens.begin(), tokens.end(),
                        src.begin() + b * layout.srcLen);
            }
            MOERT_RETURN_IF_ERROR(executor.writeBuffer(
                layout.src, src.data(), src.size() * sizeof(int32_t)));
            MOERT_RETURN_IF_ERROR(executor.run(*layout.encode, context));
            for (size_t k = 0; k < layout.states.size(); ++k) {
              const int64_t bytes =
                  program.buffers[layout.states[k]].type.byteSize();
              std::vector<uint8_t> whole(static_cast<size_t>(bytes));
              MOERT_RETURN_IF_ERROR(executor.readBuffer(
                  layout.states[k], whole.data(), whole.size()));
              const size_t rowBytes = static_cast<size_t>(bytes / B);
              for (int64_t b = 0; b < B; ++b) {
                auto &stored = state->encoded[batchSources[b]];
                stored.resize(layout.states.size());
                if (stored[k].empty())
                  stored[k].assign(whole.begin() + b * rowBytes,
                                   whole.begin() + (b + 1) * rowBytes);
              }
            }
            state->resident = batchSources;
          }
          if (state->resident != batchSources) {
            for (size_t k = 0; k < layout.states.size(); ++k) {
              const int64_t bytes =
                  program.buffers[layout.states[k]].type.byteSize();
              std::vector<uint8_t> whole;
              whole.reserve(static_cast<size_t>(bytes));
              for (int64_t source : batchSources) {
                const std::vector<uint8_t> &row = state->encoded[source][k];
                whole.insert(whole.end(), row.begin(), row.end());
              }
              MOERT_RETURN_IF_ERROR(executor.writeBuffer(
                  layout.states[k], whole.data(), whole.size()));
            }
            state->resident = batchSources;
          }

          // The caches of the earlier positions, from each prefix's parent.
          const size_t layers = layout.cacheK.size();
          std::vector<std::shared_ptr<const CachedRows>> parents(
              static_cast<size_t>(B));
          if (length > 1)
            for (int64_t b = 0; b < B; ++b) {
              const std::vector<int32_t> &prefix = prefixes[rowOf(b)];
              auto it = state->live.find(
                  {batchSources[b],
                   std::vector<int32_t>(prefix.begin(), prefix.end() - 1)});
              if (it == state->live.end())
                return failedPrecondition(
                    "incremental decoding has no cached positions for a "
                    "prefix of " +
                    std::to_string(length) + " tokens of source " +
                    std::to_string(batchSources[b]) +
                    ": calls must extend the prefixes of the call before "
                    "by one token");
              parents[b] = it->second;
            }
          for (size_t layer = 0; layer < layers; ++layer)
            for (bool values : {false, true}) {
              const int32_t id =
                  values ? layout.cacheV[layer] : layout.cacheK[layer];
              const int64_t width = program.buffers[id].type.shape[2];
              std::vector<float> cache(static_cast<size_t>(B * T * width),
                                       0.0f);
              if (length > 1)
                for (int64_t b = 0; b < B; ++b) {
                  const std::vector<float> &rowsOf =
                      values ? parents[b]->values[layer]
                             : parents[b]->keys[layer];
                  std::copy(rowsOf.begin(), rowsOf.end(),
                            cache.begin() + b * T * width);
                }
              MOERT_RETURN_IF_ERROR(executor.writeBuffer(
                  id, cache.data(), cache.size() * sizeof(float)));
            }
          std::vector<int32_t> tokens(static_cast<size_t>(B));
          std::vector<uint8_t> mask(static_cast<size_t>(B * T), 0);
          for (int64_t b = 0; b < B; ++b) {
            tokens[b] = prefixes[rowOf(b)].back();
            std::fill(mask.begin() + b * T,
                      mask.begin() + b * T + static_cast<int64_t>(length), 1);
          }
          const int32_t position = static_cast<int32_t>(length - 1);
          MOERT_RETURN_IF_ERROR(executor.writeBuffer(
              layout.tokens, tokens.data(), tokens.size() * sizeof(int32_t)));
          MOERT_RETURN_IF_ERROR(executor.writeBuffer(
              layout.position, &position, sizeof(position)));
          MOERT_RETURN_IF_ERROR(
              executor.writeBuffer(layout.selfMask, mask.data(), mask.size()));
          MOERT_RETURN_IF_ERROR(executor.run(*layout.step, context));

          MOERT_RETURN_IF_ERROR(executor.readBuffer(
              layout.logits, logits.data(), logits.size() * sizeof(float)));
          std::vector<std::vector<float>> newKeys(layers), newValues(layers);
          for (size_t layer = 0; layer < layers; ++layer)
            for (bool values : {false, true}) {
              const int32_t id =
                  values ? layout.valueRows[layer] : layout.keyRows[layer];
              std::vector<float> &rowsOut =
                  values ? newValues[layer] : newKeys[layer];
              rowsOut.resize(
                  static_cast<size_t>(program.buffers[id].type.numElements()));
              MOERT_RETURN_IF_ERROR(executor.readBuffer(
                  id, rowsOut.data(), rowsOut.size() * sizeof(float)));
            }
          for (size_t b = 0; b < count; ++b) {
            out.push_back(eval::logSoftmax(
                logits.data() + static_cast<int64_t>(b) * layout.vocab,
                layout.vocab));
            auto cached = std::make_shared<CachedRows>();
            cached->keys.resize(layers);
            cached->values.resize(layers);
            for (size_t layer = 0; layer < layers; ++layer)
              for (bool values : {false, true}) {
                const std::vector<float> &fresh =
                    values ? newValues[layer] : newKeys[layer];
                const size_t width = fresh.size() / static_cast<size_t>(B);
                std::vector<float> &rowsOut =
                    values ? cached->values[layer] : cached->keys[layer];
                if (parents[b])
                  rowsOut = values ? parents[b]->values[layer]
                                   : parents[b]->keys[layer];
                rowsOut.insert(rowsOut.end(), fresh.begin() + b * width,
                               fresh.begin() + (b + 1) * width);
              }
            next[{rows[first + b], prefixes[first + b]}] = std::move(cached);
          }
        }
        state->live = std::move(next);
        return out;
      });
}

} // namespace runner
} // namespace moert
