//===- ReferenceDump.cpp - Dense kernel outputs for an outside cross-check ===//
//
// moert-dense-reference-dump <dir>: runs every dense kernel (forward and
// backward) on fixed pseudo-random inputs and writes, for each tensor, a raw
// little-endian file <name>.bin plus <dir>/manifest.json with dtypes, shapes
// and the op parameters. check_against_torch.py recomputes the same
// quantities with PyTorch and compares. Dropout is left out: its mask comes
// from our own counter-based generator, which PyTorch does not share (its
// properties are covered by the unit tests).
//
//===----------------------------------------------------------------------===//
#include "moert/dense/Activation.h"
#include "moert/dense/Attention.h"
#include "moert/dense/CrossEntropy.h"
#include "moert/dense/Embedding.h"
#include "moert/dense/LayerNorm.h"
#include "moert/dense/Linear.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

using namespace moert::dense;

namespace {

class Dump {
public:
  explicit Dump(std::string dir) : dir_(std::move(dir)) {}

  template <typename T>
  bool write(const std::string &name, const std::vector<int64_t> &shape,
             const std::vector<T> &values, const char *dtype) {
    std::ofstream out(dir_ + "/" + name + ".bin", std::ios::binary);
    out.write(reinterpret_cast<const char *>(values.data()),
              static_cast<std::streamsize>(values.size() * sizeof(T)));
    if (!out) {
      failed_ = true;
      return false;
    }
    std::ostringstream entry;
    entry << "    \"" << name << "\": {\"dtype\": \"" << dtype
          << "\", \"shape\": [";
    for (size_t i = 0; i < shape.size(); ++i)
      entry << (i ? ", " : "") << shape[i];
    entry << "]}";
    tensors_.push_back(entry.str());
    return true;
  }
  bool f32(const std::string &name, const std::vector<int64_t> &shape,
           const std::vector<float> &values) {
    return write(name, shape, values, "float32");
  }
  bool i32(const std::string &name, const std::vector<int64_t> &shape,
           const std::vector<int32_t> &values) {
    return write(name, shape, values, "int32");
  }
  bool u8(const std::string &name, const std::vector<int64_t> &shape,
          const std::vector<uint8_t> &values) {
    return write(name, shape, values, "uint8");
  }
  void param(const std::string &name, double value) {
    std::ostringstream entry;
    entry.precision(17);
    entry << "    \"" << name << "\": " << value;
    params_.push_back(entry.str());
  }

  bool finish() {
    std::ofstream out(dir_ + "/manifest.json");
    out << "{\n  \"tensors\": {\n";
    for (size_t i = 0; i < tensors_.size(); ++i)
      out << tensors_[i] << (i + 1 < tensors_.size() ? ",\n" : "\n");
    out << "  },\n  \"params\": {\n";
    for (size_t i = 0; i < params_.size(); ++i)
      out << params_[i] << (i + 1 < params_.size() ? ",\n" : "\n");
    out << "  }\n}\n";
    return !failed_ && static_cast<bool>(out);
  }

private:
  std::string dir_;
  std::vector<std::string> tensors_, params_;
  bool failed_ = false;
};

std::mt19937 rng(2024);

std::vector<float> randomFloats(size_t count, float low = -1.0f,
                                float high = 1.0f) {
  std::uniform_real_distribution<float> dist(low, high);
  std::vector<float> values(count);
  for (float &v : values)
    v = dist(rng);
  return values;
}

void dumpLinear(Dump &dump, bool transposed) {
  const std::string p = transposed ? "linear_t." : "linear.";
  const LinearShape shape{12, 5, 6, transposed}; // input [3, 4, 5]
  auto x = randomFloats(60), w = randomFloats(30), b = randomFloats(6),
       dy = randomFloats(72);
  std::vector<float> y(72), dx(60), dw(30), db(6);
  linearForward(shape, x.data(), w.data(), b.data(), y.data());
  linearBackward(shape, dy.data(), x.data(), w.data(), dx.data(), dw.data(),
                 db.data());
  const std::vector<int64_t> wShape =
      transposed ? std::vector<int64_t>{6, 5} : std::vector<int64_t>{5, 6};
  dump.f32(p + "x", {3, 4, 5}, x);
  dump.f32(p + "w", wShape, w);
  dump.f32(p + "b", {6}, b);
  dump.f32(p + "dy", {3, 4, 6}, dy);
  dump.f32(p + "y", {3, 4, 6}, y);
  dump.f32(p + "dx", {3, 4, 5}, dx);
  dump.f32(p + "dw", wShape, dw);
  dump.f32(p + "db", {6}, db);
}

void dumpLayerNorm(Dump &dump) {
  const int64_t rows = 6, dim = 16;
  const float eps = 1e-5f;
  auto x = randomFloats(rows * dim, -3.0f, 3.0f), g = randomFloats(dim),
       b = randomFloats(dim), dy = randomFloats(rows * dim);
  std::vector<float> y(x.size()), dx(x.size()), dg(dim), dbeta(dim);
  layerNormForward(rows, dim, eps, x.data(), g.data(), b.data(), y.data(),
                   nullptr, nullptr);
  layerNormBackward(rows, dim, eps, dy.data(), x.data(), g.data(), nullptr,
                    nullptr, dx.data(), dg.data(), dbeta.data());
  dump.param("layer_norm.eps", eps);
  dump.f32("layer_norm.x", {2, 3, dim}, x);
  dump.f32("layer_norm.gamma", {dim}, g);
  dump.f32("layer_norm.beta", {dim}, b);
  dump.f32("layer_norm.dy", {2, 3, dim}, dy);
  dump.f32("layer_norm.y", {2, 3, dim}, y);
  dump.f32("layer_norm.dx", {2, 3, dim}, dx);
  dump.f32("layer_norm.dgamma", {dim}, dg);
  dump.f32("layer_norm.dbeta", {dim}, dbeta);
}

void dumpActivations(Dump &dump) {
  const int64_t count = 101;
  auto x = randomFloats(count, -5.0f, 5.0f), dy = randomFloats(count);
  dump.f32("activation.x", {count}, x);
  dump.f32("activation.dy", {count}, dy);
  for (ActivationKind kind : {ActivationKind::Relu, ActivationKind::Gelu,
                              ActivationKind::GeluTanh, ActivationKind::Silu}) {
    std::vector<float> y(count), dx(count);
    activationForward(kind, count, x.data(), y.data());
    activationBackward(kind, count, dy.data(), x.data(), dx.data());
    dump.f32(std::string("activation.") + activationName(kind) + ".y", {count},
             y);
    dump.f32(std::string("activation.") + activationName(kind) + ".dx", {count},
             dx);
  }
}

void dumpEmbedding(Dump &dump) {
  const EmbeddingShape shape{2, 5, 11, 8, 7};
  std::vector<int32_t> tokens(10);
  std::uniform_int_distribution<int32_t> pick(0, 10);
  for (int32_t &t : tokens)
    t = pick(rng);
  tokens[3] = tokens[7]; // a repeated token exercises the scatter-add
  auto table = randomFloats(11 * 8), positions = randomFloats(7 * 8),
       dy = randomFloats(10 * 8);
  dump.i32("embedding.tokens", {2, 5}, tokens);
  dump.f32("embedding.table", {11, 8}, table);
  dump.f32("embedding.positions", {7, 8}, positions);
  dump.f32("embedding.dy", {2, 5, 8}, dy);
  // Sinusoidal and scaled; learned and unscaled.
  std::vector<float> out(80), dtable(88), dpos(56);
  embeddingForward(shape, PositionKind::Sinusoidal, true, tokens.data(),
                   table.data(), nullptr, out.data());
  embeddingBackward(shape, true, dy.data(), tokens.data(), dtable.data(),
                    nullptr);
  dump.f32("embedding.sinusoidal_scaled.y", {2, 5, 8}, out);
  dump.f32("embedding.sinusoidal_scaled.dtable", {11, 8}, dtable);
  embeddingForward(shape, PositionKind::Learned, false, tokens.data(),
                   table.data(), positions.data(), out.data());
  embeddingBackward(shape, false, dy.data(), tokens.data(), dtable.data(),
                    dpos.data());
  dump.f32("embedding.learned.y", {2, 5, 8}, out);
  dump.f32("embedding.learned.dtable", {11, 8}, dtable);
  dump.f32("embedding.learned.dpositions", {7, 8}, dpos);
}

void dumpAttention(Dump &dump, const std::string &name,
                   const AttentionShape &shape) {
  const int64_t qCount = shape.batch * shape.queryLen * shape.modelDim;
  const int64_t kCount = shape.batch * shape.keyLen * shape.modelDim;
  auto q = randomFloats(qCount, -2.0f, 2.0f),
       k = randomFloats(kCount, -2.0f, 2.0f), v = randomFloats(kCount),
       dy = randomFloats(qCount);
  // Trailing padding of b keys in batch row b: no row is fully masked (the
  // first key is always visible), since torch gives NaN for those.
  std::vector<uint8_t> mask(shape.batch * shape.keyLen, 1);
  for (int64_t b = 0; b < shape.batch; ++b)
    for (int64_t j = shape.keyLen - b; j < shape.keyLen; ++j)
      mask[b * shape.keyLen + j] = 0;
  std::vector<float> out(qCount), dq(qCount), dk(kCount), dv(kCount);
  attentionForward(shape, q.data(), k.data(), v.data(), mask.data(), out.data(),
                   nullptr);
  attentionBackward(shape, dy.data(), q.data(), k.data(), v.data(), mask.data(),
                    nullptr, dq.data(), dk.data(), dv.data());
  const std::vector<int64_t> qShape{shape.batch, shape.queryLen,
                                    shape.modelDim};
  const std::vector<int64_t> kShape{shape.batch, shape.keyLen, shape.modelDim};
  const std::string p = name + ".";
  dump.param(p + "num_heads", static_cast<double>(shape.numHeads));
  dump.param(p + "causal", shape.causal ? 1.0 : 0.0);
  dump.f32(p + "q", qShape, q);
  dump.f32(p + "k", kShape, k);
  dump.f32(p + "v", kShape, v);
  dump.u8(p + "key_mask", {shape.batch, shape.keyLen}, mask);
  dump.f32(p + "dy", qShape, dy);
  dump.f32(p + "y", qShape, out);
  dump.f32(p + "dq", qShape, dq);
  dump.f32(p + "dk", kShape, dk);
  dump.f32(p + "dv", kShape, dv);
}

void dumpCrossEntropy(Dump &dump) {
  const int64_t n = 12, vocab = 9;
  const CrossEntropyOptions options{0.1, 2};
  const float lossGrad = 1.5f;
  auto logits = randomFloats(n * vocab, -4.0f, 4.0f);
  std::vector<int32_t> labels(n);
  std::uniform_int_distribution<int32_t> pick(0, vocab - 1);
  for (int32_t &l : labels)
    l = pick(rng);
  labels[0] = labels[5] = 2; // ignored tokens (ignore_index = 2)
  float loss = 0.0f;
  std::vector<float> grad(logits.size());
  crossEntropyForward(n, vocab, logits.data(), labels.data(), options, &loss,
                      nullptr, nullptr);
  crossEntropyBackward(n, vocab, lossGrad, logits.data(), labels.data(),
                       options, nullptr, grad.data());
  dump.param("cross_entropy.label_smoothing", options.labelSmoothing);
  dump.param("cross_entropy.ignore_index",
             static_cast<double>(options.ignoreIndex));
  dump.param("cross_entropy.loss_grad", lossGrad);
  dump.f32("cross_entropy.logits", {3, 4, vocab}, logits);
  dump.i32("cross_entropy.labels", {3, 4}, labels);
  dump.f32("cross_entropy.loss", {}, {loss});
  dump.f32("cross_entropy.dlogits", {3, 4, vocab}, grad);
}

} // namespace

int main(int argc, char **argv) {
  if (argc != 2) {
    std::cerr << "usage: moert-dense-reference-dump <output-directory>\n";
    return 2;
  }
  Dump dump(argv[1]);
  dumpLinear(dump, false);
  dumpLinear(dump, true);
  dumpLayerNorm(dump);
  dumpActivations(dump);
  dumpEmbedding(dump);
  dumpAttention(dump, "attention_causal", {2, 6, 6, 8, 2, true});
  dumpAttention(dump, "attention_cross", {3, 4, 7, 12, 3, false});
  dumpCrossEntropy(dump);
  if (!dump.finish()) {
    std::cerr << "moert-dense-reference-dump: cannot write to " << argv[1]
              << "\n";
    return 1;
  }
  return 0;
}
