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
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/STLExtras.h"

#include <algorithm>
#include <map>
#include <optional>
#include <vector>

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

namespace {

/// Byte ranges, sorted and coalesced (ranges that touch or overlap are
/// one): where a set of buffers lies, without which buffer is where.
class RangeSet {
public:
  bool empty() const { return ranges_.empty(); }

  void insert(int64_t begin, int64_t end) {
    auto byBegin = [](int64_t value, const Range &r) {
      return value < r.begin;
    };
    auto next =
        std::upper_bound(ranges_.begin(), ranges_.end(), begin, byBegin);
    auto first = next;
    if (next != ranges_.begin() && std::prev(next)->end >= begin) {
      first = std::prev(next);
      begin = first->begin;
      end = std::max(end, first->end);
    }
    auto last = next;
    for (; last != ranges_.end() && last->begin <= end; ++last)
      end = std::max(end, last->end);
    if (first == last) {
      ranges_.insert(first, Range{begin, end});
      return;
    }
    *first = Range{begin, end};
    ranges_.erase(first + 1, last);
  }

  /// The end of the range that [offset, offset + size) meets, if any.
  std::optional<int64_t> blockedUntil(int64_t offset, int64_t size) const {
    auto it = std::lower_bound(
        ranges_.begin(), ranges_.end(), offset + size,
        [](const Range &r, int64_t value) { return r.begin < value; });
    if (it == ranges_.begin() || std::prev(it)->end <= offset)
      return std::nullopt;
    return std::prev(it)->end;
  }

private:
  struct Range {
    int64_t begin, end;
  };
  std::vector<Range> ranges_;
};

/// The placed buffers, indexed by lifetime for first-fit placement: a
/// segment tree over op positions. A buffer live over [first, last] is
/// stored at the canonical nodes of that interval (`own`), and its byte
/// range is added to the subtree occupancy (`below`) of those nodes and of
/// all their ancestors. For a new lifetime [first, last], the buffers live
/// at some position of it are exactly those in `below` of its canonical
/// nodes (stored within their subtrees, so live inside the interval) and
/// those in `own` of the canonical nodes' proper ancestors (live over all
/// of an ancestor's range). The lowest offset free in all these range sets
/// is the first-fit offset, the offset a sweep over every placed buffer in
/// offset order finds; ranges coalesce, so a stack of buffers live at the
/// same time is passed in one step instead of one buffer at a time (the
/// sweep made planning quadratic in the depth of the model).
class PlacedBuffers {
public:
  explicit PlacedBuffers(int64_t positions) {
    while (leaves_ < positions)
      leaves_ *= 2;
    own_.resize(2 * leaves_);
    below_.resize(2 * leaves_);
  }

  /// Places a buffer live over op positions [first, last] at the lowest
  /// free offset and returns it.
  int64_t place(int64_t first, int64_t last, int64_t size) {
    canonical_.clear();
    for (int64_t lo = first + leaves_, hi = last + leaves_ + 1; lo < hi;
         lo /= 2, hi /= 2) {
      if (lo & 1)
        canonical_.push_back(lo++);
      if (hi & 1)
        canonical_.push_back(--hi);
    }
    // Proper ancestors of the canonical nodes (they share paths).
    ancestors_.clear();
    for (int64_t node : canonical_)
      for (int64_t up = node / 2; up >= 1; up /= 2) {
        if (llvm::is_contained(ancestors_, up))
          break;
        ancestors_.push_back(up);
      }
    sets_.clear();
    for (int64_t node : canonical_)
      if (!below_[node].empty())
        sets_.push_back(&below_[node]);
    for (int64_t node : ancestors_)
      if (!own_[node].empty())
        sets_.push_back(&own_[node]);
    // Move past every range the buffer meets until all sets in a row meet
    // none (after a move, the same set is asked again: its next range may
    // begin within the buffer).
    int64_t offset = 0;
    for (size_t at = 0, clear = 0; clear < sets_.size();) {
      if (std::optional<int64_t> until =
              sets_[at]->blockedUntil(offset, size)) {
        offset = *until;
        clear = 0;
        continue;
      }
      ++clear;
      at = (at + 1) % sets_.size();
    }
    for (int64_t node : canonical_) {
      own_[node].insert(offset, offset + size);
      below_[node].insert(offset, offset + size);
    }
    for (int64_t node : ancestors_)
      below_[node].insert(offset, offset + size);
    return offset;
  }

private:
  int64_t leaves_ = 1;
  std::vector<RangeSet> own_, below_;
  SmallVector<int64_t, 64> canonical_, ancestors_;
  SmallVector<const RangeSet *, 64> sets_;
};

} // namespace

void mlir::moe::placeFirstFit(MutableArrayRef<BufferAssignment> buffers,
                              ArrayRef<unsigned> order) {
  int64_t positions = 0;
  for (const BufferAssignment &buffer : buffers)
    positions = std::max(positions, buffer.lastUse + 1);
  PlacedBuffers placed(positions);
  for (unsigned i : order)
    buffers[i].offset =
        placed.place(buffers[i].firstUse, buffers[i].lastUse, buffers[i].size);
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
  // Collectives beside the compute: an operand keeps its bytes until the
  // result is first read.
  auto module = func->getParentOfType<ModuleOp>();
  if (module && module->hasAttr(kOverlapCollectivesAttr)) {
    llvm::DenseMap<Value, size_t> bufferOf;
    for (auto [i, b] : llvm::enumerate(plan.buffers))
      bufferOf[b.value] = i;
    for (Operation &op : block.without_terminator()) {
      if (!isa<shard::AllReduceOp, shard::AllGatherOp, shard::ReduceScatterOp,
               shard::AllToAllOp>(op))
        continue;
      int64_t firstRead = end;
      for (Operation *user : op.getResult(0).getUsers())
        firstRead = std::min(firstRead, position[user]);
      auto it = bufferOf.find(op.getOperand(0));
      if (it != bufferOf.end()) {
        BufferAssignment &operand = plan.buffers[it->second];
        operand.lastUse = std::max(operand.lastUse, firstRead - 1);
      }
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
  placeFirstFit(plan.buffers, order);
  for (const BufferAssignment &buffer : plan.buffers)
    plan.arenaBytes = std::max(plan.arenaBytes, buffer.offset + buffer.size);
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
  // A gradient streamed to the host lands in its host buffer.
  func.walk([&](ToHostOp copy) {
    if (auto arg = dyn_cast<BlockArgument>(copy.getBuffer()))
      aliases[copy.getResult()] = arg;
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
  llvm::DenseMap<StringAttr, BlockArgument> copyArg;
  for (BlockArgument arg : body.getArguments()) {
    if (StringAttr name = argAttr(arg, MoeDialect::kParamAttrName))
      paramArg[name] = arg; // the last wins, as the scan it replaces
    if (StringAttr name = argAttr(arg, MoeDialect::kDeviceCopyAttrName))
      copyArg[name] = arg;
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
    } else if (role.getValue() == "new_device_copy") {
      StringAttr name = resultAttr(MoeDialect::kDeviceCopyAttrName);
      if (auto it = copyArg.find(name); name && it != copyArg.end())
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
