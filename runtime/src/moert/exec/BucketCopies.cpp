//===- BucketCopies.cpp - The copies of a gradient bucket's pack/unpack ---===//
#include "moert/exec/BucketCopies.h"

#include "moert/exec/Executor.h"

#include <string>

namespace moert {
namespace exec {

namespace {

Expected<int64_t> chunksOf(const KernelCall &call) {
  if (!call.hasAttr("chunks"))
    return int64_t{1};
  MOERT_ASSIGN_OR_RETURN(int64_t chunks, call.intAttr("chunks"));
  if (chunks < 1)
    return invalidArgument("chunks = " + std::to_string(chunks) +
                           ", expected at least 1");
  return chunks;
}

} // namespace

Expected<std::vector<ByteCopy>> packCopies(const KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(int64_t chunks, chunksOf(call));
  char *out = call.result<char>(0);
  const int64_t capacity = call.resultType(0).byteSize();
  if (capacity % chunks != 0)
    return invalidArgument("the packed result " + call.resultType(0).str() +
                           " does not split into " + std::to_string(chunks) +
                           " rows");
  const int64_t row = capacity / chunks;
  std::vector<ByteCopy> copies;
  int64_t bytes = 0; // within a row
  for (size_t i = 0; i < call.numOperands(); ++i) {
    const int64_t size = call.operandType(i).byteSize();
    if (call.operandType(i).numElements() % chunks != 0)
      return invalidArgument(
          "operand #" + std::to_string(i) + " " + call.operandType(i).str() +
          " does not split into " + std::to_string(chunks) + " equal chunks");
    const int64_t part = size / chunks;
    if (bytes + part > row)
      return invalidArgument("the operands do not fit the packed result " +
                             call.resultType(0).str());
    if (part > 0)
      copies.push_back(
          {out + bytes, call.operand<char>(i), part, chunks, row, part});
    bytes += part;
  }
  return copies;
}

Expected<ByteCopy> unpackCopy(const KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(int64_t offset, call.intAttr("offset"));
  MOERT_ASSIGN_OR_RETURN(int64_t chunks, chunksOf(call));
  const int64_t element = dtypeSize(call.resultType(0).dtype);
  const int64_t bytes = call.resultType(0).byteSize();
  const int64_t total = call.operandType(0).byteSize();
  if (total % chunks != 0 || call.resultType(0).numElements() % chunks != 0)
    return invalidArgument("the operand " + call.operandType(0).str() +
                           " and the result " + call.resultType(0).str() +
                           " do not split into " + std::to_string(chunks) +
                           " equal chunks");
  const int64_t row = total / chunks, part = bytes / chunks;
  if (offset < 0 || (offset * element) + part > row)
    return invalidArgument("elements from " + std::to_string(offset) + " of " +
                           call.resultType(0).str() + " are not inside " +
                           call.operandType(0).str());
  return ByteCopy{call.result<char>(0),
                  call.operand<char>(0) + offset * element,
                  part,
                  chunks,
                  part,
                  row};
}

} // namespace exec
} // namespace moert
