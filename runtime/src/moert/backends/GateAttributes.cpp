//===- GateAttributes.cpp - moe.gate's attributes as a GateConfig ---------===//
#include "moert/backends/GateAttributes.h"

#include <string>

namespace moert {

Expected<GateConfig> gateConfigOf(const exec::KernelCall &call) {
  GateConfig config;
  MOERT_ASSIGN_OR_RETURN(config.topK, call.intAttr("top_k"));
  MOERT_ASSIGN_OR_RETURN(config.capacityFactor,
                         call.floatAttr("capacity_factor"));
  MOERT_ASSIGN_OR_RETURN(config.evalCapacityFactor,
                         call.floatAttr("eval_capacity_factor"));
  MOERT_ASSIGN_OR_RETURN(config.minCapacity, call.intAttr("min_capacity"));
  config.dropTokens = call.flag("drop_tokens");
  config.useRts = call.flag("use_rts");
  config.laterChoiceNoise = call.flag("second_sampling");
  MOERT_ASSIGN_OR_RETURN(std::string noise, call.stringAttr("noise"));
  if (noise == "none")
    config.noise = GateNoise::None;
  else if (noise == "jitter")
    config.noise = GateNoise::Jitter;
  else if (noise == "rsample")
    config.noise = GateNoise::RSample;
  else
    return invalidArgument("gate noise '" + noise +
                           "' is not none, jitter or rsample");
  MOERT_ASSIGN_OR_RETURN(double jitter, call.floatAttr("jitter_eps"));
  config.jitterEps = static_cast<float>(jitter);
  config.training = call.context().training && !call.flag("eval");
  if (!config.training && call.context().trainingCapacity)
    config.evalCapacityFactor = config.capacityFactor;
  // Plans written before gating groups existed have no "groups": one group.
  if (call.hasAttr("groups")) {
    MOERT_ASSIGN_OR_RETURN(config.groups, call.intAttr("groups"));
  }
  return config;
}

Expected<GateRandomness> gateRandomnessOf(const exec::KernelCall &call,
                                          int64_t numTokens) {
  MOERT_ASSIGN_OR_RETURN(int64_t stream, call.intAttr("stream"));
  GateRandomness randomness;
  randomness.source.seed = call.context().seed;
  randomness.source.stream = static_cast<uint32_t>(stream);
  randomness.source.step = call.context().step;
  // With `shard_axes`, the tokens are this rank's shard of the batch.
  MOERT_ASSIGN_OR_RETURN(exec::GroupPosition shard, call.shardPosition());
  randomness.firstGlobalToken = shard.index * numTokens;
  return randomness;
}

GateShape gateShapeOf(const exec::TensorType &x,
                      const exec::TensorType &weight) {
  GateShape shape;
  shape.numTokens = 1;
  for (size_t i = 0; i + 1 < x.shape.size(); ++i)
    shape.numTokens *= x.shape[i];
  shape.modelDim = x.shape.empty() ? 1 : x.shape.back();
  shape.numExperts = weight.shape[1];
  return shape;
}

} // namespace moert
