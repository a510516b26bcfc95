// A 16x16 tile of 32-bit values transposed in registers, for the CPU row paths
// that move data between a channels-last tensor and planes (kernels/max_pool.h):
// 16 channels of 16 positions in, 16 positions of 16 channels out, each row one
// 64-byte vector. Element by element such a transpose is 256 scalar loads and
// stores; here it is 16 vector loads, 64 two-source shuffles and 16 vector stores.
// Written with generic vectors and __builtin_shufflevector (GCC 12 and clang), so
// it compiles for any target: inside the AVX-512 row loops (kernels/cpu_backend.cpp,
// flatten) each shuffle is one vpermt2d, elsewhere the compiler splits it into
// narrower ones. CPU only (the GPU
// runs the per-element path); a copy, so bit-exact.
#pragma once

#include <cstdint>
#include <cstring>
#include <utility>

namespace eqprop {

constexpr int kTransposeTile = 16;

#if defined(__CUDACC__)

// nvcc's front end has no vector shuffles. Device code never calls the CPU
// row paths that use this, but it parses them: the plain loop keeps them compiling.
template <class T>
inline void transpose_tile(const T* in, std::int64_t in_stride, T* out, std::int64_t out_stride) {
  for (int i = 0; i < kTransposeTile; ++i)
    for (int j = 0; j < kTransposeTile; ++j) out[j * out_stride + i] = in[i * in_stride + j];
}

#else

using TileRow = std::uint32_t __attribute__((vector_size(64)));

namespace detail {

// One stage swaps bit Bit of the row index with bit Bit of the column index:
// element (i, j) of a row i with that bit clear and a column j with it set trades
// places with (i + Bit, j - Bit). Over the four bits (1, 2, 4, 8) every element
// (i, j) reaches (j, i). Shuffle lanes 0-15 are the first row of the pair
// (i, i + Bit), 16-31 the second.
template <int Bit, std::size_t... J>
inline void transpose_stage(TileRow (&rows)[kTransposeTile], std::index_sequence<J...>) {
  for (int i = 0; i < kTransposeTile; ++i) {
    if (i & Bit) continue;
    const TileRow a = rows[i], b = rows[i + Bit];
    rows[i] = __builtin_shufflevector(a, b, ((J & Bit) == 0 ? int(J) : int(16 + J - Bit))...);
    rows[i + Bit] = __builtin_shufflevector(a, b, ((J & Bit) != 0 ? int(16 + J) : int(J + Bit))...);
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
  constexpr auto lanes = std::make_index_sequence<kTransposeTile>{};
  detail::transpose_stage<1>(rows, lanes);
  detail::transpose_stage<2>(rows, lanes);
  detail::transpose_stage<4>(rows, lanes);
  detail::transpose_stage<8>(rows, lanes);
  for (int i = 0; i < kTransposeTile; ++i) std::memcpy(out + i * out_stride, &rows[i], sizeof(TileRow));
}

#endif

}  // namespace eqprop
