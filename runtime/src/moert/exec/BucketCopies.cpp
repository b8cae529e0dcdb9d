//===- BucketCopies.cpp - The copies of a gradient bucket's pack/unpack ---===//
#include "moert/exec/BucketCopies.h"

#include "moert/exec/Executor.h"

#include <string>

namespace moert {
namespace exec {

Expected<std::vector<ByteCopy>> packCopies(const KernelCall &call) {
  char *out = call.result<char>(0);
  const int64_t capacity = call.resultType(0).byteSize();
  std::vector<ByteCopy> copies;
  int64_t bytes = 0;
  for (size_t i = 0; i < call.numOperands(); ++i) {
    const int64_t size = call.operandType(i).byteSize();
    if (bytes + size > capacity)
      return invalidArgument("the operands do not fit the packed result " +
                             call.resultType(0).str());
    if (size > 0)
      copies.push_back({out + bytes, call.operand<char>(i), size});
    bytes += size;
  }
  return copies;
}

Expected<ByteCopy> unpackCopy(const KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(int64_t offset, call.intAttr("offset"));
  const int64_t element = dtypeSize(call.resultType(0).dtype);
  const int64_t bytes = call.resultType(0).byteSize();
  if (offset < 0 || (offset * element) + bytes > call.operandType(0).byteSize())
    return invalidArgument("elements from " + std::to_string(offset) + " of " +
                           call.resultType(0).str() + " are not inside " +
                           call.operandType(0).str());
  return ByteCopy{call.result<char>(0),
                  call.operand<char>(0) + offset * element, bytes};
}

} // namespace exec
} // namespace moert
