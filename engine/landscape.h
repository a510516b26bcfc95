// The energy landscape of a trained network around its inputs: for each sample,
// relax from the reset state and from K random states with the noiseless dynamics
// of a phase, and group the end states into distinct minima. Multistability is
// what makes EP's free phase ambiguous (DESIGN.md §1: a relaxation from another
// start, or with another integrator, can end in another minimum); this measures
// how many minima the dynamics reach and how far the one the free phase reaches
// from the reset state lies above the lowest.
#pragma once

#include <cstdint>
#include <vector>

#include "models/energy_model.h"

namespace eqprop {

struct LandscapeOptions {
  int starts = 16;  // K random starts per sample, besides the reset state
  // Random starts are uniform in [start_lo, start_hi] per unit: [0, 1] for the
  // Hopfield networks' states, [-pi, pi] for oscillator phases.
  float start_lo = 0.0f;
  float start_hi = 1.0f;
  // Two end states are one minimum when no unit differs by more than this.
  float same_minimum = 1e-3f;
  // An end state has settled when one more step moves no unit by more than this
  // (per unit time for gradient flow and cSB, as the early exit measures it);
  // unsettled end states are not minima yet and are counted apart.
  float settled = 1e-4f;
  std::uint64_t seed = 1;  // of the random starts
};

// One sample's minima.
struct SampleLandscape {
  std::vector<double> energies;  // of the distinct minima, lowest first
  std::vector<int> visits;       // starts (reset included) that ended in each
  double reset_energy = 0;       // of the minimum reached from the reset state
  // reset_energy - energies.front() (>= 0): how far above the lowest minimum
  // found the free phase's own minimum lies.
  double gap = 0;
  int reset_minimum = 0;  // its index in `energies`
  int unsettled = 0;      // starts whose end state had not settled (still grouped)
};

// The landscapes of the `batch` samples the model's input holds (set_input was
// called by the caller), relaxed by `spec` (its beta must be 0: the free energy;
// its noise should be 0, or end states are not minima). `target` (batch, classes)
// is passed to relax and unused at beta = 0. The model's parameters are not changed.
std::vector<SampleLandscape> explore_landscape(EnergyModel& model, const float* target, int batch,
                                               const PhaseSpec& spec, const LandscapeOptions& options);

}  // namespace eqprop
