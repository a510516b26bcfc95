// Training results must not depend on how many threads ran them (the CPU backend
// and the thread-team tuner rely on it: engine/thread_team.h). Short runs of the
// default dense network at 1, 2 and 3 threads must give the same checkpoint and the
// same per-epoch records bit for bit: with the early exit (the exit is decided for
// the whole batch, models/relaxation.cpp) and with an evaluation batch whose top
// layer's product is large as a whole but small per thread's slice (OpenBLAS's
// small-matrix kernel, kernels/cpu_backend.cpp).
#include <doctest/doctest.h>

#include <omp.h>

#include <random>
#include <string>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/safetensors.h"
#include "engine/training_run.h"
#include "kernels/device_buffer.h"
#include "tests/gemm_error.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

// 28x28 random images in 10 classes: shaped like Fashion-MNIST, so the network is
// the default 784-500-10 and its products have the default run's shapes.
Dataset random_images(int count, unsigned seed) {
  std::mt19937 rng(seed);
  Dataset data;
  data.sample_shape = {1, 28, 28};
  data.num_classes = 10;
  for (int s = 0; s < count; ++s) {
    data.labels.push_back(static_cast<std::uint8_t>(rng() % 10));
    for (int p = 0; p < 28 * 28; ++p) data.pixels.push_back(static_cast<std::uint8_t>(rng() % 256));
  }
  return data;
}

struct RunResult {
  SafetensorsFile checkpoint;
  std::vector<nlohmann::json> records;  // without the wall-clock fields
};

RunResult train_with_threads(const nlohmann::json& dynamics, int threads) {
  // Eval batch 300: the top layer's product (300 x 10 x 500) takes OpenBLAS's packed
  // kernel whole and its small kernel in a half.
  const Config config = parse_config(nlohmann::json{{"model", {{"layers", {784, 500, 10}}}},
                                                    {"dynamics", dynamics},
                                                    {"training", {{"epochs", 1}, {"batch_size", 64},
                                                                  {"eval_batch_size", 300}}}},
                                     "test");
  auto backend = make_backend("cpu");
  test::TempDir dir;
  const int threads_before = omp_get_max_threads();
  omp_set_num_threads(threads);
  const auto records =
      run_training(*backend, config, DatasetSplits{random_images(192, 1), random_images(300, 2)}, dir.path().string(),
                   false, {});
  omp_set_num_threads(threads_before);
  RunResult result{read_safetensors((dir.path() / kModelFile).string()), {}};
  for (const EpochRecord& record : records) {
    nlohmann::json json = record.to_json();
    json.erase("seconds");
    json.erase("samples_per_s");
    result.records.push_back(json);
  }
  return result;
}

void check_independent_of_threads(const nlohmann::json& dynamics) {
  const RunResult one = train_with_threads(dynamics, 1);
  for (int threads : {2, 3}) {
    CAPTURE(threads);
    const RunResult more = train_with_threads(dynamics, threads);
    CHECK(more.records == one.records);
    REQUIRE(more.checkpoint.tensors.size() == one.checkpoint.tensors.size());
    for (const auto& [name, tensor] : one.checkpoint.tensors) {
      CAPTURE(name);
      CHECK(more.checkpoint.tensors.at(name).data == tensor.data);  // bit for bit
    }
  }
}

}  // namespace

TEST_CASE("thread count: a product over a slice of parallel_over_rows equals the product over the batch") {
  // Batch 300, 10 x 500 (the top layer's field): small-kernel sized per slice at 2
  // and 3 threads, packed-kernel sized whole. Batch 64, 2 x 300: small-kernel sized
  // whole, cut at 3 threads where the kernel's groups of rows would not line up.
  // With 2 replicas per row as the Ising model's (rows times replicas), and with a
  // transposed B.
  auto backend = make_backend("cpu");
  const int threads_before = omp_get_max_threads();
  std::mt19937 rng(5);
  struct Shape {
    int batch, n, k;
  };
  for (const auto [batch, n, k] : {Shape{300, 10, 500}, Shape{64, 2, 300}})
  for (const int replicas : {1, 2})
    for (const bool tb : {false, true}) {
      CAPTURE(batch);
      CAPTURE(replicas);
      CAPTURE(tb);
      const int rows = batch * replicas;
      const test::Matrix a = test::random_matrix(rng, rows, k, 0);
      const test::Matrix b = tb ? test::random_matrix(rng, n, k, 0) : test::random_matrix(rng, k, n, 0);
      DeviceBuffer<float> da(*backend, a.values.size()), db(*backend, b.values.size()),
          dc(*backend, std::size_t(rows) * n);
      da.copy_from_host(a.values);
      db.copy_from_host(b.values);
      const auto sliced_product = [&](int threads) {
        omp_set_num_threads(threads);
        dc.zero();
        backend->parallel_over_rows(batch, [&](int begin, int end) {
          const int first = begin * replicas;
          backend->gemm(Transpose::no, tb ? Transpose::yes : Transpose::no, (end - begin) * replicas, n, k, 1.0f,
                        da.data() + std::size_t(first) * k, k, db.data(), tb ? k : n, 0.0f,
                        dc.data() + std::size_t(first) * n, n);
        });
        return dc.to_host();
      };
      const std::vector<float> whole = sliced_product(1);
      for (int threads : {2, 3}) {
        CAPTURE(threads);
        CHECK(sliced_product(threads) == whole);  // bit for bit
      }
    }
  omp_set_num_threads(threads_before);
}

TEST_CASE("thread count: a run and its evaluation are the same bits at 1, 2 and 3 threads") {
  check_independent_of_threads({{"t_free", 12}, {"t_nudge", 4}});
}

TEST_CASE("thread count: the early exit takes the same steps at 1, 2 and 3 threads") {
  check_independent_of_threads({{"integrator", "gradient_flow"},
                                {"tolerance", 0.01},
                                {"check_every", 3},
                                {"t_free", 30},
                                {"t_nudge", 10}});
}

}  // namespace eqprop
