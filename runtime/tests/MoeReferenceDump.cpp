//===- MoeReferenceDump.cpp - MoE layer values for the PyTorch check ----===//
//
// Runs gate -> dispatch -> per-expert scaling -> combine, forward and
// backward, on fixed random inputs for a few deterministic gate
// configurations (no noise, no RTS), and writes inputs, routing, outputs and
// gradients as text for check_moe_against_torch.py, which recomputes them
// with the GShard/DeepSpeed one-hot einsum formulation and torch autograd.
//
// The scalar differentiated is L = sum(y * R) + auxCoefficient * auxLoss; the
// "experts" are y_e = buffer_e * scale[e, :] so that each expert does
// something different and the gradient path through dispatch is exercised.
//
// Usage: moert-moe-reference-dump <output-directory>
//
//===----------------------------------------------------------------------===//
#include "moert/kernels/DispatchCombine.h"
#include "moert/kernels/Gate.h"

#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace moert;

struct DumpCase {
  std::string name;
  int64_t numTokens, modelDim, numExperts, topK;
  double capacityFactor;
  bool dropTokens;
  unsigned seed;
};

template <typename T>
void writeTensor(std::ofstream &out, const std::string &name,
                 const std::vector<int64_t> &shape, const T *data) {
  int64_t count = 1;
  out << "tensor " << name << " ";
  for (size_t i = 0; i < shape.size(); ++i) {
    out << (i ? "," : "") << shape[i];
    count *= shape[i];
  }
  out << "\n";
  for (int64_t i = 0; i < count; ++i)
    out << (i ? " " : "") << data[i];
  out << "\n";
}

Status runCase(const DumpCase &c, const std::string &directory) {
  const int64_t S = c.numTokens, M = c.modelDim, E = c.numExperts;
  const int64_t k = c.topK;
  std::mt19937 rng(c.seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto randomVector = [&](int64_t count) {
    std::vector<float> values(static_cast<size_t>(count));
    for (float &v : values)
      v = normal(rng);
    return values;
  };
  std::vector<float> x = randomVector(S * M), wg = randomVector(M * E);
  std::vector<float> expertScale = randomVector(E * M);
  std::vector<float> outputProjection = randomVector(S * M);
  const float auxCoefficient = 0.3f;

  GateConfig config;
  config.topK = k;
  config.capacityFactor = c.capacityFactor;
  config.minCapacity = 0;
  config.dropTokens = c.dropTokens;
  config.useRts = false;
  config.noise = GateNoise::None;
  config.laterChoiceNoise = false;
  const GateShape gateShape{S, M, E};
  const GateRandomness randomness{};
  GateResult gate(gateShape, k);
  MOERT_RETURN_IF_ERROR(gateForward(config, gateShape, randomness, x.data(),
                                    wg.data(), gate.outputs()));

  const int64_t C = gate.capacity;
  const DispatchShape shape{S, M, E, k, C};
  const TokenRouting routing{gate.experts.data(), gate.slots.data()};
  std::vector<float> buffer(E * C * M), expertOut(E * C * M), y(S * M);
  MOERT_RETURN_IF_ERROR(
      dispatchTokens(shape, routing, x.data(), buffer.data()));
  for (int64_t e = 0; e < E; ++e)
    for (int64_t slot = 0; slot < C; ++slot)
      for (int64_t m = 0; m < M; ++m)
        expertOut[(e * C + slot) * M + m] =
            buffer[(e * C + slot) * M + m] * expertScale[e * M + m];
  MOERT_RETURN_IF_ERROR(combineTokens(shape, routing, gate.weights.data(),
                                      expertOut.data(), y.data()));

  // Backward: dy = R.
  std::vector<float> expertOutGrad(E * C * M), weightsGrad(S * k);
  MOERT_RETURN_IF_ERROR(combineTokensBackward(
      shape, routing, gate.weights.data(), expertOut.data(),
      outputProjection.data(), expertOutGrad.data(), weightsGrad.data()));
  std::vector<float> bufferGrad(E * C * M);
  for (int64_t e = 0; e < E; ++e)
    for (int64_t slot = 0; slot < C; ++slot)
      for (int64_t m = 0; m < M; ++m)
        bufferGrad[(e * C + slot) * M + m] =
            expertOutGrad[(e * C + slot) * M + m] * expertScale[e * M + m];
  std::vector<float> xGrad(S * M), xGradGate(S * M), wgGrad(M * E);
  MOERT_RETURN_IF_ERROR(
      dispatchTokensBackward(shape, routing, bufferGrad.data(), xGrad.data()));
  MOERT_RETURN_IF_ERROR(gateBackward(
      config, gateShape, randomness, x.data(), wg.data(),
      {gate.gates.data(), gate.experts.data(), gate.slots.data()},
      weightsGrad.data(), auxCoefficient, xGradGate.data(), wgGrad.data()));
  for (int64_t i = 0; i < S * M; ++i)
    xGrad[i] += xGradGate[i];

  std::ofstream out(directory + "/" + c.name + ".txt");
  if (!out)
    return Status(StatusCode::NotFound,
                  "cannot write " + directory + "/" + c.name + ".txt");
  out.precision(9);
  out << "param topK " << k << "\n";
  out << "param capacityFactor " << c.capacityFactor << "\n";
  out << "param minCapacity " << config.minCapacity << "\n";
  out << "param dropTokens " << (c.dropTokens ? 1 : 0) << "\n";
  out << "param auxCoefficient " << auxCoefficient << "\n";
  out << "param capacity " << C << "\n";
  out << "param auxLoss " << gate.auxLoss << "\n";
  writeTensor(out, "x", {S, M}, x.data());
  writeTensor(out, "gateWeight", {M, E}, wg.data());
  writeTensor(out, "expertScale", {E, M}, expertScale.data());
  writeTensor(out, "outputProjection", {S, M}, outputProjection.data());
  writeTensor(out, "experts", {S, k}, gate.experts.data());
  writeTensor(out, "slots", {S, k}, gate.slots.data());
  writeTensor(out, "weights", {S, k}, gate.weights.data());
  writeTensor(out, "gates", {S, E}, gate.gates.data());
  writeTensor(out, "expertCounts", {E}, gate.expertCounts.data());
  writeTensor(out, "y", {S, M}, y.data());
  writeTensor(out, "xGrad", {S, M}, xGrad.data());
  writeTensor(out, "gateWeightGrad", {M, E}, wgGrad.data());
  if (!out)
    return dataLoss("failed writing " + c.name);
  return Status::success();
}

} // namespace

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <output-directory>\n", argv[0]);
    return 2;
  }
  const std::vector<DumpCase> cases = {
      {"top1_drop", 24, 8, 4, 1, 1.0, true, 1},
      {"top1_dropless", 24, 8, 4, 1, 1.0, false, 2},
      {"top2_drop", 24, 8, 4, 2, 0.75, true, 3},
      {"top2_dropless", 24, 8, 6, 2, 1.0, false, 4},
  };
  for (const DumpCase &c : cases) {
    Status status = runCase(c, argv[1]);
    if (!status.ok()) {
      std::fprintf(stderr, "case %s: %s\n", c.name.c_str(),
                   status.toString().c_str());
      return 1;
    }
  }
  return 0;
}
