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
#include <utility>

namespace eqprop {

constexpr int kTransposeTile = 16;

using TileRow = std::uint32_t __attribute__((vector_size(64)));

namespace detail {

// Stage `Bit` swaps bit Bit of the row index with bit Bit of the column index:
// element (i, j) of rows i with that bit clear and columns j with it set trades
// places with (i + Bit, j - Bit). Over the four bits (1, 2, 4, 8) every element
// (i, j) reaches (j, i). Lanes 0-15 of a shuffle index the first row, 16-31 the
// second (the pair i, i + Bit).
template <int Bit, std::size_t... J>
constexpr TileRow keep_low(std::index_sequence<J...>) {
  return TileRow{((J & Bit) == 0 ? std::uint32_t(J) : std::uint32_t(16 + J - Bit))...};
}
template <int Bit, std::size_t... J>
constexpr TileRow keep_high(std::index_sequence<J...>) {
  return TileRow{((J & Bit) != 0 ? std::uint32_t(16 + J) : std::uint32_t(J + Bit))...};
}

template <int Bit>
inline void transpose_stage(TileRow (&rows)[kTransposeTile]) {
  constexpr TileRow low = keep_low<Bit>(std::make_index_sequence<kTransposeTile>{});
  constexpr TileRow high = keep_high<Bit>(std::make_index_sequence<kTransposeTile>{});
  for (int i = 0; i < kTransposeTile; ++i) {
    if (i & Bit) continue;
    const TileRow a = rows[i], b = rows[i + Bit];
    rows[i] = __builtin_shuffle(a, b, low);
    rows[i + Bit] = __builtin_shuffle(a, b, high);
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
  detail::transpose_stage<1>(rows);
  detail::transpose_stage<2>(rows);
  detail::transpose_stage<4>(rows);
  detail::transpose_stage<8>(rows);
  for (int i = 0; i < kTransposeTile; ++i) std::memcpy(out + i * out_stride, &rows[i], sizeof(TileRow));
}

}  // namespace eqprop
