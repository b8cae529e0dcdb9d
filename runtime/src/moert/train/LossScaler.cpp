//===- LossScaler.cpp - Dynamic loss scaling for fp16 training ------------===//
#include "moert/train/LossScaler.h"

#include <algorithm>
#include <cmath>

namespace moert {
namespace train {

namespace {

std::string number(double value) {
  std::string text = std::to_string(value);
  return text;
}

} // namespace

Status LossScalerConfig::validate() const {
  if (!(std::isfinite(initialScale) && initialScale > 0))
    return invalidArgument("loss scaler: initial scale must be finite and > 0, "
                           "found " +
                           number(initialScale));
  if (!(std::isfinite(minScale) && minScale > 0))
    return invalidArgument(
        "loss scaler: minimum scale must be finite and > 0, found " +
        number(minScale));
  if (initialScale < minScale)
    return invalidArgument("loss scaler: initial scale " +
                           number(initialScale) + " is below the minimum " +
                           number(minScale));
  if (window < 1)
    return invalidArgument("loss scaler: window must be >= 1 step, found " +
                           std::to_string(window));
  if (hysteresis < 1)
    return invalidArgument("loss scaler: hysteresis must be >= 1, found " +
                           std::to_string(hysteresis));
  if (!(std::isfinite(factor) && factor > 1))
    return invalidArgument(
        "loss scaler: factor must be finite and > 1, found " + number(factor));
  return Status::success();
}

DynamicLossScaler::DynamicLossScaler(const LossScalerConfig &config)
    : config_(config) {
  state_.scale = config.initialScale;
  state_.hysteresisLeft = config.hysteresis;
}

Expected<DynamicLossScaler>
DynamicLossScaler::create(const LossScalerConfig &config) {
  MOERT_RETURN_IF_ERROR(config.validate());
  return DynamicLossScaler(config);
}

Expected<LossScaleDecision>
DynamicLossScaler::update(bool localOverflow, const OverflowReduction &reduce) {
  bool overflow = localOverflow;
  if (reduce) {
    Expected<bool> reduced = reduce(localOverflow);
    if (!reduced.ok())
      return reduced.takeStatus().withContext(
          "loss scaler: reducing the overflow flag over the ranks");
    overflow = *reduced;
  }
  LossScalerState next = state_;
  LossScaleDecision decision;
  decision.overflow = overflow;
  decision.scaleUsed = state_.scale;
  if (overflow) {
    if (config_.hysteresis == 1 || next.hysteresisLeft <= 1) {
      if (next.scale <= config_.minScale && config_.errorAtMinScale)
        return failedPrecondition(
            "loss scaler: gradients overflow at step index " +
            std::to_string(next.iteration) +
            " with the loss scale already "
            "at its minimum " +
            number(config_.minScale) +
            " (the fp16 step cannot be made finite by scaling; lower the "
            "learning rate or train in bf16)");
      next.scale = std::max(next.scale / config_.factor, config_.minScale);
    } else {
      --next.hysteresisLeft;
    }
    next.lastOverflowIteration = next.iteration;
    ++next.skippedSteps;
  } else if ((next.iteration - next.lastOverflowIteration) % config_.window ==
             0) {
    next.hysteresisLeft = config_.hysteresis;
    next.scale *= config_.factor;
  }
  ++next.iteration;
  state_ = next;
  decision.nextScale = state_.scale;
  return decision;
}

Status DynamicLossScaler::restore(const LossScalerState &state) {
  if (!(std::isfinite(state.scale) && state.scale >= config_.minScale))
    return invalidArgument("loss scaler state: scale " + number(state.scale) +
                           " is not a finite value >= the minimum " +
                           number(config_.minScale));
  if (state.iteration < 0 || state.lastOverflowIteration < -1 ||
      state.lastOverflowIteration >= state.iteration ||
      state.skippedSteps < 0 || state.skippedSteps > state.iteration)
    return invalidArgument(
        "loss scaler state: inconsistent counters (iteration " +
        std::to_string(state.iteration) + ", last overflow " +
        std::to_string(state.lastOverflowIteration) + ", skipped " +
        std::to_string(state.skippedSteps) + ")");
  if (state.hysteresisLeft < 1 || state.hysteresisLeft > config_.hysteresis)
    return invalidArgument("loss scaler state: hysteresis left " +
                           std::to_string(state.hysteresisLeft) +
                           " is outside [1, " +
                           std::to_string(config_.hysteresis) + "]");
  state_ = state;
  return Status::success();
}

} // namespace train
} // namespace moert
