//===- moe-prune.cpp - Expert pruning for inference -----------------------===//
//
//   moe-prune --checkpoint CK.safetensors --metrics METRICS.jsonl --keep K
//             --config MODEL.json --out PRUNED.safetensors
//             --out-config PRUNED.json [--last-steps N]
//
// The paper's expert pruning: from the per-layer expert utilization a run
// recorded (moe-train --metrics: expert_counts of every MoE layer and
// step, summed over the last N steps), keep the K most used experts of
// every MoE layer and write
//   - a checkpoint whose gate weights keep those experts' columns and whose
//     expert FFN tensors (and their AdamW moments) keep those experts, in
//     their original order; every other tensor unchanged;
//   - the model configuration with num_experts = K (top_k capped at K),
//     which moe-model-gen / moe-opt compile into the pruned model that
//     loads the pruned checkpoint.
// It prints, per layer, the kept experts and the share of the routed tokens
// they received. Errors (missing files, a checkpoint without MoE layers,
// metrics of another model, K out of range) name what was expected and
// found; nothing is written on error.
//
//===----------------------------------------------------------------------===//
#include "moert/checkpoint/Json.h"
#include "moert/checkpoint/Safetensors.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

using namespace moert;
using checkpoint::JsonValue;

namespace {

const char *kUsage =
    "usage: moe-prune --checkpoint CK --metrics METRICS.jsonl --keep K "
    "--config MODEL.json\n"
    "                 --out PRUNED.safetensors --out-config PRUNED.json "
    "[--last-steps N]\n";

int fail(const std::string &message) {
  std::fprintf(stderr, "moe-prune: error: %s\n", message.c_str());
  return 1;
}

bool readText(const std::string &path, std::string &text) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return false;
  std::ostringstream buffer;
  buffer << in.rdbuf();
  text = buffer.str();
  return true;
}

void writeJson(const JsonValue &v, std::ostringstream &out, int indent) {
  const std::string pad(static_cast<size_t>(indent) * 2, ' ');
  switch (v.kind) {
  case JsonValue::Kind::Null:
    out << "null";
    break;
  case JsonValue::Kind::Bool:
    out << (v.boolean ? "true" : "false");
    break;
  case JsonValue::Kind::Number:
    out << v.text;
    break;
  case JsonValue::Kind::String:
    out << checkpoint::quoteJson(v.text);
    break;
  case JsonValue::Kind::Array:
    out << "[";
    for (size_t i = 0; i < v.items.size(); ++i) {
      out << (i ? ", " : "");
      writeJson(v.items[i], out, indent + 1);
    }
    out << "]";
    break;
  case JsonValue::Kind::Object:
    out << "{\n";
    for (size_t i = 0; i < v.members.size(); ++i) {
      out << pad << "  " << checkpoint::quoteJson(v.members[i].first) << ": ";
      writeJson(v.members[i].second, out, indent + 1);
      out << (i + 1 < v.members.size() ? ",\n" : "\n");
    }
    out << pad << "}";
    break;
  }
}

/// "encoder.layers.1.ffn" of "encoder.layers.1.ffn.gate.weight".
struct MoeLayer {
  std::string prefix;
  int stack = 0; // 0 encoder, 1 decoder (the plan's gate order)
  int index = 0;
};

} // namespace

int main(int argc, char **argv) {
  std::string checkpointPath, metricsPath, configPath, outPath, outConfigPath;
  int64_t keep = 0, lastSteps = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "moe-prune: %s expects a value\n%s", arg.c_str(),
                   kUsage);
      return 2;
    }
    const std::string value = argv[++i];
    auto count = [&](int64_t &out) {
      char *end = nullptr;
      out = std::strtoll(value.c_str(), &end, 10);
      return end && *end == '\0' && out > 0;
    };
    bool ok = true;
    if (arg == "--checkpoint")
      checkpointPath = value;
    else if (arg == "--metrics")
      metricsPath = value;
    else if (arg == "--config")
      configPath = value;
    else if (arg == "--out")
      outPath = value;
    else if (arg == "--out-config")
      outConfigPath = value;
    else if (arg == "--keep")
      ok = count(keep);
    else if (arg == "--last-steps")
      ok = count(lastSteps);
    else
      ok = false;
    if (!ok) {
      std::fprintf(stderr, "moe-prune: bad argument '%s %s'\n%s", arg.c_str(),
                   value.c_str(), kUsage);
      return 2;
    }
  }
  if (checkpointPath.empty() || metricsPath.empty() || configPath.empty() ||
      outPath.empty() || outConfigPath.empty() || keep == 0) {
    std::fprintf(stderr, "moe-prune: --checkpoint, --metrics, --keep, "
                         "--config, --out and --out-config are required\n%s",
                 kUsage);
    return 2;
  }

  Expected<checkpoint::Checkpoint> ck = checkpoint::Checkpoint::open(checkpointPath);
  if (!ck.ok())
    return fail(ck.status().message());
  // The MoE layers, in the plan's gate order.
  std::vector<MoeLayer> layers;
  for (const std::string &name : ck->tensorNames()) {
    const std::string suffix = ".gate.weight";
    if (name.size() <= suffix.size() ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    MoeLayer layer;
    layer.prefix = name.substr(0, name.size() - suffix.size());
    layer.stack = name.rfind("decoder.", 0) == 0 ? 1 : 0;
    const size_t at = name.find(".layers.");
    layer.index = at == std::string::npos ? 0 : std::atoi(name.c_str() + at + 8);
    layers.push_back(layer);
  }
  if (layers.empty())
    return fail("'" + checkpointPath + "' has no MoE layer (no "
                "'*.gate.weight' tensor)");
  std::sort(layers.begin(), layers.end(), [](const MoeLayer &a, const MoeLayer &b) {
    return a.stack != b.stack ? a.stack < b.stack : a.index < b.index;
  });
  Expected<checkpoint::TensorView> firstGate =
      ck->tensor(layers[0].prefix + ".gate.weight");
  if (!firstGate.ok() || firstGate->shape.size() != 2)
    return fail("the gate weight of " + layers[0].prefix + " is not 2-D");
  const int64_t experts = firstGate->shape[1];
  if (keep >= experts)
    return fail("--keep " + std::to_string(keep) + " must be below the " +
                std::to_string(experts) + " experts of the model");

  // Utilization: expert_counts of the last N steps.
  std::string metricsText;
  if (!readText(metricsPath, metricsText))
    return fail("cannot read '" + metricsPath + "'");
  std::vector<std::vector<std::vector<int64_t>>> steps;
  std::istringstream lines(metricsText);
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    if (line.empty())
      continue;
    Expected<JsonValue> record = checkpoint::parseJson(line);
    if (!record.ok())
      return fail(metricsPath + ":" + std::to_string(number) + ": " +
                  record.status().message());
    const JsonValue *counts = record->find("expert_counts");
    if (!counts || !counts->isArray())
      return fail(metricsPath + ":" + std::to_string(number) +
                  ": expected an 'expert_counts' array (moe-train --metrics)");
    std::vector<std::vector<int64_t>> perLayer;
    for (const JsonValue &layerCounts : counts->items) {
      std::vector<int64_t> row;
      for (const JsonValue &c : layerCounts.items)
        row.push_back(std::atoll(c.text.c_str()));
      perLayer.push_back(row);
    }
    if (perLayer.size() != layers.size() ||
        std::any_of(perLayer.begin(), perLayer.end(),
                    [&](const std::vector<int64_t> &r) {
                      return static_cast<int64_t>(r.size()) != experts;
                    }))
      return fail(metricsPath + ":" + std::to_string(number) + ": expected " +
                  std::to_string(layers.size()) + " MoE layers of " +
                  std::to_string(experts) +
                  " experts (the checkpoint's), found another shape: metrics "
                  "of another model?");
    steps.push_back(std::move(perLayer));
  }
  if (steps.empty())
    return fail("'" + metricsPath + "' has no step records");
  const size_t from = lastSteps > 0 && static_cast<size_t>(lastSteps) < steps.size()
                          ? steps.size() - static_cast<size_t>(lastSteps)
                          : 0;
  std::vector<std::vector<int64_t>> kept(layers.size());
  for (size_t l = 0; l < layers.size(); ++l) {
    std::vector<int64_t> total(static_cast<size_t>(experts), 0);
    for (size_t s = from; s < steps.size(); ++s)
      for (int64_t e = 0; e < experts; ++e)
        total[e] += steps[s][l][e];
    std::vector<int64_t> order(static_cast<size_t>(experts));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return total[a] > total[b]; });
    kept[l].assign(order.begin(), order.begin() + keep);
    std::sort(kept[l].begin(), kept[l].end());
    const int64_t all = std::accumulate(total.begin(), total.end(), int64_t{0});
    int64_t share = 0;
    std::string list;
    for (int64_t e : kept[l]) {
      share += total[e];
      list += (list.empty() ? "" : ",") + std::to_string(e);
    }
    std::printf("moe-prune: %s keeps experts %s (%.1f %% of %lld routed "
                "tokens)\n",
                layers[l].prefix.c_str(), list.c_str(),
                all ? 100.0 * share / all : 0.0, (long long)all);
  }

  // The pruned checkpoint.
  checkpoint::CheckpointWriter writer;
  std::vector<std::vector<uint8_t>> storage;
  storage.reserve(ck->tensorNames().size());
  // The pruned model has its own name (the configuration's name with
  // "-pruned<K>", below): a run refuses a checkpoint of another model.
  for (const auto &[key, value] : ck->metadata())
    if (Status s = writer.setMetadata(
            key, key == "moert.model" ? value + "-pruned" + std::to_string(keep)
                                      : value);
        !s.ok())
      return fail(s.message());
  for (const std::string &name : ck->tensorNames()) {
    Expected<checkpoint::TensorView> view = ck->tensor(name);
    if (!view.ok())
      return fail(view.status().message());
    const MoeLayer *layer = nullptr;
    size_t layerIndex = 0;
    for (size_t l = 0; l < layers.size(); ++l)
      if (name.rfind(layers[l].prefix + ".gate.weight", 0) == 0 ||
          name.rfind(layers[l].prefix + ".experts.", 0) == 0) {
        layer = &layers[l];
        layerIndex = l;
      }
    std::vector<int64_t> shape = view->shape;
    std::vector<uint8_t> bytes;
    const size_t element = checkpoint::dtypeSize(view->dtype);
    if (!layer) {
      bytes.assign(view->data, view->data + view->bytes);
    } else if (name.rfind(layer->prefix + ".gate.weight", 0) == 0) {
      // [M, E]: keep columns.
      if (shape.size() != 2 || shape[1] != experts)
        return fail(name + " is not [M, " + std::to_string(experts) + "]");
      const int64_t rows = shape[0];
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t e : kept[layerIndex]) {
          const uint8_t *at = view->data + (r * experts + e) * element;
          bytes.insert(bytes.end(), at, at + element);
        }
      shape[1] = keep;
    } else {
      // [E, ...]: keep rows (experts).
      if (shape.empty() || shape[0] != experts)
        return fail(name + " does not start with the " +
                    std::to_string(experts) + " experts");
      const size_t row = view->bytes / static_cast<size_t>(experts);
      for (int64_t e : kept[layerIndex])
        bytes.insert(bytes.end(), view->data + e * row,
                     view->data + (e + 1) * row);
      shape[0] = keep;
    }
    storage.push_back(std::move(bytes));
    if (Status s = writer.addTensor(name, view->dtype, shape,
                                    storage.back().data(),
                                    storage.back().size());
        !s.ok())
      return fail(s.message());
  }

  // The pruned configuration.
  std::string configText;
  if (!readText(configPath, configText))
    return fail("cannot read '" + configPath + "'");
  Expected<JsonValue> config = checkpoint::parseJson(configText);
  if (!config.ok())
    return fail(configPath + ": " + config.status().message());
  JsonValue pruned = *config;
  JsonValue *moe = nullptr;
  for (auto &[key, value] : pruned.members)
    if (key == "moe")
      moe = &value;
  if (!moe || !moe->isObject())
    return fail(configPath + ": expected a \"moe\" object");
  bool sawExperts = false;
  for (auto &[key, value] : moe->members) {
    if (key == "num_experts") {
      if (std::atoll(value.text.c_str()) != experts)
        return fail(configPath + ": num_experts is " + value.text +
                    ", the checkpoint has " + std::to_string(experts));
      value.text = std::to_string(keep);
      sawExperts = true;
    } else if (key == "top_k" && std::atoll(value.text.c_str()) > keep) {
      value.text = std::to_string(keep);
    }
  }
  if (!sawExperts)
    return fail(configPath + ": expected moe.num_experts");
  for (auto &[key, value] : pruned.members)
    if (key == "name")
      value.text += "-pruned" + std::to_string(keep);
  std::ostringstream out;
  writeJson(pruned, out, 0);
  out << "\n";
  // Both outputs or neither: the checkpoint (atomic) first, then the
  // configuration.
  if (Status s = writer.write(outPath); !s.ok())
    return fail(s.message());
  std::ofstream configOut(outConfigPath, std::ios::binary | std::ios::trunc);
  configOut << out.str();
  configOut.close();
  if (!configOut) {
    std::remove(outPath.c_str());
    return fail("cannot write '" + outConfigPath + "'");
  }
  std::printf("moe-prune: wrote %s and %s (%lld of %lld experts per MoE "
              "layer)\n",
              outPath.c_str(), outConfigPath.c_str(), (long long)keep,
              (long long)experts);
  return 0;
}
