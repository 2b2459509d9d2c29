// qfx io: NumPy .npy reader and writer (see include/qfx/io/npy.h).
//
// The header is a Python dict literal, e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }.
// It is parsed with a small tokenizer that accepts exactly that grammar (the format's spec).
#include "qfx/io/npy.h"

#include <cstring>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "qfx/io/file.h"

namespace qfx {
namespace io {
namespace {

constexpr char kMagic[] = "\x93NUMPY";

absl::Status Bad(const std::string& file, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(file, ": malformed .npy file: ", what));
}

struct Header {
  std::string descr;
  bool fortran = false;
  Shape shape;
};

// Splits "{'a': X, 'b': Y, }" into key -> raw value text (values may be parenthesised tuples).
absl::StatusOr<std::map<std::string, std::string>> SplitDict(const std::string& file, absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  if (!absl::ConsumePrefix(&text, "{") || !absl::ConsumeSuffix(&text, "}")) {
    return Bad(file, "header is not a {...} dict");
  }
  std::map<std::string, std::string> out;
  while (!(text = absl::StripLeadingAsciiWhitespace(text)).empty()) {
    if (text[0] != '\'' && text[0] != '"') return Bad(file, absl::StrCat("expected a quoted key at '", text, "'"));
    const size_t kend = text.find(text[0], 1);
    if (kend == absl::string_view::npos) return Bad(file, "unterminated key");
    const std::string key(text.substr(1, kend - 1));
    text.remove_prefix(kend + 1);
    text = absl::StripLeadingAsciiWhitespace(text);
    if (!absl::ConsumePrefix(&text, ":")) return Bad(file, absl::StrCat("expected ':' after key '", key, "'"));
    text = absl::StripLeadingAsciiWhitespace(text);
    if (text.empty()) return Bad(file, absl::StrCat("key '", key, "' has no value"));  // found by tools/fuzz.sh
    size_t vend = text[0] == '(' ? text.find(')') : text.find(',');
    if (vend == absl::string_view::npos) vend = text.size() - (text[0] == '(' ? 1 : 0);
    if (text[0] == '(') ++vend;
    out[key] = std::string(absl::StripAsciiWhitespace(text.substr(0, vend)));
    text.remove_prefix(std::min(vend, text.size()));
    text = absl::StripLeadingAsciiWhitespace(text);
    absl::ConsumePrefix(&text, ",");
  }
  return out;
}

absl::StatusOr<Header> ParseHeaderDict(const std::string& file, absl::string_view text) {
  QFX_ASSIGN_OR_RETURN(auto dict, SplitDict(file, text));
  for (const char* key : {"descr", "fortran_order", "shape"}) {
    if (!dict.count(key)) return Bad(file, absl::StrCat("header has no '", key, "'"));
  }
  Header h;
  absl::string_view descr = dict["descr"];
  if (descr.size() < 2 || (descr.front() != '\'' && descr.front() != '"') || descr.back() != descr.front()) {
    return Bad(file, absl::StrCat("descr ", descr, " must be a quoted dtype string"));
  }
  h.descr = std::string(descr.substr(1, descr.size() - 2));
  if (dict["fortran_order"] != "False" && dict["fortran_order"] != "True") {
    return Bad(file, "fortran_order must be True or False");
  }
  h.fortran = dict["fortran_order"] == "True";
  absl::string_view shape = dict["shape"];
  if (!absl::ConsumePrefix(&shape, "(") || !absl::ConsumeSuffix(&shape, ")")) {
    return Bad(file, absl::StrCat("shape ", dict["shape"], " must be a tuple"));
  }
  for (absl::string_view part : absl::StrSplit(shape, ',', absl::SkipWhitespace())) {
    int64_t d;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &d) || d < 0) {
      return Bad(file, absl::StrCat("shape entry '", part, "' is not a non-negative integer"));
    }
    h.shape.push_back(d);
  }
  return h;
}

struct Descr {
  const char* text;
  DType stored;  // how the file stores it; f8 is converted
  size_t size;
};
constexpr Descr kDescrs[] = {{"<f4", DType::kF32, 4}, {"<f8", DType::kF32, 8}, {"<i8", DType::kI64, 8},
                             {"<i4", DType::kI32, 4}, {"|i1", DType::kI8, 1},  {"|u1", DType::kU8, 1},
                             {"|b1", DType::kU8, 1}};

}  // namespace

absl::StatusOr<Tensor> ParseNpy(const std::string& file, const char* data, size_t size) {
  if (size < 10 || std::memcmp(data, kMagic, 6) != 0) return Bad(file, "missing the \\x93NUMPY magic");
  const int major = static_cast<unsigned char>(data[6]);
  size_t hlen = 0, hstart = 0;
  if (major == 1) {
    hlen = static_cast<unsigned char>(data[8]) | static_cast<unsigned char>(data[9]) << 8;
    hstart = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) return Bad(file, "truncated header length");
    uint32_t n;
    std::memcpy(&n, data + 8, 4);
    hlen = n;
    hstart = 12;
  } else {
    return absl::UnimplementedError(absl::StrCat(file, ": .npy format version ", major, " is not supported (1-3)"));
  }
  if (hstart + hlen > size) return Bad(file, absl::StrCat("header of ", hlen, " bytes runs past the end of the file"));
  QFX_ASSIGN_OR_RETURN(Header h, ParseHeaderDict(file, absl::string_view(data + hstart, hlen)));
  if (h.fortran)
    return absl::UnimplementedError(
        absl::StrCat(file, ": Fortran-order arrays are not supported; save with np.ascontiguousarray"));
  const Descr* d = nullptr;
  for (const Descr& e : kDescrs) {
    if (h.descr == e.text || (e.size == 1 && h.descr == absl::StrCat("<", e.text + 1))) d = &e;
  }
  if (d == nullptr) {
    return absl::UnimplementedError(
        absl::StrCat(file, ": dtype '", h.descr, "' is not supported; use <f4, <f8, <i8, <i4, |i1 or |u1"));
  }
  int64_t count = 0;
  if (!CheckedNumElements(h.shape, static_cast<int64_t>(d->size), &count)) {
    return Bad(file, absl::StrCat("shape ", ShapeToString(h.shape), " of ", h.descr, " exceeds ", kMaxTensorBytes,
                                  " bytes (no file holds that)"));
  }
  const size_t numel = static_cast<size_t>(count);
  const size_t body = size - hstart - hlen;
  if (body != numel * d->size) {
    return Bad(file, absl::StrCat("shape ", ShapeToString(h.shape), " of ", h.descr, " needs ", numel * d->size,
                                  " data bytes but the file has ", body));
  }
  Tensor t = Tensor::Empty(h.shape, d->stored);
  const char* src = data + hstart + hlen;
  if (h.descr == "<f8") {
    float* out = t.data<float>();
    for (size_t i = 0; i < numel; ++i) {
      double v;
      std::memcpy(&v, src + i * 8, 8);
      out[i] = static_cast<float>(v);
    }
  } else if (numel > 0) {
    std::memcpy(t.raw_data(), src, body);
  }
  return t;
}

absl::StatusOr<Tensor> ReadNpy(const std::string& path) {
  QFX_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, MappedFile::Open(path));
  return ParseNpy(path, file->data(), file->size());
}

absl::Status WriteNpy(const std::string& path, const Tensor& t) {
  if (!t.defined()) return absl::InvalidArgumentError(absl::StrCat(path, ": cannot write an undefined tensor"));
  const char* descr = "";
  for (const Descr& e : kDescrs) {
    if (e.stored == t.dtype() && e.size == DTypeSize(t.dtype())) {
      descr = e.text;
      break;
    }
  }
  std::string shape = absl::StrJoin(t.shape(), ", ");
  if (t.dim() == 1) shape += ",";
  std::string header = absl::StrCat("{'descr': '", descr, "', 'fortran_order': False, 'shape': (", shape, "), }");
  header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::string pre(kMagic, 6);
  pre += '\x01';
  pre += '\x00';
  pre += static_cast<char>(header.size() & 0xff);
  pre += static_cast<char>(header.size() >> 8);
  QFX_ASSIGN_OR_RETURN(auto file, AtomicFile::Create(path));
  QFX_RETURN_IF_ERROR(file->Write(pre));
  QFX_RETURN_IF_ERROR(file->Write(header));
  QFX_RETURN_IF_ERROR(file->Write(t.raw_data(), t.nbytes()));
  return file->Commit();
}

}  // namespace io
}  // namespace qfx
