#include "kernels/cpu_backend.h"
#include "kernels/determinism.h"
#ifdef EQPROP_HAVE_DNNL
#include "kernels/dnnl_convolution.h"
#endif
#include "kernels/dnnl_matmul.h"
#include "kernels/execution_context.h"
#include "kernels/sgemm_cut_rules.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <unistd.h>

namespace eqprop {
namespace {

// Below this many indices a loop is cheaper on one thread than the cost of waking
// the OpenMP team (a few microseconds).
constexpr std::int64_t kMinParallelCount = 8192;

// Ops over (rows, units) arrays may offer row(r), which the CPU prefers to one call
// per element (see LayerStepOp); the math per element is the same function.
template <class Op, class = void>
struct HasRows : std::false_type {};
template <class Op>
struct HasRows<Op, std::void_t<decltype(std::declval<const Op&>().row(std::int64_t{}))>> : std::true_type {};

// Row loops compiled for AVX-512 as well as for the baseline ISA, picked at run time:
// the elementwise steps are a fifth of a training step, and the baseline build may
// only assume SSE2. flatten inlines the op's (baseline-compiled, EQ_HD) math into
// the AVX-512 body, so the same source is vectorized 16 wide.
//
// Work is handed out in chunks that the threads take as they finish (dynamic
// schedule), not split evenly in advance: where a core is shared with another
// process, an even split waits for the thread that gets half a core, so a busy
// neighbour would cost twice the time instead of the share it takes. Every row
// (element) is computed by the same code whichever thread takes it, so results do
// not depend on the schedule. About eight chunks per thread balance the load
// while keeping the bookkeeping negligible.
std::int64_t dynamic_chunk(std::int64_t count, std::int64_t minimum) {
  return std::max(minimum, count / (8 * std::int64_t(omp_get_max_threads())));
}

template <class Op>
__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq"), flatten)) void rows_avx512(const Op& op,
                                                                                       std::int64_t rows,
                                                                                       bool parallel) {
  const std::int64_t chunk = dynamic_chunk(rows, 1);
#pragma omp parallel for schedule(dynamic, chunk) if (parallel)
  for (std::int64_t r = 0; r < rows; ++r) op.row(r);
}

template <class Op>
void rows_baseline(const Op& op, std::int64_t rows, bool parallel) {
  const std::int64_t chunk = dynamic_chunk(rows, 1);
#pragma omp parallel for schedule(dynamic, chunk) if (parallel)
  for (std::int64_t r = 0; r < rows; ++r) op.row(r);
}

bool cpu_has_avx512() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
  }();
  return has;
}

template <class Op>
void run_on_cpu(const Op& op, std::int64_t count) {
  if constexpr (HasRows<Op>::value) {
    const std::int64_t rows = op.row_count(count);
    const bool parallel = count >= kMinParallelCount;
    if (cpu_has_avx512()) {
      rows_avx512(op, rows, parallel);
    } else {
      rows_baseline(op, rows, parallel);
    }
  } else {
    const std::int64_t chunk = dynamic_chunk(count, kMinParallelCount / 8);
#pragma omp parallel for schedule(dynamic, chunk) if (count >= kMinParallelCount)
    for (std::int64_t i = 0; i < count; ++i) op(i);
  }
}

// Block bodies: like the row loops, an AVX-512 build of a whole block (flatten
// inlines the context's phases and the body's per-element math into it) and a
// baseline one. One thread per block (kernels/backend.h).
template <class Body>
__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq"), flatten)) void block_avx512(const Body& body, int block,
                                                                                        void* shared_memory) {
  CpuBlockContext<> context(block, 1, shared_memory);
  body(context);
}

template <class Body>
void block_baseline(const Body& body, int block, void* shared_memory) {
  CpuBlockContext<> context(block, 1, shared_memory);
  body(context);
}

template <class Body>
void run_blocks_on_cpu_cores(const Body& body, int blocks) {
  const bool avx512 = cpu_has_avx512();
  for_each_block_on_cpu(blocks, body.shared_bytes(), [&](int block, void* shared_memory) {
    if (avx512) {
      block_avx512(body, block, shared_memory);
    } else {
      block_baseline(body, block, shared_memory);
    }
  });
}

// OpenBLAS's SkylakeX kernels (0.3.21) compute a product whose m n k is at most
// 1e6 with their "small matrix" kernel, which sums K in another order than the
// packed kernel: the same row of C gets other bits when it is computed as part of
// a small product than as part of a large one. A row computed by the packed
// kernel, on the other hand, is the same however many rows the call has. So a
// product cut into pieces (by the blocks below, or by the slices of
// parallel_over_rows) equals the uncut product exactly when every piece takes the
// uncut product's path; this mirrors OpenBLAS's test (sgemm_small_kernel_permit;
// OpenBLAS is column-major, so its M, N are our n, m and its transa is our op_b).
// Other kernels have no small-matrix kernel; where each may be cut is in
// kernels/sgemm_cut_rules.h (kSmallKernelMaxMnk).

// A bf16 GEMM runs on oneDNN's matmul (kernels/dnnl_matmul.h) where each row of C
// sums at least this many products (n k): below it the two conversion passes and
// the call cost more than the bf16 kernels save. Decided per row, not per call, so that
// the row slices of parallel_over_rows take the path the whole product takes
// (results independent of the thread count).
constexpr double kBf16LibraryMinimumRowWork = 32768;
bool takes_small_kernel(CBLAS_TRANSPOSE op_a, CBLAS_TRANSPOSE op_b, std::int64_t m, std::int64_t n, std::int64_t k) {
  if (!sgemm_cut_rules().small_kernel) return false;
  if (double(m) * double(n) * double(k) > kSmallKernelMaxMnk) return false;
  if (op_b == CblasTrans) return op_a == CblasTrans ? k >= 4 : !(m * n > 1200 || k < 32);
  return true;
}

// OpenBLAS's OpenMP build threads a call by itself whenever the caller's team could
// grow (omp_get_max_threads() > 1), and how it cuts the work changes the bits of
// some products (a short transposed B, for one). So a product that stays one call
// runs with the caller's thread count set to 1 for its duration.
void serial_sgemm(CBLAS_TRANSPOSE op_a, CBLAS_TRANSPOSE op_b, int m, int n, int k, float alpha, const float* a,
                  int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  const int threads = omp_get_max_threads();
  if (threads > 1) omp_set_num_threads(1);
  cblas_sgemm(CblasRowMajor, op_a, op_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  if (threads > 1) omp_set_num_threads(threads);
}

// Rows of C computed as the packed kernel computes them, for a piece of a product
// that is large as a whole but small on its own: the piece's A padded with zero rows
// until the call is too large for the small kernel, into scratch C rows.
void packed_kernel_sgemm(CBLAS_TRANSPOSE op_a, CBLAS_TRANSPOSE op_b, int m, int n, int k, float alpha,
                         const float* a, int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  const int padded = std::max<int>(m, static_cast<int>(kSmallKernelMaxMnk / (double(n) * k)) + 1);
  thread_local std::vector<float> a_padded, c_padded;
  a_padded.assign(std::size_t(padded) * k, 0.0f);
  c_padded.assign(std::size_t(padded) * n, 0.0f);
  // a_padded is op(A)'s layout: (padded, k) for op_a = no, (k, padded) for op_a = yes.
  for (int r = 0; r < (op_a == CblasNoTrans ? m : k); ++r)
    std::memcpy(&a_padded[std::size_t(r) * (op_a == CblasNoTrans ? k : padded)], a + std::size_t(r) * lda,
                std::size_t(op_a == CblasNoTrans ? k : m) * sizeof(float));
  for (int r = 0; r < m; ++r)
    std::memcpy(&c_padded[std::size_t(r) * n], c + std::size_t(r) * ldc, std::size_t(n) * sizeof(float));
  serial_sgemm(op_a, op_b, padded, n, k, alpha, a_padded.data(), op_a == CblasNoTrans ? k : padded, b, ldb, beta,
               c_padded.data(), n);
  for (int r = 0; r < m; ++r)
    std::memcpy(c + std::size_t(r) * ldc, &c_padded[std::size_t(r) * n], std::size_t(n) * sizeof(float));
}

// The rows of the batch that parallel_over_rows gave the calling thread, and the
// whole batch's: a product over the slice's rows is a piece of the product over the
// batch's, which a one-thread run computes in one call.
struct RowSlice {
  int rows = 0;        // 0: not inside a slice
  int batch_rows = 0;
};
thread_local RowSlice current_slice;

// One call, unless it is a slice's piece of a batch-wide product that would take
// the packed kernel uncut: then the piece takes it too.
void sgemm_piece(CBLAS_TRANSPOSE op_a, CBLAS_TRANSPOSE op_b, int m, int n, int k, float alpha, const float* a,
                 int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  const RowSlice slice = current_slice;
  // A product over the slice's rows has m a multiple of them (rows times replicas).
  const bool batch_piece = slice.rows > 0 && slice.rows < slice.batch_rows && m % slice.rows == 0;
  if (batch_piece && takes_small_kernel(op_a, op_b, m, n, k) &&
      !takes_small_kernel(op_a, op_b, std::int64_t(m) / slice.rows * slice.batch_rows, n, k)) {
    packed_kernel_sgemm(op_a, op_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  serial_sgemm(op_a, op_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// C = alpha op(A) op(B) + beta C (row-major), as blocks of C's rows (or, for a
// wide C, of its columns) that the threads take dynamically, for the reason the
// row loops above give. Each block is one single-threaded sgemm over the whole K
// in the library's order, large enough for the packed kernel like the uncut
// product (see takes_small_kernel), so an element of C is the same whichever
// thread computes it and however C is cut. Small products stay one call: a fork
// costs more than they take.
void sgemm_in_dynamic_blocks(CBLAS_TRANSPOSE op_a, CBLAS_TRANSPOSE op_b, int m, int n, int k, float alpha,
                             const float* a, int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  constexpr double kMinParallelFlops = 4e6;  // above 2 kSmallKernelMaxMnk: split products take the packed kernel
  const SgemmCutRules& rules = sgemm_cut_rules();
  const int block_align = rules.block_rows;  // 0: this kernel is not cut (kernels/sgemm_cut_rules.h)
  const int threads = omp_get_max_threads();
  if (threads == 1 || omp_in_parallel() || block_align == 0 || 2.0 * m * n * k < kMinParallelFlops) {
    sgemm_piece(op_a, op_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  // Every block packs the whole of the operand it does not cut again: cut the
  // dimension whose other operand is the smaller one (rows of C re-pack B, k x n;
  // columns re-pack A, m x k), where the kernel keeps the bits of column cuts.
  const bool split_rows = m >= n || !rules.column_blocks;
  const int extent = split_rows ? m : n;
  const double uncut_per_line = double(split_rows ? n : m) * k;  // m n k per row (column) of the block
  const int packed_minimum = static_cast<int>(kSmallKernelMaxMnk / uncut_per_line) + 1;
  const int wanted = std::max((extent + 4 * threads - 1) / (4 * threads), packed_minimum);
  const int block = std::max(block_align, (wanted + block_align - 1) / block_align * block_align);
  // The last block takes the remainder, so no block is smaller than `block`.
  const int blocks = std::max(1, extent / block);
#pragma omp parallel for schedule(dynamic, 1)
  for (int index = 0; index < blocks; ++index) {
    const int begin = index * block, size = index + 1 == blocks ? extent - begin : block;
    if (split_rows) {
      const float* a_rows = op_a == CblasNoTrans ? a + std::int64_t(begin) * lda : a + begin;
      serial_sgemm(op_a, op_b, size, n, k, alpha, a_rows, lda, b, ldb, beta, c + std::int64_t(begin) * ldc, ldc);
    } else {
      const float* b_columns = op_b == CblasNoTrans ? b + begin : b + std::int64_t(begin) * ldb;
      serial_sgemm(op_a, op_b, m, size, k, alpha, a, lda, b_columns, ldb, beta, c + begin, ldc);
    }
  }
}

// The bytes the kernel reports available to new allocations (MemAvailable in
// /proc/meminfo: free memory plus reclaimable caches), or the free pages where
// that file is absent.
std::size_t available_ram_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  std::size_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib * 1024;
  return static_cast<std::size_t>(sysconf(_SC_AVPHYS_PAGES)) * static_cast<std::size_t>(sysconf(_SC_PAGE_SIZE));
}

// The first number in `path`, or nothing if the file is absent or holds none ("max").
std::optional<std::size_t> number_in(const char* path) {
  std::ifstream file(path);
  std::size_t value = 0;
  if (file >> value) return value;
  return std::nullopt;
}

// The machine's RAM, limited by this process's memory cgroup where it has one
// (cgroup v2: memory.max / memory.current; v1: memory.limit_in_bytes /
// memory.usage_in_bytes), so a container's limit is what the planner sees.
DeviceMemory ram() {
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGE_SIZE));
  DeviceMemory memory{static_cast<std::size_t>(sysconf(_SC_PHYS_PAGES)) * page, 0};
  memory.free_bytes = std::min(memory.total_bytes, available_ram_bytes());
  const std::pair<const char*, const char*> cgroups[] = {
      {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
      {"/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"}};
  for (const auto& [limit_file, usage_file] : cgroups) {
    const auto limit = number_in(limit_file), usage = number_in(usage_file);
    if (!limit || !usage || *limit >= memory.total_bytes) continue;  // absent or unlimited
    memory.total_bytes = *limit;
    memory.free_bytes = std::min(memory.free_bytes, *limit > *usage ? *limit - *usage : 0);
    break;
  }
  return memory;
}

// A copy of the used (rows, cols) block of a row-major matrix with row stride ld,
// each element rounded to `precision` (kernels/gemm_precision.h).
void rounded_copy(const float* matrix, int rows, int cols, int ld, GemmPrecision precision,
                  std::vector<float>& out) {
  out.resize(std::size_t(rows) * cols);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c)
      out[std::size_t(r) * cols + c] = round_to_precision(matrix[std::size_t(r) * ld + c], precision);
}

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  BackendTraits traits() const override { return BackendTraits{/*is_device=*/false, /*has_on_chip_blocks=*/false}; }
  std::string device_name() const override {
    return std::to_string(omp_get_max_threads()) + "-thread CPU (OpenMP, OpenBLAS)";
  }

  void* allocate(std::size_t bytes) override {
    void* pointer = aligned(bytes);
    counter_.added(pointer, bytes);
    return pointer;
  }
  void deallocate(void* pointer) noexcept override {
    counter_.removed(pointer);
    std::free(pointer);
  }
  void* allocate_host(std::size_t bytes) override { return aligned(bytes); }
  void deallocate_host(void* pointer) noexcept override { std::free(pointer); }
  MemoryUsage memory_usage() const override { return counter_.usage(); }
  void reset_peak_memory() override { counter_.reset_peak(); }
  DeviceMemory device_memory() const override { return ram(); }

  // Every call runs in order on the host: a copy is complete when upload returns,
  // so the slots order nothing.
  void upload(int slot, void* destination, const void* source, std::size_t bytes) override {
    check_upload_slot(slot);
    std::memcpy(destination, source, bytes);
  }
  void begin_slot_reads(int slot) override { check_upload_slot(slot); }
  void end_slot_reads(int slot) override { check_upload_slot(slot); }
  void wait_uploads() override {}
  void copy_to_device(void* destination, const void* source, std::size_t bytes) override {
    std::memcpy(destination, source, bytes);
  }
  void copy_to_host(void* destination, const void* source, std::size_t bytes) override {
    std::memcpy(destination, source, bytes);
  }
  void copy_on_device(void* destination, const void* source, std::size_t bytes) override {
    std::memmove(destination, source, bytes);
  }
  void fill_zero(void* destination, std::size_t bytes) override { std::memset(destination, 0, bytes); }

  void gemm(Transpose transpose_a, Transpose transpose_b, int m, int n, int k, float alpha,
            const float* a, int lda, const float* b, int ldb, float beta, float* c,
            int ldc) override {
    gemm_constant_a(transpose_a, transpose_b, m, n, k, alpha, a, lda, 0, b, ldb, beta, c, ldc);
  }
  void gemm_constant_a(Transpose transpose_a, Transpose transpose_b, int m, int n, int k, float alpha,
                       const float* a, int lda, std::uint64_t a_version, const float* b, int ldb, float beta,
                       float* c, int ldc) override {
    const CBLAS_TRANSPOSE op_a = transpose_a == Transpose::yes ? CblasTrans : CblasNoTrans;
    const CBLAS_TRANSPOSE op_b = transpose_b == Transpose::yes ? CblasTrans : CblasNoTrans;
    if (precision_ == GemmPrecision::fp32 || m == 0 || n == 0 || k == 0) {
      sgemm_in_dynamic_blocks(op_a, op_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
      return;
    }
    // bf16 on oneDNN's matmul where the product is large enough to pay for the two
    // conversion passes (kernels/dnnl_matmul.h); the same rounding of the operands
    // and fp32 accumulation as the emulation below, in another summation order.
    // A constant a (a_version) is converted once per version.
    if (precision_ == GemmPrecision::bf16 && bf16_gemm_ && double(n) * double(k) >= kBf16LibraryMinimumRowWork &&
        bf16_gemm_->gemm(transpose_a, transpose_b, m, n, k, alpha, a, lda, a_version, b, ldb, beta, c, ldc))
      return;
    // Emulated tf32 / bf16: the inputs rounded in a copy, then the FP32 GEMM, which
    // is what the tensor cores compute up to the summation order. The copies cost
    // (m + n) k extra memory traffic: this mode is for measuring accuracy, not
    // speed. thread_local: gemm may run concurrently inside parallel_over_rows.
    thread_local std::vector<float> a_rounded, b_rounded;
    const int a_rows = transpose_a == Transpose::yes ? k : m, a_cols = transpose_a == Transpose::yes ? m : k;
    const int b_rows = transpose_b == Transpose::yes ? n : k, b_cols = transpose_b == Transpose::yes ? k : n;
    rounded_copy(a, a_rows, a_cols, lda, precision_, a_rounded);
    rounded_copy(b, b_rows, b_cols, ldb, precision_, b_rounded);
    sgemm_in_dynamic_blocks(op_a, op_b, m, n, k, alpha, a_rounded.data(), a_cols, b_rounded.data(), b_cols, beta, c,
                            ldc);
  }
#define EQPROP_DEFINE_RUN(Op) \
  EQPROP_REQUIRE_DETERMINISM(Op) \
  void run(const Op& op, std::int64_t count) override { run_on_cpu(op, count); }
  EQPROP_ELEMENTWISE_OPS(EQPROP_DEFINE_RUN)
#undef EQPROP_DEFINE_RUN

#define EQPROP_DEFINE_RUN_BLOCKS(Body) \
  EQPROP_REQUIRE_DETERMINISM(Body) \
  void run_blocks(const Body& body, int blocks, int) override { run_blocks_on_cpu_cores(body, blocks); }
  EQPROP_BLOCK_BODIES(EQPROP_DEFINE_RUN_BLOCKS)
#undef EQPROP_DEFINE_RUN_BLOCKS

  void parallel_over_rows(int rows, const std::function<void(int, int)>& body) override {
    // Slices start at a multiple of the rows the sgemm kernel keeps together
    // (kernels/sgemm_cut_rules.h): the SkylakeX small-matrix kernel computes the rows
    // of C in groups of 4 and a last partial group otherwise, the Haswell kernel in
    // tiles of 12, so a row's bits depend on its place in a group (measured: cuts at
    // those multiples give the uncut product's bits, cuts at other rows do not).
    // A kernel without measured rules gets one slice.
    const int slice_align = sgemm_cut_rules().slice_rows;
    // At least a few rows per thread, or the fork costs more than it saves.
    constexpr int kMinRowsPerThread = 8;
    const int threads =
        slice_align == 0 ? 1 : std::max(1, std::min(omp_get_max_threads(), rows / std::max(kMinRowsPerThread, slice_align)));
    if (threads == 1 || omp_in_parallel()) {
      body(0, rows);
      return;
    }
    const auto boundary = [&](int thread, int team) {
      return thread == team ? rows : static_cast<int>(std::int64_t(rows) * thread / team) / slice_align * slice_align;
    };
#pragma omp parallel num_threads(threads)
    {
      const int thread = omp_get_thread_num(), team = omp_get_num_threads();
      const int begin = boundary(thread, team), end = boundary(thread + 1, team);
      current_slice = RowSlice{end - begin, rows};  // products in body are pieces of batch-wide ones
      body(begin, end);
      current_slice = RowSlice{};
    }
  }

  // bf16 where oneDNN's matmul runs it (null without bf16 instructions); tf32 never.
  bool native_gemm_precision(GemmPrecision precision) const override {
    return precision == GemmPrecision::fp32 || (precision == GemmPrecision::bf16 && bf16_gemm_);
  }

  std::int64_t count_nonfinite(const float* data, std::int64_t count) override {
    std::int64_t bad = 0;
#pragma omp parallel for reduction(+ : bad) if (count >= kMinParallelCount)
    for (std::int64_t i = 0; i < count; ++i) bad += std::isfinite(data[i]) ? 0 : 1;
    return bad;
  }

  void synchronize() override {}

 private:
  static std::size_t round_up(std::size_t bytes) { return (bytes + 63) / 64 * 64 + 64 * (bytes == 0); }
  // 64-byte alignment: a cache line, and what AVX-512 loads like.
  static void* aligned(std::size_t bytes) {
    void* pointer = std::aligned_alloc(64, round_up(bytes));
    if (!pointer) throw std::bad_alloc();
    return pointer;
  }

  AllocationCounter counter_;
  const std::unique_ptr<Bf16Gemm> bf16_gemm_ = make_dnnl_bf16_gemm();  // null without oneDNN
#ifdef EQPROP_HAVE_DNNL
  const std::unique_ptr<ConvolutionLibrary> convolutions_ = make_dnnl_convolutions();
  ConvolutionLibrary* convolution_library() override { return convolutions_.get(); }
#endif
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace eqprop
