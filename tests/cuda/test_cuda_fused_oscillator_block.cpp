// CPU vs CUDA parity of the oscillator network's fused relaxation
// (kernels/fused_oscillator_block.h): the body over GpuBlockContext (several systems
// per block, one thread per element, __syncthreads) equals its naive reference bit
// for bit given the same inputs (CUDA built -fmad=false; phase_sincos is polynomial);
// through the model, where the input fields before it are GEMMs (cuBLAS vs the CPU
// BLAS), it agrees with the CPU backend and with the GEMM path on the GPU up to
// reduction order. Skips without a GPU.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "kernels/fused_oscillator_block.h"
#include "models/oscillator_network.h"
#include "tests/skip.h"
#include "tests/test_util.h"
#include "tests/tolerance.h"

namespace eqprop {
namespace {

double largest_phase_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0;
  for (std::size_t k = 0; k < a.size(); ++k)
    worst = std::max(worst, std::abs(std::remainder(double(a[k]) - double(b[k]), 2.0 * kPi)));
  return worst;
}

// A free phase then a nudged one of `steps` each, from pi/2, on a backend; every
// oscillator layer's final phases.
std::vector<std::vector<float>> relax_on(Backend& backend, const std::vector<int>& layers, int batch,
                                         RelaxationPath path, std::uint32_t seed) {
  std::mt19937 rng(seed);
  OscillatorNetwork model(backend, OscillatorShape{layers, 0.3f, kPi}, batch, path);
  for (std::size_t t = 0; t < model.parameters().weights.size(); ++t) {
    model.parameters().weights[t].copy_from_host(
        test::random_vector(rng, model.parameters().weights[t].size(), -0.3f, 0.3f));
    model.parameters().biases[t].copy_from_host(test::random_vector(rng, model.parameters().biases[t].size(), -0.2f, 0.2f));
  }
  DeviceBuffer<float> x(backend, std::size_t(batch) * layers.front()), target(backend, std::size_t(batch) * layers.back());
  x.copy_from_host(test::random_vector(rng, x.size(), 0.0f, 1.0f));
  target.copy_from_host(test::random_one_hot(rng, batch, layers.back()));
  model.set_input(x.data(), batch);
  NetworkState state = model.make_state();
  model.reset(state);
  model.relax(state, target.data(), PhaseSpec{Integrator::gradient_flow, 0.4f, 20, 0.0f});
  model.relax(state, target.data(), PhaseSpec{Integrator::gradient_flow, 0.4f, 8, 0.5f});
  std::vector<std::vector<float>> host;
  for (auto& layer : state.layers) host.push_back(layer.to_host());
  return host;
}

}  // namespace

TEST_CASE("cuda backend: the fused oscillator body equals its naive reference bit for bit") {
  if (eqprop::test::skip_without_gpu()) return;
  auto cuda = make_backend("cuda");
  const std::vector<int> units = {13, 7, 5};
  const int batch = 9, layers = 3;
  std::mt19937 rng(17);
  std::vector<std::vector<float>> weights(layers), transposed(layers), biases(layers), phases(layers);
  for (int i = 0; i < layers; ++i) {
    biases[i] = test::random_vector(rng, std::size_t(units[i]), -0.3f, 0.3f);
    phases[i] = test::random_vector(rng, std::size_t(batch) * units[i], -kPi, kPi);
    if (i > 0) {
      weights[i] = test::random_vector(rng, std::size_t(units[i - 1]) * units[i], -0.6f, 0.6f);
      transposed[i - 1].resize(weights[i].size());
      for (int r = 0; r < units[i - 1]; ++r)
        for (int c = 0; c < units[i]; ++c)
          transposed[i - 1][std::size_t(c) * units[i - 1] + r] = weights[i][std::size_t(r) * units[i] + c];
    }
  }
  const std::vector<float> cos_drive = test::random_vector(rng, std::size_t(batch) * units[0], -2.0f, 2.0f),
                           sin_drive = test::random_vector(rng, std::size_t(batch) * units[0], -2.0f, 2.0f),
                           target = test::random_one_hot(rng, batch, units[2]);
  auto upload = [&](const std::vector<float>& host) {
    DeviceBuffer<float> buffer(*cuda, std::max<std::size_t>(host.size(), 1));
    if (!host.empty()) buffer.copy_from_host(host);
    return buffer;
  };
  std::vector<DeviceBuffer<float>> d_weights, d_transposed, d_biases;
  for (int i = 0; i < layers; ++i) {
    d_weights.push_back(upload(weights[i]));
    d_transposed.push_back(upload(transposed[i]));
    d_biases.push_back(upload(biases[i]));
  }
  DeviceBuffer<float> d_cos = upload(cos_drive), d_sin = upload(sin_drive), d_target = upload(target);
  for (const int systems : {1, 2, 4})
    for (const int threads : {32, 64, 256}) {
      CAPTURE(systems);
      CAPTURE(threads);
      std::vector<DeviceBuffer<float>> d_phases;
      FusedOscillatorBlock body{}, host_body{};
      std::vector<std::vector<float>> expected = phases;
      for (int i = 0; i < layers; ++i) {
        d_phases.push_back(upload(phases[i]));
        body.states[i] = d_phases[i].data();
        body.weights[i] = i > 0 ? d_weights[i].data() : nullptr;
        body.weights_transposed[i] = i + 1 < layers ? d_transposed[i].data() : nullptr;
        body.bias[i] = d_biases[i].data();
        body.units[i] = host_body.units[i] = units[i];
        host_body.states[i] = expected[i].data();
        host_body.weights[i] = i > 0 ? weights[i].data() : nullptr;
        host_body.weights_transposed[i] = i + 1 < layers ? transposed[i].data() : nullptr;
        host_body.bias[i] = biases[i].data();
      }
      body.input_cos_drive = d_cos.data();
      body.input_sin_drive = d_sin.data();
      body.target = d_target.data();
      host_body.input_cos_drive = cos_drive.data();
      host_body.input_sin_drive = sin_drive.data();
      host_body.target = target.data();
      for (FusedOscillatorBlock* b : {&body, &host_body}) {
        b->beta = 0.7f;
        b->dt = 0.25f;
        b->shil = 0.4f;
        b->layers = layers;
        b->batch = batch;
        b->systems_per_block = systems;
        b->steps = 23;
      }
      cuda->run_blocks(body, body.blocks(), threads);
      fused_oscillator_reference(host_body);
      for (int i = 0; i < layers; ++i)
        test::check_bit_exact("cuda body vs reference, layer " + std::to_string(i), d_phases[i].to_host(), expected[i],
                              " (an FMA contraction? a missing barrier?)");
    }
}

TEST_CASE("cuda backend: the fused oscillator relaxation agrees with the cpu backend and with the GEMM path") {
  if (eqprop::test::skip_without_gpu()) return;
  auto cpu = make_backend("cpu");
  auto cuda = make_backend("cuda");
  // 23 oscillators: several systems per GPU block; 510 (the recipe's 784-500-10):
  // one system per block, threads take two elements.
  for (const std::vector<int>& layers : {std::vector<int>{20, 11, 7, 5}, std::vector<int>{784, 500, 10}}) {
    const std::string name = std::to_string(layers[1]) + " hidden";
    const auto on_cpu = relax_on(*cpu, layers, 37, RelaxationPath::fused, 83);
    const auto on_cuda = relax_on(*cuda, layers, 37, RelaxationPath::fused, 83);
    const auto gemm_on_cuda = relax_on(*cuda, layers, 37, RelaxationPath::gemm, 83);
    for (std::size_t i = 0; i < on_cpu.size(); ++i) {
      const std::string layer = name + " layer " + std::to_string(i);
      test::check_within(layer + " (cuda vs cpu, around the circle)", largest_phase_difference(on_cuda[i], on_cpu[i]),
                         1e-4);
      test::check_within(layer + " (fused vs gemm on cuda, around the circle)",
                         largest_phase_difference(on_cuda[i], gemm_on_cuda[i]), 1e-4);
    }
  }
}

}  // namespace eqprop
