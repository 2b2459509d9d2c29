// qfx tests: safetensors and npy round trips, atomic writes, and malformed files (every truncation,
// seeded byte corruption, and hand-made bad headers) that must fail with a clear error, never crash.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "gtest/gtest.h"
#include "qfx/io/file.h"
#include "qfx/io/npy.h"
#include "qfx/io/safetensors.h"

namespace qfx {
namespace io {
namespace {

std::string TempDir() {
  const char* d = std::getenv("TEST_TMPDIR");
  return d ? d : "/tmp";
}

std::string Slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> FilesIn(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') out.push_back(e->d_name);
    }
    closedir(d);
  }
  return out;
}

nn::NamedTensors SampleTensors() {
  nn::NamedTensors t;
  t.emplace_back("w", Tensor::FromVector({2, 3}, {1, 2, 3, 4, 5, 6}));
  Tensor i8 = Tensor::Empty({5}, DType::kI8);
  for (int i = 0; i < 5; ++i) i8.data<int8_t>()[i] = static_cast<int8_t>(-100 + 50 * i);
  t.emplace_back("q", i8);
  Tensor i64 = Tensor::Empty({}, DType::kI64);
  i64.data<int64_t>()[0] = 1234567890123;
  t.emplace_back("steps", i64);
  Tensor i32 = Tensor::Empty({2, 2}, DType::kI32);
  i32.data<int32_t>()[3] = -7;
  t.emplace_back("b", i32);
  t.emplace_back("u", Tensor::Empty({3, 0}, DType::kU8));
  return t;
}

void ExpectSame(const Tensor& a, const Tensor& b) {
  ASSERT_EQ(a.dtype(), b.dtype());
  ASSERT_EQ(a.shape(), b.shape());
  EXPECT_EQ(std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()), 0);
}

TEST(Safetensors, RoundTripsEveryDtypeAndMetadata) {
  const std::string dir = TempDir() + "/st_roundtrip";
  ::mkdir(dir.c_str(), 0755);
  const std::string path = dir + "/m.safetensors";
  const auto tensors = SampleTensors();
  ASSERT_TRUE(WriteSafetensors(path, tensors, {{"format", "qfx"}, {"version", "1"}}).ok());
  EXPECT_EQ(FilesIn(dir), std::vector<std::string>{"m.safetensors"}) << "temporary file left behind";
  auto st = ReadSafetensors(path);
  ASSERT_TRUE(st.ok()) << st.status();
  ASSERT_EQ(st->tensors.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(st->tensors[i].first, tensors[i].first);
    ExpectSame(st->tensors[i].second, tensors[i].second);
  }
  EXPECT_EQ(st->metadata.at("format"), "qfx");
  // Writes into a borrowed (memory-mapped) tensor never reach the file.
  st->tensors[0].second.data<float>()[0] = 99.f;
  auto again = ReadSafetensors(path);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->tensors[0].second.data<float>()[0], 1.f);
}

TEST(Safetensors, FailedWritesLeaveNoFile) {
  const std::string dir = TempDir() + "/st_fail";
  ::mkdir(dir.c_str(), 0755);
  nn::NamedTensors bad = {{"__metadata__", Tensor::Zeros({1})}};
  EXPECT_FALSE(WriteSafetensors(dir + "/x.safetensors", bad).ok());
  const absl::Status s = WriteSafetensors(dir + "/no/such/dir/x.safetensors", SampleTensors());
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("no/such/dir/x.safetensors"), std::string::npos) << s;
  EXPECT_TRUE(FilesIn(dir).empty());
  {
    auto f = AtomicFile::Create(dir + "/y.bin");
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->Write("partial").ok());
  }  // destroyed without Commit: as if the writer crashed halfway
  EXPECT_TRUE(FilesIn(dir).empty());
}

std::string SampleFile() {
  const std::string path = TempDir() + "/sample.safetensors";
  EXPECT_TRUE(WriteSafetensors(path, SampleTensors(), {{"k", "v"}}).ok());
  return Slurp(path);
}

TEST(Safetensors, EveryTruncationFailsCleanly) {
  const std::string bytes = SampleFile();
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto st = ParseSafetensors("cut.safetensors", bytes.data(), n);
    // A cut inside trailing zero padding of the last tensor cannot be seen; every other cut can.
    if (st.ok()) continue;
    EXPECT_EQ(st.status().code(), absl::StatusCode::kInvalidArgument) << n;
    EXPECT_EQ(st.status().message().rfind("cut.safetensors: ", 0), 0u) << st.status();
  }
  EXPECT_FALSE(ParseSafetensors("cut", bytes.data(), bytes.size() - 1).ok());
}

TEST(Safetensors, RandomCorruptionNeverCrashes) {
  const std::string bytes = SampleFile();
  std::mt19937 gen(42);
  int failures = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string b = bytes;
    const int flips = 1 + trial % 4;
    for (int f = 0; f < flips; ++f) {
      const size_t pos = gen() % std::min<size_t>(b.size(), 8 + 400);  // mostly the length and header
      b[pos] = static_cast<char>(gen());
    }
    auto st = ParseSafetensors("fuzz", b.data(), b.size());
    if (!st.ok()) {
      ++failures;
      EXPECT_FALSE(st.status().message().empty());
    }
  }
  EXPECT_GT(failures, 1000);
}

std::string WithHeader(const std::string& json, size_t data_bytes) {
  std::string out(8, '\0');
  const uint64_t n = json.size();
  std::memcpy(&out[0], &n, 8);
  return out + json + std::string(data_bytes, '\0');
}

TEST(Safetensors, BadHeadersNameTheProblem) {
  struct Case {
    std::string json;
    size_t data;
    const char* expect;
  };
  const Case cases[] = {
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4, "ends at byte 8 of the data but only 4"},
      {R"({"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", 4, "tensor 'a' has dtype F16"},
      {R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8, "hold 8 bytes but F32[3] needs 12"},
      {R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4, "shape entries must be >= 0"},
      // 2^31 x 2^31 x 4 bytes wraps to 0 modulo 2^64; 2^63 is no int64 dimension (even next to a 0).
      {R"({"a":{"dtype":"F32","shape":[2147483648,2147483648],"data_offsets":[0,0]}})", 0,
       "tensor 'a': F32[2147483648, 2147483648] exceeds 1099511627776 bytes"},
      {R"({"a":{"dtype":"F32","shape":[0,9223372036854775808],"data_offsets":[0,0]}})", 0,
       "tensor 'a': shape entry 9223372036854775808 exceeds 1099511627776"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})",
       8, "overlap"},
      {R"({"a":{"dtype":"F32","shape":[1]}})", 4, "needs dtype, shape and data_offsets"},
      {R"({"a":)", 0, "not valid JSON"},
      {R"([1,2])", 0, "must be a JSON object"},
      {R"({"__metadata__":{"k":3}})", 0, "__metadata__ value of 'k' must be a string"},
  };
  for (const Case& c : cases) {
    const std::string bytes = WithHeader(c.json, c.data);
    auto st = ParseSafetensors("bad.safetensors", bytes.data(), bytes.size());
    ASSERT_FALSE(st.ok()) << c.json;
    EXPECT_NE(st.status().message().find(c.expect), std::string::npos) << st.status();
    EXPECT_EQ(st.status().message().rfind("bad.safetensors: ", 0), 0u) << st.status();
  }
  std::string huge(8, '\xff');
  EXPECT_NE(ParseSafetensors("h", huge.data(), huge.size()).status().message().find("exceeds the file"),
            std::string::npos);
  EXPECT_EQ(ReadSafetensors("/nonexistent/file.safetensors").status().code(), absl::StatusCode::kNotFound);
}

TEST(Npy, RoundTripsEveryDtype) {
  for (const auto& [name, t] : SampleTensors()) {
    const std::string path = TempDir() + "/" + name + ".npy";
    ASSERT_TRUE(WriteNpy(path, t).ok());
    const std::string bytes = Slurp(path);
    EXPECT_EQ(bytes.size() - t.nbytes(), 128u) << "header padded to a multiple of 64";
    auto back = ReadNpy(path);
    ASSERT_TRUE(back.ok()) << back.status();
    ExpectSame(*back, t);
  }
}

std::string NpyBytes(int version, const std::string& dict, const std::string& data) {
  std::string h = dict;
  const size_t pre = version == 1 ? 10 : 12;
  h.append((64 - (pre + h.size() + 1) % 64) % 64, ' ');
  h += '\n';
  std::string out = std::string("\x93NUMPY", 6) + static_cast<char>(version) + '\0';
  if (version == 1) {
    out += static_cast<char>(h.size() & 0xff);
    out += static_cast<char>(h.size() >> 8);
  } else {
    const uint32_t n = static_cast<uint32_t>(h.size());
    out.append(reinterpret_cast<const char*>(&n), 4);
  }
  return out + h + data;
}

TEST(Npy, ReadsNumpyHeadersF8AndVersion2) {
  const double d[3] = {1.5, -2.25, 1e-3};
  const std::string f8 = NpyBytes(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
                                  std::string(reinterpret_cast<const char*>(d), sizeof(d)));
  auto t = ParseNpy("f8.npy", f8.data(), f8.size());
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->dtype(), DType::kF32);
  EXPECT_EQ(t->data<float>()[1], -2.25f);
  const std::string v2 = NpyBytes(2, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }", "abcd");
  auto u = ParseNpy("v2.npy", v2.data(), v2.size());
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->shape(), (Shape{2, 2}));
  EXPECT_EQ(u->data<uint8_t>()[3], 'd');
}

TEST(Npy, BadFilesNameTheProblem) {
  struct Case {
    std::string bytes;
    const char* expect;
  };
  const Case cases[] = {
      {"hello", "missing the \\x93NUMPY magic"},
      {NpyBytes(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", "abcd"),
       "dtype '>f4' is not supported"},
      {NpyBytes(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }", "abcd"), "Fortran-order"},
      {NpyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", "abcd"),
       "needs 8 data bytes but the file has 4"},
      {NpyBytes(1, "{'descr': '<f4', 'fortran_order': False}", ""), "header has no 'shape'"},
      {NpyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (x,), }", ""), "shape entry 'x'"},
      {NpyBytes(1, "not a dict", ""), "not a {...} dict"},
      {NpyBytes(1, "{'descr': '<f4', 'shape':  }", ""), "key 'shape' has no value"},  // tools/fuzz.sh found it
      {NpyBytes(7, "{}", ""), "version 7"},
      // Element counts whose byte size wraps modulo 2^64 (4 x (2^62 + 16) = 64) or overflows int64.
      {NpyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387920, 1), }",
                std::string(64, '\0')),
       "exceeds 1099511627776 bytes"},
      {NpyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 1099511627776), }", ""),
       "exceeds 1099511627776 bytes"},
  };
  for (const Case& c : cases) {
    auto t = ParseNpy("bad.npy", c.bytes.data(), c.bytes.size());
    ASSERT_FALSE(t.ok()) << c.expect;
    EXPECT_NE(t.status().message().find(c.expect), std::string::npos) << t.status();
    EXPECT_EQ(t.status().message().rfind("bad.npy: ", 0), 0u) << t.status();
  }
}

TEST(Npy, EveryTruncationAndCorruptionFailsCleanly) {
  const std::string path = TempDir() + "/t.npy";
  ASSERT_TRUE(WriteNpy(path, Tensor::FromVector({2, 2}, {1, 2, 3, 4})).ok());
  const std::string bytes = Slurp(path);
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(ParseNpy("cut.npy", bytes.data(), n).ok()) << n;
  }
  std::mt19937 gen(7);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string b = bytes;
    b[gen() % 128] = static_cast<char>(gen());
    (void)ParseNpy("fuzz.npy", b.data(), b.size());  // must not crash
  }
}

}  // namespace
}  // namespace io
}  // namespace qfx
