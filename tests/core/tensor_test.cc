// qfx tests: Tensor storage, views, element access and shape errors; the thread pool.
#include <atomic>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "qfx/core/parallel.h"
#include "qfx/core/tensor.h"

namespace qfx {
namespace {

TEST(Tensor, EmptyIsZeroedAlignedAndTyped) {
  for (DType d : {DType::kF32, DType::kI8, DType::kU8, DType::kI32, DType::kI64}) {
    Tensor t = Tensor::Empty({3, 5}, d);
    EXPECT_EQ(t.nbytes(), 15 * DTypeSize(d));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % 64, 0u);
    for (size_t i = 0; i < t.nbytes(); ++i) EXPECT_EQ(static_cast<char*>(t.raw_data())[i], 0);
  }
  EXPECT_EQ(Tensor::Zeros({}).numel(), 1);
  EXPECT_EQ(Tensor::Zeros({}, DType::kI64).ToString(), "i64[]");
}

TEST(Tensor, ViewsShareStorage) {
  Tensor t = Tensor::FromVector({2, 3, 2}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  Tensor r = t.Reshape({3, -1});
  EXPECT_EQ(r.shape(), (Shape{3, 4}));
  EXPECT_TRUE(r.SharesStorage(t));
  EXPECT_EQ(r.at({2, 1}), 9.f);
  Tensor f = t.Flatten(1);
  EXPECT_EQ(f.shape(), (Shape{2, 6}));
  Tensor n = t.Narrow0(1, 1);
  EXPECT_EQ(n.shape(), (Shape{1, 3, 2}));
  EXPECT_EQ(n.at({0, 0, 0}), 6.f);
  n.at({0, 0, 0}) = 42.f;
  EXPECT_EQ(t.at({1, 0, 0}), 42.f);
  Tensor c = t.Clone();
  c.at({1, 0, 0}) = 1.f;
  EXPECT_EQ(t.at({1, 0, 0}), 42.f);
}

TEST(Tensor, ShapeAndTypeErrorsAreClear) {
  Tensor t = Tensor::Zeros({2, 3});
  auto message = [](auto fn) {
    try {
      fn();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message([&] { t.Reshape({4, 2}); }), "reshape of f32[2, 3] to [4, 2]: element counts differ (6 vs 8)");
  EXPECT_EQ(message([&] { t.data<int8_t>(); }), "tensor f32[2, 3] read as i8: dtypes must match");
  EXPECT_EQ(message([&] { t.at({2, 0}); }), "index 2 out of range for dim 0 of tensor f32[2, 3]");
  EXPECT_EQ(message([&] { t.Reshape({-1, -1}); }), "reshape of f32[2, 3] to [-1, -1]: only one -1 allowed");
  EXPECT_EQ(message([&] { t.Flatten(2); }),
            "flatten start_dim: dim 2 is out of range for a tensor of rank 2 (use -2..1)");
  EXPECT_EQ(message([&] {
              Tensor::FromVector({2}, {1, 2, 3});
            }),
            "Tensor::FromVector: 3 values do not fill shape [2] (2 elements)");
}

TEST(Parallel, CoversEveryIndexOnceAndHonoursThreadCount) {
  for (int threads : {1, 2, 3}) {
    SetNumThreads(threads);
    for (int64_t n : {0, 1, 7, 1000}) {
      std::vector<std::atomic<int>> hits(n);
      std::atomic<int> calls{0};
      ParallelFor(n, 3, [&](int64_t b, int64_t e) {
        ++calls;
        for (int64_t i = b; i < e; ++i) ++hits[i];
      });
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[i], 1) << "n " << n << " i " << i;
      EXPECT_LE(calls, threads);
    }
  }
  // Several chunks a thread: still every index once, at most threads * chunks_per_thread calls, each at least
  // `grain` items but the last, and never more threads at once than asked for.
  for (int threads : {1, 2, 3}) {
    SetNumThreads(threads);
    for (int64_t n : {1, 7, 1000}) {
      std::vector<std::atomic<int>> hits(n);
      std::atomic<int> calls{0}, running{0}, most{0};
      ParallelFor(
          n, 3,
          [&](int64_t b, int64_t e) {
            ++calls;
            const int now = ++running;
            for (int seen = most.load(); now > seen && !most.compare_exchange_weak(seen, now);) {
            }
            EXPECT_TRUE(e - b >= 3 || e == n) << b << " " << e;
            for (int64_t i = b; i < e; ++i) ++hits[i];
            --running;
          },
          4);
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[i], 1) << "n " << n << " i " << i;
      EXPECT_LE(calls, threads * 4);
      EXPECT_LE(most, threads);
    }
  }
  SetNumThreads(2);
  // Nested calls run serially on the calling worker instead of deadlocking.
  std::atomic<int64_t> sum{0};
  ParallelFor(4, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) ParallelFor(10, 1, [&](int64_t b2, int64_t e2) { sum += e2 - b2; });
  });
  EXPECT_EQ(sum, 40);
}

}  // namespace
}  // namespace qfx
