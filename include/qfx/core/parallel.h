// qfx core: the thread pool every kernel uses to spread work over the cores.
//
// One process-wide pool. ParallelFor splits [0, n) into contiguous chunks, runs them on the pool's
// workers and the calling thread, and returns when all are done. Nested calls run serially.
#pragma once

#include <cstdint>
#include <functional>

namespace qfx {

// Number of threads kernels use (default: std::thread::hardware_concurrency()).
int NumThreads();
// Sets the thread count (>= 1); takes effect on the next ParallelFor.
void SetNumThreads(int n);

// Calls fn(begin, end) over chunks of [0, n) with at most NumThreads() * chunks_per_thread chunks, each at
// least `grain` items (except possibly the last). fn must be safe to call concurrently on disjoint ranges.
// Threads claim chunks as they come free, so with several chunks per thread a thread that starts late (a
// busy or descheduled core) takes fewer instead of holding the others up; one chunk per thread suits
// work whose every call has a set-up cost.
void ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn,
                 int64_t chunks_per_thread = 1);

}  // namespace qfx
