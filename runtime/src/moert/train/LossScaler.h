//===- LossScaler.h - Dynamic loss scaling for fp16 training --------------===//
//
// fp16 gradients underflow for small values (below 2^-24) and overflow above
// 65504. Multiplying the loss by a scale S before the backward pass shifts
// every gradient by S into fp16's range; the optimizer divides by S again.
// The scale is chosen dynamically, with the rules of DeepSpeed's
// DynamicLossScaler (deepspeed/runtime/fp16/loss_scaler.py, its defaults in
// the `fp16` section of the DeepSpeed configuration):
//
//   * start at initialScale (2^16);
//   * a step whose gradients are not all finite ("overflow") is skipped:
//     parameters, moments, the optimizer step count and the learning-rate
//     schedule stay as they were;
//   * hysteresis: an overflow first spends one unit of hysteresis (2 by
//     default: the first overflow only skips the step); once one unit is
//     left, every further overflow divides the scale by `factor` (2), never
//     below minScale (1);
//   * after `window` (1000) clean steps since the last overflow (or since
//     the start) the scale is multiplied by `factor` and the hysteresis
//     refilled; counted as DeepSpeed does: the scale grows at iteration i
//     when (i - lastOverflowIteration) % window == 0, iterations 0-based,
//     lastOverflowIteration = -1 at the start.
//
// Overflow at the minimum scale with no hysteresis left is an error when
// errorAtMinScale is set (DeepSpeed's raise_error_at_min_scale): training
// cannot recover from it by scaling.
//
// Under data/expert parallelism every rank must take the same decision, so
// the overflow flag is the maximum over the ranks: update() takes the local
// flag and an optional reduction (e.g. an MPI all-reduce with MAX). A plan
// whose global gradient norm is already reduced over all ranks gives every
// rank the same flag, and then needs no reduction.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_TRAIN_LOSSSCALER_H
#define MOERT_TRAIN_LOSSSCALER_H

#include "moert/Status.h"

#include <cstdint>
#include <functional>
#include <string>

namespace moert {
namespace train {

struct LossScalerConfig {
  double initialScale = 65536.0; // 2^16 (initial_scale_power 16)
  int64_t window = 1000;         // loss_scale_window
  int64_t hysteresis = 2;        // hysteresis (delayed_shift)
  double minScale = 1.0;         // min_loss_scale
  double factor = 2.0;           // scale_factor
  bool errorAtMinScale = true;   // raise_error_at_min_scale

  /// Describes the first invalid field, or returns success.
  Status validate() const;
};

/// The state a checkpoint must keep to continue the same sequence of
/// scales.
struct LossScalerState {
  double scale = 65536.0;
  int64_t iteration = 0;              // steps seen (0-based index of next)
  int64_t lastOverflowIteration = -1; // -1: none yet
  int64_t hysteresisLeft = 2;
  int64_t skippedSteps = 0;
};

/// What update() decided for one step.
struct LossScaleDecision {
  bool overflow = false; // the (reduced) flag: this step must be skipped
  double scaleUsed = 0;  // the scale the step ran with
  double nextScale = 0;  // the scale of the next step
};

class DynamicLossScaler {
public:
  /// Reduces a rank's overflow flag over all ranks (logical OR = MAX).
  using OverflowReduction = std::function<Expected<bool>(bool localOverflow)>;

  static Expected<DynamicLossScaler> create(const LossScalerConfig &config);

  /// The scale the next step must run with.
  double scale() const { return state_.scale; }
  const LossScalerState &state() const { return state_; }
  const LossScalerConfig &config() const { return config_; }

  /// Records the outcome of the step that ran with scale(): reduces the
  /// flag (when `reduce` is given), then applies the rules above. Fails
  /// (state unchanged) when the reduction fails, or on overflow at the
  /// minimum scale with errorAtMinScale.
  Expected<LossScaleDecision> update(bool localOverflow,
                                     const OverflowReduction &reduce = nullptr);

  /// Restores a saved state (checked against the configuration).
  Status restore(const LossScalerState &state);

private:
  explicit DynamicLossScaler(const LossScalerConfig &config);

  LossScalerConfig config_;
  LossScalerState state_;
};

} // namespace train
} // namespace moert

#endif // MOERT_TRAIN_LOSSSCALER_H
