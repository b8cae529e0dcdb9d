//===- Program.h - The executable form of a training plan -----------------===//
//
// What the executor runs: typed buffers (step temporaries in the arena,
// persistent state such as parameters, optimizer moments and the batch, or
// splat constants) and an instruction stream naming kernels by their dialect
// op ("moe.linear", "moe.adamw", ...) with typed attributes. The plan loader
// builds a Program from a verified plan file; tests build them by hand.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_EXEC_PROGRAM_H
#define MOERT_EXEC_PROGRAM_H

#include "moert/Status.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace moert {
namespace exec {

/// BF16 and F16 hold bit patterns (moert/Half.h); only moe.convert and the
/// collectives that move data without arithmetic read or write them.
enum class DType : uint8_t {
  F32 = 0,
  I32 = 1,
  I64 = 2,
  Bool = 3,
  BF16 = 4,
  F16 = 5
};

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

/// Integers (and booleans as 0/1), floats, strings and integer vectors
/// (grid axes, e.g. `shard_axes`).
using AttrValue =
    std::variant<int64_t, double, std::string, std::vector<int64_t>>;

enum class BufferKind : uint8_t {
  Arena,      // at `offset` in the arena planned by the compiler
  Persistent, // at `offset` in the persistent region: lives across steps
  Constant,   // every element equals `splat`; read-only
  Host,       // at `offset` in the host region: persistent state kept in
              // host memory on any device (offloaded optimizer moments)
};

struct Buffer {
  TensorType type;
  BufferKind kind = BufferKind::Arena;
  int64_t offset = 0;
  double splat = 0.0;
  std::string name; // what the buffer holds, for errors and the trainer
};

/// How a collective reduces (all_reduce, reduce_scatter).
enum class Reduction : uint8_t { None, Sum, Mean, Max, Min };
const char *reductionName(Reduction reduction);

/// What a collective instruction ("shard.all_reduce", ...) communicates
/// over: the grid axes of its group (increasing), the reduction and the
/// split / concatenated dimensions (-1 where unused). The group rank of a
/// process is the row-major index of its coordinates over `axes`.
struct CollectiveInfo {
  std::vector<int> axes;
  Reduction reduction = Reduction::None;
  int splitDim = -1;
  int concatDim = -1;
};

struct Instruction {
  std::string kernel; // the dialect op name, e.g. "moe.linear"
  std::vector<int32_t> operands, results;
  std::map<std::string, AttrValue> attrs;
  std::string location; // where in the source model, for error messages
  /// Present exactly for the collective kernels.
  std::optional<CollectiveInfo> collective;
};

/// "instruction #<index> (<kernel>) at <location>": how errors name an
/// instruction.
std::string describeInstruction(size_t index, const Instruction &inst);

/// Device code the compiler generated (the plan's executables): PTX of
/// the MoE data-movement kernels for GPUs of compute capability `sm` and up.
struct Executable {
  int sm = 0;
  std::string format; // "ptx"
  std::vector<uint8_t> image;
  std::vector<std::string> kernels;
};

/// A function of the model other than the training step (plan.fbs,
/// `Program`): instructions [begin, end), the persistent buffers the caller
/// fills before running it and the buffers it reads after.
struct EntryPoint {
  std::string name;
  size_t begin = 0, end = 0;
  std::vector<int32_t> inputs, outputs;
};

struct Program {
  std::vector<Buffer> buffers;
  std::vector<Instruction> instructions;
  /// The functions after the training step, in instruction order; the
  /// step is the instructions before the first of them.
  std::vector<EntryPoint> entryPoints;
  size_t stepEnd() const {
    return entryPoints.empty() ? instructions.size()
                               : entryPoints.front().begin;
  }
  /// The entry point called `name`, or null.
  const EntryPoint *findEntryPoint(const std::string &name) const {
    for (const EntryPoint &entry : entryPoints)
      if (entry.name == name)
        return &entry;
    return nullptr;
  }
  /// The buffer called `name` among `ids` (an entry point's inputs or
  /// outputs), or -1.
  int32_t bufferNamed(const std::vector<int32_t> &ids,
                      const std::string &name) const {
    for (int32_t id : ids)
      if (buffers[id].name == name)
        return id;
    return -1;
  }
  int64_t arenaBytes = 0;
  int64_t persistentBytes = 0;
  /// Bytes of the host region (BufferKind::Host buffers; 0 unless state was
  /// offloaded, see offloadOptimizerState).
  int64_t hostBytes = 0;
  /// The device grid the program was partitioned for (one size per axis;
  /// empty = one process). Collectives and `shard_axes` refer to its axes.
  std::vector<int64_t> gridShape;
  std::vector<Executable> executables;

  /// The executable holding `kernel` with the highest `sm` that is at most
  /// `computeCapability` (10 * major + minor); null when there is none.
  const Executable *selectExecutable(int computeCapability,
                                     const std::string &kernel) const;

  /// Structural checks: ids in range, every buffer inside its region,
  /// no instruction writing a constant, grid axes of collectives in range
  /// and increasing.
  Status verify() const;
};

/// ZeRO-Offload's placement of the optimizer state: the AdamW moments
/// (operands 2 and 3 of every moe.adamw, updated in place) move from the
/// persistent region to the host region, and both regions are laid out
/// again (same order, `alignment`-byte boundaries). The CPU backend runs
/// the same kernels on them; the CUDA backend's AdamW then updates on the
/// host (backends/cuda/OptimizerKernels.cu). Returns the bytes moved.
Expected<int64_t> offloadOptimizerState(Program &program,
                                        int64_t alignment = 256);

/// Lays the Persistent and the Host buffers out again, each kind in a
/// region of its own, in buffer order on `alignment`-byte boundaries
/// (plans of schema 1.5 mark host state per buffer; see fb::Buffer::host).
void layOutPersistentState(Program &program, int64_t alignment = 256);

} // namespace exec
} // namespace moert

#endif // MOERT_EXEC_PROGRAM_H
