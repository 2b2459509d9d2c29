// qfx io: file primitives shared by every reader and writer — whole-file and memory-mapped reads, and
// atomic writes: the bytes go to an unnamed file in the target's directory (O_TMPFILE), are synced,
// then linked under a temporary name and renamed over the target. A failed or interrupted write never
// leaves a half-written file behind, and a killed one (even by SIGKILL) leaves no temporary file: the
// unnamed file vanishes with the process, and the rare name left between link and rename is removed by
// the next write to that directory. Only regular files are replaced (a device or FIFO at the path is an
// error, a symlink's target is written and the link kept), and an existing file keeps its mode.
#pragma once

#include <cstddef>
#include <functional>
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

// Writes to `path` atomically (see the top of this file): Write() appends; ReadablePath() is a path the
// bytes written so far can be read back from (to check them before they replace anything); Commit()
// syncs and renames into place. Without Commit() nothing is left behind.
class AtomicFile {
 public:
  static absl::StatusOr<std::unique_ptr<AtomicFile>> Create(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  absl::Status Write(const void* data, size_t n);
  absl::Status Write(absl::string_view s) { return Write(s.data(), s.size()); }
  std::string ReadablePath() const;
  absl::Status Commit();

 private:
  AtomicFile(std::string path, std::string target) : path_(std::move(path)), target_(std::move(target)) {}
  std::string path_;    // as the caller gave it (for messages)
  std::string target_;  // the file replaced: path_, or the target of the symlink at path_
  std::string tmp_;     // the temporary name while one exists (empty while the file is unnamed)
  int fd_ = -1;
  int slot_ = -1;  // this file's entry in the signal handler's list of names to remove
  bool committed_ = false;
};

// A check of what was written, given a path to read it from, run before the file replaces anything.
using WriteCheck = std::function<absl::Status(const std::string& readable_path)>;

// Convenience: writes `contents` to `path` atomically.
absl::Status WriteFileAtomic(const std::string& path, absl::string_view contents);

// Installs handlers for SIGINT, SIGTERM and SIGHUP (where no handler is set) that remove the temporary
// names of writes in flight, then die of the signal as before. qfx's command line calls it at start.
void RemoveTemporaryFilesOnSignals();

}  // namespace io
}  // namespace qfx
