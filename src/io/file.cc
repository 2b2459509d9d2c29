// qfx io: memory-mapped reads and atomic writes (see include/qfx/io/file.h).
#include "qfx/io/file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "qfx/core/status.h"

namespace qfx {
namespace io {
namespace {

absl::Status ErrnoError(const std::string& what, const std::string& path) {
  const int err = errno;
  const std::string msg = absl::StrCat(path, ": cannot ", what, ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(msg);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(msg);
  return absl::UnavailableError(msg);
}

// Named temporary files that exist right now, for the signal handler to remove. Slots hold pointers to
// strings owned by their AtomicFile, which clears its slot before the string changes or goes.
constexpr int kMaxPending = 64;
std::atomic<const char*> g_pending[kMaxPending];

int Register(const char* path) {
  for (int i = 0; i < kMaxPending; ++i) {
    const char* expected = nullptr;
    if (g_pending[i].compare_exchange_strong(expected, path)) return i;
  }
  return -1;  // more than 64 writes at once: this one is only cleaned up by the next run
}

void Unregister(int slot) {
  if (slot >= 0) g_pending[slot].store(nullptr);
}

extern "C" void RemovePendingAndReraise(int sig) {
  for (auto& slot : g_pending) {
    if (const char* p = slot.load()) ::unlink(p);  // async-signal-safe
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

std::string DirName(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string BaseName(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The prefix of the temporary names for `base`: ".base.qfx-tmp." then "PID.RANDOM".
std::string TempPrefix(const std::string& base) { return absl::StrCat(".", base, ".qfx-tmp."); }

// Removes temporary files for `base` in `dir` left by a process that no longer runs (killed between
// the link and the rename of Commit, or on a file system without O_TMPFILE).
void RemoveStaleTemps(const std::string& dir, const std::string& base) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  const std::string prefix = TempPrefix(base);
  while (const dirent* e = ::readdir(d)) {
    const absl::string_view name(e->d_name);
    if (!absl::StartsWith(name, prefix)) continue;
    const absl::string_view rest = name.substr(prefix.size());
    int pid = 0;
    if (!absl::SimpleAtoi(rest.substr(0, rest.find('.')), &pid) || pid <= 0) continue;
    if (::kill(pid, 0) != 0 && errno == ESRCH) ::unlink(absl::StrCat(dir, "/", name).c_str());
  }
  ::closedir(d);
}

std::string NewTempName(const std::string& target) {
  static std::atomic<uint32_t> counter{0};
  std::random_device rd;
  return absl::StrCat(DirName(target), "/", TempPrefix(BaseName(target)), ::getpid(), ".", rd() % 1000000, counter++);
}

// Where to write for `path`: the file itself, or a symlink's target (the link stays); only regular files
// are replaced. *mode is the existing file's permission bits, or -1 for a new file.
absl::StatusOr<std::string> Target(const std::string& path, int* mode) {
  *mode = -1;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return path;
    return ErrnoError("inspect", path);
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": is not a regular file (", S_ISDIR(st.st_mode) ? "a directory" : "a device, FIFO or socket",
        "); qfx writes only regular files, which it replaces atomically: give a file path"));
  }
  *mode = static_cast<int>(st.st_mode & 07777);
  struct stat lst;
  if (::lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) {
    char resolved[PATH_MAX];
    if (::realpath(path.c_str(), resolved) == nullptr) return ErrnoError("resolve the link", path);
    return std::string(resolved);
  }
  return path;
}

void SyncDirectory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);  // best effort: the rename is durable once the directory is
  ::close(fd);
}

}  // namespace

void RemoveTemporaryFilesOnSignals() {
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction old;
    if (::sigaction(sig, nullptr, &old) != 0 || old.sa_handler != SIG_DFL) continue;  // someone else's
    struct sigaction sa;
    std::memset(&sa, 0, sizeof(sa));
    sa.sa_handler = RemovePendingAndReraise;
    sigemptyset(&sa.sa_mask);
    ::sigaction(sig, &sa, nullptr);
  }
}

absl::StatusOr<std::shared_ptr<MappedFile>> MappedFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open", path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    absl::Status s = ErrnoError("stat", path);
    ::close(fd);
    return s;
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  const size_t size = static_cast<size_t>(st.st_size);
  const char* data = "";
  if (size > 0) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      absl::Status s = ErrnoError("map", path);
      ::close(fd);
      return s;
    }
    data = static_cast<const char*>(p);
  }
  ::close(fd);
  return std::shared_ptr<MappedFile>(new MappedFile(path, data, size));
}

MappedFile::~MappedFile() {
  if (size_ > 0) ::munmap(const_cast<char*>(data_), size_);
}

absl::StatusOr<std::unique_ptr<AtomicFile>> AtomicFile::Create(const std::string& path) {
  int mode = -1;
  QFX_ASSIGN_OR_RETURN(const std::string target, Target(path, &mode));
  const std::string dir = DirName(target);
  RemoveStaleTemps(dir, BaseName(target));
  std::unique_ptr<AtomicFile> f(new AtomicFile(path, target));
  // An unnamed file in the target's directory: nothing is visible until Commit, whatever kills us.
  f->fd_ = ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
  if (f->fd_ < 0) {  // a file system without O_TMPFILE: a named temporary file instead
    f->tmp_ = NewTempName(target);
    f->slot_ = Register(f->tmp_.c_str());
    f->fd_ = ::open(f->tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (f->fd_ < 0) return ErrnoError("create a temporary file for", path);
  }
  if (mode >= 0 && ::fchmod(f->fd_, static_cast<mode_t>(mode)) != 0) return ErrnoError("keep the mode of", path);
  return f;
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !tmp_.empty()) ::unlink(tmp_.c_str());
  Unregister(slot_);
}

std::string AtomicFile::ReadablePath() const { return tmp_.empty() ? absl::StrCat("/proc/self/fd/", fd_) : tmp_; }

absl::Status AtomicFile::Write(const void* data, size_t n) {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat(path_, ": write after commit"));
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("write", path_);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return absl::OkStatus();
}

absl::Status AtomicFile::Commit() {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat(path_, ": committed twice"));
  if (::fsync(fd_) != 0) return ErrnoError("sync", path_);
  if (tmp_.empty()) {  // give the unnamed file a temporary name, then rename that over the target
    tmp_ = NewTempName(target_);
    slot_ = Register(tmp_.c_str());
    const std::string self = absl::StrCat("/proc/self/fd/", fd_);
    if (::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, tmp_.c_str(), AT_SYMLINK_FOLLOW) != 0) {
      absl::Status s = ErrnoError("link the written file into place for", path_);
      Unregister(slot_);
      slot_ = -1;
      tmp_.clear();
      return s;
    }
  }
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) return ErrnoError("close", path_);
  if (::rename(tmp_.c_str(), target_.c_str()) != 0) return ErrnoError("rename the temporary file onto", path_);
  committed_ = true;
  Unregister(slot_);
  slot_ = -1;
  SyncDirectory(DirName(target_));
  return absl::OkStatus();
}

absl::Status WriteFileAtomic(const std::string& path, absl::string_view contents) {
  QFX_ASSIGN_OR_RETURN(auto file, AtomicFile::Create(path));
  QFX_RETURN_IF_ERROR(file->Write(contents));
  return file->Commit();
}

}  // namespace io
}  // namespace qfx
