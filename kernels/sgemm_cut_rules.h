// Where a single-precision product may be cut into pieces without changing a bit of
// the result, for the OpenBLAS kernel this process runs. The CPU backend cuts
// products into blocks for its threads (sgemm_in_dynamic_blocks) and a batch into
// row slices (parallel_over_rows), and promises results that do not depend on the
// thread count; that holds only where every piece computes each element of C
// exactly as the uncut product does, which depends on the kernel:
//  - SkylakeX kernels (AVX-512; also Cooperlake, SapphireRapids): a row of C
//    computed by the packed kernel has the same bits however many rows or columns
//    the call has; products with m n k <= 1e6 take a "small matrix" kernel that sums
//    K in another order and handles the rows of C in groups of 4.
//  - Haswell kernels (AVX2; also Zen): the rows of C go through the kernel in tiles
//    of 12 and a tail tile sums in another order, so cuts between rows keep every
//    bit only at multiples of 12; a cut between columns never does (a column's bits
//    depend on its place in the call). No small-matrix kernel.
// Measured on OpenBLAS 0.3.21 (Debian 12) by cutting products of every transpose at
// every row and column (tests/test_cpu_gemm_threads.cpp checks the rules for the
// kernel that runs the tests). Any other kernel: no cuts at all, so results stay
// independent of the thread count at the cost of threads inside a GEMM.
#pragma once

#include <string>

namespace eqprop {

struct SgemmCutRules {
  std::string kernel;    // OpenBLAS's core name, e.g. "SkylakeX", "Zen", "Haswell"
  int block_rows = 0;    // blocks of C's rows at multiples of this keep every bit; 0: no cuts
  bool column_blocks = false;  // blocks of C's columns (multiples of block_rows) keep every bit
  int slice_rows = 0;    // parallel_over_rows slices start at multiples of this; 0: one slice
  bool small_kernel = false;   // products with m n k <= kSmallKernelMaxMnk take the small-matrix kernel
};

// The largest m n k OpenBLAS's SkylakeX kernels (0.3.21) hand to their small-matrix
// kernel (sgemm_small_kernel_permit; kernels/cpu_backend.cpp mirrors the rest of it).
constexpr double kSmallKernelMaxMnk = 1e6;

// The rules for the kernel OpenBLAS chose in this process (OPENBLAS_CORETYPE or its
// own detection), looked up once.
const SgemmCutRules& sgemm_cut_rules();

}  // namespace eqprop
