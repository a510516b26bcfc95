#include "engine/landscape.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <stdexcept>

#include "kernels/device_buffer.h"

namespace eqprop {
namespace {

// Every state layer of rows [0, batch), sample-major: (batch, units over all layers).
std::vector<float> states_by_sample(const EnergyModel& model, const NetworkState& state, int batch, int total) {
  std::vector<float> out(std::size_t(batch) * total);
  int offset = 0;
  for (std::size_t l = 0; l < state.layers.size(); ++l) {
    const int units = model.state_units(static_cast<int>(l));
    const std::vector<float> layer = state.layers[l].to_host();
    for (int s = 0; s < batch; ++s)
      std::copy_n(layer.begin() + std::size_t(s) * units, units, out.begin() + std::size_t(s) * total + offset);
    offset += units;
  }
  return out;
}

}  // namespace

std::vector<SampleLandscape> explore_landscape(EnergyModel& model, const float* target, int batch,
                                               const PhaseSpec& spec, const LandscapeOptions& options) {
  if (spec.beta != 0.0f) throw std::invalid_argument("explore_landscape: the landscape is the free energy's (beta = 0)");
  if (options.starts < 0) throw std::invalid_argument("explore_landscape: starts must be >= 0");
  if (batch < 1 || batch > model.max_batch()) throw std::invalid_argument("explore_landscape: bad batch size");
  Backend& backend = model.backend();
  NetworkState state = model.make_state();
  const int layers = static_cast<int>(state.layers.size());
  int total = 0;
  for (int l = 0; l < layers; ++l) total += model.state_units(l);
  DeviceBuffer<float> energy(backend, std::size_t(batch));
  std::mt19937_64 rng(options.seed);
  std::uniform_real_distribution<float> uniform(options.start_lo, options.start_hi);

  // End states and energies of start k (0: the reset state) of every sample.
  std::vector<std::vector<float>> ends;
  std::vector<std::vector<float>> energies;
  std::vector<std::vector<char>> still;  // settled[k][sample]
  for (int k = 0; k <= options.starts; ++k) {
    model.reset(state);
    if (k > 0) {
      for (int l = 0; l < layers; ++l) {
        std::vector<float> values = state.layers[l].to_host();
        for (std::size_t i = 0; i < std::size_t(batch) * model.state_units(l); ++i) values[i] = uniform(rng);
        state.layers[l].copy_from_host(values);
      }
    }
    model.relax(state, target, spec);
    model.energy(state, energy.data());
    ends.push_back(states_by_sample(model, state, batch, total));
    // One more step of the same trajectory: how far the end state still moves.
    PhaseSpec next = spec;
    next.steps = 1;
    next.tolerance = 0.0f;
    next.keep_momenta = true;
    model.relax(state, target, next);
    const std::vector<float> moved = states_by_sample(model, state, batch, total);
    const float per_time = spec.integrator == Integrator::fixed_point ? 1.0f : spec.dt;
    std::vector<char> settled(std::size_t(batch), 1);
    for (int s = 0; s < batch; ++s)
      for (int u = 0; u < total; ++u) {
        const std::size_t i = std::size_t(s) * total + u;
        if (std::abs(moved[i] - ends.back()[i]) > options.settled * per_time) settled[s] = 0;
      }
    still.push_back(std::move(settled));
    std::vector<float> e = energy.to_host();
    e.resize(std::size_t(batch));
    energies.push_back(std::move(e));
  }

  // Per sample: an end state joins the first minimum whose representative (its
  // first end state) is within options.same_minimum on every unit.
  std::vector<SampleLandscape> result(static_cast<std::size_t>(batch));
  for (int s = 0; s < batch; ++s) {
    std::vector<int> representative;  // start index of each minimum, in order found
    std::vector<int> minimum_of(std::size_t(options.starts) + 1);
    for (int k = 0; k <= options.starts; ++k) {
      const float* a = ends[k].data() + std::size_t(s) * total;
      int found = -1;
      for (std::size_t m = 0; m < representative.size() && found < 0; ++m) {
        const float* b = ends[representative[m]].data() + std::size_t(s) * total;
        bool same = true;
        for (int u = 0; u < total && same; ++u) same = std::abs(a[u] - b[u]) <= options.same_minimum;
        if (same) found = static_cast<int>(m);
      }
      if (found < 0) {
        found = static_cast<int>(representative.size());
        representative.push_back(k);
      }
      minimum_of[k] = found;
    }
    std::vector<int> order(representative.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return energies[representative[a]][s] < energies[representative[b]][s]; });
    SampleLandscape& sample = result[s];
    std::vector<int> rank(order.size());
    for (std::size_t r = 0; r < order.size(); ++r) {
      rank[order[r]] = static_cast<int>(r);
      sample.energies.push_back(energies[representative[order[r]]][s]);
    }
    sample.visits.assign(order.size(), 0);
    for (int k = 0; k <= options.starts; ++k) {
      ++sample.visits[rank[minimum_of[k]]];
      sample.unsettled += still[k][s] ? 0 : 1;
    }
    sample.reset_minimum = rank[minimum_of[0]];
    sample.reset_energy = sample.energies[sample.reset_minimum];
    sample.gap = sample.reset_energy - sample.energies.front();
  }
  return result;
}

}  // namespace eqprop
