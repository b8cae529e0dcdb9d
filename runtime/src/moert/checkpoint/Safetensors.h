//===- Safetensors.h - Checkpoints in the safetensors format ----*- C++ -*-===//
//
// The checkpoint format is safetensors (8-byte little-endian header length
// N, N bytes of JSON header, then the tensor bytes) so that checkpoints can
// be read by the Python ecosystem and by other tools without our code.
//
// Tensors are *logical*: every tensor is the full, unsharded tensor, whatever
// grid wrote it, so a checkpoint written on one grid loads on another (the
// loader shards with the plan's shard specs). The metadata says so
// ("moert.layout": "logical") and holds the training step.
//
// Writer: tensors in sorted name order, header padded with spaces so the
// data starts 8-byte aligned (what the reference implementation does; the
// format forbids gaps between tensors, so tensors themselves are packed),
// written atomically (AtomicFile.h).
//
// Reader: maps the file and validates everything before handing out a
// byte: header length, JSON (strict), dtypes, shapes, offsets that tile the
// data exactly (no overlap, no gap, no trailing bytes).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_CHECKPOINT_SAFETENSORS_H
#define MOERT_CHECKPOINT_SAFETENSORS_H

#include "moert/Status.h"

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace moert::checkpoint {

/// Element types of the safetensors format.
enum class DType {
  Bool,
  U8,
  I8,
  F8E4M3,
  F8E5M2,
  I16,
  U16,
  F16,
  BF16,
  I32,
  U32,
  F32,
  F64,
  I64,
  U64,
};

/// "F32", ... (the format's spelling).
const char *dtypeName(DType dtype);
/// Bytes per element.
size_t dtypeSize(DType dtype);
/// Parses the format's spelling; false for an unknown one.
bool parseDType(const std::string &name, DType &dtype);

/// Metadata keys this runtime writes.
inline constexpr const char *kStepKey = "moert.step";
inline constexpr const char *kLayoutKey = "moert.layout";
inline constexpr const char *kLayoutLogical = "logical";
inline constexpr const char *kFormatVersionKey = "moert.checkpoint_version";
inline constexpr const char *kManifestKey = "moert.manifest";
inline constexpr const char *kManifestNote =
    "every tensor is logical (unsharded), whatever grid wrote it; a run on "
    "any grid shards it with its plan's shard specs when loading";

/// A tensor inside a loaded checkpoint (bytes point into the checkpoint).
struct TensorView {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const uint8_t *data = nullptr;
  size_t bytes = 0;

  int64_t numElements() const;
};

class CheckpointWriter {
public:
  /// Adds a tensor. The writer keeps a pointer to `data`, not a copy: the
  /// caller keeps it alive until write() returns.
  Status addTensor(const std::string &name, DType dtype,
                   std::vector<int64_t> shape, const void *data, size_t bytes);
  Status addF32(const std::string &name, std::vector<int64_t> shape,
                const float *data);
  /// Free-form metadata (string to string).
  Status setMetadata(const std::string &key, const std::string &value);
  /// The training step this checkpoint was taken after.
  void setStep(int64_t step);

  /// The header JSON (without the length prefix or padding).
  std::string headerJson() const;
  /// Writes the checkpoint to `path` atomically.
  Status write(const std::string &path) const;

private:
  struct PendingTensor {
    DType dtype;
    std::vector<int64_t> shape;
    const void *data;
    size_t bytes;
  };
  std::map<std::string, PendingTensor> tensors_; // sorted by name
  std::map<std::string, std::string> metadata_ = {
      {kLayoutKey, kLayoutLogical},
      {kFormatVersionKey, "1"},
      {kManifestKey, kManifestNote}};
};

/// A validated checkpoint, read-only. Move-only (it may own a mapping).
class Checkpoint {
public:
  /// Maps and validates the file at `path`.
  static Expected<Checkpoint> open(const std::string &path);
  /// Validates `bytes` (a whole file's content); `source` names it in
  /// messages.
  static Expected<Checkpoint> fromBytes(std::vector<uint8_t> bytes,
                                        const std::string &source = "<memory>");

  Checkpoint(Checkpoint &&) noexcept = default;
  Checkpoint &operator=(Checkpoint &&) noexcept = default;
  ~Checkpoint() = default;

  const std::string &source() const { return source_; }
  /// Tensor names in sorted order.
  std::vector<std::string> tensorNames() const;
  bool contains(const std::string &name) const {
    return tensors_.count(name) != 0;
  }
  const std::map<std::string, std::string> &metadata() const {
    return metadata_;
  }
  /// The "moert.step" metadata as a number.
  Expected<int64_t> step() const;

  /// The tensor `name`, or NotFound.
  Expected<TensorView> tensor(const std::string &name) const;
  /// The tensor `name`, checked to have `dtype` and `expectedShape`.
  Expected<TensorView> tensor(const std::string &name, DType dtype,
                              const std::vector<int64_t> &expectedShape) const;
  /// Copies an F32 tensor of `expectedShape` out (no alignment assumption
  /// on the mapped bytes).
  Expected<std::vector<float>>
  readF32(const std::string &name,
          const std::vector<int64_t> &expectedShape) const;

private:
  class Storage;
  Checkpoint() = default;
  static Expected<Checkpoint> validate(std::shared_ptr<Storage> storage,
                                       const std::string &source);

  std::shared_ptr<Storage> storage_;
  std::string source_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

} // namespace moert::checkpoint

#endif // MOERT_CHECKPOINT_SAFETENSORS_H
