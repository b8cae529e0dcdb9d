//===- Pipelines.cpp - Pass pipelines of the moe compiler -----------------===//
#include "compiler/Pipelines.h"

#include "passes/Passes.h"

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

void mlir::moe::buildTrainingPipeline(OpPassManager &pm,
                                      const TrainingPipelineOptions &options) {
  if (options.decoder) {
    MoeBuildDecoderOptions decoder;
    decoder.batch = options.decodeBatch;
    pm.addPass(createMoeBuildDecoder(decoder));
  }
  pm.addPass(createMoeExpandMoeLayer());
  MoeDifferentiateOptions differentiate;
  differentiate.auxLossCoef = options.auxLossCoef;
  pm.addPass(createMoeDifferentiate(differentiate));
  MoeBuildTrainStepOptions trainStep;
  trainStep.learningRate = options.learningRate;
  trainStep.warmupSteps = options.warmupSteps;
  trainStep.beta1 = options.beta1;
  trainStep.beta2 = options.beta2;
  trainStep.epsilon = options.epsilon;
  trainStep.weightDecay = options.weightDecay;
  trainStep.clipNorm = options.clipNorm;
  pm.addPass(createMoeBuildTrainStep(trainStep));
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  bool partitioned = options.dp != 1 || options.ep != 1 || options.tp != 1 ||
                     options.zero != 0;
  if (partitioned) {
    MoePartitionOptions partition;
    partition.dp = options.dp;
    partition.ep = options.ep;
    partition.tp = options.tp;
    partition.zero = options.zero;
    partition.overlap = options.overlap;
    pm.addPass(createMoePartition(partition));
  }
  if (options.offload != OffloadMode::none) {
    MoeOffloadOptions offload;
    offload.mode = options.offload;
    offload.deviceType = options.precision;
    pm.addPass(createMoeOffload(offload));
  }
  if (partitioned) {
    if (options.bucketMb != 0) { // the pass refuses negative or NaN sizes
      MoeBucketGradientsOptions buckets;
      buckets.bucketMb = options.bucketMb;
      pm.addPass(createMoeBucketGradients(buckets));
    }
  }
  // AdamW runs on the host: each gradient goes there once it is final.
  if (options.offload != OffloadMode::none)
    pm.addPass(createMoeStreamGradients());
  if (options.precision != ComputePrecision::fp32) {
    MoeMixedPrecisionOptions mixed;
    mixed.compute = options.precision;
    pm.addPass(createMoeMixedPrecision(mixed));
  }
}

void mlir::moe::registerPipelines() {
  PassPipelineRegistration<TrainingPipelineOptions>(
      "moe-training-pipeline",
      "Compile a model's @forward into @train_step (expand MoE layers, "
      "differentiate, AdamW with clipping and LR schedule; partitioned for "
      "a dp x ep x tp grid when one is given; bf16/fp16 GEMMs with "
      "precision=bf16|fp16)",
      buildTrainingPipeline);
}
