//===- Partition.cpp - SPMD partitioning of @train_step over (dp, ep, tp) -===//
//
// Rewrites the logical training step into the program of one rank of a
// device grid `dp x ep x tp` (axes 0, 1, 2 of `shard.grid @grid`). Every
// value gets a distribution: for each dimension the grid axes that split it
// (major to minor), plus the axes over which it is a pending partial sum
// (or mean). Each op states the distributions it needs of its operands and
// the ones its results get; where a producer's distribution differs from
// what a consumer needs, a collective of the upstream `shard` dialect is
// inserted (GSPMD-style resharding):
//
//   partial -> full           shard.all_reduce
//   partial -> split          shard.reduce_scatter (ZeRO-2)
//   split   -> full           shard.all_gather
//   full    -> split          shard.all_slice (local, no communication)
//   split d -> split d'       shard.all_to_all (tokens <-> experts)
//
// Layout decisions (docs/partitioning.md):
//  * tokens (batch dimension) are split over the data-parallel axes
//    T = (dp, ep); everything token-wise runs on the local shard;
//  * expert buffers [E, C, M] leave dispatch split on C over T and reach
//    expert_ffn split on E over ep (all_to_all over ep), and back for
//    combine; the same in backward;
//  * dense gradients are partial sums over T, expert gradients over dp; the
//    loss is normalized by the all-reduced token count and the aux loss of
//    each gating group by the total number of groups, so that the summed
//    gradients equal the 1-rank run's;
//  * ZeRO-1/2 partition the AdamW moments (and for 2 the gradient, by a
//    reduce-scatter) over the data axes of the parameter's group; the
//    updated shard is all-gathered into the parameter;
//  * Megatron tensor parallelism: q/k/v and the first FFN linear are
//    column-parallel, the attention output and second FFN linear
//    row-parallel (bias added after the all-reduce), heads split over tp.
//
// The result is one SPMD program: compile time does not depend on the
// number of ranks.
//
//===----------------------------------------------------------------------===//
#include "compiler/MemoryPlan.h"
#include "dialects/Moe/MoeOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/TypeSwitch.h"

#include <map>
#include <numeric>

namespace mlir::moe {
#define GEN_PASS_DEF_MOEPARTITION
#include "passes/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

constexpr int16_t kDp = 0, kEp = 1, kTp = 2;
constexpr llvm::StringLiteral kGridName = "grid";

using Axes = SmallVector<int16_t, 3>;

/// How a value is spread over the grid.
struct Dist {
  SmallVector<Axes, 4> split; // per dimension, major to minor
  Axes partial;               // pending reduction over these axes
  bool mean = false;          // the pending reduction is a mean

  static Dist replicated(int64_t rank) {
    Dist d;
    d.split.resize(rank);
    return d;
  }
  bool isPartial() const { return !partial.empty(); }
  Dist full() const {
    Dist d = *this;
    d.partial.clear();
    d.mean = false;
    return d;
  }
  Dist withPartial(Axes axes, bool isMean = false) const {
    Dist d = *this;
    d.partial = std::move(axes);
    llvm::sort(d.partial);
    d.mean = isMean && !d.partial.empty();
    return d;
  }
  /// Axes splitting any dimension but the last (the token axes of an
  /// activation).
  Axes leadingAxes() const {
    Axes axes;
    for (size_t i = 0; i + 1 < split.size(); ++i)
      axes.append(split[i].begin(), split[i].end());
    llvm::sort(axes);
    return axes;
  }
  Axes allAxes() const {
    Axes axes;
    for (const Axes &dim : split)
      axes.append(dim.begin(), dim.end());
    llvm::sort(axes);
    return axes;
  }
  bool operator==(const Dist &other) const {
    return split == other.split && partial == other.partial &&
           mean == other.mean;
  }
  std::string key() const {
    std::string s;
    for (const Axes &dim : split) {
      s += '[';
      for (int16_t a : dim)
        s += std::to_string(a) + ",";
      s += ']';
    }
    s += "p";
    for (int16_t a : partial)
      s += std::to_string(a) + ",";
    if (mean)
      s += "mean";
    return s;
  }
};

enum class TpRole { None, Column, Row };

struct MoePartition : mlir::moe::impl::MoePartitionBase<MoePartition> {
  using Base::Base;

  void runOnOperation() override;

private:
  // Grid.
  int64_t sizes[3] = {1, 1, 1};
  Axes tokenAxes; // data-parallel axes with size > 1 (dp, ep)
  int64_t size(ArrayRef<int16_t> axes) const {
    int64_t n = 1;
    for (int16_t a : axes)
      n *= sizes[a];
    return n;
  }
  Axes live(std::initializer_list<int16_t> axes) const {
    Axes result;
    for (int16_t a : axes)
      if (sizes[a] > 1)
        result.push_back(a);
    return result;
  }

  // State of the rewrite.
  func::FuncOp func;
  llvm::DenseMap<Value, RankedTensorType> logical;
  llvm::DenseMap<Value, Dist> dist;
  std::map<std::pair<void *, std::string>, Value> memo;
  llvm::DenseMap<Value, TpRole> tpRole;     // weight/bias args
  llvm::DenseMap<Value, Dist> zeroDist;     // grads and params -> shard
  llvm::DenseMap<Value, Dist> zeroGradDist; // ZeRO-2 gradient shards
  llvm::DenseMap<Value, Value> lossWeight;  // cross_entropy -> n_r / n
  bool hadError = false;
  Operation *currentOp = nullptr; // the op whose operands are being resharded

  InFlightDiagnostic error(Operation *op) {
    hadError = true;
    return op->emitError() << "moe-partition: ";
  }

  RankedTensorType localType(Operation *where, RankedTensorType type,
                             const Dist &d) {
    SmallVector<int64_t> shape(type.getShape());
    for (auto [i, axes] : llvm::enumerate(d.split)) {
      int64_t n = size(axes);
      if (n > 1 && shape[i] % n != 0) {
        error(where) << "expected dimension " << i << " of " << type
                     << " to be divisible by the " << n
                     << " ranks that split it, found size " << shape[i];
        return type;
      }
      shape[i] /= n;
    }
    return RankedTensorType::get(shape, type.getElementType());
  }

  RankedTensorType logicalOf(Value v) {
    auto it = logical.find(v);
    if (it != logical.end())
      return it->second;
    return cast<RankedTensorType>(v.getType());
  }
  const Dist &distOf(Value v) {
    auto it = dist.find(v);
    if (it == dist.end()) {
      dist[v] = Dist::replicated(logicalOf(v).getRank());
      return dist[v];
    }
    return it->second;
  }
  void setDist(Value v, Dist d, Operation *where) {
    dist[v] = d;
    if (auto tensor = dyn_cast<RankedTensorType>(logicalOf(v)))
      v.setType(localType(where, tensor, d));
  }

  // Collectives.
  Value reshard(Value v, const Dist &to, bool allowReduceScatter = true);
  Value emitStep(OpBuilder &b, Location loc, Value v, const Dist &from,
                 const Dist &to, Operation *consumer);

  // Analysis and rules.
  LogicalResult assignArguments();
  void findTensorParallelLinears();
  void partitionOp(Operation *op);
  void partitionLinear(LinearOp op);
  void partitionCrossEntropy(CrossEntropyOp op);
  void partitionAdamW(AdamWOp op);
  void partitionReturn(func::ReturnOp op);
  Dist zeroShard(const Dist &param, RankedTensorType logicalType,
                 const Axes &dataAxes);
  Value scaleBy(Operation *before, Value v, Value factor);
  Value constantScalar(Operation *before, double value);
  GatingAttr localGating(Operation *op, GatingAttr config, int64_t shards);
  Dist expertDist(const Dist &slots, int64_t rank);
};

//===----------------------------------------------------------------------===//
// Resharding
//===----------------------------------------------------------------------===//

shard::ReductionKind reductionOf(const Dist &d) {
  return d.mean ? shard::ReductionKind::Average : shard::ReductionKind::Sum;
}

Value MoePartition::reshard(Value v, const Dist &to, bool allowReduceScatter) {
  const Dist from = distOf(v);
  if (from == to)
    return v;
  auto key = std::make_pair(v.getAsOpaquePointer(),
                            to.key() + (allowReduceScatter ? "" : "/nors"));
  if (auto it = memo.find(key); it != memo.end())
    return it->second;

  Operation *where = v.getDefiningOp() ? v.getDefiningOp() : func;
  // A partial value that must end up split by its partial axes is
  // reduce-scattered; otherwise it is all-reduced first.
  Value result;
  if (from.isPartial() && !to.isPartial() && !allowReduceScatter) {
    Value reduced = reshard(v, from.full());
    result = reshard(reduced, to);
  } else {
    OpBuilder b(v.getContext());
    // Arguments are resharded where first needed (a ZeRO slice of a
    // parameter right before its update, not for the whole step); results
    // right after their definition.
    // A pure slice (local, no communication) is also taken where needed, so
    // that ZeRO keeps no gradient slices alive across the backward pass.
    bool sliceOnly = !from.isPartial() && !to.isPartial();
    for (size_t d = 0; sliceOnly && d < from.split.size(); ++d)
      sliceOnly = to.split[d].size() >= from.split[d].size() &&
                  std::equal(from.split[d].begin(), from.split[d].end(),
                             to.split[d].begin());
    if (currentOp && (sliceOnly || isa<BlockArgument>(v)))
      b.setInsertionPoint(currentOp);
    else if (auto arg = dyn_cast<BlockArgument>(v))
      b.setInsertionPointToStart(arg.getOwner());
    else
      b.setInsertionPointAfter(v.getDefiningOp());
    result = emitStep(b, v.getLoc(), v, from, to, where);
  }
  memo[key] = result;
  return result;
}

/// Emits the collectives that turn `v` (distributed as `from`) into `to`,
/// at the builder's insertion point.
Value MoePartition::emitStep(OpBuilder &b, Location loc, Value v,
                             const Dist &from, const Dist &to,
                             Operation *where) {
  RankedTensorType type = logicalOf(v);
  Dist cur = from;
  Value value = v;
  auto record = [&](Value next, const Dist &d) {
    logical[next] = type;
    dist[next] = d;
    next.setType(localType(where, type, d));
    value = next;
    cur = d;
  };
  auto axesAttr = [](ArrayRef<int16_t> axes) {
    return SmallVector<int16_t>(axes.begin(), axes.end());
  };
  auto minorOf = [](const Axes &axes, int16_t a) {
    return !axes.empty() && axes.back() == a;
  };

  // 1. Pending reductions.
  if (cur.isPartial() && cur.partial != to.partial) {
    if (to.isPartial()) {
      error(where) << "cannot turn a partial value over one set of axes into "
                      "a partial value over another";
      return v;
    }
    // Reduce-scatter when `to` splits one dimension by exactly the partial
    // axes (appended to what already splits it).
    int scatterDim = -1;
    for (size_t d = 0; d < to.split.size(); ++d) {
      Axes expected = cur.split[d];
      expected.append(cur.partial.begin(), cur.partial.end());
      if (to.split[d] == expected && to.split[d] != cur.split[d]) {
        bool othersEqual = true;
        for (size_t e = 0; e < to.split.size(); ++e)
          if (e != d && to.split[e] != cur.split[e])
            othersEqual = false;
        if (othersEqual)
          scatterDim = static_cast<int>(d);
      }
    }
    if (scatterDim >= 0 && !cur.mean) {
      Dist next = to;
      auto op = shard::ReduceScatterOp::create(
          b, loc, type, kGridName, axesAttr(cur.partial), value,
          reductionOf(cur), APInt(64, scatterDim));
      record(op.getResult(), next);
      return value;
    }
    auto op = shard::AllReduceOp::create(b, loc, value.getType(), kGridName,
                                         axesAttr(cur.partial), value,
                                         reductionOf(cur));
    record(op.getResult(), cur.full());
  }

  // 2. Axes that leave a dimension (all-gather a minor suffix), move
  //    between dimensions (all-to-all), or join one (all-slice a suffix).
  auto dimOf = [](const Dist &d, int16_t axis) -> int {
    for (size_t i = 0; i < d.split.size(); ++i)
      if (llvm::is_contained(d.split[i], axis))
        return static_cast<int>(i);
    return -1;
  };
  auto emit = [&](Operation *op, const Dist &next) {
    b.setInsertionPointAfter(op);
    record(op->getResult(0), next);
  };
  // Leaving: per dimension, the axes not in `to` at all.
  for (size_t d = 0; d < cur.split.size(); ++d) {
    Axes leaving;
    for (int16_t a : cur.split[d])
      if (dimOf(to, a) < 0)
        leaving.push_back(a);
    if (leaving.empty())
      continue;
    Axes &axes = cur.split[d];
    if (!std::equal(leaving.begin(), leaving.end(),
                    axes.end() - leaving.size())) {
      error(where) << "unsupported resharding: grid axes leaving dimension "
                   << d << " are not its minor axes";
      return value;
    }
    Dist next = cur;
    next.split[d].resize(axes.size() - leaving.size());
    emit(shard::AllGatherOp::create(b, loc, localType(where, type, next),
                                    kGridName, axesAttr(leaving), value,
                                    APInt(64, d)),
         next);
  }
  // Moving, one axis at a time.
  for (int16_t axis = 0; axis < 3; ++axis) {
    int src = dimOf(cur, axis), dst = dimOf(to, axis);
    if (src < 0 || dst < 0 || src == dst)
      continue;
    if (!minorOf(cur.split[src], axis)) {
      error(where) << "unsupported resharding: grid axis " << axis
                   << " is not the minor axis of dimension " << src;
      return value;
    }
    Dist next = cur;
    next.split[src].pop_back();
    next.split[dst].push_back(axis);
    emit(shard::AllToAllOp::create(b, loc, localType(where, type, next),
                                   kGridName, axesAttr({axis}), value,
                                   APInt(64, dst), APInt(64, src)),
         next);
  }
  // Joining: per dimension, the axes `to` has there and `cur` nowhere.
  for (size_t d = 0; d < to.split.size(); ++d) {
    Axes joining;
    for (int16_t a : to.split[d])
      if (dimOf(cur, a) < 0)
        joining.push_back(a);
    if (joining.empty())
      continue;
    Dist next = cur;
    next.split[d].append(joining.begin(), joining.end());
    emit(shard::AllSliceOp::create(b, loc, localType(where, type, next),
                                   kGridName, axesAttr(joining), value,
                                   APInt(64, d)),
         next);
  }
  if (!(cur == to))
    error(where) << "unsupported resharding from " << from.key() << " to "
                 << to.key();
  return value;
}

//===----------------------------------------------------------------------===//
// Helpers for the rules
//===----------------------------------------------------------------------===//

Value MoePartition::constantScalar(Operation *before, double value) {
  OpBuilder b(before);
  auto type = RankedTensorType::get({}, b.getF32Type());
  Value c = arith::ConstantOp::create(
      b, before->getLoc(),
      DenseElementsAttr::get(type, b.getF32FloatAttr(value).getValue()));
  dist[c] = Dist::replicated(0);
  return c;
}

Value MoePartition::scaleBy(Operation *before, Value v, Value factor) {
  OpBuilder b(before);
  Value product = arith::MulFOp::create(b, before->getLoc(), v, factor);
  dist[product] = Dist::replicated(0);
  return product;
}

GatingAttr MoePartition::localGating(Operation *op, GatingAttr config,
                                     int64_t shards) {
  if (shards == 1)
    return config;
  if (config.getGroups() % shards != 0) {
    error(op) << "expected the gating groups to be a multiple of the " << shards
              << " token shards (dp x ep = " << sizes[kDp] << " x "
              << sizes[kEp] << ") so that each rank routes whole groups, "
              << "found " << config.getGroups()
              << " group(s); set #moe.gating<groups = ...> (model config "
                 "moe.groups) to a multiple of "
              << shards;
    return config;
  }
  if (!config.getDropTokens()) {
    error(op) << "expected drop_tokens = true with tokens split over " << shards
              << " ranks, found dropless gating (drop_tokens = false), which "
                 "the partitioner does not support yet: its capacity depends "
                 "on all ranks";
    return config;
  }
  return GatingAttr::get(
      op->getContext(), config.getTopK(), config.getCapacityFactor(),
      config.getEvalCapacityFactor(), config.getMinCapacity(),
      config.getDropTokens(), config.getUseRts(), config.getNoise(),
      config.getJitterEps(), config.getSecondSampling(),
      config.getGroups() / shards);
}

/// Expert-sharded layout of an [E, C, M] buffer whose slots are split over
/// `slots.split[1]`: E over ep, C over the remaining axes.
Dist MoePartition::expertDist(const Dist &slots, int64_t rank) {
  Dist d = Dist::replicated(rank);
  if (sizes[kEp] > 1)
    d.split[0] = {kEp};
  for (int16_t a : slots.split[1])
    if (a != kEp)
      d.split[1].push_back(a);
  return d;
}

/// The ZeRO shard of a tensor distributed as `param`: one more split by
/// `dataAxes` on the first dimension that keeps axes increasing and divides.
Dist MoePartition::zeroShard(const Dist &param, RankedTensorType type,
                             const Axes &dataAxes) {
  if (dataAxes.empty())
    return param;
  int64_t n = size(dataAxes);
  for (int pass = 0; pass < 2; ++pass)
    for (size_t d = 0; d < param.split.size(); ++d) {
      const Axes &axes = param.split[d];
      if (pass == 0 && !axes.empty())
        continue;
      if (!axes.empty() && axes.back() >= dataAxes.front())
        continue;
      int64_t local = type.getDimSize(d) / size(axes);
      if (local % n != 0)
        continue;
      Dist z = param.full();
      z.split[d].append(dataAxes.begin(), dataAxes.end());
      return z;
    }
  return param; // not partitionable: replicated update (reported)
}

//===----------------------------------------------------------------------===//
// Arguments
//===----------------------------------------------------------------------===//

void MoePartition::findTensorParallelLinears() {
  if (sizes[kTp] == 1)
    return;
  auto paramWeight = [&](Operation *op) -> LinearOp {
    auto linear = dyn_cast_or_null<LinearOp>(op);
    if (!linear || linear.getTransposeWeight() ||
        !isa<BlockArgument>(linear.getWeight()))
      return nullptr;
    if (linear.getBias() && !isa<BlockArgument>(linear.getBias()))
      return nullptr;
    return linear;
  };
  auto mark = [&](LinearOp linear, TpRole role) {
    tpRole[linear.getWeight()] = role;
    // A row-parallel linear's bias is added once, after the all-reduce:
    // it stays replicated.
    if (linear.getBias() && role == TpRole::Column)
      tpRole[linear.getBias()] = role;
  };
  func.walk([&](AttentionOp attention) {
    LinearOp q = paramWeight(attention.getQuery().getDefiningOp());
    LinearOp k = paramWeight(attention.getKey().getDefiningOp());
    LinearOp v = paramWeight(attention.getValue().getDefiningOp());
    if (!q || !k || !v)
      return;
    if (attention.getNumHeads() % sizes[kTp] != 0) {
      error(attention) << "expected num_heads to be divisible by tp = "
                       << sizes[kTp]
                       << ", found num_heads = " << attention.getNumHeads();
      return;
    }
    // Forward users only (the backward reads the value too).
    SmallVector<LinearOp> outs;
    for (Operation *user : attention.getResult().getUsers())
      if (LinearOp out = paramWeight(user);
          out && out.getInput() == attention.getResult())
        outs.push_back(out);
    if (outs.size() != 1)
      return;
    mark(q, TpRole::Column);
    mark(k, TpRole::Column);
    mark(v, TpRole::Column);
    mark(outs.front(), TpRole::Row);
  });
  // Dense FFN: linear -> activation -> (dropout ->) linear.
  func.walk([&](ActivationOp act) {
    LinearOp first = paramWeight(act.getInput().getDefiningOp());
    if (!first)
      return;
    // A dropout on the hidden activation would need a strided mask layout
    // on the sharded hidden dimension: such FFNs stay replicated.
    SmallVector<LinearOp> seconds;
    for (Operation *user : act.getResult().getUsers()) {
      if (isa<DropoutOp>(user))
        return;
      if (LinearOp second = paramWeight(user);
          second && second.getInput() == act.getResult())
        seconds.push_back(second);
    }
    if (seconds.size() != 1)
      return;
    LinearOp second = seconds.front();
    mark(first, TpRole::Column);
    mark(second, TpRole::Row);
  });
}

/// Where an error about a step argument points: its first use in the step
/// (the function's own location would echo the signature, every argument
/// on one line for a generated model), else the function.
static Location argumentLoc(func::FuncOp func, BlockArgument arg) {
  Operation *first = nullptr;
  for (Operation *user : arg.getUsers()) {
    Operation *inBody = func.getBody().front().findAncestorOpInBlock(*user);
    if (inBody && (!first || inBody->isBeforeInBlock(first)))
      first = inBody;
  }
  return first ? first->getLoc() : func.getLoc();
}

LogicalResult MoePartition::assignArguments() {
  Block &body = func.getBody().front();
  // Parameter groups (from the updates) and ZeRO shards.
  llvm::DenseMap<Value, ParamGroup> group;
  func.walk(
      [&](AdamWOp update) { group[update.getParam()] = update.getGroup(); });
  llvm::StringMap<Value> paramByName;
  for (BlockArgument arg : body.getArguments()) {
    unsigned i = arg.getArgNumber();
    auto type = dyn_cast<RankedTensorType>(arg.getType());
    if (!type)
      return emitError(func.getLoc())
             << "moe-partition: expected ranked tensor arguments, found "
             << arg.getType() << " for argument #" << i;
    logical[arg] = type;
    Dist d = Dist::replicated(type.getRank());
    if (auto name =
            func.getArgAttrOfType<StringAttr>(i, MoeDialect::kParamAttrName)) {
      paramByName[name.getValue()] = arg;
      auto g = group.find(arg);
      if (g != group.end() && g->second == ParamGroup::expert) {
        if (sizes[kEp] > 1) {
          if (type.getDimSize(0) % sizes[kEp] != 0)
            return emitError(argumentLoc(func, arg))
                   << "moe-partition: expected the experts of '"
                   << name.getValue() << "' (dimension 0 of " << type
                   << ") to be divisible by ep = " << sizes[kEp] << ", found "
                   << type.getDimSize(0) << " experts";
          d.split[0] = {kEp};
        }
      } else if (auto role = tpRole.lookup(arg); role != TpRole::None) {
        int dim = role == TpRole::Column ? type.getRank() - 1 : 0;
        if (type.getDimSize(dim) % sizes[kTp] != 0)
          return emitError(argumentLoc(func, arg))
                 << "moe-partition: expected dimension " << dim << " of '"
                 << name.getValue() << "' (" << type << ", the "
                 << (role == TpRole::Column ? "output" : "input")
                 << " features of a "
                 << (role == TpRole::Column ? "column" : "row")
                 << "-parallel linear) to be divisible by tp = " << sizes[kTp]
                 << ", found " << type.getDimSize(dim);
        d.split[dim] = {kTp};
      }
    } else if (func.getArgAttr(i, MoeDialect::kInputAttrName)) {
      if (type.getRank() >= 1 && !tokenAxes.empty()) {
        if (type.getDimSize(0) % size(tokenAxes) != 0)
          return emitError(argumentLoc(func, arg))
                 << "moe-partition: expected the batch size of input '"
                 << func.getArgAttrOfType<StringAttr>(
                            i, MoeDialect::kInputAttrName)
                        .getValue()
                 << "' to be divisible by the " << size(tokenAxes)
                 << " token shards (dp x ep = " << sizes[kDp] << " x "
                 << sizes[kEp] << "), found " << type.getDimSize(0);
        d.split[0] = tokenAxes;
      }
    }
    dist[arg] = d;
  }
  // Optimizer states follow their parameter, or its ZeRO shard.
  for (BlockArgument arg : body.getArguments()) {
    unsigned i = arg.getArgNumber();
    auto of =
        func.getArgAttrOfType<StringAttr>(i, MoeDialect::kStateOfAttrName);
    if (!of)
      continue;
    Value param = paramByName.lookup(of.getValue());
    if (!param)
      return emitError(func.getLoc())
             << "moe-partition: expected the optimizer state argument #" << i
             << " to belong to a parameter (moe.state_of), found '"
             << of.getValue() << "', which no argument's moe.param names";
    Dist d = dist[param];
    if (zero > 0) {
      auto g = group.find(param);
      Axes dataAxes = g != group.end() && g->second == ParamGroup::expert
                          ? live({kDp})
                          : tokenAxes;
      d = zeroShard(d, logical[param], dataAxes);
      zeroDist[param] = d;
    }
    dist[arg] = d;
  }
  // Local argument types and their sharding annotations, set all at once:
  // setting one argument's attribute rebuilds (and uniques) the array of
  // every argument's dictionary, quadratic in the argument count.
  SmallVector<Type> argTypes;
  SmallVector<DictionaryAttr> argAttrs;
  Builder b(func.getContext());
  for (BlockArgument arg : body.getArguments()) {
    const Dist &d = dist[arg];
    arg.setType(localType(func, logical[arg], d));
    argTypes.push_back(arg.getType());
    SmallVector<Attribute> dims;
    for (const Axes &axes : d.split)
      dims.push_back(b.getDenseI16ArrayAttr(axes));
    NamedAttrList attrs(func.getArgAttrDict(arg.getArgNumber()));
    attrs.set(MoeDialect::kShardingAttrName, b.getArrayAttr(dims));
    argAttrs.push_back(attrs.getDictionary(func.getContext()));
  }
  func.setAllArgAttrs(argAttrs);
  func.setType(FunctionType::get(func.getContext(), argTypes,
                                 func.getFunctionType().getResults()));
  return success(!hadError);
}

//===----------------------------------------------------------------------===//
// Op rules
//===----------------------------------------------------------------------===//

/// `d` with its last dimension unsplit (and no pending reduction).
Dist withoutLast(Dist d) {
  d = d.full();
  if (!d.split.empty())
    d.split.back().clear();
  return d;
}

void MoePartition::partitionLinear(LinearOp op) {
  Value x = op.getInput();
  TpRole role =
      op.getTransposeWeight() ? TpRole::None : tpRole.lookup(op.getWeight());
  Dist xd = withoutLast(distOf(x));
  if (role == TpRole::Row) {
    xd.split.back() = {kTp};
    op.getInputMutable().assign(reshard(x, xd));
    Dist out = withoutLast(xd).withPartial({kTp});
    // y = all_reduce(x_local W_local) + b: drop the bias from the linear.
    Value bias = op.getBias();
    if (bias)
      op.getBiasMutable().clear();
    logical[op.getResult()] = logicalOf(op.getResult());
    setDist(op.getResult(), out, op);
    Value reduced = reshard(op.getResult(), out.full());
    Value result = reduced;
    if (bias) {
      OpBuilder b(op->getContext());
      b.setInsertionPointAfterValue(reduced);
      result = BiasAddOp::create(b, op.getLoc(), reduced, bias);
      logical[result] = logicalOf(op.getResult());
      dist[result] = out.full();
    }
    op.getResult().replaceAllUsesExcept(result, reduced.getDefiningOp());
    return;
  }
  op.getInputMutable().assign(reshard(x, xd));
  Dist out = xd;
  if (role == TpRole::Column)
    out.split.back() = {kTp};
  setDist(op.getResult(), out, op);
}

void MoePartition::partitionCrossEntropy(CrossEntropyOp op) {
  Dist ld = withoutLast(distOf(op.getLogits()));
  op.getLogitsMutable().assign(reshard(op.getLogits(), ld));
  Axes shards = ld.leadingAxes();
  setDist(op.getLoss(), Dist::replicated(0), op);
  if (shards.empty())
    return;
  // loss_r = mean_r * n_r / n, so that sum_r loss_r is the batch mean.
  OpBuilder b(op->getContext());
  b.setInsertionPoint(op);
  Location loc = op.getLoc();
  Value count = TokenCountOp::create(b, loc, op.getLoss().getType(),
                                     op.getLabels(), op.getIgnoreIndexAttr());
  Value total = shard::AllReduceOp::create(
      b, loc, count.getType(), kGridName,
      SmallVector<int16_t>(shards.begin(), shards.end()), count,
      shard::ReductionKind::Sum);
  Value weight = arith::DivFOp::create(b, loc, count, total);
  for (Value v : {count, total, weight}) {
    logical[v] = cast<RankedTensorType>(v.getType());
    dist[v] = Dist::replicated(0);
  }
  b.setInsertionPointAfter(op);
  Value weighted = arith::MulFOp::create(b, loc, op.getLoss(), weight);
  op.getLoss().replaceAllUsesExcept(weighted, weighted.getDefiningOp());
  logical[weighted] = cast<RankedTensorType>(weighted.getType());
  dist[weighted] = Dist::replicated(0).withPartial(shards);
  lossWeight[op.getLogits()] = weight;
}

void MoePartition::partitionAdamW(AdamWOp op) {
  Value param = op.getParam();
  Dist pd = distOf(param);
  Dist z = zeroDist.count(param) ? zeroDist[param] : pd;
  bool sharded = !(z == pd);
  Value grad = op.getGrad();
  op.getParamMutable().assign(reshard(param, z));
  op.getGradMutable().assign(
      reshard(grad, z, /*allowReduceScatter=*/zero >= 2));
  op.getExpAvgMutable().assign(reshard(op.getExpAvg(), z));
  op.getExpAvgSqMutable().assign(reshard(op.getExpAvgSq(), z));
  op.getLrMutable().assign(reshard(op.getLr(), Dist::replicated(0)));
  op.getGradScaleMutable().assign(
      reshard(op.getGradScale(), Dist::replicated(0)));
  setDist(op.getNewParam(), z, op);
  setDist(op.getNewExpAvg(), z, op);
  setDist(op.getNewExpAvgSq(), z, op);
  (void)sharded;
}

void MoePartition::partitionReturn(func::ReturnOp op) {
  Builder b(op->getContext());
  // The parameter arguments by name, for the updated parameters below.
  llvm::DenseMap<StringAttr, BlockArgument> paramArgs;
  for (BlockArgument arg : func.getArguments())
    if (auto name = func.getArgAttrOfType<StringAttr>(
            arg.getArgNumber(), MoeDialect::kParamAttrName))
      paramArgs.try_emplace(name, arg);
  SmallVector<Type> resultTypes;
  SmallVector<DictionaryAttr> resultAttrs;
  for (OpOperand &operand : op->getOpOperands()) {
    Value v = operand.get();
    unsigned index = operand.getOperandNumber();
    Dist target = distOf(v).full();
    // Updated parameters are returned whole (as the parameter is held).
    if (auto name = func.getResultAttrOfType<StringAttr>(
            index, MoeDialect::kParamAttrName)) {
      auto role = func.getResultAttrOfType<StringAttr>(
          index, MoeDialect::kRoleAttrName);
      if (role && role.getValue() == "new_param")
        if (auto it = paramArgs.find(name); it != paramArgs.end())
          target = dist[it->second];
    }
    Value local = reshard(v, target);
    operand.set(local);
    resultTypes.push_back(local.getType());
    SmallVector<Attribute> dims;
    for (const Axes &axes : target.split)
      dims.push_back(b.getDenseI16ArrayAttr(axes));
    NamedAttrList attrs(func.getResultAttrDict(index));
    attrs.set(MoeDialect::kShardingAttrName, b.getArrayAttr(dims));
    resultAttrs.push_back(attrs.getDictionary(func.getContext()));
  }
  func.setAllResultAttrs(resultAttrs);
  func.setType(FunctionType::get(
      func.getContext(), func.getFunctionType().getInputs(), resultTypes));
}

void MoePartition::partitionOp(Operation *op) {
  Builder b(op->getContext());
  auto set = [&](Value v, const Dist &d) { setDist(v, d, op); };
  auto use = [&](OpOperand &operand, const Dist &d) {
    operand.set(reshard(operand.get(), d));
  };
  auto shardAxesAttr = [&](const Dist &d) {
    if (!d.split.empty() && !d.split[0].empty())
      op->setAttr("shard_axes", b.getDenseI64ArrayAttr(SmallVector<int64_t>(
                                    d.split[0].begin(), d.split[0].end())));
  };
  auto replicatedOperands = [&](unsigned from) {
    for (unsigned i = from; i < op->getNumOperands(); ++i)
      use(op->getOpOperand(i),
          Dist::replicated(logicalOf(op->getOperand(i)).getRank()));
  };

  llvm::TypeSwitch<Operation *>(op)
      .Case<arith::ConstantOp>([&](auto c) {
        set(c.getResult(),
            Dist::replicated(logicalOf(c.getResult()).getRank()));
      })
      .Case<PaddingMaskOp>([&](PaddingMaskOp m) {
        set(m.getResult(), distOf(m.getTokens()).full());
      })
      .Case<EmbeddingOp>([&](EmbeddingOp e) {
        replicatedOperands(1);
        Dist d = distOf(e.getTokens()).full();
        d.split.push_back({});
        set(e.getResult(), d);
      })
      .Case<DropoutOp>([&](DropoutOp d) {
        Dist in = distOf(d.getInput()).full();
        for (size_t i = 1; i < in.split.size(); ++i)
          in.split[i].clear();
        use(d.getInputMutable(), in);
        shardAxesAttr(in);
        set(d.getResult(), in);
      })
      .Case<LayerNormOp>([&](LayerNormOp l) {
        Dist in = withoutLast(distOf(l.getInput()));
        use(l.getInputMutable(), in);
        replicatedOperands(1);
        set(l.getResult(), in);
      })
      .Case<LayerNormGradOp>([&](LayerNormGradOp l) {
        Dist in = withoutLast(distOf(l.getInput()));
        use(l.getInputMutable(), in);
        use(l.getResultGradMutable(), in);
        use(l.getScaleMutable(), Dist::replicated(1));
        set(l.getInputGrad(), in);
        set(l.getScaleGrad(),
            Dist::replicated(1).withPartial(in.leadingAxes()));
        set(l.getBiasGrad(), Dist::replicated(1).withPartial(in.leadingAxes()));
      })
      .Case<LinearOp>([&](LinearOp l) { partitionLinear(l); })
      .Case<LinearGradOp>([&](LinearGradOp l) {
        TpRole role = l.getTransposeWeight() ? TpRole::None
                                             : tpRole.lookup(l.getWeight());
        Dist x = withoutLast(distOf(l.getInput()));
        Dist y = x;
        if (role == TpRole::Column)
          y.split.back() = {kTp};
        if (role == TpRole::Row)
          x.split.back() = {kTp};
        use(l.getInputMutable(), x);
        use(l.getResultGradMutable(), y);
        Dist w = distOf(l.getWeight()).full();
        set(l.getInputGrad(),
            role == TpRole::Column ? x.withPartial({kTp}) : x);
        set(l.getWeightGrad(), w.withPartial(x.leadingAxes()));
      })
      .Case<BiasGradOp>([&](BiasGradOp g) {
        Dist y = distOf(g.getResultGrad()).full();
        use(g.getResultGradMutable(), y);
        Dist d = Dist::replicated(1);
        d.split[0] = y.split.back();
        set(g.getBiasGrad(), d.withPartial(y.leadingAxes()));
      })
      .Case<ActivationOp>([&](ActivationOp a) {
        Dist in = distOf(a.getInput()).full();
        use(a.getInputMutable(), in);
        set(a.getResult(), in);
      })
      .Case<ActivationGradOp>([&](ActivationGradOp a) {
        Dist in = distOf(a.getInput()).full();
        use(a.getResultGradMutable(), in);
        set(a.getInputGrad(), in);
      })
      .Case<AddOp>([&](AddOp a) {
        Dist l = distOf(a.getLhs()), r = distOf(a.getRhs());
        Dist d = l == r ? l : l.full();
        use(a.getLhsMutable(), d);
        use(a.getRhsMutable(), d);
        set(a.getResult(), d);
      })
      .Case<AttentionOp>([&](AttentionOp a) {
        Dist q = distOf(a.getQuery()).full();
        bool heads = !q.split.back().empty();
        use(a.getQueryMutable(), q);
        use(a.getKeyMutable(), q);
        use(a.getValueMutable(), q);
        if (heads)
          a.setNumHeads(a.getNumHeads() / sizes[kTp]);
        set(a.getResult(), q);
      })
      .Case<AttentionGradOp>([&](AttentionGradOp a) {
        Dist q = distOf(a.getQuery()).full();
        bool heads = !q.split.back().empty();
        use(a.getResultGradMutable(), q);
        if (heads)
          a.setNumHeads(a.getNumHeads() / sizes[kTp]);
        set(a.getQueryGrad(), q);
        set(a.getKeyGrad(), distOf(a.getKey()));
        set(a.getValueGrad(), distOf(a.getValue()));
      })
      .Case<CrossEntropyOp>([&](CrossEntropyOp c) { partitionCrossEntropy(c); })
      .Case<CrossEntropyGradOp>([&](CrossEntropyGradOp c) {
        Dist ld = withoutLast(distOf(c.getLogits()));
        use(c.getLogitsMutable(), ld);
        use(c.getLossGradMutable(), Dist::replicated(0));
        if (Value weight = lossWeight.lookup(c.getLogits()))
          c.getLossGradMutable().assign(scaleBy(c, c.getLossGrad(), weight));
        set(c.getLogitsGrad(), ld);
      })
      .Case<EmbeddingGradOp>([&](EmbeddingGradOp e) {
        Dist y = withoutLast(distOf(e.getResultGrad()));
        use(e.getResultGradMutable(), y);
        set(e.getTableGrad(), Dist::replicated(2).withPartial(y.leadingAxes()));
      })
      .Case<PositionGradOp>([&](PositionGradOp p) {
        Dist y = withoutLast(distOf(p.getResultGrad()));
        use(p.getResultGradMutable(), y);
        int64_t rank = logicalOf(p.getPositionsGrad()).getRank();
        set(p.getPositionsGrad(),
            Dist::replicated(rank).withPartial(y.split.front()));
      })
      .Case<GateOp>([&](GateOp g) {
        Dist x = withoutLast(distOf(g.getInput()));
        use(g.getInputMutable(), x);
        use(g.getWeightMutable(), Dist::replicated(2));
        Axes shards = x.leadingAxes();
        int64_t n = size(shards);
        g.setConfigAttr(localGating(g, g.getConfig(), n));
        g.setCapacity(g.getCapacity() / n);
        shardAxesAttr(x);
        Dist routes = x; // [..., k]
        set(g.getIndices(), routes);
        set(g.getLocations(), routes);
        set(g.getWeights(), routes);
        set(g.getExpertCounts(), Dist::replicated(1).withPartial(shards));
        set(g.getAuxLoss(), Dist::replicated(0).withPartial(shards, true));
      })
      .Case<GateGradOp>([&](GateGradOp g) {
        Dist x = withoutLast(distOf(g.getInput()));
        use(g.getInputMutable(), x);
        use(g.getWeightMutable(), Dist::replicated(2));
        use(g.getWeightsGradMutable(), distOf(g.getIndices()));
        Axes shards = x.leadingAxes();
        int64_t n = size(shards);
        use(g.getAuxLossGradMutable(), Dist::replicated(0));
        if (n > 1)
          g.getAuxLossGradMutable().assign(scaleBy(
              g, g.getAuxLossGrad(), constantScalar(g, 1.0 / double(n))));
        g.setConfigAttr(localGating(g, g.getConfig(), n));
        g.setCapacity(g.getCapacity() / n);
        shardAxesAttr(x);
        set(g.getInputGrad(), x);
        set(g.getWeightGrad(), Dist::replicated(2).withPartial(shards));
      })
      .Case<DispatchOp>([&](DispatchOp d) {
        Dist x = withoutLast(distOf(d.getInput()));
        use(d.getInputMutable(), x);
        Dist buffer = Dist::replicated(3);
        buffer.split[1] = x.leadingAxes();
        set(d.getResult(), buffer);
      })
      .Case<DispatchGradOp>([&](DispatchGradOp d) {
        Dist routes = distOf(d.getIndices());
        Dist buffer = Dist::replicated(3);
        buffer.split[1] = routes.leadingAxes();
        use(d.getResultGradMutable(), buffer);
        Dist x = routes;
        x.split.back().clear();
        set(d.getInputGrad(), x);
      })
      .Case<ExpertFfnOp>([&](ExpertFfnOp e) {
        Dist in = expertDist(distOf(e.getInput()), 3);
        use(e.getInputMutable(), in);
        set(e.getResult(), in);
      })
      .Case<ExpertFfnGradOp>([&](ExpertFfnGradOp e) {
        Dist in = expertDist(distOf(e.getInput()), 3);
        use(e.getInputMutable(), in);
        use(e.getResultGradMutable(), in);
        Axes slots = in.split[1];
        set(e.getInputGrad(), in);
        for (Value g :
             {e.getW1Grad(), e.getB1Grad(), e.getW2Grad(), e.getB2Grad()}) {
          Dist d = Dist::replicated(logicalOf(g).getRank());
          if (sizes[kEp] > 1)
            d.split[0] = {kEp};
          set(g, d.withPartial(slots));
        }
      })
      .Case<CombineOp>([&](CombineOp c) {
        Dist routes = distOf(c.getIndices());
        Dist buffer = Dist::replicated(3);
        buffer.split[1] = routes.leadingAxes();
        use(c.getInputMutable(), buffer);
        Dist y = routes;
        y.split.back().clear();
        set(c.getResult(), y);
      })
      .Case<CombineGradOp>([&](CombineGradOp c) {
        Dist routes = distOf(c.getIndices());
        Dist buffer = Dist::replicated(3);
        buffer.split[1] = routes.leadingAxes();
        Dist y = routes;
        y.split.back().clear();
        use(c.getResultGradMutable(), y);
        use(c.getInputMutable(), buffer);
        set(c.getInputGrad(), buffer);
        set(c.getWeightsGrad(), routes);
      })
      .Case<SumSquaresOp>([&](SumSquaresOp s) {
        Dist g = distOf(s.getInput()).full();
        // ZeRO-2: the norm comes from the reduce-scattered shards.
        if (auto it = zeroGradDist.find(s.getInput());
            zero >= 2 && it != zeroGradDist.end())
          g = it->second;
        use(s.getInputMutable(), g);
        set(s.getResult(), Dist::replicated(0).withPartial(g.allAxes()));
      })
      .Case<ClipByGlobalNormOp>([&](ClipByGlobalNormOp c) {
        use(c.getSumSquaresMutable(), Dist::replicated(0));
        set(c.getNorm(), Dist::replicated(0));
        set(c.getScale(), Dist::replicated(0));
      })
      .Case<LrScheduleOp>(
          [&](LrScheduleOp l) { set(l.getLr(), Dist::replicated(0)); })
      .Case<AdamWOp>([&](AdamWOp a) { partitionAdamW(a); })
      .Case<func::ReturnOp>([&](func::ReturnOp r) { partitionReturn(r); })
      .Default([&](Operation *other) {
        error(other) << "expected an op with a partitioning rule (moe ops, "
                        "arith.constant), found '"
                     << other->getName() << "'";
      });
}

void MoePartition::runOnOperation() {
  ModuleOp module = getOperation();
  func = module.lookupSymbol<func::FuncOp>(functionName);
  if (!func) {
    emitError(module.getLoc()) << "moe-partition: expected a function @"
                       << static_cast<std::string>(functionName)
                       << " to partition (run --moe-training-pipeline "
                          "first), found none";
    return signalPassFailure();
  }
  if (module.lookupSymbol("decode_step")) {
    emitError(module.getLoc())
        << "moe-partition: the module has @decode_step (moe-build-decoder): "
           "incremental decoding runs in one process; compile it without a "
           "grid";
    return signalPassFailure();
  }
  if (dp < 1 || ep < 1 || tp < 1) {
    emitError(module.getLoc()) << "moe-partition: expected grid sizes >= 1, found dp="
                       << static_cast<int64_t>(dp)
                       << " ep=" << static_cast<int64_t>(ep)
                       << " tp=" << static_cast<int64_t>(tp);
    return signalPassFailure();
  }
  if (zero < 0 || zero > 2) {
    emitError(module.getLoc()) << "moe-partition: expected zero = 0, 1 or 2, found "
                       << static_cast<int64_t>(zero);
    return signalPassFailure();
  }
  if (zero > 0 && dp * ep == 1) {
    emitError(module.getLoc())
        << "moe-partition: zero=" << static_cast<int64_t>(zero)
        << " partitions optimizer state over the data-parallel ranks "
           "(dp x ep), but this grid has none (dp=1, ep=1"
        << (tp > 1 ? ", only tensor parallelism)" : ")")
        << "; use zero=0 or a grid with dp or ep > 1";
    return signalPassFailure();
  }
  if (module.lookupSymbol(kGridName)) {
    emitError(module.getLoc()) << "moe-partition: expected a module that is not "
                          "partitioned yet, found a symbol @"
                       << kGridName << " (moe-partition already ran)";
    return signalPassFailure();
  }
  sizes[kDp] = dp;
  sizes[kEp] = ep;
  sizes[kTp] = tp;
  tokenAxes = live({kDp, kEp});

  // Logical types of every value, before anything changes.
  func.walk([&](Operation *op) {
    for (Value v : op->getResults())
      if (auto t = dyn_cast<RankedTensorType>(v.getType()))
        logical[v] = t;
  });
  findTensorParallelLinears();
  if (hadError)
    return signalPassFailure();
  if (failed(assignArguments()))
    return signalPassFailure();
  // ZeRO-2 gradient shards (the sum of squares reads them too).
  func.walk([&](AdamWOp update) {
    if (auto it = zeroDist.find(update.getParam()); it != zeroDist.end())
      zeroGradDist[update.getGrad()] = it->second;
  });

  SmallVector<Operation *> ops;
  for (Operation &op : func.getBody().front())
    ops.push_back(&op);
  for (Operation *op : ops) {
    currentOp = op;
    partitionOp(op);
    if (hadError)
      return signalPassFailure();
  }

  OpBuilder b(module.getBodyRegion());
  b.setInsertionPointToStart(module.getBody());
  shard::GridOp::create(b, module.getLoc(), kGridName,
                        ArrayRef<int64_t>{dp, ep, tp});
  module->setAttr("moe.zero_stage", b.getI64IntegerAttr(zero));
  if (overlap)
    module->setAttr(kOverlapCollectivesAttr, b.getUnitAttr());
}

} // namespace
