#include "kernels/cpu_backend.h"
#include "kernels/execution_context.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

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
template <class Op>
__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq"), flatten)) void rows_avx512(const Op& op,
                                                                                       std::int64_t rows,
                                                                                       bool parallel) {
#pragma omp parallel for schedule(static) if (parallel)
  for (std::int64_t r = 0; r < rows; ++r) op.row(r);
}

template <class Op>
void rows_baseline(const Op& op, std::int64_t rows, bool parallel) {
#pragma omp parallel for schedule(static) if (parallel)
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
#pragma omp parallel for schedule(static) if (count >= kMinParallelCount)
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

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  std::string device_name() const override {
    return std::to_string(omp_get_max_threads()) + "-thread CPU (OpenMP, OpenBLAS)";
  }

  void* allocate(std::size_t bytes) override {
    // 64-byte alignment: a cache line, and what AVX-512 loads like.
    void* pointer = std::aligned_alloc(64, round_up(bytes));
    if (!pointer) throw std::bad_alloc();
    return pointer;
  }
  void deallocate(void* pointer) noexcept override { std::free(pointer); }
  void* allocate_host(std::size_t bytes) override { return allocate(bytes); }
  void deallocate_host(void* pointer) noexcept override { deallocate(pointer); }

  void upload(void* destination, const void* source, std::size_t bytes) override {
    std::memcpy(destination, source, bytes);
  }
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
    cblas_sgemm(CblasRowMajor, transpose_a == Transpose::yes ? CblasTrans : CblasNoTrans,
                transpose_b == Transpose::yes ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda,
                b, ldb, beta, c, ldc);
  }

#define EQPROP_DEFINE_RUN(Op) \
  void run(const Op& op, std::int64_t count) override { run_on_cpu(op, count); }
  EQPROP_ELEMENTWISE_OPS(EQPROP_DEFINE_RUN)
#undef EQPROP_DEFINE_RUN

#define EQPROP_DEFINE_RUN_BLOCKS(Body) \
  void run_blocks(const Body& body, int blocks, int) override { run_blocks_on_cpu_cores(body, blocks); }
  EQPROP_BLOCK_BODIES(EQPROP_DEFINE_RUN_BLOCKS)
#undef EQPROP_DEFINE_RUN_BLOCKS

  void parallel_over_rows(int rows, const std::function<void(int, int)>& body) override {
    // At least a few rows per thread, or the fork costs more than it saves.
    constexpr int kMinRowsPerThread = 8;
    const int threads = std::max(1, std::min(omp_get_max_threads(), rows / kMinRowsPerThread));
    if (threads == 1 || omp_in_parallel()) {
      body(0, rows);
      return;
    }
#pragma omp parallel num_threads(threads)
    {
      const int thread = omp_get_thread_num(), team = omp_get_num_threads();
      body(static_cast<int>(std::int64_t(rows) * thread / team),
           static_cast<int>(std::int64_t(rows) * (thread + 1) / team));
    }
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
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace eqprop
