//===- KernelTable.h - How the kernel files register their kernels -------===//
//
// The executor resolves instructions by kernel name in one table. Kernels.cpp
// holds the dialect's compute kernels and builds the table; kernels that
// partitioning introduced live in files of their own and add themselves
// through these functions. Internal to the executor library.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_EXEC_KERNELTABLE_H
#define MOERT_EXEC_KERNELTABLE_H

#include "moert/exec/Executor.h"

#include <string>
#include <unordered_map>

namespace moert {
namespace exec {

using KernelTable = std::unordered_map<std::string, KernelInfo>;

/// "shard.all_reduce", "shard.all_gather", "shard.reduce_scatter",
/// "shard.all_to_all", "shard.all_slice" (CollectiveKernels.cpp).
void addCollectiveKernels(KernelTable &table);

/// "moe.token_count", "moe.bias_add", "moe.mul", "moe.div", "moe.copy"
/// (PartitionKernels.cpp).
void addPartitionKernels(KernelTable &table);

} // namespace exec
} // namespace moert

#endif // MOERT_EXEC_KERNELTABLE_H
