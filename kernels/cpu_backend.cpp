#include "kernels/cpu_backend.h"

#include <cblas.h>
#include <omp.h>

#include <cmath>
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

template <class Op>
void run_on_cpu(const Op& op, std::int64_t count) {
  if constexpr (HasRows<Op>::value) {
    const std::int64_t rows = op.row_count(count);
#pragma omp parallel for schedule(static) if (count >= kMinParallelCount)
    for (std::int64_t r = 0; r < rows; ++r) op.row(r);
  } else {
#pragma omp parallel for schedule(static) if (count >= kMinParallelCount)
    for (std::int64_t i = 0; i < count; ++i) op(i);
  }
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
