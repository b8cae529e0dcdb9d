//===- TestPrograms.h - Building small executor programs by hand ----------===//
//
// Programs for the partitioned-execution tests: persistent buffers that the
// test fills and reads, arena buffers laid out one after the other (no
// reuse: the tests are about execution, not planning), instructions with
// attributes and collective parameters.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_EXEC_TESTS_TESTPROGRAMS_H
#define MOERT_EXEC_TESTS_TESTPROGRAMS_H

#include "moert/exec/Executor.h"

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

namespace moert::exec::testing {

struct TestProgram {
  Program program;

  int32_t buffer(DType dtype, std::vector<int64_t> shape,
                 BufferKind kind = BufferKind::Persistent) {
    Buffer b;
    b.type = {dtype, std::move(shape)};
    b.kind = kind;
    int64_t &region = kind == BufferKind::Arena ? program.arenaBytes
                                                : program.persistentBytes;
    b.offset = region;
    region += (b.type.byteSize() + 63) / 64 * 64;
    program.buffers.push_back(b);
    return static_cast<int32_t>(program.buffers.size() - 1);
  }

  Instruction &add(std::string kernel, std::vector<int32_t> operands,
                   std::vector<int32_t> results,
                   std::map<std::string, AttrValue> attrs = {},
                   std::optional<CollectiveInfo> collective = std::nullopt) {
    Instruction inst;
    inst.kernel = std::move(kernel);
    inst.operands = std::move(operands);
    inst.results = std::move(results);
    inst.attrs = std::move(attrs);
    inst.location = "test";
    inst.collective = std::move(collective);
    program.instructions.push_back(std::move(inst));
    return program.instructions.back();
  }
};

template <typename T>
void fill(Executor &executor, int32_t id, const std::vector<T> &values) {
  std::copy(values.begin(), values.end(),
            static_cast<T *>(executor.bufferData(id)));
}

template <typename T>
std::vector<T> read(const Executor &executor, int32_t id) {
  const T *data = static_cast<const T *>(executor.bufferData(id));
  return std::vector<T>(
      data, data + executor.program().buffers[id].type.numElements());
}

/// Row-major index of `index` in `shape`.
inline int64_t flatIndex(const std::vector<int64_t> &shape,
                         const std::vector<int64_t> &index) {
  int64_t flat = 0;
  for (size_t d = 0; d < shape.size(); ++d)
    flat = flat * shape[d] + index[d];
  return flat;
}

/// Calls visit(index) for every multi-index of `shape`, row-major.
template <typename Visit>
void forEachIndex(const std::vector<int64_t> &shape, Visit visit) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  std::vector<int64_t> index(shape.size(), 0);
  for (int64_t e = 0; e < n; ++e) {
    int64_t rest = e;
    for (size_t d = shape.size(); d-- > 0;) {
      index[d] = rest % shape[d];
      rest /= shape[d];
    }
    visit(index);
  }
}

} // namespace moert::exec::testing

#endif // MOERT_EXEC_TESTS_TESTPROGRAMS_H
