// CPU vs CUDA parity of the phase-oscillator network's kernels
// (kernels/oscillator_step.h, oscillator_row_energy.h): cos/sin come from the same
// polynomial and every op is plain float arithmetic (the CUDA backend is built
// -fmad=false), so the trig op, the step (noiseless) and the per-system energy are
// bit-exact; with Langevin noise the normals go through logf/sinf/cosf, which may
// differ in the last bit, so the step agrees to a few ulp. Skips without a GPU.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "kernels/elementwise_ops.h"
#include "tests/skip.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

constexpr int kRows = 33, kUnits = 517;
constexpr std::size_t kCount = std::size_t(kRows) * kUnits;

struct StepInputs {
  std::vector<float> phases, cos_drive, sin_drive, cos_feedback, sin_feedback, bias, target;
};

StepInputs random_inputs() {
  std::mt19937 rng(61);
  StepInputs in;
  in.phases = test::random_vector(rng, kCount, -3.14f, 3.14f);
  in.cos_drive = test::random_vector(rng, kCount, -3.0f, 3.0f);
  in.sin_drive = test::random_vector(rng, kCount, -3.0f, 3.0f);
  in.cos_feedback = test::random_vector(rng, kCount, -1.0f, 1.0f);
  in.sin_feedback = test::random_vector(rng, kCount, -1.0f, 1.0f);
  in.bias = test::random_vector(rng, kUnits, -0.5f, 0.5f);
  in.target = test::random_one_hot(rng, kRows, kUnits);
  return in;
}

// Trig, then `steps` steps, then the energy, on one backend; returns phases, cos,
// sin and the energy.
std::vector<std::vector<float>> run_oscillator(Backend& backend, const StepInputs& in, float noise_sigma, int steps) {
  auto upload = [&](const std::vector<float>& host) {
    DeviceBuffer<float> buffer(backend, host.size());
    buffer.copy_from_host(host);
    return buffer;
  };
  DeviceBuffer<float> phases = upload(in.phases), cos_drive = upload(in.cos_drive), sin_drive = upload(in.sin_drive),
                      cos_feedback = upload(in.cos_feedback), sin_feedback = upload(in.sin_feedback),
                      bias = upload(in.bias), target = upload(in.target);
  DeviceBuffer<float> cosines(backend, kCount), sines(backend, kCount), energy(backend, kRows);
  backend.run(OscillatorTrigOp{phases.data(), 1.0f, cosines.data(), sines.data(), nullptr, kUnits},
              std::int64_t(kCount));
  for (int step = 0; step < steps; ++step) {
    OscillatorStepOp op{phases.data(), cosines.data(), sines.data(), cos_drive.data(), sin_drive.data(),
                        cos_feedback.data(), sin_feedback.data(), bias.data(), target.data(), 0.7f, 0.4f, 0.1f, kUnits};
    op.noise_sigma = noise_sigma;
    op.noise_seed = 5;
    op.noise_index = 1000;
    op.noise_row_stride = kUnits + 3;
    op.noise_step = static_cast<std::uint32_t>(step);
    backend.run(op, std::int64_t(kCount));
  }
  backend.run(OscillatorRowEnergyOp{cosines.data(), sines.data(), cos_drive.data(), sin_drive.data(), bias.data(),
                                    energy.data(), 0.4f, kUnits, false},
              kRows);
  return {phases.to_host(), cosines.to_host(), sines.to_host(), energy.to_host()};
}

}  // namespace

TEST_CASE("cuda backend: the oscillator trig, step and energy ops are bit-exact with the cpu backend") {
  if (eqprop::test::skip_without_gpu()) return;
  auto cpu = make_backend("cpu");
  auto cuda = make_backend("cuda");
  const StepInputs in = random_inputs();
  const auto a = run_oscillator(*cpu, in, 0.0f, 5);
  const auto b = run_oscillator(*cuda, in, 0.0f, 5);
  const char* names[] = {"phases", "cosines", "sines", "energy"};
  for (int k = 0; k < 4; ++k) test::check_bit_exact(names[k], b[k], a[k], " (a contracted a*b+c, or a library sinf/cosf?)");
}

TEST_CASE("cuda backend: the noisy oscillator step agrees with the cpu backend to a few ulp") {
  if (eqprop::test::skip_without_gpu()) return;
  auto cpu = make_backend("cpu");
  auto cuda = make_backend("cuda");
  const StepInputs in = random_inputs();
  const auto a = run_oscillator(*cpu, in, 0.3f, 5);
  const auto b = run_oscillator(*cuda, in, 0.3f, 5);
  double worst = 0;
  for (std::size_t i = 0; i < kCount; ++i) worst = std::max(worst, double(std::fabs(a[0][i] - b[0][i])));
  test::check_within("noisy step: max |phase_cpu - phase_cuda|", worst, 1e-5);
}

}  // namespace eqprop
