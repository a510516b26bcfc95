// One method of the many-replica Ising solver (engine/maxcut_solver.h) as its loop
// drives it: R replicas of a dynamics on a Backend, started afresh every round,
// advanced over ranges of the round's steps, and read back as spins S (R, n) with
// their fields F = S J, from which the loop evaluates the energies
// E_r = -1/2 s_r . f_r. The methods: simulated bifurcation on its GEMM and fused
// paths (engine/simulated_bifurcation_strategy.h), simulated annealing
// (engine/simulated_annealing_strategy.h), the oscillator Ising machine
// (engine/oscillator_ising_strategy.h).
//
// A strategy's state carries over from one advance() to the next, and a step's
// arithmetic depends only on the step's number in the round: any split of
// [0, steps) into consecutive ranges computes the same bits. The solver relies on
// that to look at the clock between short ranges without changing the results.
// Only compute_fields() may change what follows (simulated annealing continues
// from the fresh F), and the loop calls it at the same points however it splits.
//
// CPU backend: the replicas are split over the cores (Backend::parallel_over_rows),
// each core runs its slice through the range without synchronizing; a GPU backend
// runs all of them in each launch. The slices depend only on the replica count, so
// every call splits them alike.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/backend.h"
#include "kernels/device_buffer.h"

namespace eqprop {

// The problem and replicas a strategy integrates.
struct SolverSetup {
  Backend& backend;
  const float* couplings;  // (n, n) J on the device, symmetric, zero diagonal
  int spins;               // n
  int replicas;            // R
  int steps;               // of a round: the schedules (pump, injection, temperature) span them
  std::uint64_t seed;
  // The global number of replica 0: random draws are keyed on the global replica,
  // so a rank running replicas [first_replica, first_replica + R) of a run spread
  // over MPI ranks draws what a single process draws for them.
  int first_replica = 0;
};

class SolverStrategy {
 public:
  explicit SolverStrategy(const SolverSetup& setup);
  virtual ~SolverStrategy() = default;
  SolverStrategy(const SolverStrategy&) = delete;
  SolverStrategy& operator=(const SolverStrategy&) = delete;

  // A fresh random state of every replica, keyed on (seed, round).
  virtual void start_round(std::uint32_t round) = 0;
  // Steps [first_step, last_step) of the round for every replica; spins() then
  // holds the spins after step last_step - 1. advance_slice() on every slice
  // unless a strategy steps all replicas at once.
  virtual void advance(int first_step, int last_step);
  // fields() = spins() J for the evaluation: on the CPU one GEMM per slice of
  // replicas (deterministic for a thread count, as the steps).
  virtual void compute_fields();
  // (R, n) +1 / -1 on the device.
  virtual const float* spins() const = 0;
  // (R, n) on the device: S J after compute_fields().
  const float* fields() const { return fields_.data(); }

 protected:
  // A slice of the replicas: on the CPU one core's share.
  struct Slice {
    int first_replica;
    int rows;
    std::size_t offset;  // first_replica * n: its first element in an (R, n) array
    // The slice's rows of an (R, n) buffer.
    float* of(DeviceBuffer<float>& buffer) const { return buffer.data() + offset; }
  };
  // advance() on one slice of the replicas (on the CPU, concurrently with the others).
  virtual void advance_slice(const Slice& slice, int first_step, int last_step) = 0;
  // body(slice) for slices that cover the replicas (Backend::parallel_over_rows:
  // concurrently on the CPU backend, one slice of all on a GPU).
  template <class Body>
  void for_each_slice(const Body& body) const {
    setup_.backend.parallel_over_rows(setup_.replicas, [&](int begin, int end) {
      body(Slice{begin, end - begin, std::size_t(begin) * setup_.spins});
    });
  }
  // out (rows, n) = in (rows, n) J: the field on every spin of `rows` replicas
  // (J symmetric), one GEMM.
  void coupling_field(int rows, const float* in, float* out) const;
  std::size_t state_count() const { return std::size_t(setup_.replicas) * setup_.spins; }
  // The key of element 0 of an (R, n) state: first_replica * n.
  std::uint64_t first_state_index() const { return std::uint64_t(setup_.first_replica) * setup_.spins; }
  // A fresh (R, n) buffer on the backend.
  DeviceBuffer<float> state_buffer() const { return DeviceBuffer<float>(setup_.backend, state_count()); }
  // op(i) for every element i of the (R, n) state: a round's initial draw.
  template <class Op>
  void run_over_states(const Op& op) const {
    setup_.backend.run(op, static_cast<std::int64_t>(state_count()));
  }

  const SolverSetup setup_;
  // (R, n) the GEMM output: the evaluation's S J, and each method's working field.
  DeviceBuffer<float> fields_;
};

}  // namespace eqprop
