// The phase-oscillator network (models/oscillator_network.h) on the CPU backend
// against the independent double-precision reference
// (models/oscillator_network_reference.h): energy and force against pairwise loops,
// the cos/sin GEMM split against the pairwise formula, energy descent, the free
// fixed point, the reference's implicit gradient against finite differences, EP
// against the implicit gradient, noise keyed on logical indices, and training,
// checkpoints and the ADC through the trainer.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>

#include "engine/checkpoint.h"
#include "engine/config.h"
#include "engine/gradcheck.h"
#include "engine/safetensors.h"
#include "engine/training_run.h"
#include "kernels/error.h"
#include "models/oscillator_network.h"
#include "models/oscillator_network_reference.h"
#include "tests/backends.h"
#include "tests/model_fixture.h"
#include "tests/synthetic_data.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

namespace ref = oscillator_reference;
constexpr double kPiDouble = 3.14159265358979323846;

// The distance of two phases around the circle.
double phase_distance(double a, double b) {
  const double d = std::fmod(std::fabs(a - b), 2.0 * kPiDouble);
  return std::min(d, 2.0 * kPiDouble - d);
}

// A small network with the same random parameters in the engine and the reference,
// and a batch of random inputs in [0, 1] and labels.
struct OscillatorFixture : test::FixtureBase {
  ref::Network net;
  OscillatorNetwork model;
  int batch;

  OscillatorFixture(std::vector<int> layers, double shil, int batch_size, unsigned seed, double weight_scale = 0.6,
                    const char* backend_name = "cpu")
      : FixtureBase(backend_name),
        model(*backend, OscillatorShape{layers, static_cast<float>(shil), static_cast<float>(kPiDouble)}, batch_size),
        batch(batch_size) {
    std::mt19937 rng(seed);
    net.layers = layers;
    net.shil = static_cast<float>(shil);
    net.input_scale = static_cast<float>(kPiDouble);  // the engine's float value, exactly
    test::draw_matched_parameters(model.parameters(), rng, weight_scale, -0.3, 0.3, net.weights, net.biases);
    draw_batch(rng, batch, layers.front(), layers.back());
    model.set_input(x.data(), batch);
  }

  // Per sample, per state layer, the engine's phases.
  std::vector<ref::Phases> phases_of(const NetworkState& state) const {
    return test::states_per_sample(model, state, batch);
  }

  // A state of random phases in [-pi, pi), the same in the engine and returned.
  NetworkState random_state(unsigned seed) {
    std::mt19937 rng(seed);
    NetworkState state = model.make_state();
    for (std::size_t layer = 0; layer < state.layers.size(); ++layer) {
      std::vector<float> phases(std::size_t(batch) * net.layers[layer + 1]);
      for (float& p : phases) p = static_cast<float>(std::uniform_real_distribution<double>(-kPiDouble, kPiDouble)(rng));
      state.layers[layer].copy_from_host(phases);
    }
    return state;
  }

  NetworkState relaxed(const PhaseSpec& spec) { return test::relaxed_state(model, target.data(), spec); }

  reference::Gradient engine_ep_gradient(float beta, bool symmetric, const PhaseSpec& base) {
    return test::engine_ep_gradient(model, target.data(), batch, beta, symmetric, base);
  }

  // `steps` phases of `spec` on `state`, watched through the reference energy of
  // each sample: its largest rise from one phase to the next, and the energies at
  // the start and at the end.
  struct EnergyDescent {
    double worst_rise = 0;
    std::vector<double> first, last;
  };
  EnergyDescent descend(NetworkState& state, const PhaseSpec& spec, int steps) {
    EnergyDescent descent;
    for (int s = 0; s < batch; ++s) descent.first.push_back(ref::energy(net, xs[s], phases_of(state)[s]));
    descent.last = descent.first;
    for (int step = 0; step < steps; ++step) {
      model.relax(state, target.data(), spec);
      const auto phases = phases_of(state);
      for (int s = 0; s < batch; ++s) {
        const double energy = ref::energy(net, xs[s], phases[s]);
        descent.worst_rise = std::max(descent.worst_rise, energy - descent.last[s]);
        descent.last[s] = energy;
      }
    }
    return descent;
  }
};

PhaseSpec flow(float dt, int steps, float beta = 0.0f) {
  PhaseSpec spec;
  spec.integrator = Integrator::gradient_flow;
  spec.dt = dt;
  spec.steps = steps;
  spec.beta = beta;
  return spec;
}

const std::vector<std::pair<std::vector<int>, double>> kShapes = {
    {{6, 5, 4}, 0.0},
    {{6, 5, 4}, 0.5},
    {{8, 6, 5, 3}, 0.0},
    {{8, 6, 5, 3}, 0.3},
};

}  // namespace

TEST_CASE_TEMPLATE("oscillator: the energy is the reference's pairwise sum", OnBackend, EQPROP_EACH_BACKEND) {
  if (test::skip_without_backend<OnBackend>()) return;
  for (const auto& [layers, shil] : kShapes) {
    OscillatorFixture f(layers, shil, 5, 21, 0.6, OnBackend::name);
    const NetworkState state = f.random_state(4);
    DeviceBuffer<float> energy(*f.backend, f.batch);
    f.model.energy(state, energy.data());
    const std::vector<float> engine = energy.to_host();
    const auto phases = f.phases_of(state);
    double worst = 0;
    for (int s = 0; s < f.batch; ++s) {
      const double expected = ref::energy(f.net, f.xs[s], phases[s]);
      worst = std::max(worst, std::fabs(engine[s] - expected) / (1.0 + std::fabs(expected)));
    }
    test::check_within("energy: worst relative difference", worst, 1e-5);
  }
}

TEST_CASE("oscillator: one gradient-flow step moves every phase by -dt dF/dphi of the pairwise force") {
  // The step is explicit Euler from the state as given, so (phi - phi') / dt is the
  // force the engine used, up to float rounding of the phases (~1e-7 / dt).
  for (const auto& [layers, shil] : kShapes) {
    for (float beta : {0.0f, 0.7f, -0.7f}) {
      OscillatorFixture f(layers, shil, 4, 9);
      NetworkState state = f.random_state(5);
      const auto before = f.phases_of(state);
      const float dt = 0.05f;
      f.model.relax(state, f.target.data(), flow(dt, 1, beta));
      const auto after = f.phases_of(state);
      double worst = 0, largest = 0;
      for (int s = 0; s < f.batch; ++s) {
        const ref::Phases force = ref::energy_gradient(f.net, f.xs[s], before[s]);
        const ref::Phases nudge = ref::cost_gradient(f.net, before[s], f.labels[s]);
        for (std::size_t k = 0; k < force.size(); ++k)
          for (std::size_t j = 0; j < force[k].size(); ++j) {
            const double expected = force[k][j] + beta * nudge[k][j];
            double moved = before[s][k][j] - after[s][k][j];
            moved -= 2.0 * kPiDouble * std::round(moved / (2.0 * kPiDouble));  // a wrap past +-pi
            worst = std::max(worst, std::fabs(moved / dt - expected));
            largest = std::max(largest, std::fabs(expected));
          }
      }
      CAPTURE(beta);
      MESSAGE("force: max |force| " << largest);
      test::check_within("force: worst |engine - pairwise|", worst, 1e-4);
      for (const auto& sample : after)
        for (const auto& layer : sample)
          for (double phase : layer) CHECK((phase >= -kPiDouble - 1e-6 && phase < kPiDouble + 1e-6));
    }
  }
}

TEST_CASE("oscillator: an asynchronous step moves the odd layers, then the even ones at the new odd phases") {
  // State layer k = 0 is the first hidden layer (network layer 1, odd): group 0 moves
  // by the force at the phases as given, group 1 by the force once group 0 has moved.
  for (const auto& [layers, shil] : kShapes) {
    for (float beta : {0.0f, 0.7f}) {
      OscillatorFixture f(layers, shil, 4, 9);
      NetworkState state = f.random_state(5);
      const auto before = f.phases_of(state);
      const float dt = 0.05f;
      PhaseSpec spec = flow(dt, 1, beta);
      spec.order = UpdateOrder::asynchronous;
      f.model.relax(state, f.target.data(), spec);
      const auto after = f.phases_of(state);
      double worst = 0;
      for (int s = 0; s < f.batch; ++s) {
        ref::Phases middle = before[s];
        for (std::size_t k = 0; k < middle.size(); k += 2) middle[k] = after[s][k];
        for (std::size_t k = 0; k < middle.size(); ++k) {
          const ref::Phases& from = k % 2 == 0 ? before[s] : middle;
          const ref::Phases force = ref::energy_gradient(f.net, f.xs[s], from);
          const ref::Phases nudge = ref::cost_gradient(f.net, from, f.labels[s]);
          for (std::size_t j = 0; j < force[k].size(); ++j) {
            double moved = before[s][k][j] - after[s][k][j];
            moved -= 2.0 * kPiDouble * std::round(moved / (2.0 * kPiDouble));  // a wrap past +-pi
            worst = std::max(worst, std::fabs(moved / dt - (force[k][j] + beta * nudge[k][j])));
          }
        }
      }
      CAPTURE(beta);
      test::check_within("asynchronous step: worst |engine - pairwise force|", worst, 1e-4);
    }
  }
}

TEST_CASE("oscillator: asynchronous gradient flow never raises the energy and settles at a strict minimum") {
  // With S > 0 V has many minima (phases locked near 0 or pi); the two orders may
  // take different paths into different ones, so the end state is checked against
  // the reference's force and Hessian at that state, not against its own descent.
  for (const auto& [layers, shil] : kShapes) {
    OscillatorFixture f(layers, shil, 5, 11, 0.6);
    NetworkState state = f.model.make_state();
    f.model.reset(state);
    PhaseSpec spec = flow(0.05f, 1);
    spec.order = UpdateOrder::asynchronous;
    test::check_within("asynchronous: largest energy rise in a step", f.descend(state, spec, 300).worst_rise, 1e-6);
    spec.dt = 0.2f;
    spec.steps = 6000;
    f.model.relax(state, f.target.data(), spec);
    const auto engine = f.phases_of(state);
    double worst = 0;
    for (int s = 0; s < f.batch; ++s) {
      const ref::Phases force = ref::energy_gradient(f.net, f.xs[s], engine[s]);
      int units = 0;
      for (const auto& layer : force) {
        units += static_cast<int>(layer.size());
        for (double g : layer) worst = std::max(worst, std::fabs(g));
      }
      CHECK(ref::positive_definite(ref::hessian(f.net, f.xs[s], 0, 0.0, engine[s]), units));
    }
    test::check_within("asynchronous: largest |dV/dphi| where it settled", worst, 1e-4);
  }
}

TEST_CASE("oscillator: the cos/sin GEMM split equals the pairwise sin and cos of phase differences") {
  // Force: sum_i J_ij sin(phi_j - psi_i) = sin phi_j (cos psi J)_j - cos phi_j (sin psi J)_j.
  // Coupling gradient: -cos(psi_i - phi_j) = -(cos psi_i cos phi_j + sin psi_i sin phi_j), summed over the batch.
  auto backend = make_backend("cpu");
  std::mt19937 rng(17);
  const int batch = 7, below = 9, here = 6;
  const std::vector<float> psi = test::random_vector(rng, std::size_t(batch) * below, -3.1f, 3.1f);
  const std::vector<float> phi = test::random_vector(rng, std::size_t(batch) * here, -3.1f, 3.1f);
  const std::vector<float> j = test::random_vector(rng, std::size_t(below) * here, -1.0f, 1.0f);
  DeviceBuffer<float> psi_d(*backend, psi.size()), phi_d(*backend, phi.size()), j_d(*backend, j.size());
  psi_d.copy_from_host(psi);
  phi_d.copy_from_host(phi);
  j_d.copy_from_host(j);
  DeviceBuffer<float> cos_psi(*backend, psi.size()), sin_psi(*backend, psi.size());
  DeviceBuffer<float> cos_phi(*backend, phi.size()), sin_phi(*backend, phi.size());
  backend->run(OscillatorTrigOp{psi_d.data(), 1.0f, cos_psi.data(), sin_psi.data(), nullptr, below}, psi.size());
  backend->run(OscillatorTrigOp{phi_d.data(), 1.0f, cos_phi.data(), sin_phi.data(), nullptr, here}, phi.size());
  DeviceBuffer<float> cos_field(*backend, phi.size()), sin_field(*backend, phi.size()), dj(*backend, j.size());
  backend->gemm(Transpose::no, Transpose::no, batch, here, below, 1.0f, cos_psi.data(), below, j_d.data(), here, 0.0f,
                cos_field.data(), here);
  backend->gemm(Transpose::no, Transpose::no, batch, here, below, 1.0f, sin_psi.data(), below, j_d.data(), here, 0.0f,
                sin_field.data(), here);
  backend->gemm(Transpose::yes, Transpose::no, below, here, batch, -1.0f, cos_psi.data(), below, cos_phi.data(), here,
                0.0f, dj.data(), here);
  backend->gemm(Transpose::yes, Transpose::no, below, here, batch, -1.0f, sin_psi.data(), below, sin_phi.data(), here,
                1.0f, dj.data(), here);
  const auto cf = cos_field.to_host(), sf = sin_field.to_host(), c = cos_phi.to_host(), s = sin_phi.to_host();
  const auto gradient = dj.to_host();
  double worst_force = 0, worst_gradient = 0;
  for (int b = 0; b < batch; ++b)
    for (int u = 0; u < here; ++u) {
      double pairwise = 0;
      for (int i = 0; i < below; ++i)
        pairwise += double(j[i * here + u]) * std::sin(double(phi[b * here + u]) - double(psi[b * below + i]));
      const std::size_t k = std::size_t(b) * here + u;
      const double split = oscillator_energy_gradient(c[k], s[k], cf[k], sf[k], 0.0f, 0.0f);
      worst_force = std::max(worst_force, std::fabs(split - pairwise));
    }
  for (int i = 0; i < below; ++i)
    for (int u = 0; u < here; ++u) {
      double pairwise = 0;
      for (int b = 0; b < batch; ++b) pairwise -= std::cos(double(psi[b * below + i]) - double(phi[b * here + u]));
      worst_gradient = std::max(worst_gradient, std::fabs(gradient[i * here + u] - pairwise));
    }
  MESSAGE("split vs pairwise: force " << worst_force << ", coupling gradient " << worst_gradient << " (tolerance 1e-5)");
  test::check_within("max |split - pairwise force|", worst_force, 1e-5);
  test::check_within("max |split - pairwise gradient|", worst_gradient, 1e-5);
}

TEST_CASE("oscillator: phase_sincos is within float rounding of double cos and sin") {
  double worst_near = 0, worst_far = 0;
  for (int k = -200000; k <= 200000; ++k) {
    const float near = static_cast<float>(k * (2.0 * kPiDouble / 200000.0));  // [-2 pi, 2 pi]
    const float far = static_cast<float>(k * (100.0 / 200000.0));            // [-100, 100]
    float c, s;
    phase_sincos(near, c, s);
    worst_near = std::max({worst_near, std::fabs(c - std::cos(double(near))), std::fabs(s - std::sin(double(near)))});
    phase_sincos(far, c, s);
    worst_far = std::max({worst_far, std::fabs(c - std::cos(double(far))), std::fabs(s - std::sin(double(far)))});
  }
  MESSAGE("phase_sincos: max abs error " << worst_near << " on [-2pi, 2pi], " << worst_far << " on [-100, 100]");
  test::check_within("max trig error near 0", worst_near, 2e-7);
  test::check_within("max trig error far from 0", worst_far, 1e-6);
  // The wrap keeps a phase's cos and sin and lands in [-pi, pi].
  for (float phase : {-20.0f, -3.2f, -1.0f, 0.0f, 3.1f, 3.2f, 7.0f, 50.0f}) {
    const float wrapped = wrap_phase(phase);
    CHECK(std::fabs(wrapped) <= kPi);
    eqprop::test::check_within("cos of the wrapped phase - cos of the phase", std::fabs(std::cos(double(wrapped)) - std::cos(double(phase))), 1e-5);
    eqprop::test::check_within("sin of the wrapped phase - sin of the phase", std::fabs(std::sin(double(wrapped)) - std::sin(double(phase))), 1e-5);
  }
}

TEST_CASE("oscillator: the step's vectorized row path equals its per-element path bit for bit") {
  auto backend = make_backend("cpu");
  std::mt19937 rng(5);
  const int rows = 3, units = 37;
  const std::size_t n = std::size_t(rows) * units;
  const auto phases = test::random_vector(rng, n, -3.1f, 3.1f);
  const auto cos_drive = test::random_vector(rng, n, -2.0f, 2.0f), sin_drive = test::random_vector(rng, n, -2.0f, 2.0f);
  const auto cos_feedback = test::random_vector(rng, n, -1.0f, 1.0f), sin_feedback = test::random_vector(rng, n, -1.0f, 1.0f);
  const auto bias = test::random_vector(rng, units, -0.5f, 0.5f);
  const auto target = test::random_one_hot(rng, rows, units);
  for (bool feedback : {false, true}) {
    for (bool nudged : {false, true}) {
      std::vector<float> p_host = phases, c_host(n), s_host(n);
      for (std::size_t i = 0; i < n; ++i) phase_sincos(phases[i], c_host[i], s_host[i]);
      DeviceBuffer<float> p(*backend, n), c(*backend, n), s(*backend, n);
      p.copy_from_host(p_host);
      c.copy_from_host(c_host);
      s.copy_from_host(s_host);
      auto op_on = [&](float* ph, float* co, float* si) {
        return OscillatorStepOp{ph, co, si, cos_drive.data(), sin_drive.data(), feedback ? cos_feedback.data() : nullptr,
                                feedback ? sin_feedback.data() : nullptr, bias.data(), nudged ? target.data() : nullptr,
                                0.8f, 0.3f, 0.1f, units};
      };
      backend->run(op_on(p.data(), c.data(), s.data()), std::int64_t(n));  // the CPU backend's row path
      const OscillatorStepOp element = op_on(p_host.data(), c_host.data(), s_host.data());
      for (std::size_t i = 0; i < n; ++i) element(static_cast<std::int64_t>(i));
      CAPTURE(feedback);
      CAPTURE(nudged);
      test::check_bit_exact("phases", p.to_host(), p_host);
      test::check_bit_exact("cosines", c.to_host(), c_host);
      test::check_bit_exact("sines", s.to_host(), s_host);
    }
  }
}

TEST_CASE("oscillator: the energy never increases under gradient flow with a small step") {
  for (const auto& [layers, shil] : kShapes) {
    OscillatorFixture f(layers, shil, 4, 5, 0.8);
    NetworkState state = f.model.make_state();
    f.model.reset(state);
    const auto descent = f.descend(state, flow(0.05f, 1), 300);
    // Float phases: a rise of a few float ulps of the energy is rounding, not physics.
    MESSAGE("largest energy rise in one step: " << descent.worst_rise);
    test::check_within("largest energy rise in a step", descent.worst_rise, 1e-6);
    for (int s = 0; s < f.batch; ++s) CHECK(descent.last[s] < descent.first[s]);
  }
}

TEST_CASE_TEMPLATE("oscillator: the engine's free fixed point is the reference's, a strict minimum", OnBackend,
                   EQPROP_EACH_BACKEND) {
  if (test::skip_without_backend<OnBackend>()) return;
  for (const auto& [layers, shil] : kShapes) {
    OscillatorFixture f(layers, shil, 5, 11, 0.6, OnBackend::name);
    PhaseSpec spec = flow(0.2f, 6000);
    const auto engine = f.phases_of(f.relaxed(spec));
    double worst = 0;
    for (int s = 0; s < f.batch; ++s) {
      const ref::Phases expected = ref::free_fixed_point(f.net, f.xs[s], 0.2);
      for (std::size_t k = 0; k < expected.size(); ++k)
        for (std::size_t j = 0; j < expected[k].size(); ++j)
          worst = std::max(worst, phase_distance(engine[s][k][j], expected[k][j]));
      int units = 0;
      for (const auto& layer : expected) units += static_cast<int>(layer.size());
      CHECK(ref::positive_definite(ref::hessian(f.net, f.xs[s], 0, 0.0, expected), units));
    }
    test::check_within("max phase distance engine vs reference", worst, 1e-4);
  }
}

TEST_CASE("oscillator reference: the implicit gradient equals central finite differences of the loss") {
  for (const auto& [layers, shil] : kShapes) {
    OscillatorFixture f(layers, shil, 3, 31);
    const reference::Gradient exact = ref::implicit_gradient(f.net, f.xs, f.labels);
    const reference::Gradient numeric = ref::finite_difference_gradient(f.net, f.xs, f.labels);
    const double error = reference::relative_error(exact, numeric);
    test::check_within("implicit vs finite differences: relative error", error, 1e-6);
  }
}

TEST_CASE_TEMPLATE("oscillator: symmetric EP at small beta matches the implicit gradient, better than one-sided",
                   OnBackend, EQPROP_EACH_BACKEND) {
  if (test::skip_without_backend<OnBackend>()) return;
  for (const auto& [layers, shil] : kShapes) {
    for (unsigned seed : {1u, 2u}) {
      OscillatorFixture f(layers, shil, 6, 100 + seed, 0.6, OnBackend::name);
      // Samples near a bifurcation, where a nudge of beta leaves the free basin,
      // have no EP estimate at that beta (engine/gradcheck.cpp); none are kept here.
      const float beta = 0.01f;
      for (int s = 0; s < f.batch; ++s) REQUIRE(ref::nudge_nonlinearity(f.net, f.xs[s], f.labels[s], beta, 0.2) < 0.5);
      // The reference descends with the engine's step, into the same basin.
      const reference::Gradient exact = ref::implicit_gradient(f.net, f.xs, f.labels, 0.2);
      const PhaseSpec spec = flow(0.2f, 6000);
      const reference::Gradient symmetric = f.engine_ep_gradient(beta, true, spec);
      const reference::Gradient one_sided = f.engine_ep_gradient(beta, false, spec);
      const double cosine = reference::cosine_similarity(symmetric, exact);
      const double error_symmetric = reference::relative_error(symmetric, exact);
      const double error_one_sided = reference::relative_error(one_sided, exact);
      CAPTURE(seed);
      MESSAGE("cosine " << cosine << ", relative error symmetric " << error_symmetric << ", one-sided "
                        << error_one_sided);
      CHECK(cosine > 0.9999);
      test::check_within("relative error of symmetric EP", error_symmetric, 1e-2);
      CHECK(error_symmetric < error_one_sided);
    }
  }
}

TEST_CASE_TEMPLATE("oscillator: gradcheck through the trainer matches the implicit gradient", OnBackend,
                   EQPROP_EACH_BACKEND) {
  if (test::skip_without_backend<OnBackend>()) return;
  auto backend = make_backend(OnBackend::name);
  const nlohmann::json user = read_config_file(EQPROP_SOURCE_DIR "/configs/gradcheck_tiny_oscillator.json");
  for (float shil : {0.0f, 0.5f}) {
    nlohmann::json with_shil = user;
    with_shil["oscillator"]["shil"] = shil;
    const Config run = parse_config(with_shil, "gradcheck");
    const nlohmann::json report = run_gradcheck(*backend, run, GradcheckOptions{8});
    const double cosine = report["overall"]["cosine"], error = report["overall"]["relative_error"];
    CAPTURE(shil);
    MESSAGE("gradcheck: cosine " << cosine << ", relative error " << error << ", redrawn "
                                 << report["samples_redrawn_near_a_bifurcation"]);
    CHECK(cosine > 0.9999);
    test::check_within("gradcheck relative error", error, 1e-2);
  }
}

TEST_CASE_TEMPLATE("oscillator: the engine's implicit gradient equals the double-precision reference", OnBackend,
                   EQPROP_EACH_BACKEND) {
  if (test::skip_without_backend<OnBackend>()) return;
  for (const auto& [layers, shil] : kShapes) {
    for (unsigned seed : {1u, 2u}) {
      OscillatorFixture f(layers, shil, 6, 100 + seed, 0.6, OnBackend::name);
      const NetworkState free = f.relaxed(flow(0.2f, 6000));
      ParameterSet gradient = f.model.make_parameter_like();
      // The adjoint iterates the free phase's step (dt 0.2): as many steps as it took.
      const float residual = f.model.implicit_gradient(free, f.target.data(), 6000, gradient);
      const reference::Gradient engine = host_tensors(gradient);
      const reference::Gradient exact = ref::implicit_gradient(f.net, f.xs, f.labels, 0.2);
      const double cosine = reference::cosine_similarity(engine, exact);
      const double error = reference::relative_error(engine, exact);
      CAPTURE(seed);
      CAPTURE(shil);
      MESSAGE("cosine " << cosine << ", relative error " << error << ", adjoint residual " << residual);
      CHECK(cosine >= 0.99999);
      test::check_within("relative error of the implicit gradient", error, 1e-3);
      CHECK(residual < 1e-5f);
    }
  }
}

TEST_CASE("oscillator: the adjoint needs a free phase first, and more steps leave a smaller residual") {
  OscillatorFixture f({8, 6, 5, 3}, 0.3, 4, 7);
  ParameterSet gradient = f.model.make_parameter_like();
  NetworkState unrelaxed = f.model.make_state();
  f.model.reset(unrelaxed);
  const std::string message = test::thrown_message<std::invalid_argument>(
      [&] { f.model.implicit_gradient(unrelaxed, f.target.data(), 10, gradient); });
  test::check_contains(message, {"free phase", "dt"});
  const NetworkState free = f.relaxed(flow(0.2f, 6000));
  const float few = f.model.implicit_gradient(free, f.target.data(), 5, gradient);
  const float many = f.model.implicit_gradient(free, f.target.data(), 2000, gradient);
  MESSAGE("adjoint residual after 5 steps " << few << ", after 2000 " << many);
  CHECK(many < few);
  CHECK_THROWS_AS(f.model.implicit_gradient(free, f.target.data(), 0, gradient), std::invalid_argument);
  // One free step from pi/2 leaves phases that have not turned towards their fields:
  // H is indefinite there, and the adjoint overflows instead of reporting a residual of 0.
  const NetworkState unsettled = f.relaxed(flow(0.2f, 1));
  const float diverged = f.model.implicit_gradient(unsettled, f.target.data(), 100000, gradient);
  MESSAGE("adjoint residual after 100000 steps from an unsettled state: " << diverged);
  CHECK(std::isinf(diverged));
}

TEST_CASE("oscillator: gradcheck of EP with asynchronous phases") {
  auto backend = make_backend("cpu");
  nlohmann::json user = read_config_file(EQPROP_SOURCE_DIR "/configs/gradcheck_tiny_oscillator.json");
  user["dynamics"]["order"] = "asynchronous";
  const nlohmann::json report = run_gradcheck(*backend, parse_config(user, "gradcheck"), GradcheckOptions{8});
  const double cosine = report["overall"]["cosine"], error = report["overall"]["relative_error"];
  MESSAGE("gradcheck (asynchronous): cosine " << cosine << ", relative error " << error);
  CHECK(cosine > 0.9999);
  test::check_within("gradcheck relative error (asynchronous)", error, 1e-2);
}

TEST_CASE("oscillator: gradcheck of training.algorithm = implicit through the trainer") {
  auto backend = make_backend("cpu");
  nlohmann::json user = read_config_file(EQPROP_SOURCE_DIR "/configs/gradcheck_tiny_oscillator.json");
  user["training"]["algorithm"] = "implicit";
  user["training"]["adjoint_iterations"] = 4000;
  for (float shil : {0.0f, 0.5f}) {
    user["oscillator"]["shil"] = shil;
    const nlohmann::json report = run_gradcheck(*backend, parse_config(user, "gradcheck"), GradcheckOptions{8});
    const double cosine = report["overall"]["cosine"], error = report["overall"]["relative_error"];
    CAPTURE(shil);
    MESSAGE("gradcheck (implicit): cosine " << cosine << ", relative error " << error);
    CHECK(cosine > 0.99999);
    test::check_within("gradcheck relative error (implicit)", error, 1e-4);
  }
}

TEST_CASE("oscillator: the Langevin noise is keyed on sample positions, not on the batch split") {
  // Rows 2 and 3 of a batch of 4 relax exactly as a batch of 2 starting at sample 2.
  OscillatorFixture f({6, 5, 4}, 0.2, 4, 3);
  PhaseSpec spec = flow(0.1f, 50);
  spec.noise_sigma = 0.3f;
  spec.noise_seed = 77;
  spec.noise_phase = 1;
  const auto whole = f.phases_of(f.relaxed(spec));
  OscillatorFixture tail({6, 5, 4}, 0.2, 4, 3);
  const std::vector<float> x = tail.x.to_host();
  DeviceBuffer<float> x_tail(*tail.backend, std::vector<float>(x.begin() + 2 * 6, x.end()).size());
  x_tail.copy_from_host(std::vector<float>(x.begin() + 2 * 6, x.end()));
  tail.model.set_input(x_tail.data(), 2);
  tail.batch = 2;
  spec.first_sample = 2;
  const auto part = tail.phases_of(tail.relaxed(spec));
  for (int s = 0; s < 2; ++s)
    for (std::size_t k = 0; k < part[s].size(); ++k) CHECK(part[s][k] == whole[s + 2][k]);
  // ...and the noise does act.
  const auto quiet = f.phases_of(f.relaxed(flow(0.1f, 50)));
  CHECK(quiet[0][0] != whole[0][0]);
}

TEST_CASE("oscillator: the early exit stops a converged phase across the +-pi wrap") {
  OscillatorFixture f({6, 5, 4}, 0.5, 4, 11);
  PhaseSpec spec = flow(0.2f, 20000);
  spec.tolerance = 1e-5f;
  spec.check_every = 10;
  NetworkState state = f.model.make_state();
  f.model.reset(state);
  const PhaseResult result = f.model.relax(state, f.target.data(), spec);
  MESSAGE("converged in " << result.steps << " steps");
  CHECK(result.steps < 20000);
  // Oscillators locked near pi sit on the wrap; were the residual not measured
  // around the circle, their 2 pi jumps would keep the phase running to the cap.
}

TEST_CASE("oscillator: config and model refuse what the physics does not define") {
  auto backend = make_backend("cpu");
  const std::string cost = test::thrown_message<ConfigError>([] {
    parse_config(nlohmann::json{{"model", {{"kind", "oscillator"}, {"cost", "cross_entropy"}, {"layers", {4, 3, 2}}}},
                                {"dynamics", {{"integrator", "gradient_flow"}}}},
                 "test");
  });
  test::check_contains(cost, {"oscillator", "cross_entropy"});
  const std::string integrator = test::thrown_message<ConfigError>(
      [] { parse_config(nlohmann::json{{"model", {{"kind", "oscillator"}}}}, "test"); });
  test::check_contains(integrator, {"gradient_flow"});
  OscillatorNetwork model(*backend, OscillatorShape{{3, 2}}, 1);
  NetworkState state = model.make_state();
  CHECK_THROWS_AS(model.relax(state, nullptr, PhaseSpec{}), std::invalid_argument);
}

namespace {

nlohmann::json oscillator_user(int epochs) {
  return {{"model", {{"kind", "oscillator"}, {"layers", {16, 12, 2}}}},
          {"dynamics", {{"integrator", "gradient_flow"}, {"dt", 0.5}, {"t_free", 30}, {"t_nudge", 10}}},
          {"ep", {{"beta", 0.5}}},
          {"optimizer", {{"lr", 0.2}}},
          {"training", {{"epochs", epochs}, {"batch_size", 16}, {"eval_batch_size", 50}}}};
}

}  // namespace

TEST_CASE("oscillator training: EP learns a separable two-class problem, with and without an ADC") {
  for (bool adc : {false, true}) {
    nlohmann::json user = oscillator_user(4);
    // Phases live in [-pi, pi): a 6-bit ADC over that range reads them in steps of ~0.1 rad.
    if (adc) user["hardware"]["adc"] = {{"enabled", true}, {"bits", 6}, {"lo", -3.1416}, {"hi", 3.1416}};
    auto backend = make_backend("cpu");
    test::TempDir dir;
    const auto records = run_training(*backend, parse_config(user, "test"), test::halves(), dir.path().string(), false, {});
    REQUIRE(records.size() == 4);
    CAPTURE(adc);
    MESSAGE("test accuracy after 1 and 4 epochs: " << records.front().test_acc << ", " << records.back().test_acc);
    CHECK(records.back().test_acc > 0.95);
    CHECK(records.back().train_loss < records.front().train_loss);
  }
}

TEST_CASE("oscillator training: the implicit gradient learns the separable two-class problem") {
  nlohmann::json user = oscillator_user(4);
  user["training"]["algorithm"] = "implicit";
  user["training"]["adjoint_iterations"] = 30;
  // A tenth of EP's rate: the exact gradient is larger than the beta = 0.5 estimate
  // and at EP's rate drives the couplings to where the free phase no longer settles.
  user["optimizer"]["lr"] = 0.02;
  auto backend = make_backend("cpu");
  test::TempDir dir;
  const auto records = run_training(*backend, parse_config(user, "test"), test::halves(), dir.path().string(), false, {});
  REQUIRE(records.size() == 4);
  MESSAGE("test accuracy after 1 and 4 epochs: " << records.front().test_acc << ", " << records.back().test_acc
                                                  << "; adjoint residual " << records.back().adjoint_residual_max.value_or(-1));
  CHECK(records.back().test_acc > 0.95);
  CHECK(records.back().train_loss < records.front().train_loss);
}

TEST_CASE("oscillator training: the checkpoint round-trips through the trainer") {
  auto backend = make_backend("cpu");
  test::TempDir dir;
  const Config config = parse_config(oscillator_user(1), "test");
  run_training(*backend, config, test::halves(), dir.path().string(), false, {});
  const SafetensorsFile file = read_safetensors((dir.path() / kModelFile).string());
  CHECK(file.metadata.at("format") == "eqprop.oscillator");
  CHECK(file.tensors.at("weights.0").shape == std::vector<std::int64_t>{16, 12});
  CHECK(file.tensors.at("weights.1").shape == std::vector<std::int64_t>{12, 2});
  CHECK(file.tensors.at("biases.1").shape == std::vector<std::int64_t>{2});

  Trainer reloaded(*backend, config, 16, 2);
  CHECK(load_checkpoint(dir.path().string(), reloaded, true) == 1);
  for (int l = 0; l < 2; ++l) {
    CHECK(reloaded.model().parameters().weights[l].to_host() == file.tensors.at("weights." + std::to_string(l)).data);
    CHECK(reloaded.model().parameters().biases[l].to_host() == file.tensors.at("biases." + std::to_string(l)).data);
  }
  // A resumed run continues from it.
  const auto continued = run_training(*backend, parse_config(oscillator_user(2), "test"), test::halves(),
                                      dir.path().string(), true, {});
  REQUIRE(continued.size() == 1);
  CHECK(continued.front().epoch == 2);
}

}  // namespace eqprop
