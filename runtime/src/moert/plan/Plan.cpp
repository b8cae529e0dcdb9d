//===- Plan.cpp - Common definitions of the execution plan ----------------===//

#include "moert/plan/Plan.h"

#include "moert/Ops.h"

namespace moert::plan {

int64_t dtypeSize(fb::DType dtype) {
  switch (dtype) {
  case fb::DType::f64:
  case fb::DType::i64:
    return 8;
  case fb::DType::f32:
  case fb::DType::i32:
    return 4;
  case fb::DType::f16:
  case fb::DType::bf16:
    return 2;
  case fb::DType::i1:
  case fb::DType::i8:
  case fb::DType::u8:
    return 1;
  }
  return 0; // outside the enum: the loader reports it
}

std::string dtypeName(fb::DType dtype) {
  const char *name = fb::EnumNameDType(dtype);
  if (name && *name)
    return name;
  return "dtype(" + std::to_string(static_cast<int>(dtype)) + ")";
}

// The schema's Opcode enum and Ops.def agree value for value: an op added
// to one and not the other, or numbered differently, does not build.
#define MOERT_OP(Name, Value, Dialect, MinOperands, MaxOperands, Results)      \
  static_assert(static_cast<int>(fb::Opcode::Name) == (Value),                 \
                "plan.fbs and Ops.def disagree on the value of " #Name);
#include "moert/Ops.def"
static_assert(static_cast<size_t>(fb::Opcode::MAX) + 1 == kOpTableSize,
              "plan.fbs has an opcode beyond the last one of Ops.def");

std::string opcodeName(fb::Opcode opcode) {
  const char *name = fb::EnumNameOpcode(opcode);
  if (name && *name)
    return name;
  return "opcode(" + std::to_string(static_cast<int>(opcode)) + ")";
}

bool isCollective(fb::Opcode opcode) {
  std::optional<Op> op = opFromValue(static_cast<uint32_t>(opcode));
  return op && opInfo(*op).collective;
}

std::string formatShape(const std::vector<int64_t> &shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i)
      text += ", ";
    text += std::to_string(shape[i]);
  }
  return text + "]";
}

int64_t numRanks(const fb::DeviceGrid &grid) {
  int64_t ranks = 1;
  if (grid.axes())
    for (const fb::GridAxis *axis : *grid.axes())
      ranks *= axis->size();
  return ranks;
}

GridCoordinates coordinatesOfRank(const fb::DeviceGrid &grid, int64_t rank) {
  GridCoordinates coordinates;
  if (!grid.axes())
    return coordinates;
  coordinates.resize(grid.axes()->size());
  for (size_t i = grid.axes()->size(); i-- > 0;) {
    int64_t size = grid.axes()->Get(static_cast<uint32_t>(i))->size();
    coordinates[i] = static_cast<int32_t>(rank % size);
    rank /= size;
  }
  return coordinates;
}

std::vector<int64_t> localShape(
    const fb::DeviceGrid &grid, const std::vector<int64_t> &logicalShape,
    const flatbuffers::Vector<flatbuffers::Offset<fb::DimSharding>> *sharding) {
  std::vector<int64_t> shape = logicalShape;
  if (!sharding || !grid.axes())
    return shape;
  for (uint32_t dim = 0; dim < sharding->size() && dim < shape.size(); ++dim) {
    const fb::DimSharding *split = sharding->Get(dim);
    if (!split->axes())
      continue;
    for (uint8_t axis : *split->axes())
      if (axis < grid.axes()->size())
        shape[dim] /= grid.axes()->Get(axis)->size();
  }
  return shape;
}

} // namespace moert::plan
