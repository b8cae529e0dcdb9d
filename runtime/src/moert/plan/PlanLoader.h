//===- PlanLoader.h - Loads and verifies execution plans --------*- C++ -*-===//
//
// A plan comes from a file that may be truncated, corrupt, from another
// version of the compiler or simply wrong; the executor must only ever see
// plans that passed every check here. Loading runs, in order:
//   1. size and file identifier ("MOEP");
//   2. the schema version, read through a minimal verification of the root
//      table only, so that a plan of a newer major version is reported as
//      such even if its layout no longer verifies against this schema;
//   3. the FlatBuffers verifier over the whole buffer;
//   4. semantic consistency: grid, buffers inside their region with sizes
//      that match shape and dtype, arena buffers sharing bytes only with
//      disjoint live ranges, parameters and batch inputs with positive
//      shapes whose shard axes divide the dimensions they split and whose
//      buffers hold the local shard (the AdamW moments that of the state
//      sharding, which ZeRO may partition further), and every
//      instruction's operands, results, attributes (`shard_axes`: grid
//      axes, increasing) and collective parameters (grid axes, increasing;
//      split / concatenated dimensions in range; the result shape they
//      imply) as its kernel expects.
// Errors say what was expected, what was found and where.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_PLAN_PLANLOADER_H
#define MOERT_PLAN_PLANLOADER_H

#include "moert/Status.h"
#include "moert/plan/Plan.h"

#include <cstdint>
#include <string>
#include <vector>

namespace moert::plan {

/// A verified plan. Owns its bytes; the FlatBuffers view points into them
/// (recomputed on access, so moving a LoadedPlan is safe).
class LoadedPlan {
public:
  const fb::Plan &plan() const { return *fb::GetPlan(bytes_.data()); }
  const std::vector<uint8_t> &bytes() const { return bytes_; }
  /// Where the plan came from (a path or "<memory>"), for messages.
  const std::string &source() const { return source_; }

  /// The object-API copy of the plan (to inspect, modify and re-serialize).
  fb::PlanT unpack() const;

private:
  friend Expected<LoadedPlan> loadPlanFromBytes(std::vector<uint8_t> bytes,
                                                const std::string &source);
  LoadedPlan(std::vector<uint8_t> bytes, std::string source)
      : bytes_(std::move(bytes)), source_(std::move(source)) {}

  std::vector<uint8_t> bytes_;
  std::string source_;
};

/// Verifies `bytes` as a plan. `source` names it in error messages.
Expected<LoadedPlan> loadPlanFromBytes(std::vector<uint8_t> bytes,
                                       const std::string &source = "<memory>");

/// Reads and verifies the plan file at `path`.
Expected<LoadedPlan> loadPlan(const std::string &path);

/// Step 4 alone, for plans that already passed the FlatBuffers verifier.
Status checkPlanSemantics(const fb::Plan &plan);

} // namespace moert::plan

#endif // MOERT_PLAN_PLANLOADER_H
