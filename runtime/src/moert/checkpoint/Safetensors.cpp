//===- Safetensors.cpp - Checkpoints in the safetensors format ------------===//

#include "moert/checkpoint/Safetensors.h"

#include "moert/checkpoint/AtomicFile.h"
#include "moert/checkpoint/Json.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace moert::checkpoint {
namespace {

// The reference implementation refuses larger headers too; a bound keeps a
// corrupt length from making us allocate gigabytes.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
constexpr size_t kLengthFieldBytes = 8;
constexpr size_t kDataAlignment = 8;
constexpr const char *kMetadataKey = "__metadata__";

struct DTypeInfo {
  DType dtype;
  const char *name;
  size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::Bool, "BOOL", 1},      {DType::U8, "U8", 1},
    {DType::I8, "I8", 1},          {DType::F8E4M3, "F8_E4M3", 1},
    {DType::F8E5M2, "F8_E5M2", 1}, {DType::I16, "I16", 2},
    {DType::U16, "U16", 2},        {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2},      {DType::I32, "I32", 4},
    {DType::U32, "U32", 4},        {DType::F32, "F32", 4},
    {DType::F64, "F64", 8},        {DType::I64, "I64", 8},
    {DType::U64, "U64", 8},
};

std::string formatShape(const std::vector<int64_t> &shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

/// product(shape) * elementSize; false on a negative dimension or overflow.
bool tensorBytes(const std::vector<int64_t> &shape, size_t elementSize,
                 uint64_t &bytes) {
  uint64_t total = elementSize;
  for (int64_t dim : shape) {
    if (dim < 0)
      return false;
    if (dim != 0 && total > (UINT64_MAX >> 2) / uint64_t(dim))
      return false;
    total *= uint64_t(dim);
  }
  bytes = total;
  return true;
}

/// "an object", "a string", ...
std::string describe(const JsonValue &value) {
  JsonValue::Kind kind = value.kind;
  bool vowel =
      kind == JsonValue::Kind::Array || kind == JsonValue::Kind::Object;
  return std::string(vowel ? "an " : "a ") + jsonKindName(kind);
}

} // namespace

const char *dtypeName(DType dtype) {
  for (const DTypeInfo &info : kDTypes)
    if (info.dtype == dtype)
      return info.name;
  return "?";
}

size_t dtypeSize(DType dtype) {
  for (const DTypeInfo &info : kDTypes)
    if (info.dtype == dtype)
      return info.size;
  return 0;
}

bool parseDType(const std::string &name, DType &dtype) {
  for (const DTypeInfo &info : kDTypes)
    if (name == info.name) {
      dtype = info.dtype;
      return true;
    }
  return false;
}

int64_t TensorView::numElements() const {
  int64_t elements = 1;
  for (int64_t dim : shape)
    elements *= dim;
  return elements;
}

//===----------------------------------------------------------------------===//
// Writer
//===----------------------------------------------------------------------===//

Status CheckpointWriter::addTensor(const std::string &name, DType dtype,
                                   std::vector<int64_t> shape, const void *data,
                                   size_t bytes) {
  if (name.empty() || name == kMetadataKey)
    return invalidArgument(
        fmt::format("checkpoint tensor name '{}' is reserved or empty", name));
  if (tensors_.count(name))
    return invalidArgument(
        fmt::format("checkpoint tensor '{}' is added twice", name));
  uint64_t expected;
  if (!tensorBytes(shape, dtypeSize(dtype), expected))
    return invalidArgument(
        fmt::format("checkpoint tensor '{}' has an invalid shape {}", name,
                    formatShape(shape)));
  if (expected != bytes)
    return invalidArgument(fmt::format(
        "checkpoint tensor '{}': shape {} of {} needs {} bytes, given {}", name,
        formatShape(shape), dtypeName(dtype), expected, bytes));
  if (bytes > 0 && !data)
    return invalidArgument(
        fmt::format("checkpoint tensor '{}' has no data", name));
  tensors_.emplace(name, PendingTensor{dtype, std::move(shape), data, bytes});
  return Status::success();
}

Status CheckpointWriter::addF32(const std::string &name,
                                std::vector<int64_t> shape, const float *data) {
  uint64_t bytes = 0;
  if (!tensorBytes(shape, sizeof(float), bytes))
    return invalidArgument(
        fmt::format("checkpoint tensor '{}' has an invalid shape {}", name,
                    formatShape(shape)));
  return addTensor(name, DType::F32, std::move(shape), data, bytes);
}

Status CheckpointWriter::setMetadata(const std::string &key,
                                     const std::string &value) {
  if (key.empty())
    return invalidArgument("checkpoint metadata key is empty");
  metadata_[key] = value;
  return Status::success();
}

void CheckpointWriter::setStep(int64_t step) {
  metadata_[kStepKey] = std::to_string(step);
}

std::string CheckpointWriter::headerJson() const {
  std::string json = "{";
  json += quoteJson(kMetadataKey) + ":{";
  bool first = true;
  for (const auto &[key, value] : metadata_) {
    json += (first ? "" : ",") + quoteJson(key) + ":" + quoteJson(value);
    first = false;
  }
  json += "}";
  uint64_t offset = 0;
  for (const auto &[name, tensor] : tensors_) {
    std::string shape;
    for (size_t i = 0; i < tensor.shape.size(); ++i)
      shape += (i ? "," : "") + std::to_string(tensor.shape[i]);
    json += fmt::format(",{}:{{\"dtype\":\"{}\",\"shape\":[{}],"
                        "\"data_offsets\":[{},{}]}}",
                        quoteJson(name), dtypeName(tensor.dtype), shape, offset,
                        offset + tensor.bytes);
    offset += tensor.bytes;
  }
  return json + "}";
}

Status CheckpointWriter::write(const std::string &path) const {
  std::string header = headerJson();
  // Spaces after the JSON are valid whitespace and make the data start at an
  // 8-byte aligned file offset.
  size_t misalignment = (kLengthFieldBytes + header.size()) % kDataAlignment;
  if (misalignment)
    header.append(kDataAlignment - misalignment, ' ');
  uint8_t length[kLengthFieldBytes];
  uint64_t headerLength = header.size();
  for (size_t i = 0; i < kLengthFieldBytes; ++i)
    length[i] = uint8_t(headerLength >> (8 * i));

  auto withContext = [&](Status status) {
    return std::move(status.withContext("writing checkpoint '" + path + "'"));
  };
  Expected<AtomicFileWriter> file = AtomicFileWriter::create(path);
  if (!file.ok())
    return withContext(file.takeStatus());
  // On any failure below, `file` goes out of scope uncommitted and removes
  // the temporary file.
  if (Status status = file->write(length, sizeof(length)); !status.ok())
    return withContext(std::move(status));
  if (Status status = file->write(header.data(), header.size()); !status.ok())
    return withContext(std::move(status));
  for (const auto &[name, tensor] : tensors_)
    if (Status status = file->write(tensor.data, tensor.bytes); !status.ok())
      return withContext(std::move(status));
  if (Status status = file->commit(); !status.ok())
    return withContext(std::move(status));
  return Status::success();
}

//===----------------------------------------------------------------------===//
// Reader
//===----------------------------------------------------------------------===//

/// The bytes of a checkpoint: a read-only mapping of the file or a buffer.
class Checkpoint::Storage {
public:
  explicit Storage(std::vector<uint8_t> bytes) : owned_(std::move(bytes)) {
    data_ = owned_.data();
    size_ = owned_.size();
  }
  Storage(void *mapping, size_t size)
      : mapping_(mapping), data_(static_cast<const uint8_t *>(mapping)),
        size_(size) {}
  ~Storage() {
    if (mapping_)
      ::munmap(mapping_, size_);
  }
  Storage(const Storage &) = delete;
  Storage &operator=(const Storage &) = delete;

  const uint8_t *data() const { return data_; }
  size_t size() const { return size_; }

private:
  std::vector<uint8_t> owned_;
  void *mapping_ = nullptr;
  const uint8_t *data_ = nullptr;
  size_t size_ = 0;
};

Expected<Checkpoint> Checkpoint::open(const std::string &path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer (it is then
  // refused as not a regular file); no effect on a regular file.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    return Status(errno == ENOENT ? StatusCode::NotFound
                                  : StatusCode::FailedPrecondition,
                  fmt::format("checkpoint '{}': cannot open: {}", path,
                              std::strerror(errno)));
  struct stat info;
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    return failedPrecondition(
        fmt::format("checkpoint '{}': not a regular file", path));
  }
  size_t size = static_cast<size_t>(info.st_size);
  std::shared_ptr<Storage> storage;
  if (size == 0) {
    storage = std::make_shared<Storage>(std::vector<uint8_t>());
  } else {
    void *mapping = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (mapping == MAP_FAILED) {
      int error = errno;
      ::close(fd);
      return failedPrecondition(fmt::format("checkpoint '{}': cannot map: {}",
                                            path, std::strerror(error)));
    }
    storage = std::make_shared<Storage>(mapping, size);
  }
  ::close(fd); // the mapping stays valid
  return validate(std::move(storage), path);
}

Expected<Checkpoint> Checkpoint::fromBytes(std::vector<uint8_t> bytes,
                                           const std::string &source) {
  return validate(std::make_shared<Storage>(std::move(bytes)), source);
}

Expected<Checkpoint> Checkpoint::validate(std::shared_ptr<Storage> storage,
                                          const std::string &source) {
  auto fail = [&](const std::string &message) -> Status {
    return dataLoss(fmt::format("checkpoint '{}': {}", source, message));
  };
  const uint8_t *bytes = storage->data();
  size_t size = storage->size();
  if (size < kLengthFieldBytes)
    return fail(fmt::format("the file has {} bytes, shorter than the "
                            "8-byte header length",
                            size));
  uint64_t headerLength = 0;
  for (size_t i = 0; i < kLengthFieldBytes; ++i)
    headerLength |= uint64_t(bytes[i]) << (8 * i);
  if (headerLength > size - kLengthFieldBytes)
    return fail(fmt::format("the header length is {} bytes, beyond the end "
                            "of the file ({} bytes after the length field)",
                            headerLength, size - kLengthFieldBytes));
  if (headerLength > kMaxHeaderBytes)
    return fail(fmt::format("the header length is {} bytes, more than the "
                            "limit of {}",
                            headerLength, kMaxHeaderBytes));
  std::string_view headerText(
      reinterpret_cast<const char *>(bytes + kLengthFieldBytes),
      static_cast<size_t>(headerLength));
  Expected<JsonValue> header = parseJson(headerText);
  if (!header.ok())
    return fail("header: " + header.status().message());
  if (!header->isObject())
    return fail(
        fmt::format("the header is {}, expected an object", describe(*header)));

  const uint8_t *dataStart =
      bytes + kLengthFieldBytes + static_cast<size_t>(headerLength);
  uint64_t dataSize = size - kLengthFieldBytes - headerLength;

  Checkpoint checkpoint;
  checkpoint.source_ = source;
  struct Range {
    uint64_t begin, end;
    const std::string *name;
  };
  std::vector<Range> ranges;
  for (const auto &[name, entry] : header->members) {
    if (name == kMetadataKey) {
      if (!entry.isObject())
        return fail(fmt::format("\"__metadata__\" is {}, expected an "
                                "object of strings",
                                describe(entry)));
      for (const auto &[key, value] : entry.members) {
        if (!value.isString())
          return fail(fmt::format("metadata '{}' is {}, expected a string", key,
                                  describe(value)));
        checkpoint.metadata_[key] = value.text;
      }
      continue;
    }
    std::string where = fmt::format("tensor '{}'", name);
    if (name.empty())
      return fail("a tensor has an empty name");
    if (!entry.isObject())
      return fail(
          fmt::format("{} is {}, expected an object", where, describe(entry)));
    for (const auto &member : entry.members)
      if (member.first != "dtype" && member.first != "shape" &&
          member.first != "data_offsets")
        return fail(
            fmt::format("{} has the unknown field '{}'", where, member.first));
    const JsonValue *dtypeValue = entry.find("dtype");
    const JsonValue *shapeValue = entry.find("shape");
    const JsonValue *offsetsValue = entry.find("data_offsets");
    if (!dtypeValue || !shapeValue || !offsetsValue)
      return fail(where + " needs \"dtype\", \"shape\" and \"data_offsets\"");
    DType dtype;
    if (!dtypeValue->isString() || !parseDType(dtypeValue->text, dtype))
      return fail(fmt::format("{} has unknown dtype {}", where,
                              dtypeValue->isString()
                                  ? quoteJson(dtypeValue->text)
                                  : describe(*dtypeValue)));
    if (!shapeValue->isArray())
      return fail(where + ": \"shape\" must be an array of non-negative "
                          "integers");
    std::vector<int64_t> shape;
    for (const JsonValue &dim : shapeValue->items) {
      uint64_t value;
      if (!dim.asUnsigned(value) || value > uint64_t(INT64_MAX))
        return fail(fmt::format("{}: shape entry '{}' is not a non-negative "
                                "integer",
                                where, dim.text));
      shape.push_back(int64_t(value));
    }
    uint64_t begin, end;
    if (!offsetsValue->isArray() || offsetsValue->items.size() != 2 ||
        !offsetsValue->items[0].asUnsigned(begin) ||
        !offsetsValue->items[1].asUnsigned(end))
      return fail(where + ": \"data_offsets\" must be [begin, end] with "
                          "non-negative integers");
    if (begin > end || end > dataSize)
      return fail(fmt::format("{} has data_offsets [{}, {}], outside the {} "
                              "data bytes",
                              where, begin, end, dataSize));
    uint64_t expectedBytes;
    if (!tensorBytes(shape, dtypeSize(dtype), expectedBytes))
      return fail(
          fmt::format("{} has shape {}, too large", where, formatShape(shape)));
    if (end - begin != expectedBytes)
      return fail(fmt::format("{} has data_offsets [{}, {}] ({} bytes), but "
                              "shape {} of {} needs {} bytes",
                              where, begin, end, end - begin,
                              formatShape(shape), dtypeName(dtype),
                              expectedBytes));
    TensorView view;
    view.name = name;
    view.dtype = dtype;
    view.shape = std::move(shape);
    view.data = dataStart + begin;
    view.bytes = static_cast<size_t>(end - begin);
    auto inserted = checkpoint.tensors_.emplace(name, std::move(view));
    ranges.push_back({begin, end, &inserted.first->first});
  }

  // The tensors must tile the data exactly, as the format requires.
  std::sort(ranges.begin(), ranges.end(), [](const Range &a, const Range &b) {
    return a.begin < b.begin || (a.begin == b.begin && a.end < b.end);
  });
  uint64_t covered = 0;
  const std::string *previous = nullptr;
  for (const Range &range : ranges) {
    if (range.begin < covered)
      return fail(fmt::format("tensor '{}' (bytes [{}, {})) overlaps tensor "
                              "'{}' (which ends at {})",
                              *range.name, range.begin, range.end, *previous,
                              covered));
    if (range.begin > covered)
      return fail(fmt::format("bytes [{}, {}) before tensor '{}' belong to "
                              "no tensor",
                              covered, range.begin, *range.name));
    covered = range.end;
    previous = range.name;
  }
  if (covered != dataSize)
    return fail(fmt::format("{} bytes of trailing data after the last "
                            "tensor (data section has {} bytes, tensors "
                            "cover {})",
                            dataSize - covered, dataSize, covered));
  checkpoint.storage_ = std::move(storage);
  return checkpoint;
}

std::vector<std::string> Checkpoint::tensorNames() const {
  std::vector<std::string> names;
  for (const auto &entry : tensors_)
    names.push_back(entry.first);
  return names;
}

Expected<int64_t> Checkpoint::step() const {
  auto it = metadata_.find(kStepKey);
  if (it == metadata_.end())
    return Status(StatusCode::NotFound,
                  fmt::format("checkpoint '{}' has no \"{}\" metadata", source_,
                              kStepKey));
  const std::string &text = it->second;
  size_t parsed = 0;
  long long value = 0;
  try {
    value = std::stoll(text, &parsed);
  } catch (...) {
    parsed = 0;
  }
  if (parsed == 0 || parsed != text.size() || value < 0)
    return dataLoss(fmt::format("checkpoint '{}': \"{}\" is '{}', expected "
                                "a non-negative integer",
                                source_, kStepKey, text));
  return int64_t(value);
}

Expected<TensorView> Checkpoint::tensor(const std::string &name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end())
    return Status(
        StatusCode::NotFound,
        fmt::format("checkpoint '{}' has no tensor '{}'", source_, name));
  return it->second;
}

Expected<TensorView>
Checkpoint::tensor(const std::string &name, DType dtype,
                   const std::vector<int64_t> &expectedShape) const {
  MOERT_ASSIGN_OR_RETURN(TensorView view, tensor(name));
  if (view.dtype != dtype)
    return invalidArgument(
        fmt::format("checkpoint tensor '{}' has dtype {}, the plan expects {}",
                    name, dtypeName(view.dtype), dtypeName(dtype)));
  if (view.shape != expectedShape)
    return invalidArgument(
        fmt::format("checkpoint tensor '{}' has shape {}, the plan expects {}",
                    name, formatShape(view.shape), formatShape(expectedShape)));
  return view;
}

Expected<std::vector<float>>
Checkpoint::readF32(const std::string &name,
                    const std::vector<int64_t> &expectedShape) const {
  MOERT_ASSIGN_OR_RETURN(TensorView view,
                         tensor(name, DType::F32, expectedShape));
  std::vector<float> values(view.bytes / sizeof(float));
  if (view.bytes)
    std::memcpy(values.data(), view.data, view.bytes);
  return values;
}

} // namespace moert::checkpoint
