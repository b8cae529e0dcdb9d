//===- Plan.h - Common definitions of the execution plan --------*- C++ -*-===//
//
// Everything the writer, the loader and the dump share: the generated
// FlatBuffers API of plan.fbs (namespace moert::plan::fb), the schema version
// this build writes and accepts, element sizes and the grid arithmetic that
// turns a logical (unsharded) shape into the shape one rank holds.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_PLAN_PLAN_H
#define MOERT_PLAN_PLAN_H

#include "moert/plan/plan_generated.h"

#include <cstdint>
#include <string>
#include <vector>

namespace moert::plan {

/// The schema version this build writes. Loading accepts any plan of the
/// same major version (minor versions only add things, see plan.fbs) and
/// rejects another major version.
inline constexpr uint16_t kSchemaMajorVersion = 1;
inline constexpr uint16_t kSchemaMinorVersion = 5;

/// Bytes per element (i1 is stored as one byte).
int64_t dtypeSize(fb::DType dtype);
/// "f32", ...; "dtype(<n>)" for a value outside the enum.
std::string dtypeName(fb::DType dtype);
/// "linear", ...; "opcode(<n>)" for a value outside the enum.
std::string opcodeName(fb::Opcode opcode);
/// True for all_reduce, all_gather, reduce_scatter, all_to_all and
/// all_slice (the opcodes that carry an Instruction.collective).
bool isCollective(fb::Opcode opcode);

/// "[128, 512]".
std::string formatShape(const std::vector<int64_t> &shape);

/// One rank's position on the grid: one coordinate per axis.
using GridCoordinates = std::vector<int32_t>;

/// Number of ranks of the grid (product of the axis sizes; 1 for no axes).
int64_t numRanks(const fb::DeviceGrid &grid);
/// Coordinates of `rank` in the row-major grid (last axis fastest).
GridCoordinates coordinatesOfRank(const fb::DeviceGrid &grid, int64_t rank);

/// The shape one rank holds of a tensor with `logicalShape` split as
/// `sharding` (empty = replicated): each dimension divided by the product of
/// the sizes of the axes that split it. Assumes a verified plan.
std::vector<int64_t> localShape(
    const fb::DeviceGrid &grid, const std::vector<int64_t> &logicalShape,
    const flatbuffers::Vector<flatbuffers::Offset<fb::DimSharding>> *sharding);

} // namespace moert::plan

#endif // MOERT_PLAN_PLAN_H
