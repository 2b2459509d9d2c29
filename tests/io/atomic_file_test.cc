// qfx tests: atomic writes under hostile conditions (issue 17): a killed writer leaves no file, stale
// temporary names are removed, only regular files are replaced, modes and symlinks are kept, and a
// check of what was written runs before it replaces anything.
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "qfx/io/file.h"
#include "qfx/io/safetensors.h"

namespace qfx {
namespace io {
namespace {

// A fresh empty directory per test.
std::string NewDir(const std::string& name) {
  const char* t = std::getenv("TEST_TMPDIR");
  const std::string d = std::string(t ? t : "/tmp") + "/atomic_" + name + "_" + std::to_string(::getpid());
  std::filesystem::remove_all(d);
  EXPECT_EQ(::mkdir(d.c_str(), 0755), 0);
  return d;
}

std::set<std::string> Entries(const std::string& dir) {  // dot files included
  std::set<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      const std::string n = e->d_name;
      if (n != "." && n != "..") out.insert(n);
    }
    ::closedir(d);
  }
  return out;
}

std::string Slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(AtomicFile, NothingIsVisibleBeforeCommitAndTheBytesReadBack) {
  const std::string dir = NewDir("visible"), path = dir + "/out.bin";
  auto f = AtomicFile::Create(path);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_TRUE((*f)->Write("hello").ok());
  EXPECT_TRUE(Entries(dir).empty());
  EXPECT_EQ(Slurp((*f)->ReadablePath()), "hello");
  ASSERT_TRUE((*f)->Commit().ok());
  EXPECT_EQ(Entries(dir), std::set<std::string>{"out.bin"});
  EXPECT_EQ(Slurp(path), "hello");
}

TEST(AtomicFile, AWriterKilledMidWriteLeavesNothing) {
  const std::string dir = NewDir("killed"), path = dir + "/model.qfx";
  ASSERT_TRUE(WriteFileAtomic(path, "old").ok());
  for (int sig : {SIGKILL, SIGTERM, SIGINT}) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      RemoveTemporaryFilesOnSignals();
      auto f = AtomicFile::Create(path);
      if (!f.ok()) ::_exit(3);
      const std::string block(1 << 20, 'x');
      for (int i = 0; i < 8; ++i) (void)(*f)->Write(block);
      ::raise(sig);
      ::_exit(4);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status)) << "signal " << sig;
    EXPECT_EQ(WTERMSIG(status), sig);
    EXPECT_EQ(Entries(dir), std::set<std::string>{"model.qfx"}) << "signal " << sig;
    EXPECT_EQ(Slurp(path), "old");
  }
}

TEST(AtomicFile, TheNextWriteRemovesATemporaryNameOfADeadProcess) {
  const std::string dir = NewDir("stale"), path = dir + "/m.qfx";
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);  // its pid now names no process
  const std::string stale = dir + "/.m.qfx.qfx-tmp." + std::to_string(child) + ".12";
  const std::string live = dir + "/.m.qfx.qfx-tmp." + std::to_string(::getpid()) + ".12";
  std::ofstream(stale) << "partial";
  std::ofstream(live) << "in flight";
  ASSERT_TRUE(WriteFileAtomic(path, "new").ok());
  EXPECT_EQ(Entries(dir), (std::set<std::string>{"m.qfx", ".m.qfx.qfx-tmp." + std::to_string(::getpid()) + ".12"}));
}

TEST(AtomicFile, OnlyRegularFilesAreReplaced) {
  const std::string dir = NewDir("special"), fifo = dir + "/pipe";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  for (const std::string& path : {fifo, dir, std::string("/dev/null")}) {
    const absl::Status s = WriteFileAtomic(path, "x");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << path;
    EXPECT_NE(std::string(s.message()).find("is not a regular file"), std::string::npos) << s;
  }
  struct stat st;
  ASSERT_EQ(::stat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  ASSERT_EQ(::stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
}

TEST(AtomicFile, TheExistingModeAndSymlinksAreKept) {
  const std::string dir = NewDir("mode"), path = dir + "/f", link = dir + "/l";
  ASSERT_TRUE(WriteFileAtomic(path, "1").ok());
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  ASSERT_TRUE(WriteFileAtomic(path, "2").ok());
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(::symlink("f", link.c_str()), 0);
  ASSERT_TRUE(WriteFileAtomic(link, "3").ok());
  ASSERT_EQ(::lstat(link.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(Slurp(path), "3");
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST(AtomicFile, AFailedCheckLeavesTheOldFile) {
  const std::string dir = NewDir("check"), path = dir + "/w.safetensors";
  ASSERT_TRUE(WriteFileAtomic(path, "old").ok());
  Tensor t = Tensor::Empty({4}, DType::kF32);
  for (int i = 0; i < 4; ++i) t.data<float>()[i] = static_cast<float>(i);
  std::string seen;
  const absl::Status s = WriteSafetensors(path, {{"w", t}}, {}, [&](const std::string& written) {
    auto st = ReadSafetensors(written);
    if (st.ok()) seen = std::to_string(st->tensors.size());
    return absl::DataLossError(written + ": does not look right");
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(std::string(s.message()).find("not written"), std::string::npos) << s;
  EXPECT_NE(std::string(s.message()).find("the new file: does not look right"), std::string::npos) << s;
  EXPECT_EQ(seen, "1");
  EXPECT_EQ(Slurp(path), "old");
  EXPECT_EQ(Entries(dir), std::set<std::string>{"w.safetensors"});
}

}  // namespace
}  // namespace io
}  // namespace qfx
