//===- MemoryPlan.cpp - Static arena plan of a function's tensors ---------===//
//
// Greedy-by-size offset assignment: buffers are placed largest first at the
// lowest offset that does not collide with an already placed buffer whose
// lifetime overlaps. This is the classic heuristic of static arena planners;
// it is within a few percent of the live-bytes lower bound on Transformer
// graphs, and deterministic.
//
//===----------------------------------------------------------------------===//
#include "compiler/MemoryPlan.h"

#include "dialects/Moe/MoeOps.h"

#include "dialects/Moe/MoeDialect.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/DenseMap.h"

#include <algorithm>
#include <map>

using namespace mlir;
using namespace mlir::moe;

int64_t mlir::moe::tensorBytes(Type type) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  if (!tensor || !tensor.hasStaticShape())
    return 0;
  // Saturates at the compiler's limit: the verifier and the plan emitter
  // refuse such tensors, the sums here must merely not overflow.
  return boundedTensorBytes(tensor).value_or(kMaxTensorBytes);
}

static int64_t alignUp(int64_t value, int64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

MemoryPlan mlir::moe::planMemory(func::FuncOp func, int64_t alignment,
                                 llvm::function_ref<bool(Value)> external) {
  MemoryPlan plan;
  Block &block = func.getBody().front();
  for (BlockArgument arg : block.getArguments())
    plan.argumentBytes += tensorBytes(arg.getType());

  // Op positions and lifetimes.
  llvm::DenseMap<Operation *, int64_t> position;
  int64_t index = 0;
  for (Operation &op : block)
    position[&op] = index++;
  int64_t end = index - 1; // the terminator
  for (Operation &op : block.without_terminator()) {
    for (Value result : op.getResults()) {
      if (external && external(result))
        continue;
      BufferAssignment buffer;
      buffer.value = result;
      buffer.size = alignUp(std::max<int64_t>(tensorBytes(result.getType()), 1),
                            alignment);
      buffer.firstUse = position[&op];
      buffer.lastUse = buffer.firstUse;
      for (Operation *user : result.getUsers())
        buffer.lastUse = std::max(buffer.lastUse, position[user]);
      if (llvm::any_of(result.getUsers(),
                       [](Operation *u) { return isa<func::ReturnOp>(u); }))
        buffer.lastUse = end;
      plan.unsharedBytes += buffer.size;
      plan.buffers.push_back(buffer);
    }
  }

  // Live-bytes lower bound (a sweep over lifetimes).
  std::map<int64_t, int64_t> delta;
  for (const BufferAssignment &b : plan.buffers) {
    delta[b.firstUse] += b.size;
    delta[b.lastUse + 1] -= b.size;
  }
  int64_t live = 0;
  for (auto [at, change] : delta) {
    live += change;
    plan.liveLowerBound = std::max(plan.liveLowerBound, live);
  }

  // Largest first; ties by first use, then op order, for determinism.
  SmallVector<unsigned> order(plan.buffers.size());
  for (unsigned i = 0; i < order.size(); ++i)
    order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](unsigned a, unsigned b) {
    const BufferAssignment &x = plan.buffers[a], &y = plan.buffers[b];
    if (x.size != y.size)
      return x.size > y.size;
    return x.firstUse < y.firstUse;
  });
  // Each buffer goes to the lowest offset where it overlaps no placed buffer
  // that is live at the same time. The placed buffers are kept sorted by
  // offset, so one sweep in that order finds the first gap without
  // collecting and sorting the live ones for every buffer (which made
  // planning quadratic-times-log in the depth of the model).
  struct Placed {
    int64_t offset, end, firstUse, lastUse;
  };
  // Sorted by offset, in chunks of at most 2 * kChunk records: the sweep
  // reads contiguous memory and an insertion moves one chunk, not the whole
  // list.
  constexpr size_t kChunk = 256;
  std::vector<std::vector<Placed>> chunks;
  for (unsigned i : order) {
    BufferAssignment &buffer = plan.buffers[i];
    int64_t offset = 0;
    bool found = false;
    for (const std::vector<Placed> &chunk : chunks) {
      for (const Placed &other : chunk) {
        if (other.lastUse < buffer.firstUse || buffer.lastUse < other.firstUse)
          continue;
        if (offset + buffer.size <= other.offset) {
          found = true;
          break;
        }
        offset = std::max(offset, other.end);
      }
      if (found)
        break;
    }
    buffer.offset = offset;
    plan.arenaBytes = std::max(plan.arenaBytes, offset + buffer.size);

    Placed record{offset, offset + buffer.size, buffer.firstUse,
                  buffer.lastUse};
    if (chunks.empty())
      chunks.emplace_back();
    // The first chunk holding an offset above this one (else the last).
    auto chunk =
        std::upper_bound(chunks.begin(), chunks.end(), offset,
                         [](int64_t value, const std::vector<Placed> &c) {
                           return !c.empty() && value < c.back().offset;
                         });
    if (chunk == chunks.end())
      --chunk;
    auto at = std::upper_bound(
        chunk->begin(), chunk->end(), offset,
        [](int64_t value, const Placed &p) { return value < p.offset; });
    chunk->insert(at, record);
    if (chunk->size() > 2 * kChunk) {
      std::vector<Placed> upper(chunk->begin() + kChunk, chunk->end());
      chunk->resize(kChunk);
      chunks.insert(chunk + 1, std::move(upper));
    }
  }
  return plan;
}

llvm::DenseMap<Value, BlockArgument>
mlir::moe::stepArgumentAliases(func::FuncOp func) {
  llvm::DenseMap<Value, BlockArgument> aliases;
  func.walk([&](AdamWOp update) {
    for (auto [operand, result] :
         {std::pair(update.getParam(), update.getNewParam()),
          std::pair(update.getExpAvg(), update.getNewExpAvg()),
          std::pair(update.getExpAvgSq(), update.getNewExpAvgSq())})
      if (auto arg = dyn_cast<BlockArgument>(operand))
        aliases[result] = arg;
  });
  Block &body = func.getBody().front();
  auto ret = dyn_cast<func::ReturnOp>(body.getTerminator());
  if (!ret)
    return aliases;
  auto argAttr = [&](BlockArgument arg, StringRef name) {
    return func.getArgAttrOfType<StringAttr>(arg.getArgNumber(), name);
  };
  // Arguments by parameter name and by (parameter, moment): one pass, so
  // matching the results stays linear in the number of parameters.
  llvm::DenseMap<StringAttr, BlockArgument> paramArg;
  llvm::DenseMap<std::pair<StringAttr, StringAttr>, BlockArgument> stateArg;
  for (BlockArgument arg : body.getArguments()) {
    if (StringAttr name = argAttr(arg, MoeDialect::kParamAttrName))
      paramArg[name] = arg; // the last wins, as the scan it replaces
    StringAttr of = argAttr(arg, MoeDialect::kStateOfAttrName);
    StringAttr state = argAttr(arg, MoeDialect::kOptStateAttrName);
    if (of && state)
      stateArg[{of, state}] = arg;
  }
  for (auto [index, value] : llvm::enumerate(ret.getOperands())) {
    if (aliases.count(value) || isa<BlockArgument>(value))
      continue;
    auto resultAttr = [&](StringRef name) {
      return func.getResultAttrOfType<StringAttr>(index, name);
    };
    StringAttr role = resultAttr(MoeDialect::kRoleAttrName);
    if (!role)
      continue;
    if (role.getValue() == "new_param") {
      StringAttr name = resultAttr(MoeDialect::kParamAttrName);
      if (auto it = paramArg.find(name); name && it != paramArg.end())
        aliases[value] = it->second;
    } else if (role.getValue() == "new_state") {
      StringAttr of = resultAttr(MoeDialect::kStateOfAttrName);
      StringAttr state = resultAttr(MoeDialect::kOptStateAttrName);
      if (auto it = stateArg.find({of, state});
          of && state && it != stateArg.end())
        aliases[value] = it->second;
    }
  }
  return aliases;
}

MemoryPlan mlir::moe::planStepMemory(func::FuncOp func, int64_t alignment) {
  llvm::DenseMap<Value, BlockArgument> aliases = stepArgumentAliases(func);
  return planMemory(func, alignment,
                    [&](Value value) { return aliases.count(value) > 0; });
}
