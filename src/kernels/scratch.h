// qfx kernels, internal: per-thread scratch buffers that only grow.
#pragma once

#include <cstddef>
#include <vector>

namespace qfx {
namespace kernels {

// Makes `buffer` hold at least n elements and returns its data. Unlike resize, it never shrinks, so a
// buffer shared by layers of different sizes is not value-initialised (zero-filled) again each time a
// larger layer follows a smaller one; callers write every element they read.
template <typename T, typename Alloc>
T* GrowScratch(std::vector<T, Alloc>& buffer, size_t n) {
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

}  // namespace kernels
}  // namespace qfx
