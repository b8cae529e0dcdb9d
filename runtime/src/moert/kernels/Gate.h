//===- Gate.h - MoE gate (router) forward and backward on the CPU -------===//
//
// The moe.gate op with the semantics of DeepSpeed-MoE (docs/architecture.md,
// "Gate semantics"): logits = x Wg, gates = softmax(logits), top-k expert
// choices, per-expert capacity with token dropping (Random Token Selection
// for first choices) or dropless routing, combine weights and the
// load-balancing aux loss; and the backward pass to x and Wg.
//
// Conventions the compiler and the other kernels rely on:
// - Tensors are row-major fp32 / int32: x [S, M], Wg [M, E], gates [S, E],
//   experts / slots / weights [S, k]. S counts this process's tokens.
// - expertCounts[e] counts ALL k choices routed to e before any dropping
//   (for top-1 that is the first choices). It is exactly the capacity a
//   dropless gate needs for e, since choice j of an expert queues behind all
//   choices < j of that expert.
// - slots[s, j] is the position of token s's j-th choice in its expert's
//   buffer, -1 when dropped; weights[s, j] is 0 when dropped.
// - Random Token Selection applies to first choices only; choices j >= 1
//   are dropped positionally (slot >= C), as DeepSpeed's top-2 does. A first
//   choice dropped by RTS frees nothing for later choices: they queue behind
//   the expert's first-choice count before dropping, which is >= C whenever
//   RTS dropped anything, so such later choices are dropped anyway.
// - Randomness (jitter, Gumbel noise, RTS priorities) is a function of the
//   seed, stream, step and the GLOBAL token id (firstGlobalToken + local
//   index), so any partitioning of the tokens sees the same numbers. Noise
//   (jitter, rsample, later-choice Gumbel) is drawn in training only; RTS
//   priorities in training and evaluation (as DeepSpeed does).
// - Gating groups (GShard's G dimension, GateConfig::groups = G): the S
//   tokens form G equal contiguous groups of S/G tokens, each routed exactly
//   as an ungrouped gate over those tokens would be (its own logits product,
//   capacity Cg, RTS, top-k queues, aux loss; random numbers still keyed by
//   global token id). Group g owns slots [g * Cg, (g + 1) * Cg) of every
//   expert, so the buffers hold G * Cg slots per expert and dispatch/combine
//   need not know about groups. expertCounts is the sum over groups, the aux
//   loss the mean of the groups' aux losses (its gradient reaches each group
//   with weight 1/G). A process that holds whole groups of a larger batch
//   therefore routes them exactly as the process holding the whole batch.
//   The capacity the two-phase API passes around is the PER-GROUP Cg;
//   GateOutputs::capacity reports the total G * Cg.
// - Every output is bitwise independent of the OpenMP and OpenBLAS thread
//   counts: the GEMMs run as fixed blocks of rows (starting at each group's
//   first token), one single-threaded OpenBLAS call per block.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_KERNELS_GATE_H
#define MOERT_KERNELS_GATE_H

#include "moert/HostDevice.h"
#include "moert/Random.h"
#include "moert/Status.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace moert {

/// Noise added when choosing experts in training.
enum class GateNoise {
  None,
  /// Multiplies the gate input x by U(1 - jitterEps, 1 + jitterEps).
  Jitter,
  /// Adds standard Gumbel noise to the logits used for the first choice's
  /// argmax only (gates stay noise-free).
  RSample,
};

struct GateConfig {
  int64_t topK = 1;
  double capacityFactor = 1.0;     // training
  double evalCapacityFactor = 1.0; // evaluation
  int64_t minCapacity = 4;         // DeepSpeed's default
  /// false = dropless: capacity is the largest expert count (see
  /// CapacityReducer).
  bool dropTokens = true;
  /// Random Token Selection for overloaded experts' first choices; false
  /// keeps the first C tokens in token order.
  bool useRts = true;
  GateNoise noise = GateNoise::None;
  float jitterEps = 1e-2f;
  /// Gumbel noise on the logits for choosing choices 2..k (DeepSpeed's
  /// top2_2nd_expert_sampling). For k > 2 the same noisy logits serve every
  /// later choice, which makes choices 2..k a Gumbel-top-k sample without
  /// replacement.
  bool laterChoiceNoise = true;
  bool training = true;
  /// Independently routed token groups; must divide the token count.
  int64_t groups = 1;
};

struct GateShape {
  int64_t numTokens = 0;  // S (local)
  int64_t modelDim = 0;   // M
  int64_t numExperts = 0; // E (global: the gate always scores every expert)
};

/// Where the gate's random numbers come from.
struct GateRandomness {
  RandomStream source;
  /// Global id of local token 0 (tokens of this process are
  /// firstGlobalToken .. firstGlobalToken + S - 1).
  int64_t firstGlobalToken = 0;
};

/// The gate uses four independent sub-sequences of its stream, selected by
/// the top byte of the Philox element index (element ids stay below 2^56).
enum class GateRandomPurpose : uint64_t {
  RtsPriority = 1,      // element = global token id
  Jitter = 2,           // element = token * M + m
  FirstChoiceNoise = 3, // element = token * E + e
  LaterChoiceNoise = 4, // element = token * E + e
};
MOERT_HOST_DEVICE inline uint64_t gateRandomIndex(GateRandomPurpose purpose,
                                                 uint64_t element) {
  return (static_cast<uint64_t>(purpose) << 56) | element;
}

/// Caller-owned output buffers of the forward pass.
struct GateOutputs {
  int32_t *experts = nullptr;      // [S, k]
  int32_t *slots = nullptr;        // [S, k], -1 when dropped
  float *weights = nullptr;        // [S, k], 0 when dropped
  float *gates = nullptr;          // [S, E] softmax probabilities (backward)
  int32_t *expertCounts = nullptr; // [E]
  float *auxLoss = nullptr;        // scalar
  /// Scalar: slots per expert the routing used, groups * the per-group
  /// capacity (the `capacity` of the dispatch buffer [E, capacity, M]).
  int64_t *capacity = nullptr;
};

/// Owning storage for GateOutputs (tests, tools, simple callers).
struct GateResult {
  std::vector<int32_t> experts, slots, expertCounts;
  std::vector<float> weights, gates;
  float auxLoss = 0.0f;
  int64_t capacity = 0;

  explicit GateResult(const GateShape &shape, int64_t topK);
  GateOutputs outputs();
};

/// Turns the local per-group capacity a dropless gate needs (the largest
/// expert count of any of its groups) into the per-group capacity every rank
/// of the expert-parallel group uses: a MAX all-reduce over that group. The
/// single-process default is the identity.
/// A communicator plugs in here; the two-phase API below lets a caller do
/// the reduction itself instead (e.g. overlapped with other work).
using CapacityReducer = std::function<Expected<int64_t>(int64_t)>;

/// Configured slots per expert of a dropping gate in the current mode
/// (training uses capacityFactor, evaluation evalCapacityFactor), all groups
/// together: moert::groupedExpertCapacity, the compiler's `capacity`.
Expected<int64_t> gateConfiguredCapacity(const GateConfig &config,
                                         const GateShape &shape);

/// Phase 1: logits, gates, expert choices, expert counts and aux loss.
/// Returns the per-group capacity this process needs: the configured one
/// (gateConfiguredCapacity / groups) when dropping, the largest expert count
/// of any group when dropless (to be MAX-reduced over the expert-parallel
/// group before phase 2).
Expected<int64_t> gateRoute(const GateConfig &config, const GateShape &shape,
                            const GateRandomness &randomness, const float *x,
                            const float *gateWeight, const GateOutputs &out);

/// Phase 2: slots and combine weights for the per-group capacity Cg (the
/// value phase 1 returned, or its MAX over the group for a dropless gate;
/// capped at S / groups); writes groups * Cg to out.capacity. Reads experts
/// and gates written by phase 1.
Status gateAssignSlots(const GateConfig &config, const GateShape &shape,
                       const GateRandomness &randomness, int64_t capacity,
                       const GateOutputs &out);

/// Both phases; `reduceDroplessCapacity` (may be empty) is called between
/// them for a dropless gate.
Status gateForward(const GateConfig &config, const GateShape &shape,
                   const GateRandomness &randomness, const float *x,
                   const float *gateWeight, const GateOutputs &out,
                   const CapacityReducer &reduceDroplessCapacity = {});

/// The forward state the backward pass reads.
struct GateSavedState {
  const float *gates = nullptr;     // [S, E]
  const int32_t *experts = nullptr; // [S, k]
  const int32_t *slots = nullptr;   // [S, k]
};

/// Gradients of x [S, M] and Wg [M, E] (overwritten, not accumulated) given
/// the gradient of the combine weights [S, k] and of the aux loss. Flows
/// through the softmax into the kept choices' weights (with the top-k
/// renormalisation) and through the gates of the aux loss; the routing
/// decisions and mask1 are constants. Jitter noise is regenerated from
/// `randomness`, so pass the forward's config and randomness. Either
/// gradient output may be null to skip it.
Status gateBackward(const GateConfig &config, const GateShape &shape,
                    const GateRandomness &randomness, const float *x,
                    const float *gateWeight, const GateSavedState &saved,
                    const float *weightsGrad, float auxLossGrad, float *xGrad,
                    float *gateWeightGrad);

} // namespace moert

#endif // MOERT_KERNELS_GATE_H
