// CPU vs CUDA parity of whole trainers: one random batch on both backends and the
// check that the two EP gradients agree. GEMMs sum in different orders on the two
// backends, so results agree up to a relative tolerance, not bit for bit.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "engine/trainer.h"
#include "kernels/backend.h"
#include "kernels/device_buffer.h"

namespace eqprop {
namespace test {

// ||a - b|| / ||b||, accumulated in double.
inline double relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double difference = 0, norm = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    difference += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    norm += double(b[i]) * b[i];
  }
  return std::sqrt(difference / std::max(norm, 1e-300));
}

// One batch of inputs U(0, 1) (batch, inputs) and one-hot labels (batch, classes)
// from mt19937(seed), the same on the CPU (x_cpu, t_cpu) and the GPU (x_gpu, t_gpu).
struct TwinBatch {
  DeviceBuffer<float> x_cpu, t_cpu, x_gpu, t_gpu;

  TwinBatch(Backend& cpu, Backend& cuda, int batch, int inputs, int classes, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> unit(0.0f, 1.0f);
    std::vector<float> x(std::size_t(batch) * inputs), target(std::size_t(batch) * classes, 0.0f);
    for (float& v : x) v = unit(rng);
    for (int s = 0; s < batch; ++s) target[std::size_t(s) * classes + rng() % classes] = 1.0f;
    x_cpu = DeviceBuffer<float>(cpu, x.size()), t_cpu = DeviceBuffer<float>(cpu, target.size());
    x_gpu = DeviceBuffer<float>(cuda, x.size()), t_gpu = DeviceBuffer<float>(cuda, target.size());
    x_cpu.copy_from_host(x), t_cpu.copy_from_host(target);
    x_gpu.copy_from_host(x), t_gpu.copy_from_host(target);
  }
};

// The EP gradients of the two trainers on `data` (rows [0, batch)) agree tensor by
// tensor within `tolerance` (relative_difference).
inline void check_ep_gradient_parity(Trainer& on_cpu, Trainer& on_cuda, const TwinBatch& data, int batch,
                                     double tolerance) {
  ParameterSet g_cpu = on_cpu.model().make_parameter_like(), g_gpu = on_cuda.model().make_parameter_like();
  on_cpu.ep_gradient(data.x_cpu.data(), data.t_cpu.data(), batch, 0, g_cpu);
  on_cuda.ep_gradient(data.x_gpu.data(), data.t_gpu.data(), batch, 0, g_gpu);
  for (std::size_t l = 0; l < g_cpu.weights.size(); ++l) {
    CAPTURE(l);
    CHECK(relative_difference(g_gpu.weights[l].to_host(), g_cpu.weights[l].to_host()) < tolerance);
    CHECK(relative_difference(g_gpu.biases[l].to_host(), g_cpu.biases[l].to_host()) < tolerance);
  }
}

}  // namespace test
}  // namespace eqprop
