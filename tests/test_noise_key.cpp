// Tests of the logical key of a unit's random draw in a relaxation step
// (kernels/noise_key.h). The key is integer arithmetic, so every check is exact:
//  - over a batch, every (sample, layer, unit) has its own key, and the keys of a
//    batch are exactly [first * units_total, (first + batch) * units_total);
//  - a slice of the batch starting at row `begin` keys its rows as the whole batch
//    does, whatever the split (the CPU backend relaxes slices concurrently);
//  - the key equals the formula the ops were keyed with before it had a name:
//    index (first_sample + begin) * units_total + unit_offset, row stride
//    units_total, step (noise_phase << 24) + step, and LayerStepOp's element of
//    (row, unit) is the key's.
#include <doctest/doctest.h>

#include <cstdint>
#include <set>
#include <vector>

#include "kernels/layer_step.h"
#include "kernels/noise_key.h"

namespace eqprop {
namespace {

const std::vector<int> kLayerUnits = {5, 3, 8};  // units of each state layer of one sample
constexpr std::uint64_t kUnitsTotal = 16;
constexpr int kBatch = 9;
constexpr std::uint64_t kFirstSample = 1000;  // the batch's first sample in the run

std::uint64_t unit_offset(int layer) {
  std::uint64_t offset = 0;
  for (int l = 0; l < layer; ++l) offset += kLayerUnits[l];
  return offset;
}

// The key of (row, unit) of `layer` as a slice starting at row `begin` computes it.
std::uint64_t key_in_slice(int begin, int row, int layer, int unit, std::uint32_t phase, int step) {
  const NoiseKey key = relaxation_noise_key(kFirstSample + begin, kUnitsTotal, unit_offset(layer), phase, step);
  return key.element(row - begin, unit);
}

}  // namespace

TEST_CASE("noise key: every (sample, unit) of a batch has its own key, covering the batch's range") {
  std::set<std::uint64_t> keys;
  for (int row = 0; row < kBatch; ++row)
    for (int layer = 0; layer < static_cast<int>(kLayerUnits.size()); ++layer)
      for (int unit = 0; unit < kLayerUnits[layer]; ++unit) keys.insert(key_in_slice(0, row, layer, unit, 3, 7));
  CHECK(keys.size() == kBatch * kUnitsTotal);
  CHECK(*keys.begin() == kFirstSample * kUnitsTotal);
  CHECK(*keys.rbegin() == (kFirstSample + kBatch) * kUnitsTotal - 1);
}

TEST_CASE("noise key: independent of how the batch is split into slices") {
  for (int begin = 0; begin < kBatch; ++begin)
    for (int row = begin; row < kBatch; ++row)
      for (int layer = 0; layer < static_cast<int>(kLayerUnits.size()); ++layer)
        for (int unit = 0; unit < kLayerUnits[layer]; ++unit) {
          CAPTURE(begin);
          CAPTURE(row);
          CAPTURE(layer);
          CAPTURE(unit);
          CHECK(key_in_slice(begin, row, layer, unit, 2, 11) == key_in_slice(0, row, layer, unit, 2, 11));
        }
}

TEST_CASE("noise key: equals the models' formula and LayerStepOp's element") {
  const std::uint32_t phase = 5;
  const int step = 29, begin = 4, layer = 2;
  const NoiseKey key = relaxation_noise_key(kFirstSample + begin, kUnitsTotal, unit_offset(layer), phase, step);
  CHECK(key.first == (kFirstSample + static_cast<std::uint64_t>(begin)) * kUnitsTotal + unit_offset(layer));
  CHECK(key.row_stride == kUnitsTotal);
  CHECK(key.step == (phase << 24) + static_cast<std::uint32_t>(step));
  CHECK(noise_step_key(phase, step) == key.step);
  // Phases do not collide while a phase has fewer than 2^24 steps.
  CHECK(noise_step_key(phase, (1 << 24) - 1) < noise_step_key(phase + 1, 0));

  LayerStepOp op{nullptr, nullptr, nullptr, nullptr, nullptr, 0.0f, 0.5f, Integrator::gradient_flow, kLayerUnits[layer]};
  op.noise_index = key.first;
  op.noise_row_stride = static_cast<std::int64_t>(key.row_stride);
  op.noise_step = key.step;
  for (int row = 0; row < kBatch - begin; ++row)
    for (int unit = 0; unit < kLayerUnits[layer]; ++unit) CHECK(op.noise_element(row, unit) == key.element(row, unit));
}

}  // namespace eqprop
