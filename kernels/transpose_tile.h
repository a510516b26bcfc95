// A 16x16 tile of 32-bit values transposed in registers, for the CPU row paths
// that move data between a channels-last tensor and planes (kernels/max_pool.h):
// 16 channels of 16 positions in, 16 positions of 16 channels out, each row one
// 64-byte vector. Element by element such a transpose is 256 scalar loads and
// stores; here it is 16 vector loads, 64 two-source shuffles and 16 vector stores.
// Written with GCC's generic vectors, so it compiles for any target: inside the
// AVX-512 row loops (kernels/cpu_backend.cpp, flatten) each shuffle is one
// vpermt2d, elsewhere the compiler splits it into narrower ones. CPU only (the GPU
// runs the per-element path); a copy, so bit-exact.
#pragma once

#include <cstdint>
#include <cstring>

namespace eqprop {

constexpr int kTransposeTile = 16;

#if defined(__CUDACC__)

// nvcc's front end has no generic-vector shuffles. Device code never calls the CPU
// row paths that use this, but it parses them: the plain loop keeps them compiling.
template <class T>
inline void transpose_tile(const T* in, std::int64_t in_stride, T* out, std::int64_t out_stride) {
  for (int i = 0; i < kTransposeTile; ++i)
    for (int j = 0; j < kTransposeTile; ++j) out[j * out_stride + i] = in[i * in_stride + j];
}

#else

using TileRow = std::uint32_t __attribute__((vector_size(64)));

namespace detail {

// One stage swaps bit `bit` of the row index with bit `bit` of the column index:
// element (i, j) of a row i with that bit clear and a column j with it set trades
// places with (i + bit, j - bit). Over the four bits (1, 2, 4, 8) every element
// (i, j) reaches (j, i). The masks pick lanes of the pair (row i, row i + bit):
// 0-15 from the first, 16-31 from the second. By reference: a 64-byte vector
// passed by value has another ABI with and without AVX-512.
inline void transpose_stage(TileRow (&rows)[kTransposeTile], int bit, const TileRow& low, const TileRow& high) {
  for (int i = 0; i < kTransposeTile; ++i) {
    if (i & bit) continue;
    const TileRow a = rows[i], b = rows[i + bit];
    rows[i] = __builtin_shuffle(a, b, low);
    rows[i + bit] = __builtin_shuffle(a, b, high);
  }
}

}  // namespace detail

// out row j, element i = in row i, element j, for i, j < 16; rows of 16 32-bit
// values (float or int32) at the given strides (in elements). in and out must not
// overlap.
template <class T>
inline void transpose_tile(const T* in, std::int64_t in_stride, T* out, std::int64_t out_stride) {
  static_assert(sizeof(T) == sizeof(std::uint32_t), "a tile of 32-bit values");
  TileRow rows[kTransposeTile];
  for (int i = 0; i < kTransposeTile; ++i) std::memcpy(&rows[i], in + i * in_stride, sizeof(TileRow));
  // low[j] = j where j's bit is clear, else 16 + j - bit; high[j] = 16 + j where it
  // is set, else j + bit.
  const TileRow low1 = {0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30};
  const TileRow high1 = {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31};
  const TileRow low2 = {0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29};
  const TileRow high2 = {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31};
  const TileRow low4 = {0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27};
  const TileRow high4 = {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31};
  const TileRow low8 = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23};
  const TileRow high8 = {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31};
  detail::transpose_stage(rows, 1, low1, high1);
  detail::transpose_stage(rows, 2, low2, high2);
  detail::transpose_stage(rows, 4, low4, high4);
  detail::transpose_stage(rows, 8, low8, high8);
  for (int i = 0; i < kTransposeTile; ++i) std::memcpy(out + i * out_stride, &rows[i], sizeof(TileRow));
}

#endif

}  // namespace eqprop
