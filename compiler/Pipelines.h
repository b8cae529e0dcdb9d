//===- Pipelines.h - Pass pipelines of the moe compiler -------------------===//
#ifndef MOE_COMPILER_PIPELINES_H
#define MOE_COMPILER_PIPELINES_H

#include "passes/Passes.h"

#include "mlir/Pass/PassOptions.h"

namespace mlir {
class OpPassManager;
} // namespace mlir

namespace mlir::moe {

/// Options of `moe-training-pipeline`: what `@train_step` optimizes.
struct TrainingPipelineOptions
    : public PassPipelineOptions<TrainingPipelineOptions> {
  Option<double> auxLossCoef{
      *this, "aux-loss-coef",
      llvm::cl::desc("Weight of the load-balancing loss"),
      llvm::cl::init(0.01)};
  Option<double> learningRate{*this, "lr", llvm::cl::desc("Peak learning rate"),
                              llvm::cl::init(5.0e-4)};
  Option<int64_t> warmupSteps{*this, "warmup-steps",
                              llvm::cl::desc("Linear warmup steps"),
                              llvm::cl::init(4000)};
  Option<double> beta1{*this, "beta1", llvm::cl::desc("AdamW beta1"),
                       llvm::cl::init(0.9)};
  Option<double> beta2{*this, "beta2", llvm::cl::desc("AdamW beta2"),
                       llvm::cl::init(0.98)};
  Option<double> epsilon{*this, "epsilon", llvm::cl::desc("AdamW epsilon"),
                         llvm::cl::init(1.0e-8)};
  Option<double> weightDecay{*this, "weight-decay",
                             llvm::cl::desc("Decoupled weight decay"),
                             llvm::cl::init(0.0)};
  Option<double> clipNorm{*this, "clip-norm",
                          llvm::cl::desc("Global gradient norm bound (0: off)"),
                          llvm::cl::init(1.0)};
  Option<int64_t> dp{*this, "dp",
                     llvm::cl::desc("Data-parallel ranks (moe-partition)"),
                     llvm::cl::init(1)};
  Option<int64_t> ep{*this, "ep",
                     llvm::cl::desc("Expert-parallel ranks (moe-partition)"),
                     llvm::cl::init(1)};
  Option<int64_t> tp{*this, "tp",
                     llvm::cl::desc("Tensor-parallel ranks (moe-partition)"),
                     llvm::cl::init(1)};
  Option<int64_t> zero{*this, "zero",
                       llvm::cl::desc("ZeRO stage 0, 1 or 2 (moe-partition)"),
                       llvm::cl::init(0)};
  Option<double> bucketMb{
      *this, "bucket-mb",
      llvm::cl::desc("Reduce gradients in buckets of this many MiB, one "
                     "all-reduce per bucket (moe-bucket-gradients; 0: one "
                     "all-reduce per tensor)"),
      llvm::cl::init(0.0)};
  Option<ComputePrecision> precision{
      *this, "precision",
      llvm::cl::desc("Input precision of GEMMs, attention and experts "
                     "(moe-mixed-precision; fp16 adds dynamic loss scaling)"),
      llvm::cl::init(ComputePrecision::fp32),
      llvm::cl::values(
          clEnumValN(ComputePrecision::fp32, "fp32", "full precision"),
          clEnumValN(ComputePrecision::bf16, "bf16", "bfloat16 inputs"),
          clEnumValN(ComputePrecision::fp16, "fp16",
                     "IEEE half inputs with dynamic loss scaling"))};
  Option<bool> overlap{
      *this, "overlap",
      llvm::cl::desc("With a grid: plan memory so that collectives can run "
                     "beside the compute (moe-partition overlap=true: a "
                     "larger arena)"),
      llvm::cl::init(false)};
  Option<OffloadMode> offload{
      *this, "offload",
      llvm::cl::desc("Host memory for the optimizer (moe-offload): the AdamW "
                     "moments, or with params also the fp32 master weights, "
                     "leaving 16-bit parameters in `precision` on the "
                     "device (E+Z-Offload)"),
      llvm::cl::init(OffloadMode::none),
      llvm::cl::values(
          clEnumValN(OffloadMode::none, "none", "everything on the device"),
          clEnumValN(OffloadMode::optimizer, "optimizer",
                     "AdamW moments in host memory"),
          clEnumValN(OffloadMode::params, "params",
                     "moments and fp32 master weights in host memory, "
                     "16-bit parameters on the device"))};
  Option<bool> decoder{
      *this, "decoder",
      llvm::cl::desc("Also build @encode and @decode_step, incremental "
                     "decoding of an encoder-decoder (moe-build-decoder; "
                     "one process only)"),
      llvm::cl::init(false)};
  Option<int64_t> decodeBatch{
      *this, "decode-batch",
      llvm::cl::desc("Sequences @decode_step decodes at once (0: the "
                     "training batch)"),
      llvm::cl::init(0)};
};

/// [incremental decoding functions (with `decoder`)] ->
/// expand composite MoE layers -> differentiate -> AdamW train step ->
/// canonicalize + CSE -> partition (when a grid option or zero is set) ->
/// offload (when `offload` is not none) -> gradient buckets (when
/// partitioned and `bucket-mb` > 0) -> gradient streaming (with offload) ->
/// mixed precision (when `precision` is not fp32).
void buildTrainingPipeline(OpPassManager &pm,
                           const TrainingPipelineOptions &options);

/// Registers the pipelines with the global registry (for moe-opt).
void registerPipelines();

} // namespace mlir::moe

#endif // MOE_COMPILER_PIPELINES_H
