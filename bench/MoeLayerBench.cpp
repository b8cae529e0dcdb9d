//===- MoeLayerBench.cpp - The fused MoE layer, forward + backward --------===//
//
//   moe-bench-layer --tokens S --model M --hidden H --experts E
//                   [--top-k 2] [--capacity-factor 1.0] [--repeats N]
//
// Times one MoE layer, forward and backward, made of the runtime's kernels
// called exactly as the executor calls them for a compiled training step:
//   forward:  gate -> dispatch -> expert FFN -> combine
//   backward: combine grad -> expert FFN grad -> dispatch grad -> gate grad
//             (which recomputes the gate's softmax, as the plan does), and
//             the two input gradients added.
// Top-k gating with capacity and Random Token Selection (DeepSpeed's
// defaults), exact GELU experts. Prints one JSON object: the median seconds
// of a whole forward + backward over --repeats runs after two warm-up runs,
// the median of each phase, the capacity and the expert counts of the last
// run. bench/moe_layer_bench.py times the PyTorch formulations of the same
// layer and prints the ratios.
//
//===----------------------------------------------------------------------===//
#include "moert/kernels/DispatchCombine.h"
#include "moert/kernels/Gate.h"
#include "moert/train/ExpertFfn.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace moert;

namespace {

struct Options {
  int64_t tokens = 0, modelDim = 0, hiddenDim = 0, experts = 0;
  int64_t topK = 2;
  double capacityFactor = 1.0;
  int repeats = 10;
};

bool parseOptions(int argc, char **argv, Options &o) {
  const char *usage =
      "usage: moe-bench-layer --tokens S --model M --hidden H --experts E "
      "[--top-k K] [--capacity-factor F] [--repeats N]\n";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%smoe-bench-layer: '%s' expects a value\n", usage,
                   argv[i]);
      return false;
    }
    const char *value = argv[++i];
    char *end = nullptr;
    double number = std::strtod(value, &end);
    if (*value == '\0' || *end != '\0' || !(number > 0)) {
      std::fprintf(stderr,
                   "moe-bench-layer: %s expects a positive number, found "
                   "'%s'\n",
                   arg.c_str(), value);
      return false;
    }
    if (arg == "--tokens")
      o.tokens = static_cast<int64_t>(number);
    else if (arg == "--model")
      o.modelDim = static_cast<int64_t>(number);
    else if (arg == "--hidden")
      o.hiddenDim = static_cast<int64_t>(number);
    else if (arg == "--experts")
      o.experts = static_cast<int64_t>(number);
    else if (arg == "--top-k")
      o.topK = static_cast<int64_t>(number);
    else if (arg == "--capacity-factor")
      o.capacityFactor = number;
    else if (arg == "--repeats")
      o.repeats = static_cast<int>(number);
    else {
      std::fprintf(stderr, "%smoe-bench-layer: unknown option '%s'\n", usage,
                   arg.c_str());
      return false;
    }
  }
  if (!o.tokens || !o.modelDim || !o.hiddenDim || !o.experts) {
    std::fprintf(stderr,
                 "%smoe-bench-layer: --tokens, --model, --hidden and "
                 "--experts are required\n",
                 usage);
    return false;
  }
  if (o.topK > o.experts) {
    std::fprintf(stderr,
                 "moe-bench-layer: expected --top-k <= --experts, found %lld "
                 "> %lld\n",
                 static_cast<long long>(o.topK),
                 static_cast<long long>(o.experts));
    return false;
  }
  return true;
}

std::vector<float> randomVector(size_t n, std::mt19937 &rng, float scale) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float &x : v)
    x = dist(rng);
  return v;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int fail(const Status &status) {
  std::fprintf(stderr, "moe-bench-layer: error: %s\n",
               status.toString().c_str());
  return 1;
}

/// Phases of one forward + backward.
enum Phase {
  Gate,
  Dispatch,
  Experts,
  Combine,
  CombineGrad,
  ExpertsGrad,
  DispatchGrad,
  GateGrad,
  NumPhases
};
const char *kPhaseNames[NumPhases] = {
    "gate",         "dispatch",     "experts",       "combine",
    "combine_grad", "experts_grad", "dispatch_grad", "gate_grad"};

} // namespace

int main(int argc, char **argv) {
  Options o;
  if (!parseOptions(argc, argv, o))
    return 2;
  const int64_t S = o.tokens, M = o.modelDim, H = o.hiddenDim, E = o.experts,
                k = o.topK;

  GateConfig config;
  config.topK = k;
  config.capacityFactor = o.capacityFactor;
  config.useRts = true;
  config.training = true;
  GateShape gateShape{S, M, E};
  Expected<int64_t> capacity = gateConfiguredCapacity(config, gateShape);
  if (!capacity.ok())
    return fail(capacity.status());
  const int64_t C = *capacity;
  DispatchShape dispatchShape{S, M, E, k, C};
  train::ExpertFfnShape ffnShape{E, C, M, H, dense::ActivationKind::Gelu};

  std::mt19937 rng(1);
  // Weights at the scale of the model's initializers (std 0.02 on
  // d_model-sized fan-ins would make all gates equal; 1/sqrt(fan-in) keeps
  // routing non-trivial).
  auto x = randomVector(S * M, rng, 1.0f);
  auto gateWeight = randomVector(M * E, rng, 1.0f / std::sqrt(float(M)));
  auto w1 = randomVector(E * M * H, rng, 1.0f / std::sqrt(float(M)));
  auto b1 = randomVector(E * H, rng, 0.02f);
  auto w2 = randomVector(E * H * M, rng, 1.0f / std::sqrt(float(H)));
  auto b2 = randomVector(E * M, rng, 0.02f);
  auto dy = randomVector(S * M, rng, 1.0f);
  const float auxLossGrad = 0.01f;

  GateResult gate(gateShape, k);
  GateResult recomputed(gateShape, k);
  std::vector<float> buffer(E * C * M), expertOut(buffer.size()), y(S * M);
  std::vector<float> expertOutGrad(buffer.size()), bufferGrad(buffer.size()),
      weightsGrad(S * k), dxDispatch(S * M), dxGate(S * M), dx(S * M),
      gateWeightGrad(M * E), dw1(w1.size()), db1(b1.size()), dw2(w2.size()),
      db2(b2.size());
  TokenRouting routing;

  std::vector<std::vector<double>> phaseTimes(NumPhases);
  std::vector<double> totals;
  uint32_t step = 0;
  auto runOnce = [&](bool record) -> Status {
    GateRandomness randomness{{/*seed=*/1, /*stream=*/0, ++step}, 0};
    double times[NumPhases];
    auto clock = std::chrono::steady_clock::now();
    auto lap = [&](Phase phase) {
      auto now = std::chrono::steady_clock::now();
      times[phase] = std::chrono::duration<double>(now - clock).count();
      clock = now;
    };
    auto start = clock;
    // Forward.
    MOERT_RETURN_IF_ERROR(gateForward(config, gateShape, randomness, x.data(),
                                      gateWeight.data(), gate.outputs()));
    routing = {gate.experts.data(), gate.slots.data()};
    lap(Gate);
    MOERT_RETURN_IF_ERROR(
        dispatchTokens(dispatchShape, routing, x.data(), buffer.data()));
    lap(Dispatch);
    train::expertFfnForward(ffnShape, buffer.data(), w1.data(), b1.data(),
                            w2.data(), b2.data(), expertOut.data());
    lap(Experts);
    MOERT_RETURN_IF_ERROR(combineTokens(dispatchShape, routing,
                                        gate.weights.data(), expertOut.data(),
                                        y.data()));
    lap(Combine);
    // Backward.
    MOERT_RETURN_IF_ERROR(combineTokensBackward(
        dispatchShape, routing, gate.weights.data(), expertOut.data(),
        dy.data(), expertOutGrad.data(), weightsGrad.data()));
    lap(CombineGrad);
    train::expertFfnBackward(ffnShape, expertOutGrad.data(), buffer.data(),
                             w1.data(), b1.data(), w2.data(), bufferGrad.data(),
                             dw1.data(), db1.data(), dw2.data(), db2.data());
    lap(ExpertsGrad);
    MOERT_RETURN_IF_ERROR(dispatchTokensBackward(
        dispatchShape, routing, bufferGrad.data(), dxDispatch.data()));
    lap(DispatchGrad);
    GateOutputs again = recomputed.outputs();
    MOERT_RETURN_IF_ERROR(gateRoute(config, gateShape, randomness, x.data(),
                                    gateWeight.data(), again)
                              .status());
    GateSavedState saved{recomputed.gates.data(), gate.experts.data(),
                         gate.slots.data()};
    MOERT_RETURN_IF_ERROR(gateBackward(
        config, gateShape, randomness, x.data(), gateWeight.data(), saved,
        weightsGrad.data(), auxLossGrad, dxGate.data(), gateWeightGrad.data()));
    for (int64_t i = 0; i < S * M; ++i)
      dx[i] = dxDispatch[i] + dxGate[i];
    lap(GateGrad);
    if (record) {
      totals.push_back(std::chrono::duration<double>(
                           std::chrono::steady_clock::now() - start)
                           .count());
      for (int p = 0; p < NumPhases; ++p)
        phaseTimes[p].push_back(times[p]);
    }
    return Status::success();
  };
  for (int i = 0; i < 2; ++i)
    if (Status status = runOnce(false); !status.ok())
      return fail(status);
  for (int i = 0; i < o.repeats; ++i)
    if (Status status = runOnce(true); !status.ok())
      return fail(status);

  std::printf("{\"tokens\": %lld, \"model\": %lld, \"hidden\": %lld, "
              "\"experts\": %lld, \"top_k\": %lld, \"capacity\": %lld, "
              "\"seconds\": %.6g, \"phases\": {",
              static_cast<long long>(S), static_cast<long long>(M),
              static_cast<long long>(H), static_cast<long long>(E),
              static_cast<long long>(k), static_cast<long long>(C),
              median(totals));
  for (int p = 0; p < NumPhases; ++p)
    std::printf("%s\"%s\": %.6g", p ? ", " : "", kPhaseNames[p],
                median(phaseTimes[p]));
  std::printf("}, \"times\": [");
  for (size_t i = 0; i < totals.size(); ++i)
    std::printf("%s%.6g", i ? ", " : "", totals[i]);
  std::printf("], \"expert_counts\": [");
  for (int64_t e = 0; e < E; ++e)
    std::printf("%s%d", e ? ", " : "", gate.expertCounts[e]);
  std::printf("]}\n");
  return 0;
}
