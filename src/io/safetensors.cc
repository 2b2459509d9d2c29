// qfx io: safetensors reader and writer (see include/qfx/io/safetensors.h).
#include "qfx/io/safetensors.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "nlohmann/json.hpp"
#include "qfx/io/file.h"

namespace qfx {
namespace io {
namespace {

using json = nlohmann::ordered_json;

constexpr uint64_t kMaxHeader = 100u << 20;  // as the reference implementation: 100 MB

struct DTypeName {
  const char* name;
  DType dtype;
};
constexpr DTypeName kDTypes[] = {
    {"F32", DType::kF32}, {"I64", DType::kI64}, {"I32", DType::kI32}, {"I8", DType::kI8}, {"U8", DType::kU8}};

absl::StatusOr<DType> ParseDType(const std::string& file, const std::string& tensor, const std::string& s) {
  for (const auto& d : kDTypes) {
    if (s == d.name) return d.dtype;
  }
  return absl::UnimplementedError(absl::StrCat(file, ": tensor '", tensor, "' has dtype ", s,
                                               "; qfx reads F32, I64, I32, I8, U8 (convert the "
                                               "tensor to one of them before saving)"));
}

const char* DTypeString(DType d) {
  for (const auto& e : kDTypes) {
    if (e.dtype == d) return e.name;
  }
  return "?";
}

absl::Status Bad(const std::string& file, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(file, ": malformed safetensors file: ", what));
}

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

absl::StatusOr<Entry> ParseEntry(const std::string& file, const std::string& name, const json& v) {
  if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets")) {
    return Bad(file, absl::StrCat("tensor '", name, "' needs dtype, shape and data_offsets"));
  }
  Entry e{name, DType::kF32, {}, 0, 0};
  if (!v["dtype"].is_string()) return Bad(file, absl::StrCat("tensor '", name, "': dtype must be a string"));
  QFX_ASSIGN_OR_RETURN(e.dtype, ParseDType(file, name, v["dtype"].get<std::string>()));
  if (!v["shape"].is_array()) return Bad(file, absl::StrCat("tensor '", name, "': shape must be a list"));
  for (const auto& d : v["shape"]) {
    if (!d.is_number_unsigned()) return Bad(file, absl::StrCat("tensor '", name, "': shape entries must be >= 0"));
    const uint64_t dim = d.get<uint64_t>();
    if (dim > static_cast<uint64_t>(kMaxTensorBytes)) {
      return Bad(file, absl::StrCat("tensor '", name, "': shape entry ", dim, " exceeds ", kMaxTensorBytes));
    }
    e.shape.push_back(static_cast<int64_t>(dim));
  }
  int64_t count = 0;
  if (!CheckedNumElements(e.shape, static_cast<int64_t>(DTypeSize(e.dtype)), &count)) {
    return Bad(file, absl::StrCat("tensor '", name, "': ", DTypeString(e.dtype), ShapeToString(e.shape), " exceeds ",
                                  kMaxTensorBytes, " bytes"));
  }
  const uint64_t numel = static_cast<uint64_t>(count);
  const json& off = v["data_offsets"];
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned()) {
    return Bad(file, absl::StrCat("tensor '", name, "': data_offsets must be [begin, end]"));
  }
  e.begin = off[0].get<uint64_t>();
  e.end = off[1].get<uint64_t>();
  if (e.end < e.begin || e.end - e.begin != numel * DTypeSize(e.dtype)) {
    return Bad(file, absl::StrCat("tensor '", name, "': data_offsets [", e.begin, ", ", e.end, ") hold ",
                                  e.end - e.begin, " bytes but ", DTypeString(e.dtype), ShapeToString(e.shape),
                                  " needs ", numel * DTypeSize(e.dtype)));
  }
  return e;
}

absl::Status ParseMetadata(const std::string& file, const json& v, std::map<std::string, std::string>& out) {
  if (!v.is_object()) return Bad(file, "__metadata__ must be an object of strings");
  for (const auto& [k, s] : v.items()) {
    if (!s.is_string()) return Bad(file, absl::StrCat("__metadata__ value of '", k, "' must be a string"));
    out[k] = s.get<std::string>();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Entry>> ParseHeader(const std::string& file, const char* data, size_t size,
                                               uint64_t* data_start, std::map<std::string, std::string>& meta) {
  if (size < 8) return Bad(file, absl::StrCat("file is ", size, " bytes, shorter than the 8-byte header length"));
  uint64_t n = 0;
  std::memcpy(&n, data, 8);  // little-endian host (x86-64)
  if (n > kMaxHeader || n > size - 8) {
    return Bad(file, absl::StrCat("header length ", n, " exceeds the file (", size, " bytes) or 100 MB"));
  }
  json header;
  try {
    header = json::parse(data + 8, data + 8 + n);
  } catch (const json::exception& e) {
    return Bad(file, absl::StrCat("header is not valid JSON: ", e.what()));
  }
  if (!header.is_object()) return Bad(file, "header must be a JSON object");
  std::vector<Entry> entries;
  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      QFX_RETURN_IF_ERROR(ParseMetadata(file, v, meta));
      continue;
    }
    QFX_ASSIGN_OR_RETURN(Entry e, ParseEntry(file, name, v));
    entries.push_back(std::move(e));
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  *data_start = 8 + n;
  const uint64_t avail = size - *data_start;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].end > avail) {
      return Bad(file, absl::StrCat("tensor '", entries[i].name, "' ends at byte ", entries[i].end,
                                    " of the data but only ", avail, " bytes follow the header (truncated file?)"));
    }
    if (i > 0 && entries[i].begin < entries[i - 1].end) {
      return Bad(file, absl::StrCat("tensors '", entries[i - 1].name, "' and '", entries[i].name, "' overlap"));
    }
  }
  return entries;
}

absl::StatusOr<Safetensors> Parse(const std::string& file, const char* data, size_t size,
                                  std::shared_ptr<const void> keep_alive) {
  Safetensors out;
  uint64_t start = 0;
  QFX_ASSIGN_OR_RETURN(std::vector<Entry> entries, ParseHeader(file, data, size, &start, out.metadata));
  for (const Entry& e : entries) {
    const char* p = data + start + e.begin;
    const bool aligned = reinterpret_cast<uintptr_t>(p) % DTypeSize(e.dtype) == 0;
    Tensor t;
    if (keep_alive && aligned) {
      t = Tensor::Borrow(e.shape, e.dtype, const_cast<char*>(p), keep_alive);
    } else {
      t = Tensor::Empty(e.shape, e.dtype);
      if (t.nbytes() > 0) std::memcpy(t.raw_data(), p, t.nbytes());
    }
    out.tensors.emplace_back(e.name, std::move(t));
  }
  return out;
}

}  // namespace

absl::StatusOr<Safetensors> ParseSafetensors(const std::string& name, const char* data, size_t size) {
  return Parse(name, data, size, nullptr);
}

absl::StatusOr<Safetensors> ReadSafetensors(const std::string& path) {
  QFX_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, MappedFile::Open(path));
  return Parse(path, file->data(), file->size(), file);
}

absl::Status WriteSafetensors(const std::string& path, const nn::NamedTensors& tensors,
                              const std::map<std::string, std::string>& metadata, const WriteCheck& check) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__" || header.contains(name)) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor name '", name, "' is reserved or repeated"));
    }
    offset = (offset + 63) / 64 * 64;
    header[name] = {
        {"dtype", DTypeString(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  std::string text = header.dump();
  text.append((64 - (8 + text.size()) % 64) % 64, ' ');  // data starts 64-byte aligned
  QFX_ASSIGN_OR_RETURN(auto file, AtomicFile::Create(path));
  const uint64_t n = text.size();
  QFX_RETURN_IF_ERROR(file->Write(&n, 8));
  QFX_RETURN_IF_ERROR(file->Write(text));
  static const char kZeros[64] = {};
  uint64_t written = 0;
  for (const auto& [name, t] : tensors) {
    const uint64_t pad = (64 - written % 64) % 64;
    QFX_RETURN_IF_ERROR(file->Write(kZeros, pad));
    QFX_RETURN_IF_ERROR(file->Write(t.raw_data(), t.nbytes()));
    written += pad + t.nbytes();
  }
  if (check) {
    const std::string readable = file->ReadablePath();
    const absl::Status s = check(readable);
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat(path, ": not written, because what was written does not read back: ",
                                                 absl::StrReplaceAll(s.message(), {{readable, "the new file"}})));
    }
  }
  return file->Commit();
}

absl::Status LoadWeights(nn::Module& module, const std::string& path, bool strict) {
  QFX_ASSIGN_OR_RETURN(Safetensors st, ReadSafetensors(path));
  absl::Status s = module.load_state_dict(st.tensors, strict);
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
  return absl::OkStatus();
}

}  // namespace io
}  // namespace qfx
