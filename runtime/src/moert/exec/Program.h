//===- Program.h - The executable form of a training plan -----------------===//
//
// What the executor runs: typed buffers (in the arena, bound inputs, or
// splat constants) and an instruction stream naming kernels by their
// dialect op ("moe.linear", "moe.adamw", ...) with typed attributes. The plan
// loader builds a Program from a verified plan file; tests build them by
// hand.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_EXEC_PROGRAM_H
#define MOERT_EXEC_PROGRAM_H

#include "moert/Status.h"

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace moert {
namespace exec {

enum class DType : uint8_t { F32 = 0, I32 = 1, I64 = 2, Bool = 3 };

/// Bytes per element (Bool takes one byte).
int64_t dtypeSize(DType dtype);
const char *dtypeName(DType dtype);

struct TensorType {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  int64_t numElements() const;
  int64_t byteSize() const { return numElements() * dtypeSize(dtype); }
  std::string str() const; // e.g. "f32[8x32x128]"
};

/// Integers (and booleans as 0/1), floats and strings.
using AttrValue = std::variant<int64_t, double, std::string>;

enum class BufferKind : uint8_t {
  Arena,    // at `offset` in the arena planned by the compiler
  Input,    // bound by the caller for each run (`input` = its position)
  Constant, // every element equals `splat`
};

struct Buffer {
  TensorType type;
  BufferKind kind = BufferKind::Arena;
  int64_t offset = 0;
  int32_t input = -1;
  double splat = 0.0;
};

struct Instruction {
  std::string kernel; // the dialect op name, e.g. "moe.linear"
  std::vector<int32_t> operands, results;
  std::map<std::string, AttrValue> attrs;
  std::string location; // where in the source model, for error messages
};

struct Program {
  std::vector<Buffer> buffers;
  std::vector<Instruction> instructions;
  int64_t arenaBytes = 0;
  std::vector<int32_t> inputs;  // buffer ids, in binding order
  std::vector<int32_t> outputs; // buffer ids, in result order

  /// Structural checks: ids in range, arena buffers inside the arena,
  /// inputs bound once, results not written to inputs or constants.
  Status verify() const;
};

} // namespace exec
} // namespace moert

#endif // MOERT_EXEC_PROGRAM_H
