// qfx fuzzing: what the libFuzzer targets share. A target defines LLVMFuzzerTestOneInput; built with
// --config=fuzz it links libFuzzer, otherwise replay_main.cc runs it over seed files (a regression test).
// Any crash, sanitizer report, uncaught exception or leak is a finding; an error Status is the expected
// answer to a bad input.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace qfx {
namespace fuzz {

// The input as a file (an in-memory file: no disk, nothing left behind) for loaders that take a path.
class InputFile {
 public:
  InputFile(const uint8_t* data, size_t size) : fd_(::memfd_create("qfx-fuzz", MFD_CLOEXEC)) {
    size_t done = 0;
    while (fd_ >= 0 && done < size) {
      const ssize_t w = ::write(fd_, data + done, size - done);
      if (w <= 0) break;
      done += static_cast<size_t>(w);
    }
  }
  ~InputFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  bool ok() const { return fd_ >= 0; }
  std::string path() const { return "/proc/self/fd/" + std::to_string(fd_); }

 private:
  int fd_;
};

}  // namespace fuzz
}  // namespace qfx
