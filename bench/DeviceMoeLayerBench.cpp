//===- DeviceMoeLayerBench.cpp - The MoE layer on a device, kernel by kernel =//
//
//   moe-bench-layer-device [--device cpu|cuda] [--tokens S] [--model M]
//       [--ffn H] [--experts E] [--top-k K] [--capacity-factor F]
//       [--repeats R] [--compute f32|bf16|f16] [--json FILE]
//
// Runs gate -> dispatch -> expert_ffn -> combine and their gradients (the
// instructions the compiler emits for one MoE layer) through the executor on
// the chosen device, and, in the same run, the baselines the targets are
// stated against: a dense GEMM of the expert FFN's first shape through the
// same backend (moe.linear) and a device-to-device copy of the dispatch
// buffer. Prints the median time of each instruction over the repeats, the
// layer's forward + backward time, the expert GEMMs' rate against the GEMM
// baseline, and dispatch + combine bytes against the copy's bandwidth.
// Default shape: one Mixtral-8x7B layer (16384 tokens, d_model 4096, FFN
// 14336, 8 experts, top-2, capacity factor 1.25).
//
//===----------------------------------------------------------------------===//
#include "moert/GateCapacity.h"
#include "moert/Half.h"
#include "moert/exec/Executor.h"
#include "moert/hal/Device.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

using namespace moert;
using exec::AttrValue;
using exec::DType;

namespace {

struct Options {
  std::string device = "cuda";
  int64_t tokens = 16384, model = 4096, ffn = 14336, experts = 8, topK = 2;
  double capacityFactor = 1.25;
  int repeats = 5;
  std::string compute = "f32"; // the GEMMs' input precision
  std::string json;
};

const char *kUsage =
    "usage: moe-bench-layer-device [--device cpu|cuda] [--tokens S] "
    "[--model M] [--ffn H] [--experts E] [--top-k K] [--capacity-factor F] "
    "[--repeats R] [--compute f32|bf16|f16] [--json FILE]\n";

bool parse(int argc, char **argv, Options &o) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%smoe-bench-layer-device: '%s' expects a value\n",
                   kUsage, arg.c_str());
      return false;
    }
    const char *value = argv[++i];
    if (arg == "--device") {
      o.device = value;
      if (!hal::parseBackend(o.device).ok()) {
        std::fprintf(stderr, "%s--device expects cpu or cuda, found '%s'\n",
                     kUsage, value);
        return false;
      }
      continue;
    }
    if (arg == "--compute") {
      ComputeType type;
      if (!parseComputeType(value, type)) {
        std::fprintf(stderr,
                     "%s--compute expects f32, bf16 or f16, found '%s'\n",
                     kUsage, value);
        return false;
      }
      o.compute = value;
      continue;
    }
    if (arg == "--json") {
      o.json = value;
      continue;
    }
    char *end = nullptr;
    double number = std::strtod(value, &end);
    if (*value == '\0' || *end != '\0' || !(number > 0)) {
      std::fprintf(stderr, "%smoe-bench-layer-device: %s expects a positive "
                   "number, found '%s'\n", kUsage, arg.c_str(), value);
      return false;
    }
    if (arg == "--tokens")
      o.tokens = static_cast<int64_t>(number);
    else if (arg == "--model")
      o.model = static_cast<int64_t>(number);
    else if (arg == "--ffn")
      o.ffn = static_cast<int64_t>(number);
    else if (arg == "--experts")
      o.experts = static_cast<int64_t>(number);
    else if (arg == "--top-k")
      o.topK = static_cast<int64_t>(number);
    else if (arg == "--capacity-factor")
      o.capacityFactor = number;
    else if (arg == "--repeats")
      o.repeats = static_cast<int>(number);
    else {
      std::fprintf(stderr, "%smoe-bench-layer-device: unknown option '%s'\n",
                   kUsage, arg.c_str());
      return false;
    }
  }
  return true;
}

int fail(const Status &status) {
  std::fprintf(stderr, "moe-bench-layer-device: error: %s\n",
               status.toString().c_str());
  return 1;
}

struct Builder {
  exec::Program program;
  int32_t buffer(DType dtype, std::vector<int64_t> shape) {
    exec::Buffer b;
    b.type = {dtype, std::move(shape)};
    b.kind = exec::BufferKind::Persistent;
    b.offset = program.persistentBytes;
    program.persistentBytes += (b.type.byteSize() + 255) / 256 * 256;
    program.buffers.push_back(b);
    return static_cast<int32_t>(program.buffers.size() - 1);
  }
  void add(const char *kernel, std::vector<int32_t> operands,
           std::vector<int32_t> results,
           std::map<std::string, AttrValue> attrs = {}) {
    exec::Instruction inst;
    inst.kernel = kernel;
    inst.operands = std::move(operands);
    inst.results = std::move(results);
    inst.attrs = std::move(attrs);
    inst.location = "bench";
    program.instructions.push_back(std::move(inst));
  }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

} // namespace

int main(int argc, char **argv) {
  Options o;
  if (!parse(argc, argv, o))
    return 2;
  const int64_t S = o.tokens, M = o.model, H = o.ffn, E = o.experts,
                K = o.topK;
  const int64_t C = expertCapacity(S, E, K, o.capacityFactor, 4, true);
  if (C < 1)
    return fail(invalidArgument("no capacity for these shapes"));

  Builder b;
  int32_t x = b.buffer(DType::F32, {S, M}), wg = b.buffer(DType::F32, {M, E});
  int32_t w1 = b.buffer(DType::F32, {E, M, H}), b1 = b.buffer(DType::F32, {E, H});
  int32_t w2 = b.buffer(DType::F32, {E, H, M}), b2 = b.buffer(DType::F32, {E, M});
  int32_t experts = b.buffer(DType::I32, {S, K}), slots = b.buffer(DType::I32, {S, K});
  int32_t weights = b.buffer(DType::F32, {S, K}), counts = b.buffer(DType::I32, {E});
  int32_t aux = b.buffer(DType::F32, {});
  int32_t buf = b.buffer(DType::F32, {E, C, M}), out = b.buffer(DType::F32, {E, C, M});
  int32_t y = b.buffer(DType::F32, {S, M}), dy = b.buffer(DType::F32, {S, M});
  int32_t dout = b.buffer(DType::F32, {E, C, M}), dweights = b.buffer(DType::F32, {S, K});
  int32_t dbuf = b.buffer(DType::F32, {E, C, M});
  int32_t dw1 = b.buffer(DType::F32, {E, M, H}), db1 = b.buffer(DType::F32, {E, H});
  int32_t dw2 = b.buffer(DType::F32, {E, H, M}), db2 = b.buffer(DType::F32, {E, M});
  int32_t dx = b.buffer(DType::F32, {S, M}), dxg = b.buffer(DType::F32, {S, M});
  int32_t dwg = b.buffer(DType::F32, {M, E}), daux = b.buffer(DType::F32, {});
  // Baselines: one dense GEMM of the experts' first shape, and a copy.
  int32_t gemmIn = b.buffer(DType::F32, {E * C, M}), gemmW = b.buffer(DType::F32, {M, H});
  int32_t gemmOut = b.buffer(DType::F32, {E * C, H});
  std::map<std::string, AttrValue> gate = {
      {"top_k", K}, {"capacity_factor", o.capacityFactor},
      {"eval_capacity_factor", o.capacityFactor}, {"min_capacity", int64_t{4}},
      {"drop_tokens", int64_t{1}}, {"use_rts", int64_t{1}},
      {"noise", std::string("none")}, {"jitter_eps", 0.01},
      {"second_sampling", int64_t{0}}, {"groups", int64_t{1}},
      {"capacity", C}, {"stream", int64_t{1}}};
  std::map<std::string, AttrValue> act = {{"activation", std::string("silu")}};
  std::map<std::string, AttrValue> baseline;
  if (o.compute != "f32") {
    act["compute_type"] = o.compute;
    baseline["compute_type"] = o.compute;
  }
  b.add("moe.gate", {x, wg}, {experts, slots, weights, counts, aux}, gate);
  b.add("moe.dispatch", {x, experts, slots}, {buf});
  b.add("moe.expert_ffn", {buf, w1, b1, w2, b2}, {out}, act);
  b.add("moe.combine", {out, experts, slots, weights}, {y});
  b.add("moe.combine_grad", {dy, out, experts, slots, weights}, {dout, dweights});
  b.add("moe.expert_ffn_grad", {dout, buf, w1, b1, w2, b2},
        {dbuf, dw1, db1, dw2, db2}, act);
  b.add("moe.dispatch_grad", {dbuf, experts, slots}, {dx});
  b.add("moe.gate_grad", {dweights, daux, x, wg, experts, slots}, {dxg, dwg},
        gate);
  const size_t layerEnd = b.program.instructions.size();
  b.add("moe.linear", {gemmIn, gemmW}, {gemmOut}, baseline);

  Expected<std::unique_ptr<hal::Device>> device =
      hal::createDevice(*hal::parseBackend(o.device), hal::DeviceOptions());
  if (!device.ok())
    return fail(device.status());
  Expected<std::unique_ptr<exec::Executor>> made =
      exec::Executor::create(b.program, **device);
  if (!made.ok())
    return fail(made.status());
  exec::Executor &e = **made;
  // Inputs: small normal values (the expert weights scaled like a trained
  // layer so activations stay finite).
  std::mt19937 rng(1);
  auto randomize = [&](int32_t id, float scale) -> Status {
    std::normal_distribution<float> normal(0.0f, scale);
    std::vector<float> v(static_cast<size_t>(
        e.program().buffers[id].type.numElements()));
    for (float &value : v)
      value = normal(rng);
    return e.writeBuffer(id, v.data(), v.size() * sizeof(float));
  };
  const float wScale = 1.0f / std::sqrt(static_cast<float>(M));
  for (auto [id, scale] :
       std::vector<std::pair<int32_t, float>>{{x, 1.0f}, {wg, wScale}, {w1, wScale},
                                              {w2, wScale}, {dy, 1.0f},
                                              {gemmIn, 1.0f}, {gemmW, wScale}})
    if (Status s = randomize(id, scale); !s.ok())
      return fail(s);

  exec::RunContext context;
  context.seed = 1;
  std::map<std::string, std::vector<double>> times;
  std::vector<double> layerTimes, copyTimes;
  const size_t copyBytes = static_cast<size_t>(E * C * M * 4);
  for (int r = 0; r < o.repeats + 1; ++r) { // the first is a warm-up
    context.step = static_cast<uint32_t>(r + 1);
    double layer = 0;
    for (size_t i = 0; i < e.program().instructions.size(); ++i) {
      auto start = std::chrono::steady_clock::now();
      if (Status s = e.runInstruction(i, context); !s.ok())
        return fail(s);
      if (Status s = (*device)->synchronize(); !s.ok())
        return fail(s);
      double seconds = std::chrono::duration<double>(
                           std::chrono::steady_clock::now() - start)
                           .count();
      if (r == 0)
        continue;
      times[e.program().instructions[i].kernel + (i >= layerEnd ? " (baseline)" : "")]
          .push_back(seconds);
      if (i < layerEnd)
        layer += seconds;
    }
    auto start = std::chrono::steady_clock::now();
    if (Status s = (*device)->copyOnDevice(e.deviceAddress(dbuf),
                                           e.deviceAddress(buf), copyBytes);
        !s.ok())
      return fail(s);
    if (Status s = (*device)->synchronize(); !s.ok())
      return fail(s);
    if (r > 0) {
      layerTimes.push_back(layer);
      copyTimes.push_back(std::chrono::duration<double>(
                              std::chrono::steady_clock::now() - start)
                              .count());
    }
  }
  double layer = median(layerTimes);
  double expertFwd = median(times["moe.expert_ffn"]);
  double expertBwd = median(times["moe.expert_ffn_grad"]);
  double gemm = median(times["moe.linear (baseline)"]);
  double copy = median(copyTimes);
  double moveTime = median(times["moe.dispatch"]) + median(times["moe.combine"]);
  // Expert FLOPs: forward 2 GEMMs, backward 4 (dX and dW of each).
  double expertFlops = 2.0 * E * C * M * H * 2;
  double gemmFlops = 2.0 * E * C * M * H;
  double gemmRate = gemmFlops / gemm;
  double expertRate = 3 * expertFlops / (expertFwd + expertBwd);
  // Dispatch reads and writes the kept token copies, combine reads them and
  // writes the tokens: 2 * E*C*M*4 + 2 * S*M*4 bytes at most.
  double moveBytes = 2.0 * E * C * M * 4 + 2.0 * S * M * 4;
  double copyRate = 2.0 * copyBytes / copy; // read + write
  std::printf("device: %s\n", (*device)->description().c_str());
  std::printf("shape: S=%lld M=%lld H=%lld E=%lld top-%lld C=%lld "
              "(GEMMs in %s)\n",
              (long long)S, (long long)M, (long long)H, (long long)E,
              (long long)K, (long long)C, o.compute.c_str());
  for (auto &[name, v] : times)
    std::printf("  %-28s %10.3f ms\n", name.c_str(), median(v) * 1e3);
  std::printf("layer forward+backward: %.3f ms\n", layer * 1e3);
  std::printf("expert GEMMs: %.1f TFLOP/s, %.1f%% of the same backend's "
              "dense GEMM (%.1f TFLOP/s)\n",
              expertRate / 1e12, 100 * expertRate / gemmRate, gemmRate / 1e12);
  std::printf("dispatch+combine: %.1f GB/s, %.1f%% of the device copy "
              "(%.1f GB/s)\n",
              moveBytes / moveTime / 1e9,
              100 * (moveBytes / moveTime) / copyRate, copyRate / 1e9);
  if (!o.json.empty()) {
    std::ofstream json(o.json);
    json << "{\"device\": \"" << (*device)->description()
         << "\", \"compute\": \"" << o.compute << "\", \"layer_ms\": "
         << layer * 1e3 << ", \"expert_tflops\": " << expertRate / 1e12
         << ", \"gemm_tflops\": " << gemmRate / 1e12
         << ", \"dispatch_combine_gbs\": " << moveBytes / moveTime / 1e9
         << ", \"copy_gbs\": " << copyRate / 1e9 << ", \"kernels_ms\": {";
    bool first = true;
    for (auto &[name, v] : times) {
      json << (first ? "" : ", ") << "\"" << name << "\": " << median(v) * 1e3;
      first = false;
    }
    json << "}}\n";
    if (!json)
      return fail(dataLoss("writing '" + o.json + "' failed"));
  }
  return 0;
}
