//===- DenseRowKernelsEmulationTest.cpp - Row kernels run on the CPU ------===//
//
// Runs the device code of the CUDA embedding, layer norm, bias-sum and
// cross-entropy kernels (DenseRowKernels.cuh), unchanged, on the host
// through DenseCudaEmulation.h and compares it with the CPU kernels of
// moert/dense: bit for bit where DenseKernels.cu promises it (embedding and
// its gradients), within fp32 tolerances elsewhere. Grids are smaller than
// DenseKernels.cu would launch, so the grid-stride loops wrap. No GPU needed.
//
//===----------------------------------------------------------------------===//
#include "DenseCudaEmulation.h"

#include "moert/backends/cuda/DenseRowKernels.cuh"

#include "moert/dense/CrossEntropy.h"
#include "moert/dense/Embedding.h"
#include "moert/dense/LayerNorm.h"
#include "moert/dense/Linear.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

namespace moert {
namespace cuda {
namespace {

using namespace dense_rows;
using emulation::launch;

std::vector<float> randomValues(size_t count, uint32_t seed,
                                float scale = 1.0f) {
  std::mt19937 engine(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> values(count);
  for (float &v : values)
    v = normal(engine);
  return values;
}

uint32_t bitsOf(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

DeviceErrorRecord clearedRecord() { return {0u, 0u, ~0ull}; }

TEST(RowKernelsEmulationTest, EmbeddingForwardIsTheCpuBits) {
  const int64_t batch = 2, seq = 5, vocab = 9, dim = 40;
  const std::vector<int32_t> tokens = {1, 4, 1, 0, 8, 4, 4, 2, 1, 7};
  const std::vector<float> table = randomValues(vocab * dim, 1);
  std::vector<float> pe(seq * dim);
  launch(2, 64, 0, sinusoidTableKernel, seq, dim, pe.data(),
         static_cast<const int32_t *>(nullptr));
  for (bool scaled : {false, true}) {
    dense::EmbeddingShape shape{batch, seq, vocab, dim, 0};
    std::vector<float> expected(batch * seq * dim), actual(expected.size());
    ASSERT_EQ(dense::embeddingForward(shape, dense::PositionKind::Sinusoidal,
                                      scaled, tokens.data(), table.data(),
                                      nullptr, expected.data()),
              dense::kAllTokensValid);
    const float factor = scaled ? std::sqrt(static_cast<float>(dim)) : 1.0f;
    DeviceErrorRecord record = clearedRecord();
    launch(3, rowThreads(dim, 256), 0, embeddingForwardKernel, batch * seq, seq,
           dim, vocab, factor, tokens.data(), table.data(),
           static_cast<const float *>(pe.data()), actual.data(), &record,
           static_cast<const int32_t *>(nullptr), int64_t{0});
    for (size_t i = 0; i < expected.size(); ++i)
      ASSERT_EQ(bitsOf(actual[i]), bitsOf(expected[i])) << i;
    EXPECT_EQ(record.code, 0u);
  }
}

// moe.embedding_at: the tokens of positions offset .. offset + L - 1, with
// the offset read on the device, are the CPU's bits, for sinusoidal and
// learned positions; an offset with no room is recorded, nothing written.
TEST(RowKernelsEmulationTest, EmbeddingAtAnOffsetIsTheCpuBits) {
  const int64_t batch = 3, seq = 2, vocab = 9, dim = 24, rows = 7;
  const std::vector<int32_t> tokens = {1, 4, 8, 0, 3, 3};
  const std::vector<float> table = randomValues(vocab * dim, 3);
  const std::vector<float> learned = randomValues(rows * dim, 4);
  for (bool sinusoidal : {true, false})
    for (int32_t offset : {0, 3, 5}) {
      SCOPED_TRACE(std::to_string(offset) + (sinusoidal ? " sin" : " learned"));
      dense::EmbeddingShape shape{batch, seq, vocab, dim, rows};
      shape.positionOffset = offset;
      std::vector<float> expected(batch * seq * dim), actual(expected.size());
      ASSERT_EQ(dense::embeddingForward(shape,
                                        sinusoidal
                                            ? dense::PositionKind::Sinusoidal
                                            : dense::PositionKind::Learned,
                                        true, tokens.data(), table.data(),
                                        learned.data(), expected.data()),
                dense::kAllTokensValid);
      std::vector<float> pe(seq * dim);
      if (sinusoidal)
        launch(2, 16, 0, sinusoidTableKernel, seq, dim, pe.data(),
               static_cast<const int32_t *>(&offset));
      DeviceErrorRecord record = clearedRecord();
      launch(
          2, rowThreads(dim, 256), 0, embeddingForwardKernel, batch * seq, seq,
          dim, vocab, std::sqrt(static_cast<float>(dim)), tokens.data(),
          table.data(),
          static_cast<const float *>(sinusoidal ? pe.data() : learned.data()),
          actual.data(), &record, static_cast<const int32_t *>(&offset),
          sinusoidal ? int64_t{0} : rows);
      EXPECT_EQ(record.code, 0u);
      for (size_t i = 0; i < expected.size(); ++i)
        ASSERT_EQ(bitsOf(actual[i]), bitsOf(expected[i])) << i;
    }
  for (int32_t bad : {-1, 6}) { // 6 + 2 positions > 7 rows
    std::vector<float> out(batch * seq * dim, 7.0f);
    DeviceErrorRecord record = clearedRecord();
    launch(2, 32, 0, embeddingForwardKernel, batch * seq, seq, dim, vocab, 1.0f,
           tokens.data(), table.data(),
           static_cast<const float *>(learned.data()), out.data(), &record,
           static_cast<const int32_t *>(&bad), rows);
    EXPECT_EQ(record.code, static_cast<unsigned>(kPositionOutOfRange)) << bad;
    EXPECT_EQ(static_cast<int32_t>(record.index), bad);
    EXPECT_TRUE(
        std::all_of(out.begin(), out.end(), [](float v) { return v == 7.0f; }));
  }
}

// moe.cache_update writes the rows at the offset and nothing else.
TEST(RowKernelsEmulationTest, CacheUpdateWritesTheRowsAtTheOffset) {
  const int64_t batch = 2, length = 5, count = 2, width = 3;
  std::vector<uint32_t> cache(batch * length * width),
      rows(batch * count * width);
  std::iota(cache.begin(), cache.end(), 1000u);
  std::iota(rows.begin(), rows.end(), 1u);
  const std::vector<uint32_t> before = cache;
  int32_t offset = 3;
  DeviceErrorRecord record = clearedRecord();
  launch(2, 4, 0, cacheUpdateKernel, batch, length, count, width,
         static_cast<const int32_t *>(&offset),
         static_cast<const uint32_t *>(rows.data()), cache.data(), &record);
  EXPECT_EQ(record.code, 0u);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t p = 0; p < length; ++p)
      for (int64_t w = 0; w < width; ++w) {
        const int64_t i = (b * length + p) * width + w;
        const bool fresh = p >= offset && p < offset + count;
        EXPECT_EQ(cache[i], fresh ? rows[(b * count + p - offset) * width + w]
                                  : before[i])
            << b << " " << p << " " << w;
      }
  int32_t bad = 4; // 4 + 2 > 5
  std::vector<uint32_t> untouched = before;
  record = clearedRecord();
  launch(2, 4, 0, cacheUpdateKernel, batch, length, count, width,
         static_cast<const int32_t *>(&bad),
         static_cast<const uint32_t *>(rows.data()), untouched.data(), &record);
  EXPECT_EQ(record.code, static_cast<unsigned>(kCacheOffsetOutOfRange));
  EXPECT_EQ(untouched, before);
}

TEST(RowKernelsEmulationTest, EmbeddingGradientsAreTheCpuBits) {
  const int64_t batch = 3, seq = 4, vocab = 7, dim = 33, count = batch * seq;
  const std::vector<int32_t> tokens = {1, 4, 1, 0, 6, 4, 4, 2, 1, 5, 0, 4};
  const std::vector<float> dy = randomValues(count * dim, 2);
  for (bool scaled : {false, true}) {
    dense::EmbeddingShape shape{batch, seq, vocab, dim, seq + 2};
    std::vector<float> tableGrad(vocab * dim), positionGrad((seq + 2) * dim);
    ASSERT_EQ(dense::embeddingBackward(shape, scaled, dy.data(), tokens.data(),
                                       tableGrad.data(), positionGrad.data()),
              dense::kAllTokensValid);
    // Keys, then the stable sort that CUB's radix sort does on the GPU.
    std::vector<uint32_t> keys(count);
    std::vector<int32_t> positions(count);
    DeviceErrorRecord record = clearedRecord();
    launch(1, 32, 0, embeddingGradKeysKernel, count, vocab, tokens.data(),
           keys.data(), positions.data(), &record);
    std::vector<int32_t> order(count);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int32_t a, int32_t b) { return keys[a] < keys[b]; });
    std::vector<uint32_t> sortedKeys(count);
    std::vector<int32_t> sortedPositions(count);
    for (int64_t i = 0; i < count; ++i) {
      sortedKeys[i] = keys[order[i]];
      sortedPositions[i] = positions[order[i]];
    }
    std::vector<float> actual(vocab * dim, 0.0f); // the memset
    const float factor = scaled ? std::sqrt(static_cast<float>(dim)) : 1.0f;
    const int threads = 32; // two column chunks of 32 for dim 33
    launch(emulation::Dim3{static_cast<unsigned>(count), 2, 1}, threads, 0,
           embeddingGradSumKernel, count, dim, vocab, factor,
           static_cast<const uint32_t *>(sortedKeys.data()),
           static_cast<const int32_t *>(sortedPositions.data()), dy.data(),
           actual.data());
    for (size_t i = 0; i < tableGrad.size(); ++i)
      ASSERT_EQ(bitsOf(actual[i]), bitsOf(tableGrad[i])) << i;

    std::vector<float> positionActual((seq + 2) * dim, 0.0f);
    launch(2, 64, 0, positionGradKernel, batch, seq, seq, dim, dy.data(),
           positionActual.data());
    for (size_t i = 0; i < positionGrad.size(); ++i)
      ASSERT_EQ(bitsOf(positionActual[i]), bitsOf(positionGrad[i])) << i;
  }
}

TEST(RowKernelsEmulationTest, BadTokensAreRecordedAndSkipped) {
  const std::vector<int32_t> tokens = {1, 9, 0, -2};
  const std::vector<float> table = randomValues(3 * 4, 3);
  std::vector<float> out(4 * 4, -1.0f);
  DeviceErrorRecord record = clearedRecord();
  launch(2, 32, 0, embeddingForwardKernel, int64_t{4}, int64_t{4}, int64_t{4},
         int64_t{3}, 1.0f, tokens.data(), table.data(),
         static_cast<const float *>(nullptr), out.data(), &record,
         static_cast<const int32_t *>(nullptr), int64_t{0});
  EXPECT_EQ(record.code, static_cast<unsigned>(kTokenOutOfVocabulary));
  EXPECT_EQ(record.index, 1u);
  for (int d = 0; d < 4; ++d) {
    EXPECT_EQ(out[4 + d], 0.0f);
    EXPECT_EQ(out[12 + d], 0.0f);
    EXPECT_EQ(out[d], table[4 + d]);
  }
}

TEST(RowKernelsEmulationTest, ColumnSumsMatchCpu) {
  const int64_t rows = 300, cols = 70, chunkRows = 128;
  const std::vector<float> m = randomValues(rows * cols, 4);
  std::vector<float> expected(cols), actual(cols);
  dense::sumRows(rows, cols, m.data(), expected.data());
  const int64_t chunks = (rows + chunkRows - 1) / chunkRows;
  std::vector<double> partial(chunks * cols);
  launch(emulation::Dim3{2, static_cast<unsigned>(chunks), 1}, 64, 0,
         columnPartialSumsKernel, rows, cols, chunkRows, m.data(),
         partial.data());
  launch(1, 32, 0, columnTotalsKernel, chunks, cols,
         static_cast<const double *>(partial.data()), actual.data());
  for (int64_t c = 0; c < cols; ++c)
    EXPECT_NEAR(actual[c], expected[c], 1e-6f * (1 + std::fabs(expected[c])));
}

TEST(RowKernelsEmulationTest, LayerNormMatchesCpu) {
  for (int64_t dim : {5, 64, 100}) {
    const int64_t rows = 40; // two of the 32-row blocks of the column sums
    std::vector<float> x = randomValues(rows * dim, 5);
    for (float &v : x)
      v += 4.0f;
    const std::vector<float> scale = randomValues(dim, 6),
                             bias = randomValues(dim, 7),
                             dy = randomValues(rows * dim, 8);
    const float eps = 1e-5f;
    std::vector<float> y(rows * dim), dx(rows * dim), ds(dim), db(dim);
    dense::layerNormForward(rows, dim, eps, x.data(), scale.data(), bias.data(),
                            y.data(), nullptr, nullptr);
    dense::layerNormBackward(rows, dim, eps, dy.data(), x.data(), scale.data(),
                             nullptr, nullptr, dx.data(), ds.data(), db.data());
    // At most 64 threads (2 warps): for dim 100 each thread strides over
    // two columns, and emulated barriers stay cheap.
    const int threads = rowThreads(dim, 64);
    std::vector<float> y2(rows * dim), dx2(rows * dim), ds2(dim), db2(dim);
    launch(5, threads, 0, layerNormForwardKernel, rows, dim, eps, x.data(),
           scale.data(), bias.data(), y2.data());
    std::vector<float2> stats(rows);
    launch(5, threads, 0, layerNormInputGradKernel, rows, dim, eps, dy.data(),
           x.data(), scale.data(), dx2.data(), stats.data());
    const int64_t numBlocks =
        (rows + kLayerNormRowBlock - 1) / kLayerNormRowBlock;
    std::vector<float> partial(numBlocks * 2 * dim);
    // y = 2 < numBlocks: the kernel's loop over row blocks wraps.
    launch(emulation::Dim3{static_cast<unsigned>((dim + 63) / 64), 2, 1}, 64, 0,
           layerNormColumnPartialKernel, rows, dim, numBlocks, dy.data(),
           x.data(), static_cast<const float2 *>(stats.data()), partial.data());
    launch(1, 64, 0, layerNormColumnTotalsKernel, numBlocks, dim,
           static_cast<const float *>(partial.data()), ds2.data(), db2.data());
    for (int64_t i = 0; i < rows * dim; ++i) {
      ASSERT_NEAR(y2[i], y[i], 2e-5f * (1 + std::fabs(y[i]))) << "y " << i;
      ASSERT_NEAR(dx2[i], dx[i], 1e-4f * (1 + std::fabs(dx[i]))) << "dx " << i;
    }
    for (int64_t i = 0; i < dim; ++i) {
      ASSERT_NEAR(ds2[i], ds[i], 1e-4f * (1 + std::fabs(ds[i]))) << "ds " << i;
      ASSERT_NEAR(db2[i], db[i], 1e-5f * (1 + std::fabs(db[i]))) << "db " << i;
    }
  }
}

TEST(RowKernelsEmulationTest, CrossEntropyMatchesCpu) {
  const int64_t tokens = 13, vocab = 250;
  const std::vector<float> logits = randomValues(tokens * vocab, 9, 2.0f);
  std::vector<int32_t> labels(tokens);
  for (int64_t t = 0; t < tokens; ++t)
    labels[t] = static_cast<int32_t>((t * 37) % vocab);
  labels[2] = -100;
  labels[9] = -100;
  for (double smoothing : {0.0, 0.1}) {
    dense::CrossEntropyOptions options{smoothing, -100};
    float loss = 0.0f;
    ASSERT_EQ(dense::crossEntropyForward(tokens, vocab, logits.data(),
                                         labels.data(), options, &loss, nullptr,
                                         nullptr),
              dense::kAllLabelsValid);
    const float lossGrad = 1.5f;
    std::vector<float> grad(tokens * vocab);
    ASSERT_EQ(dense::crossEntropyBackward(tokens, vocab, lossGrad,
                                          logits.data(), labels.data(), options,
                                          nullptr, grad.data()),
              dense::kAllLabelsValid);

    CrossEntropyParams p{tokens, vocab, -100, static_cast<float>(smoothing)};
    std::vector<double> tokenLoss(tokens, -1.0);
    DeviceErrorRecord record = clearedRecord();
    const int threads = rowThreads(vocab, 64); // 2 warps, 4 columns each
    launch(4, threads, 0, crossEntropyTokenKernel, p, logits.data(),
           labels.data(), tokenLoss.data(), &record);
    float loss2 = -1.0f;
    launch(1, 64, 0, crossEntropyLossKernel, p, labels.data(),
           static_cast<const double *>(tokenLoss.data()), &loss2);
    EXPECT_NEAR(loss2, loss, 1e-5f * loss);
    EXPECT_EQ(record.code, 0u);

    long long counted = -1;
    launch(1, 64, 0, countLabelsKernel, p, labels.data(), &counted);
    EXPECT_EQ(counted, tokens - 2);
    std::vector<float> grad2(tokens * vocab, -1.0f);
    launch(4, threads, 0, crossEntropyGradKernel, p, &lossGrad, logits.data(),
           labels.data(), static_cast<const long long *>(&counted),
           grad2.data(), &record);
    for (size_t i = 0; i < grad.size(); ++i)
      ASSERT_NEAR(grad2[i], grad[i], 1e-6f) << i;
  }
  // A label outside the vocabulary is recorded; its row gets no gradient.
  std::vector<int32_t> bad = labels;
  bad[6] = static_cast<int32_t>(vocab);
  CrossEntropyParams p{tokens, vocab, -100, 0.0f};
  std::vector<double> tokenLoss(tokens);
  DeviceErrorRecord record = clearedRecord();
  launch(2, 64, 0, crossEntropyTokenKernel, p, logits.data(), bad.data(),
         tokenLoss.data(), &record);
  EXPECT_EQ(record.code, static_cast<unsigned>(kLabelOutOfRange));
  EXPECT_EQ(record.index, 6u);
  EXPECT_EQ(tokenLoss[6], 0.0);
}

} // namespace
} // namespace cuda
} // namespace moert
