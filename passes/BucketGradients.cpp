//===- BucketGradients.cpp - One all-reduce per bucket of gradients -------===//
//
// A partitioned step reduces every gradient with its own all-reduce: a deep
// model makes hundreds of collective calls per step, each paying the
// collective's fixed latency (launch, synchronization, the first hop). Data
// parallel trainers (PyTorch DDP, DeepSpeed, Megatron-Core) reduce gradients
// in buckets instead; so does this pass:
//
//   %flat = moe.pack %g0, %g1, ... : ... -> tensor<Nxf32>
//   %sum  = shard.all_reduce %flat on @grid grid_axes = [...]
//   %r0   = moe.unpack %sum {offset = 0}  : tensor<Nxf32> -> type(%g0)
//   %r1   = moe.unpack %sum {offset = n0} : tensor<Nxf32> -> type(%g1)
//
// Candidates are the f32 all-reduces of the step, in program order (and
// the ZeRO reduce-scatters and all-gathers along dimension 0; with
// E+Z-Offload's 16-bit device parameters, the bf16/f16 all-gathers of the
// updated shards, which move data without arithmetic); a bucket collects
// collectives of one kind and element type over the same grid axes with
// the same reduction until it holds `bucket-mb` MiB, and is reduced where its
// last member was; a tensor of at least `bucket-mb` MiB keeps its own
// all-reduce (packing it would only copy it). Moving a reduction later is only
// valid while nothing has used an earlier member's result yet: a member whose
// result is used before the next candidate closes the bucket. This keeps the
// all-reduces of the forward pass (tensor-parallel partial sums, used at once)
// as they are, and buckets the gradients, which are consumed by the optimizer
// at the end of the step. Element-wise, every rank sums the same values, so the
// result equals the per-tensor reductions up to the summation order of the
// collective's algorithm.
//
//===----------------------------------------------------------------------===//
#include "dialects/Moe/MoeOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/Builders.h"

#include "llvm/ADT/DenseMap.h"

#include <limits>
#include <map>
#include <optional>
#include <tuple>

namespace mlir::moe {
#define GEN_PASS_DEF_MOEBUCKETGRADIENTS
#include "passes/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

constexpr size_t kMaxMembers = 4096;

/// A collective the pass can bucket: its input, its result, and how many
/// ranks split dimension 0 between them (reduce-scatter: the input's rows
/// are N shards; all-gather: the result's).
struct Candidate {
  Operation *op;
  enum class Kind { AllReduce, ReduceScatter, AllGather } kind;
  int64_t ranks = 1;
  int64_t fullBytes = 0; // of the unsharded tensor
};

/// The collectives the pass buckets: f32 all-reduce (input and result of
/// one static type), reduce-scatter and all-gather along dimension 0 (the
/// ZeRO gradient shards and parameter gathers), and bf16/f16 all-gathers
/// along dimension 0 (the 16-bit device copies of offload=params).
std::optional<Candidate> candidateOf(Operation *op) {
  const bool gather = isa<shard::AllGatherOp>(op);
  auto staticF32 = [gather](Value v) -> RankedTensorType {
    auto type = dyn_cast<RankedTensorType>(v.getType());
    if (!type || !type.hasStaticShape())
      return {};
    Type element = type.getElementType();
    if (!element.isF32() && !(gather && (element.isBF16() || element.isF16())))
      return {};
    return type;
  };
  auto bytesOf = [](RankedTensorType type) {
    return type.getNumElements() * type.getElementTypeBitWidth() / 8;
  };
  if (auto reduce = dyn_cast<shard::AllReduceOp>(op)) {
    RankedTensorType in = staticF32(reduce.getInput());
    if (!in || in != staticF32(reduce.getResult()))
      return std::nullopt;
    return Candidate{op, Candidate::Kind::AllReduce, 1, bytesOf(in)};
  }
  // How many equal parts `whole` splits into along dimension 0 to give
  // `part` (the other dimensions equal), if it does.
  auto partsAlongFirst = [&](Value wholeValue,
                             Value partValue) -> std::optional<int64_t> {
    RankedTensorType whole = staticF32(wholeValue), part = staticF32(partValue);
    if (!whole || !part || whole.getRank() < 1 ||
        part.getRank() != whole.getRank() || part.getDimSize(0) == 0 ||
        whole.getDimSize(0) % part.getDimSize(0) != 0 ||
        whole.getShape().drop_front() != part.getShape().drop_front())
      return std::nullopt;
    return whole.getDimSize(0) / part.getDimSize(0);
  };
  if (auto scatter = dyn_cast<shard::ReduceScatterOp>(op)) {
    std::optional<int64_t> parts =
        partsAlongFirst(scatter.getInput(), scatter.getResult());
    if (scatter.getScatterAxis() != 0 || !parts)
      return std::nullopt;
    return Candidate{op, Candidate::Kind::ReduceScatter, *parts,
                     bytesOf(staticF32(scatter.getInput()))};
  }
  if (auto gatherOp = dyn_cast<shard::AllGatherOp>(op)) {
    std::optional<int64_t> parts =
        partsAlongFirst(gatherOp.getResult(), gatherOp.getInput());
    if (gatherOp.getGatherAxis() != 0 || !parts)
      return std::nullopt;
    return Candidate{op, Candidate::Kind::AllGather, *parts,
                     bytesOf(staticF32(gatherOp.getResult()))};
  }
  return std::nullopt;
}

struct Bucket {
  SmallVector<Candidate> members;
  int64_t bytes = 0;
  // Position of the earliest use of a member's result.
  int64_t firstUse = std::numeric_limits<int64_t>::max();
};

struct MoeBucketGradients
    : mlir::moe::impl::MoeBucketGradientsBase<MoeBucketGradients> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto func = module.lookupSymbol<func::FuncOp>(functionName);
    if (!func) {
      module.emitError() << "moe-bucket-gradients: no function @"
                         << functionName;
      return signalPassFailure();
    }
    if (!(bucketMb > 0) || bucketMb > 1024 * 1024) {
      func.emitError() << "moe-bucket-gradients: bucket-mb must be in (0, "
                          "1048576] MiB, found "
                       << bucketMb;
      return signalPassFailure();
    }
    if (!func.getBody().hasOneBlock())
      return; // Nothing partitioned is structured; leave it alone.
    const double limit = bucketMb * 1024.0 * 1024.0;

    Block &body = func.getBody().front();
    llvm::DenseMap<Operation *, int64_t> position;
    int64_t index = 0;
    for (Operation &op : body)
      position[&op] = index++;

    // Open buckets by (op name, its attributes: grid, axes, reduction or
    // split axis; ranks that split dimension 0; element type).
    std::map<std::tuple<const void *, const void *, int64_t, const void *>,
             Bucket>
        open;
    for (Operation &op : llvm::make_early_inc_range(body)) {
      std::optional<Candidate> candidate = candidateOf(&op);
      if (!candidate)
        continue;
      auto key = std::make_tuple(
          op.getName().getAsOpaquePointer(),
          op.getAttrDictionary().getAsOpaquePointer(), candidate->ranks,
          cast<RankedTensorType>(op.getResult(0).getType())
              .getElementType()
              .getAsOpaquePointer());
      Bucket &bucket = open[key];
      const int64_t here = position[&op];
      if (!bucket.members.empty() && here >= bucket.firstUse)
        flush(bucket);
      // A tensor that fills a bucket by itself gains nothing from packing
      // and would be copied twice: it keeps its own collective.
      if (static_cast<double>(candidate->fullBytes) >= limit)
        continue;
      bucket.members.push_back(*candidate);
      bucket.bytes += candidate->fullBytes;
      for (Operation *user : op.getResult(0).getUsers())
        bucket.firstUse = std::min(bucket.firstUse, position.lookup(user));
      // The plan's pack instruction takes at most 65535 operands.
      if (static_cast<double>(bucket.bytes) >= limit ||
          bucket.members.size() >= kMaxMembers)
        flush(bucket);
    }
    for (auto &[key, bucket] : open)
      flush(bucket);
  }

  /// Replaces the bucket's collectives (two or more) by pack, one
  /// collective and unpacks, placed where the last member was.
  ///   all-reduce:     pack, all-reduce, unpack.
  ///   reduce-scatter: pack in N rows (row r: part r of every gradient),
  ///                   reduce-scatter (rank r keeps row r: its shard of
  ///                   every gradient), unpack each shard.
  ///   all-gather:     pack the shards, all-gather (row r: rank r's
  ///                   shards), unpack each parameter from the N rows.
  void flush(Bucket &bucket) {
    if (bucket.members.size() >= 2) {
      Operation *last = bucket.members.back().op;
      const Candidate::Kind kind = bucket.members.back().kind;
      const int64_t ranks = bucket.members.back().ranks;
      OpBuilder builder(last);
      builder.setInsertionPointAfter(last);
      SmallVector<Value> inputs;
      int64_t inElements = 0, outElements = 0;
      for (const Candidate &member : bucket.members) {
        inputs.push_back(member.op->getOperand(0));
        inElements += cast<RankedTensorType>(member.op->getOperand(0).getType())
                          .getNumElements();
        outElements += cast<RankedTensorType>(member.op->getResult(0).getType())
                           .getNumElements();
      }
      Location loc = last->getLoc();
      Type element =
          cast<RankedTensorType>(last->getResult(0).getType()).getElementType();
      auto inType = RankedTensorType::get({inElements}, element);
      auto outType = RankedTensorType::get({outElements}, element);
      const int64_t packChunks =
          kind == Candidate::Kind::ReduceScatter ? ranks : 1;
      const int64_t unpackChunks =
          kind == Candidate::Kind::AllGather ? ranks : 1;
      Value flat = PackOp::create(builder, loc, inType, inputs,
                                  builder.getI64IntegerAttr(packChunks));
      Operation *collective = builder.clone(*last);
      collective->setOperand(0, flat);
      collective->getResult(0).setType(outType);
      // Offsets count elements within one row of the collective's result.
      int64_t offset = 0;
      for (const Candidate &member : bucket.members) {
        auto type = cast<RankedTensorType>(member.op->getResult(0).getType());
        Value piece = UnpackOp::create(builder, member.op->getLoc(), type,
                                       collective->getResult(0),
                                       builder.getI64IntegerAttr(offset),
                                       builder.getI64IntegerAttr(unpackChunks));
        offset += type.getNumElements() / unpackChunks;
        member.op->getResult(0).replaceAllUsesWith(piece);
      }
      for (const Candidate &member : bucket.members)
        member.op->erase();
    }
    bucket = Bucket();
  }
};

} // namespace
