// qfx core: a small persistent thread pool (see include/qfx/core/parallel.h).
#include "qfx/core/parallel.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

namespace qfx {
namespace {

std::atomic<int> g_num_threads{0};
thread_local bool t_inside_parallel = false;

// One ParallelFor call: chunks are claimed through `next`; the caller waits until `pending` is 0.
// Workers hold the state by shared_ptr, so a late worker only finds an exhausted counter.
struct JobState {
  const std::function<void(int64_t)>* job = nullptr;
  int64_t chunks = 0;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> pending{0};
};

// Persistent workers wake on each new job, run the chunks they claim, and go back to sleep.
class Pool {
 public:
  static Pool& Get() {
    static Pool* pool = new Pool();  // never destroyed: workers may outlive static destructors
    return *pool;
  }

  // Runs job(0 .. chunks - 1) on the caller and `helpers` workers.
  void Run(int64_t chunks, int64_t helpers, const std::function<void(int64_t)>& job) {
    std::lock_guard<std::mutex> run_lock(run_mu_);
    EnsureWorkers(static_cast<int>(helpers));
    auto state = std::make_shared<JobState>();
    state->job = &job;
    state->chunks = chunks;
    state->pending.store(chunks);
    {
      std::lock_guard<std::mutex> lock(mu_);
      current_ = state;
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    Work(*state);
    // Workers usually finish within microseconds: spin briefly before sleeping.
    for (int i = 0; i < kSpins && state->pending.load(std::memory_order_acquire) != 0; ++i) Pause();
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return state->pending.load() == 0; });
    current_.reset();
  }

 private:
  void EnsureWorkers(int n) {
    while (workers_ < n) {
      std::thread([this] { Loop(); }).detach();
      ++workers_;
    }
  }

  static void Pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }

  // Kernels issue many short parallel regions back to back: a worker spins for a while (about 50 us)
  // watching for the next one before it sleeps on the condition variable.
  static constexpr int kSpins = 20000;

  void Loop() {
    t_inside_parallel = true;
    uint64_t seen = 0;
    for (;;) {
      for (int i = 0; i < kSpins && generation_.load(std::memory_order_acquire) == seen; ++i) Pause();
      std::shared_ptr<JobState> state;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return generation_.load() != seen; });
        seen = generation_.load();
        state = current_;
      }
      if (state) Work(*state);
    }
  }

  void Work(JobState& state) {
    for (int64_t c = state.next.fetch_add(1); c < state.chunks; c = state.next.fetch_add(1)) {
      (*state.job)(c);
      if (state.pending.fetch_sub(1) == 1) {
        std::lock_guard<std::mutex> lock(mu_);
        done_cv_.notify_all();
      }
    }
  }

  std::mutex run_mu_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  int workers_ = 0;
  std::shared_ptr<JobState> current_;
  std::atomic<uint64_t> generation_{0};
};

}  // namespace

int NumThreads() {
  int n = g_num_threads.load();
  if (n <= 0) n = std::max(1u, std::thread::hardware_concurrency());
  return n;
}

void SetNumThreads(int n) { g_num_threads.store(std::max(1, n)); }

void ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn, int64_t chunks_per_thread) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t max_chunks = (n + grain - 1) / grain;
  const int64_t threads = NumThreads();
  const int64_t chunks =
      threads <= 1 ? 1 : std::min<int64_t>(threads * std::max<int64_t>(1, chunks_per_thread), max_chunks);
  if (chunks <= 1 || t_inside_parallel) {
    fn(0, n);
    return;
  }
  const int64_t step = (n + chunks - 1) / chunks;
  auto job = [&](int64_t c) {
    const int64_t b = c * step, e = std::min(n, b + step);
    if (b < e) fn(b, e);
  };
  t_inside_parallel = true;
  Pool::Get().Run(chunks, std::min(threads, chunks) - 1, job);
  t_inside_parallel = false;
}

}  // namespace qfx
