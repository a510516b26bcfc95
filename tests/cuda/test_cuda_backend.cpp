// CPU vs CUDA parity of the Backend interface: the same GEMMs, elementwise ops,
// reductions and copies on both backends, on the same random host data.
//
// Tolerances follow each kernel's declared determinism (STYLE.md, habit 5;
// kernels/determinism.h), taken from the op struct where a case checks one op:
//  - ops without transcendental functions are bit-exact (this needs the CUDA
//    backend compiled with -fmad=false, see kernels/cuda_backend.cu);
//  - ops through expf/logf/cosf agree to a few ulp of the magnitudes involved;
//  - GEMMs agree up to summation order: 1e-5 of sum |products|.
// Every comparison reports how much of its budget the worst element used.
//
// Plain C++: only kernels/backend.h, no CUDA headers. Where no GPU is visible the
// parity cases skip with a message, and a missing GPU must give a clear DeviceError.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cuda_backend.h"
#include "kernels/device_buffer.h"
#include "kernels/error.h"
#include "tests/skip.h"
#include "tests/test_util.h"

namespace {

using eqprop::Backend;
using eqprop::test::random_one_hot;
using eqprop::test::random_vector;
using eqprop::DeviceBuffer;
using eqprop::Transpose;
using HostArrays = std::vector<std::vector<float>>;

constexpr const char* kFmaHint = " (an FMA contraction? build the CUDA backend with -fmad=false)";

// Bit-exact agreement of the two backends (NaN payloads included).
void check_cpu_cuda_bits(const std::vector<float>& cpu, const std::vector<float>& cuda,
                         const std::string& what) {
  eqprop::test::check_bit_exact(what + " (cuda vs cpu)", cuda, cpu, kFmaHint);
}

// The agreement Op declares (kernels/determinism.h) between the two backends, at
// output magnitude `magnitude`.
template <class Op>
void check_cpu_cuda_as_declared(const std::vector<float>& cpu, const std::vector<float>& cuda,
                                const std::string& what, double magnitude = 1.0) {
  eqprop::test::check_declared_agreement<Op>(what + " (cuda vs cpu)", cuda, cpu, magnitude, kFmaHint);
}

struct BackendPair {
  std::unique_ptr<Backend> cpu = eqprop::make_backend("cpu");
  std::unique_ptr<Backend> cuda = eqprop::make_backend("cuda");
};

// out = alpha x + beta y, fields set by name (robust to fields added later).
eqprop::AxpbyOp axpby(const float* x, const float* y, float* out, float alpha, float beta) {
  eqprop::AxpbyOp op{};
  op.x = x;
  op.y = y;
  op.out = out;
  op.alpha = alpha;
  op.beta = beta;
  return op;
}

// Device copies of host arrays on one backend; pointer(i) feeds an op struct.
class DeviceArrays {
 public:
  DeviceArrays(Backend& backend, const HostArrays& host) {
    buffers_.reserve(host.size());
    for (const auto& values : host) {
      buffers_.emplace_back(backend, values.size());
      buffers_.back().copy_from_host(values);
    }
  }
  float* pointer(std::size_t i) { return buffers_.at(i).data(); }
  HostArrays download() const {
    HostArrays out;
    for (const auto& buffer : buffers_) out.push_back(buffer.to_host());
    return out;
  }

 private:
  std::vector<DeviceBuffer<float>> buffers_;
};

// Uploads `inputs` to each backend, runs what `submit` submits on it (given that
// backend's copies), and returns every array afterwards: {cpu arrays, cuda arrays}.
std::pair<HostArrays, HostArrays> run_on_both(
    BackendPair& backends, const HostArrays& inputs,
    const std::function<void(Backend&, DeviceArrays&)>& submit) {
  DeviceArrays on_cpu(*backends.cpu, inputs);
  DeviceArrays on_cuda(*backends.cuda, inputs);
  submit(*backends.cpu, on_cpu);
  submit(*backends.cuda, on_cuda);
  backends.cuda->synchronize();
  return {on_cpu.download(), on_cuda.download()};
}

using eqprop::test::check_within;
using eqprop::test::few_ulp;

// ---------------------------------------------------------------------------
// GEMM

// A row-major (rows, cols) matrix with row stride ld >= cols; the padding holds
// NaN so that a GEMM reading it poisons its result.
std::vector<float> padded_matrix(std::mt19937& rng, int rows, int cols, int ld) {
  std::vector<float> out(static_cast<std::size_t>(rows) * ld, std::nanf(""));
  const auto values = random_vector(rng, static_cast<std::size_t>(rows) * cols, -1.0f, 1.0f);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c)
      out[static_cast<std::size_t>(r) * ld + c] = values[static_cast<std::size_t>(r) * cols + c];
  return out;
}

void check_gemm(BackendPair& backends, Transpose ta, Transpose tb, int m, int n, int k, float alpha,
                float beta) {
  std::mt19937 rng(1234);
  // As stored: a is (m, k) or, transposed, (k, m); b is (k, n) or (n, k).
  const int a_rows = ta == Transpose::yes ? k : m, a_cols = ta == Transpose::yes ? m : k;
  const int b_rows = tb == Transpose::yes ? n : k, b_cols = tb == Transpose::yes ? k : n;
  const int lda = std::max(a_cols, 1) + 3, ldb = std::max(b_cols, 1) + 5, ldc = n + 2;
  const auto a = padded_matrix(rng, a_rows, a_cols, lda);
  const auto b = padded_matrix(rng, b_rows, b_cols, ldb);
  auto c = random_vector(rng, static_cast<std::size_t>(m) * ldc, -1.0f, 1.0f);
  for (int r = 0; r < m; ++r)
    for (int j = n; j < ldc; ++j) c[static_cast<std::size_t>(r) * ldc + j] = 12345.0f;  // padding

  const auto [cpu, cuda] = run_on_both(backends, {a, b, c}, [&](Backend& backend, DeviceArrays& x) {
    backend.gemm(ta, tb, m, n, k, alpha, x.pointer(0), lda, x.pointer(1), ldb, beta, x.pointer(2),
                 ldc);
  });

  // Double-precision reference and the scale of its rounding: sum |products|.
  const auto at = [&](const std::vector<float>& matrix, int ld, bool transposed, int row, int col) {
    return static_cast<double>(transposed ? matrix[static_cast<std::size_t>(col) * ld + row]
                                          : matrix[static_cast<std::size_t>(row) * ld + col]);
  };
  std::vector<float> reference, cpu_c, cuda_c, cpu_padding, cuda_padding;
  std::vector<double> tolerance;
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < ldc; ++j) {
      const std::size_t index = static_cast<std::size_t>(i) * ldc + j;
      if (j >= n) {
        cpu_padding.push_back(cpu[2][index]);
        cuda_padding.push_back(cuda[2][index]);
        continue;
      }
      double sum = 0.0, magnitude = 0.0;
      for (int p = 0; p < k; ++p) {
        const double product =
            at(a, lda, ta == Transpose::yes, i, p) * at(b, ldb, tb == Transpose::yes, p, j);
        sum += product;
        magnitude += std::fabs(product);
      }
      const double old_c = c[index];
      reference.push_back(static_cast<float>(alpha * sum + beta * old_c));
      tolerance.push_back(1e-5 * (std::fabs(alpha) * magnitude + std::fabs(beta * old_c)) + 1e-30);
      cpu_c.push_back(cpu[2][index]);
      cuda_c.push_back(cuda[2][index]);
    }
  }
  std::ostringstream what;
  what << "gemm(ta=" << (ta == Transpose::yes) << ", tb=" << (tb == Transpose::yes) << ", m=" << m
       << ", n=" << n << ", k=" << k << ", alpha=" << alpha << ", beta=" << beta << ")";
  check_within(what.str() + " cpu vs cuda", cuda_c, cpu_c, tolerance);
  check_within(what.str() + " double reference vs cuda", cuda_c, reference, tolerance);
  check_cpu_cuda_bits(cpu_padding, cuda_padding, what.str() + " padding of c");
  CHECK(
      std::all_of(cuda_padding.begin(), cuda_padding.end(), [](float v) { return v == 12345.0f; }));
}

}  // namespace

TEST_CASE("cuda backend: identifies itself") {
  if (eqprop::test::skip_without_gpu()) return;
  const auto cuda = eqprop::make_backend("cuda");
  CHECK(cuda->name() == "cuda");
  CHECK_FALSE(cuda->device_name().empty());
  MESSAGE("device: " << cuda->device_name());
  CHECK(eqprop::make_backend("auto")->name() == "cuda");
}

TEST_CASE("cuda backend: gemm matches the cpu backend for every transpose combination") {
  if (eqprop::test::skip_without_gpu()) return;
  BackendPair backends;
  for (const Transpose ta : {Transpose::no, Transpose::yes})
    for (const Transpose tb : {Transpose::no, Transpose::yes}) {
      check_gemm(backends, ta, tb, 37, 19, 53, 0.75f, -0.5f);
      check_gemm(backends, ta, tb, 1, 64, 7, 1.0f, 0.0f);
      check_gemm(backends, ta, tb, 130, 3, 257, -1.5f, 1.0f);
    }
  // k == 0: c = beta * c. m == 0 or n == 0: nothing happens.
  check_gemm(backends, Transpose::no, Transpose::no, 5, 4, 0, 1.0f, 0.5f);
  check_gemm(backends, Transpose::no, Transpose::yes, 0, 4, 6, 1.0f, 0.5f);
  check_gemm(backends, Transpose::yes, Transpose::no, 5, 0, 6, 1.0f, 0.5f);
}

TEST_CASE("cuda backend: LayerStepOp is bit-exact with the cpu backend") {
  if (eqprop::test::skip_without_gpu()) return;
  BackendPair backends;
  std::mt19937 rng(7);
  const int batch = 129, units = 257;  // 33153 indices: several blocks, OpenMP on the CPU
  const std::size_t count = static_cast<std::size_t>(batch) * units;
  auto states = random_vector(rng, count, -0.1f, 1.1f);
  for (std::size_t i = 0; i < count; i += 97) states[i] = (i / 97) % 2 ? 1.0f : 0.0f;  // at bounds
  const HostArrays inputs = {states, random_vector(rng, count, -2.0f, 2.0f),
                             random_vector(rng, count, -2.0f, 2.0f),
                             random_vector(rng, static_cast<std::size_t>(units), -0.5f, 0.5f),
                             random_vector(rng, count, 0.0f, 1.0f)};
  for (const auto integrator : {eqprop::Integrator::gradient_flow, eqprop::Integrator::fixed_point})
    for (const bool with_feedback : {false, true})
      for (const bool with_target : {false, true}) {
        const auto [cpu, cuda] =
            run_on_both(backends, inputs, [&](Backend& backend, DeviceArrays& x) {
              eqprop::LayerStepOp op{};
              op.states = x.pointer(0);
              op.drive = x.pointer(1);
              op.feedback = with_feedback ? x.pointer(2) : nullptr;
              op.bias = x.pointer(3);
              op.target = with_target ? x.pointer(4) : nullptr;
              op.beta = -0.3f;
              op.dt = 0.2f;
              op.integrator = integrator;
              op.units = units;
              backend.run(op, static_cast<std::int64_t>(count));
            });
        std::ostringstream what;
        what << "LayerStepOp(integrator=" << static_cast<int>(integrator)
             << ", feedback=" << with_feedback << ", target=" << with_target << ")";
        check_cpu_cuda_as_declared<eqprop::LayerStepOp>(cpu[0], cuda[0], what.str());
      }
}

TEST_CASE("cuda backend: SoftmaxResidualOp agrees with the cpu backend to a few ulp") {
  if (eqprop::test::skip_without_gpu()) return;
  BackendPair backends;
  std::mt19937 rng(8);
  const int batch = 300, classes = 10;
  const std::size_t count = static_cast<std::size_t>(batch) * classes;
  const HostArrays inputs = {random_vector(rng, count, -6.0f, 6.0f),
                             random_one_hot(rng, batch, classes), std::vector<float>(count, 0.0f),
                             random_vector(rng, static_cast<std::size_t>(classes), -1.0f, 1.0f)};
  for (const bool with_bias : {false, true}) {
    const auto [cpu, cuda] = run_on_both(backends, inputs, [&](Backend& backend, DeviceArrays& x) {
      eqprop::SoftmaxResidualOp op{};
      op.logits = x.pointer(0);
      op.target = x.pointer(1);
      op.residual = x.pointer(2);
      op.classes = classes;
      op.bias = with_bias ? x.pointer(3) : nullptr;
      backend.run(op, batch);
    });
    // p - y with p in [0, 1]: a few ulp of 1.
    check_cpu_cuda_as_declared<eqprop::SoftmaxResidualOp>(
        cpu[2], cuda[2], with_bias ? "SoftmaxResidualOp with bias" : "SoftmaxResidualOp", 1.0);
  }
}

TEST_CASE("cuda backend: ColumnSumOp is bit-exact with the cpu backend") {
  if (eqprop::test::skip_without_gpu()) return;
  BackendPair backends;
  std::mt19937 rng(9);
  const int batch = 200, units = 300;
  const std::size_t count = static_cast<std::size_t>(batch) * units;
  const HostArrays inputs = {random_vector(rng, count, -1.0f, 1.0f),
                             random_vector(rng, count, -1.0f, 1.0f),
                             std::vector<float>(static_cast<std::size_t>(units), 0.0f)};
  for (const bool with_b : {false, true}) {
    const auto [cpu, cuda] = run_on_both(backends, inputs, [&](Backend& backend, DeviceArrays& x) {
      eqprop::ColumnSumOp op{};
      op.a = x.pointer(0);
      op.b = with_b ? x.pointer(1) : nullptr;
      op.out = x.pointer(2);
      op.scale_a = 0.5f;
      op.scale_b = -2.0f;
      op.batch = batch;
      op.units = units;
      backend.run(op, units);
    });
    check_cpu_cuda_as_declared<eqprop::ColumnSumOp>(cpu[2], cuda[2], with_b ? "ColumnSumOp(a, b)" : "ColumnSumOp(a)");
  }
}

TEST_CASE("cuda backend: AxpbyOp and SgdMomentumOp are bit-exact with the cpu backend") {
  if (eqprop::test::skip_without_gpu()) return;
  BackendPair backends;
  std::mt19937 rng(10);
  const std::size_t count = 100003;
  const HostArrays inputs = {random_vector(rng, count, -3.0f, 3.0f),
                             random_vector(rng, count, -3.0f, 3.0f),
                             std::vector<float>(count, 0.0f)};
  {
    const auto [cpu, cuda] = run_on_both(backends, inputs, [&](Backend& backend, DeviceArrays& x) {
      backend.run(axpby(x.pointer(0), x.pointer(1), x.pointer(2), 0.3f, -1.7f),
                  static_cast<std::int64_t>(count));
      // In place: out aliases x.
      backend.run(axpby(x.pointer(0), x.pointer(1), x.pointer(0), 1.1f, 0.9f),
                  static_cast<std::int64_t>(count));
    });
    check_cpu_cuda_as_declared<eqprop::AxpbyOp>(cpu[2], cuda[2], "AxpbyOp");
    check_cpu_cuda_as_declared<eqprop::AxpbyOp>(cpu[0], cuda[0], "AxpbyOp in place");
  }
  {
    // weights, velocity, gradient; three steps so the velocity matters.
    const auto [cpu, cuda] = run_on_both(backends, inputs, [&](Backend& backend, DeviceArrays& x) {
      DeviceBuffer<float> learning_rate(backend, 1);  // read by the op when it runs
      learning_rate.copy_from_host(std::vector<float>{0.05f});
      eqprop::SgdMomentumOp op{};
      op.weights = x.pointer(0);
      op.velocity = x.pointer(2);
      op.gradient = x.pointer(1);
      op.learning_rate = learning_rate.data();
      op.momentum = 0.9f;
      op.weight_decay = 1e-4f;
      for (int step = 0; step < 3; ++step) backend.run(op, static_cast<std::int64_t>(count));
    });
    check_cpu_cuda_as_declared<eqprop::SgdMomentumOp>(cpu[0], cuda[0], "SgdMomentumOp weights");
    check_cpu_cuda_as_declared<eqprop::SgdMomentumOp>(cpu[2], cuda[2], "SgdMomentumOp velocity");
  }
}

TEST_CASE("cuda backend: RowMetricsOp matches the cpu backend for both costs") {
  if (eqprop::test::skip_without_gpu()) return;
  BackendPair backends;
  std::mt19937 rng(11);
  const int batch = 513, classes = 10;
  const std::size_t count = static_cast<std::size_t>(batch) * classes;
  const HostArrays inputs = {random_vector(rng, count, -4.0f, 4.0f),
                             random_one_hot(rng, batch, classes),
                             std::vector<float>(static_cast<std::size_t>(batch), -1.0f),
                             std::vector<float>(static_cast<std::size_t>(batch), -1.0f),
                             random_vector(rng, static_cast<std::size_t>(classes), -1.0f, 1.0f)};
  for (const auto cost : {eqprop::CostKind::mse, eqprop::CostKind::cross_entropy})
    for (const bool with_bias : {false, true}) {
      const auto [cpu, cuda] =
          run_on_both(backends, inputs, [&](Backend& backend, DeviceArrays& x) {
            eqprop::RowMetricsOp op{};
            op.outputs = x.pointer(0);
            op.target = x.pointer(1);
            op.loss = x.pointer(2);
            op.correct = x.pointer(3);
            op.cost = cost;
            op.classes = classes;
            op.bias = with_bias ? x.pointer(4) : nullptr;
            backend.run(op, batch);
          });
      const std::string what = std::string("RowMetricsOp ") +
                               (cost == eqprop::CostKind::mse ? "mse" : "cross-entropy") +
                               (with_bias ? " with bias" : "");
      if (cost == eqprop::CostKind::mse) {
        check_cpu_cuda_bits(cpu[2], cuda[2], what + " loss");
      } else {
        // log(sum exp) + max - o[label]: a few ulp of the logits' magnitude (<= 5 + log 10).
        check_within(what + " loss", cuda[2], cpu[2], few_ulp(5.0 + std::log(10.0)));
      }
      check_cpu_cuda_bits(cpu[3], cuda[3], what + " correct");
    }
}

TEST_CASE("cuda backend: FillRandomOp draws the same numbers as the cpu backend") {
  if (eqprop::test::skip_without_gpu()) return;
  BackendPair backends;
  const std::size_t count = 200001;
  const HostArrays inputs = {std::vector<float>(count, 0.0f)};
  for (const auto distribution : {eqprop::Distribution::uniform, eqprop::Distribution::normal}) {
    const auto [cpu, cuda] = run_on_both(backends, inputs, [&](Backend& backend, DeviceArrays& x) {
      eqprop::FillRandomOp op{};
      op.out = x.pointer(0);
      op.seed = 0x0123456789ABCDEFull;
      op.stream = eqprop::RngStream::test;
      op.first_index = (1ull << 32) - 1000;  // crosses into the counter's high word
      op.step = 17;
      op.distribution = distribution;
      op.scale = distribution == eqprop::Distribution::uniform ? 2.0f : 1.0f;
      op.offset = distribution == eqprop::Distribution::uniform ? -1.0f : 0.0f;
      backend.run(op, static_cast<std::int64_t>(count));
    });
    if (distribution == eqprop::Distribution::uniform) {
      check_cpu_cuda_bits(cpu[0], cuda[0], "FillRandomOp uniform");
    } else {
      check_within("FillRandomOp normal", cuda[0], cpu[0], 1e-5);
    }
  }
}

TEST_CASE("cuda backend: count_nonfinite counts NaN and Inf like the cpu backend") {
  if (eqprop::test::skip_without_gpu()) return;
  BackendPair backends;
  std::mt19937 rng(12);
  const std::size_t count = (1u << 20) + 7;
  auto values = random_vector(rng, count, -1e30f, 1e30f);
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<std::size_t> planted = {0, 1, 4096, 77777, count / 2, count - 1};
  for (std::size_t i = 0; i < planted.size(); ++i)
    values[planted[i]] = i % 3 == 0 ? std::nanf("") : (i % 3 == 1 ? inf : -inf);
  values[12] = std::numeric_limits<float>::max();         // finite
  values[13] = std::numeric_limits<float>::denorm_min();  // finite
  DeviceArrays on_cpu(*backends.cpu, {values});
  DeviceArrays on_cuda(*backends.cuda, {values});
  const auto n = static_cast<std::int64_t>(count);
  CHECK(backends.cpu->count_nonfinite(on_cpu.pointer(0), n) == 6);
  CHECK(backends.cuda->count_nonfinite(on_cuda.pointer(0), n) == 6);
  // A shorter range reuses the cached scratch; an empty one is 0.
  CHECK(backends.cuda->count_nonfinite(on_cuda.pointer(0), 4097) == 3);
  CHECK(backends.cuda->count_nonfinite(on_cuda.pointer(0) + 1, 1) == 1);
  CHECK(backends.cuda->count_nonfinite(on_cuda.pointer(0), 0) == 0);
}

TEST_CASE("cuda backend: memory copies, fill_zero and overlapping copy_on_device") {
  if (eqprop::test::skip_without_gpu()) return;
  BackendPair backends;
  std::mt19937 rng(13);
  const std::size_t count = 10000;
  const HostArrays inputs = {random_vector(rng, count, -1.0f, 1.0f),
                             random_vector(rng, count, -1.0f, 1.0f)};
  const auto [cpu, cuda] = run_on_both(backends, inputs, [&](Backend& backend, DeviceArrays& x) {
    backend.copy_on_device(x.pointer(1), x.pointer(0), 4000 * sizeof(float));  // disjoint
    backend.copy_on_device(x.pointer(0) + 10, x.pointer(0),
                           5000 * sizeof(float));  // overlap, forward
    backend.copy_on_device(x.pointer(0) + 6000, x.pointer(0) + 6003,
                           3000 * sizeof(float));  // backward
    backend.fill_zero(x.pointer(1) + 9000, 1000 * sizeof(float));
  });
  check_cpu_cuda_bits(cpu[0], cuda[0], "copy_on_device (overlapping)");
  check_cpu_cuda_bits(cpu[1], cuda[1], "copy_on_device + fill_zero");
}

TEST_CASE("cuda backend: upload round trip, ordered with compute through its slot on both sides") {
  if (eqprop::test::skip_without_gpu()) return;
  const auto cuda = eqprop::make_backend("cuda");
  const std::size_t count = std::size_t{1} << 22;  // 16 MiB: the copy takes ~1 ms
  eqprop::HostStagingBuffer<float> first(*cuda, count), second(*cuda, count);
  std::fill(first.data(), first.data() + count, 1.0f);
  std::fill(second.data(), second.data() + count, 1000.0f);
  DeviceBuffer<float> x(*cuda, count), sum(*cuda, count);
  const int slot = 1;
  cuda->upload(slot, x.data(), first.data(), x.bytes());
  sum.zero();
  // Compute after begin_slot_reads must see x = 1. A long chain of it reads x,
  // then a second upload overwrites x: after end_slot_reads that copy must wait
  // for the chain (sum = 50 exactly), not race it. Pinned sources, so the copy
  // engine could start at once.
  cuda->begin_slot_reads(slot);
  const int chain = 50;
  for (int i = 0; i < chain; ++i)
    cuda->run(axpby(x.data(), sum.data(), sum.data(), 1.0f, 1.0f),
              static_cast<std::int64_t>(count));
  cuda->end_slot_reads(slot);
  cuda->upload(slot, x.data(), second.data(), x.bytes());
  cuda->wait_uploads();
  const auto x_back = x.to_host();
  const auto sum_back = sum.to_host();
  CHECK(std::all_of(x_back.begin(), x_back.end(), [](float v) { return v == 1000.0f; }));
  CHECK(std::all_of(sum_back.begin(), sum_back.end(), [](float v) { return v == 50.0f; }));
  // A pageable source works too (CUDA stages it; slower).
  std::vector<float> pageable(count, -2.0f);
  cuda->upload(slot, x.data(), pageable.data(), x.bytes());
  cuda->wait_uploads();
  cuda->synchronize();
  const auto x_pageable = x.to_host();
  CHECK(std::all_of(x_pageable.begin(), x_pageable.end(), [](float v) { return v == -2.0f; }));
  CHECK_THROWS_AS(cuda->upload(Backend::kUploadSlots, x.data(), first.data(), x.bytes()), std::out_of_range);
}

TEST_CASE("cuda backend: requesting it without a GPU is a clear DeviceError") {
  if (eqprop::test::skip_case_if(eqprop::cuda_device_available(),
                                 "a CUDA GPU is present, the no-GPU error cannot be observed"))
    return;
  const std::string message =
      eqprop::test::thrown_message<eqprop::DeviceError>([] { eqprop::make_backend("cuda"); });
  eqprop::test::check_contains(message, {"cuda"});
  CHECK(eqprop::make_backend("auto")->name() == "cpu");
#if defined(EQPROP_HAVE_CUDA)
  CHECK(eqprop::cuda_device_count() == 0);
  const std::string direct =
      eqprop::test::thrown_message<eqprop::DeviceError>([] { eqprop::make_cuda_backend(); });
  eqprop::test::check_contains(direct, {"cuda"});
  MESSAGE("make_cuda_backend() says: " << direct);
#endif
}
