//===- ModelConfig.h - Short description of an encoder-decoder MoE model --===//
//
// A model configuration is a small JSON file (models/*.json) from which the
// generator builds the full `moe` dialect description of the model, so large
// models (e.g. Z-code M3, 36 layers) are never written by hand.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_COMPILER_MODELCONFIG_H
#define MOE_COMPILER_MODELCONFIG_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>

namespace mlir::moe {

/// Gating settings, mirroring `#moe.gating`.
struct GatingConfig {
  int64_t topK = 1;
  double capacityFactor = 1.0;
  double evalCapacityFactor = 1.0;
  int64_t minCapacity = 4;
  bool dropTokens = true;
  bool useRts = true;
  std::string noise = "none";
  double jitterEps = 0.01;
  bool secondSampling = true;
  /// Independently routed token groups per gate; divides the token count
  /// (batch_size * src_len, batch_size * tgt_len) of every MoE layer.
  int64_t groups = 1;
};

struct ModelConfig {
  std::string name = "model";
  // Vocabulary shared by source and target (multilingual SentencePiece).
  int64_t vocabSize = 0;
  int64_t padId = 0;
  int64_t modelDim = 0;
  int64_t numHeads = 0;
  int64_t ffnHidden = 0;
  int64_t encoderLayers = 0;
  int64_t decoderLayers = 0;
  std::string activation = "gelu";
  std::string position = "sinusoidal";
  int64_t maxPositions = 0; // learned positions only; 0 means the max length
  /// Initialization of the projection matrices (attention, FFN, experts,
  /// gate, untied output): "xavier" = Xavier-uniform (fairseq / Z-code /
  /// torch.nn.Transformer), "small_normal" = N(0, 0.02^2) (GPT-style).
  /// Embeddings are N(0, d_model^-1/2), biases 0, layer norms 1 / 0.
  std::string init = "xavier";
  bool tieEmbeddings = true;
  double dropout = 0.1;
  double labelSmoothing = 0.1;
  double layerNormEps = 1e-5;
  // Mixture of experts: FFN layer i is an MoE layer when
  // numExperts > 0 and i % moeEvery == moeOffset.
  int64_t numExperts = 0;
  int64_t moeEvery = 2;
  int64_t moeOffset = 1;
  int64_t expertHidden = 0; // 0 means ffnHidden
  GatingConfig gating;
  // Static batch shape of one training step (per data-parallel group).
  int64_t batchSize = 0;
  int64_t srcLen = 0;
  int64_t tgtLen = 0;

  bool isMoeLayer(int64_t layer) const {
    return numExperts > 0 && layer % moeEvery == moeOffset;
  }
  int64_t expertHiddenDim() const {
    return expertHidden > 0 ? expertHidden : ffnHidden;
  }
};

/// Parses and validates a JSON configuration. Errors name the offending key,
/// what was expected and what was found, prefixed with `sourceName`.
llvm::Expected<ModelConfig> parseModelConfig(llvm::StringRef json,
                                             llvm::StringRef sourceName);

/// Refuses JSON nested deeper than `maxDepth` objects/arrays and objects
/// with a duplicate key, naming line and column; a non-recursive scan run
/// before the parser, so arbitrarily deep input cannot overflow the stack.
/// Text that is not JSON passes (the parser reports it).
llvm::Error checkJsonStructure(llvm::StringRef text, llvm::StringRef sourceName,
                               unsigned maxDepth = 64);

/// Checks the cross-field rules (divisibility, ranges) of a configuration.
llvm::Error validateModelConfig(const ModelConfig &config,
                                llvm::StringRef sourceName);

} // namespace mlir::moe

#endif // MOE_COMPILER_MODELCONFIG_H
