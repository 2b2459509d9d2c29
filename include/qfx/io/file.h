// qfx io: file primitives shared by every reader and writer — whole-file and memory-mapped reads, and
// atomic writes (a temporary file in the target's directory, fsync, rename), so a failed or
// interrupted write never leaves a half-written file behind.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace qfx {
namespace io {

// A private (copy-on-write) memory mapping of a whole file: writes to it never reach the file.
// Unmapped when the last shared_ptr goes.
class MappedFile {
 public:
  static absl::StatusOr<std::shared_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const char* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile(std::string path, const char* data, size_t size) : path_(std::move(path)), data_(data), size_(size) {}
  std::string path_;
  const char* data_;
  size_t size_;
};

// Writes to `path` atomically: Write() appends to a temporary file next to it; Commit() flushes,
// fsyncs and renames it over `path`. Without Commit() the destructor removes the temporary file.
class AtomicFile {
 public:
  static absl::StatusOr<std::unique_ptr<AtomicFile>> Create(const std::string& path);
  ~AtomicFile();
  absl::Status Write(const void* data, size_t n);
  absl::Status Write(absl::string_view s) { return Write(s.data(), s.size()); }
  absl::Status Commit();

 private:
  AtomicFile(std::string path, std::string tmp, int fd) : path_(std::move(path)), tmp_(std::move(tmp)), fd_(fd) {}
  std::string path_, tmp_;
  int fd_;
  bool committed_ = false;
};

// Convenience: writes `contents` to `path` atomically.
absl::Status WriteFileAtomic(const std::string& path, absl::string_view contents);

}  // namespace io
}  // namespace qfx
