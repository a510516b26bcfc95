// A per-system reduction as a block body (kernels/execution_context.h): one block
// per row of a batch folds the row's `count` terms into one value, in an order
// fixed by `count` alone, so the result is the same bits for every block size,
// thread order and tile width, on every backend.
//
// Why a block and not a thread per row: the convergence checks and the energies
// reduce up to 32k units per system for batches of a few hundred systems; one
// thread per row leaves a GPU mostly idle and reads each row with a stride of
// `units` between neighbouring threads (uncoalesced).
//
// The order (the same for sums and maxima):
//   slots  S = min(count, kRowReductionSlots); slot j folds terms j, j + S,
//          j + 2S, ... ascending, starting from the identity;
//   tree   for stride s = 1, 2, 4, ... < S: slot i (i a multiple of 2s, i + s < S)
//          becomes combine(slot i, slot i + s);
//   result slot 0, combined after the value already in the output where the op
//          accumulates.
// The slots are consecutive elements, so a warp reads 32 neighbouring floats at a
// time on the GPU (tile width 1), and the CPU (tile width 1024) folds all slots in
// one contiguous, vectorizable loop per stride of S terms.
//
// Phases: fold (1), one per tree level (ceil(log2 S), 8 for 256 slots), finish (1).
// Every barrier is needed: a tree level reads slots that other threads wrote in
// the previous phase (tests/test_row_reductions.cpp leaves one out and sees it).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/determinism.h"
#include "kernels/execution_context.h"
#include "kernels/hostdevice.h"

namespace eqprop {

// The partial results a row is folded into before the tree: a GPU block of 256
// threads folds one slot each; 1 KiB of shared memory.
constexpr int kRowReductionSlots = 256;

EQ_HD int row_reduction_slots(std::int32_t count) {
  return count < kRowReductionSlots ? (count < 1 ? 1 : count) : kRowReductionSlots;
}

// The GPU block size of a row reduction, kept as data: one thread per slot, in
// whole warps. Any block size gives the same bits.
struct RowReductionLaunchPolicy {
  static int threads_per_block(std::int32_t count) {
    const int slots = row_reduction_slots(count);
    return (slots + 31) / 32 * 32;
  }
};

// The phases of the fold, one thread's share of each. Term: EQ_HD float(int index)
// (the index's term); Combine: EQ_HD float(float accumulated, float next);
// TermRun: EQ_HD void(int first, int end), called once for every run [first, end)
// of indices that the fold visits (for a side effect per element, e.g. a readout;
// every index lies in exactly one run).
struct RowReductionPhases {
  float* slots;         // (slot_count) in shared memory
  std::int32_t count;   // terms of the row
  int slot_count;       // row_reduction_slots(count)

  template <int TileWidth, class Term, class Combine, class TermRun>
  EQ_HD void fold(int thread, int threads, float identity, const Term& term, const Combine& combine,
                  const TermRun& term_run) const {
    float* __restrict partial = slots;
    for_each_tile<TileWidth>(thread, threads, slot_count, [&](int first, int end) {
      for (int j = first; j < end; ++j) partial[j] = identity;
      for (std::int32_t base = 0; base < count; base += slot_count) {
        const int run_end = count - base < end ? count - base : end;
        if (run_end <= first) break;
        for (int j = first; j < run_end; ++j) partial[j] = combine(partial[j], term(base + j));
        term_run(base + first, base + run_end);
      }
    });
  }

  // The tree level of stride `stride`: pair p combines slot 2 p stride with slot
  // (2 p + 1) stride.
  template <int TileWidth, class Combine>
  EQ_HD void tree_level(int thread, int threads, int stride, const Combine& combine) const {
    float* __restrict partial = slots;
    const int pairs = (slot_count - stride + 2 * stride - 1) / (2 * stride);
    for_each_tile<TileWidth>(thread, threads, pairs, [&](int first, int end) {
      for (int p = first; p < end; ++p) {
        const int i = 2 * p * stride;
        partial[i] = combine(partial[i], partial[i + stride]);
      }
    });
  }

  // Runs the whole reduction over ctx; finish(total) runs on thread 0 in the last
  // phase (it writes the row's result).
  template <class Context, class Term, class Combine, class TermRun, class Finish>
  EQ_HD void run(Context& ctx, float identity, const Term& term, const Combine& combine, const TermRun& term_run,
                 const Finish& finish) const {
    constexpr int tile = Context::tile_width;
    const int threads = ctx.block_size();
    ctx.for_each_thread([&](int thread) { fold<tile>(thread, threads, identity, term, combine, term_run); });
    for (int stride = 1; stride < slot_count; stride *= 2)
      ctx.for_each_thread([&](int thread) { tree_level<tile>(thread, threads, stride, combine); });
    ctx.for_each_thread([&](int thread) {
      if (thread == 0) finish(slots[0]);
    });
  }
};

// The combines. The sum's order is the tree's (not a serial loop's), so it agrees
// with a serial sum to rounding only; the maximum is order-independent.
struct RowSum {
  EQ_HD float operator()(float accumulated, float next) const { return accumulated + next; }
};
// The larger, or a NaN: a NaN anywhere makes the result NaN ("never converged").
// For values without NaN this is the exact maximum in any order (the terms
// compared are changes >= +0, so there is no +-0 tie), hence bit-exact against a
// serial loop.
struct RowMaxOrNan {
  EQ_HD float operator()(float accumulated, float next) const {
    return (next > accumulated || next != next) ? next : accumulated;
  }
};

// No per-element side effect.
struct NoTermRun {
  EQ_HD void operator()(std::int32_t, std::int32_t) const {}
};

// A per-system op as a block body: block `row` reduces row `row` of the op over
// the fixed tree above. The op gives `units` (the terms of a row),
// block_determinism, and reduce_block_row(ctx, row, phases), which runs phases
// with its terms, combine and finish. Launch: one block per row,
// RowReductionLaunchPolicy::threads_per_block(units) threads, shared_bytes().
template <class Op>
struct RowReductionBlock {
  Op op;
  static constexpr Determinism determinism = Op::block_determinism;

  std::size_t shared_bytes() const { return std::size_t(row_reduction_slots(op.units)) * sizeof(float); }

  EQ_HD RowReductionPhases phases(void* shared_memory) const {
    return {static_cast<float*>(shared_memory), op.units, row_reduction_slots(op.units)};
  }

  template <class Context>
  EQ_HD void operator()(Context& ctx) const {
    op.reduce_block_row(ctx, ctx.block(), phases(ctx.shared_memory()));
  }
};

// The fold in plain loops, for tests: the same order as the phases, no context.
template <class Term, class Combine>
float row_reduction_reference(std::int32_t count, float identity, const Term& term, const Combine& combine) {
  const int slot_count = row_reduction_slots(count);
  float partial[kRowReductionSlots];
  for (int j = 0; j < slot_count; ++j) partial[j] = identity;
  for (std::int32_t i = 0; i < count; ++i) partial[i % slot_count] = combine(partial[i % slot_count], term(i));
  for (int stride = 1; stride < slot_count; stride *= 2)
    for (int i = 0; i + stride < slot_count; i += 2 * stride) partial[i] = combine(partial[i], partial[i + stride]);
  return partial[0];
}

}  // namespace eqprop
