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
// Candidates are the f32 all-reduces of the step, in program order; a bucket
// collects all-reduces over the same grid axes with the same reduction
// until it holds `bucket-mb` MiB, and is reduced where its last member was;
// a tensor of at least `bucket-mb` MiB keeps its own all-reduce (packing it
// would only copy it).
// Moving a reduction later is only valid while nothing has used an earlier
// member's result yet: a member whose result is used before the next
// candidate closes the bucket. This keeps the all-reduces of the forward
// pass (tensor-parallel partial sums, used at once) as they are, and
// buckets the gradients, which are consumed by the optimizer at the end of
// the step. Element-wise, every rank sums the same values, so the result
// equals the per-tensor reductions up to the summation order of the
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

namespace mlir::moe {
#define GEN_PASS_DEF_MOEBUCKETGRADIENTS
#include "passes/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

constexpr size_t kMaxMembers = 4096;

struct Bucket {
  SmallVector<shard::AllReduceOp> members;
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

    // Open buckets by (attributes of the all-reduce: grid, axes, reduction;
    // element type).
    std::map<std::pair<const void *, const void *>, Bucket> open;
    for (Operation &op : llvm::make_early_inc_range(body)) {
      auto reduce = dyn_cast<shard::AllReduceOp>(&op);
      if (!reduce)
        continue;
      auto input = dyn_cast<RankedTensorType>(reduce.getInput().getType());
      auto output = dyn_cast<RankedTensorType>(reduce.getResult().getType());
      if (!input || !output || input != output || !input.hasStaticShape() ||
          !input.getElementType().isF32())
        continue;
      auto key = std::make_pair(op.getAttrDictionary().getAsOpaquePointer(),
                                input.getElementType().getAsOpaquePointer());
      Bucket &bucket = open[key];
      const int64_t here = position[&op];
      if (!bucket.members.empty() && here >= bucket.firstUse)
        flush(bucket);
      // A tensor that fills a bucket by itself gains nothing from packing
      // and would be copied twice: it keeps its own all-reduce.
      const int64_t bytes = input.getNumElements() * 4;
      if (static_cast<double>(bytes) >= limit)
        continue;
      bucket.members.push_back(reduce);
      bucket.bytes += bytes;
      for (Operation *user : reduce.getResult().getUsers())
        bucket.firstUse = std::min(bucket.firstUse, position.lookup(user));
      // The plan's pack instruction takes at most 65535 operands.
      if (static_cast<double>(bucket.bytes) >= limit ||
          bucket.members.size() >= kMaxMembers)
        flush(bucket);
    }
    for (auto &[key, bucket] : open)
      flush(bucket);
  }

  /// Replaces the bucket's all-reduces (two or more) by pack, one
  /// all-reduce and unpacks, placed where the last member was.
  void flush(Bucket &bucket) {
    if (bucket.members.size() >= 2) {
      shard::AllReduceOp last = bucket.members.back();
      OpBuilder builder(last);
      builder.setInsertionPointAfter(last);
      SmallVector<Value> inputs;
      int64_t elements = 0;
      for (shard::AllReduceOp member : bucket.members) {
        inputs.push_back(member.getInput());
        elements += cast<RankedTensorType>(member.getInput().getType())
                        .getNumElements();
      }
      Location loc = last.getLoc();
      auto flatType = RankedTensorType::get({elements}, builder.getF32Type());
      Value flat = PackOp::create(builder, loc, flatType, inputs);
      Operation *reduced = builder.clone(*last.getOperation());
      reduced->setOperand(0, flat);
      reduced->getResult(0).setType(flatType);
      int64_t offset = 0;
      for (shard::AllReduceOp member : bucket.members) {
        auto type = cast<RankedTensorType>(member.getResult().getType());
        Value piece = UnpackOp::create(builder, member.getLoc(), type,
                                       reduced->getResult(0),
                                       builder.getI64IntegerAttr(offset));
        offset += type.getNumElements();
        member.getResult().replaceAllUsesWith(piece);
      }
      for (shard::AllReduceOp member : bucket.members)
        member.erase();
    }
    bucket = Bucket();
  }
};

} // namespace
