// The ranks of a data-parallel run (README.md "Several GPUs and clusters"): the one
// place that speaks MPI (and NCCL), so that nothing else includes mpi.h. A process
// started without mpirun/srun (no launcher variables in its environment) never
// calls MPI_Init and is a world of one rank, whose collectives are no-ops: a
// single-process run computes exactly what it computed before this file existed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace eqprop {

// A rank's contiguous share [begin, end) of `count` items (rows of a batch,
// replicas of a solve): [count r / N, count (r + 1) / N), so that the shares of
// ranks 0..N-1 follow one another and cover the items.
struct RankShare {
  std::int64_t begin = 0, end = 0;
  std::int64_t size() const { return end - begin; }
};

class Distributed {
 public:
  // The process's world, initialized on first use (MPI_Init when launched by an MPI
  // launcher) and finalized at exit.
  static Distributed& world();
  // Whether this build links MPI ("mpi: yes|no" in the train header and bench JSON).
  static bool built_with_mpi();
  static bool built_with_nccl();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }
  // The rank among the ranks on this node (MPI_COMM_TYPE_SHARED): the GPU it takes.
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }
  // This rank's share of `count` items (RankShare).
  RankShare share_of(std::int64_t count) const;

  // In-place sums over all ranks (host memory).
  void allreduce_sum(float* values, std::int64_t count);
  void allreduce_sum(double* values, std::int64_t count);
  // The largest of every rank's value (agreeing on a stop flag).
  std::int64_t allreduce_max(std::int64_t value);
  void broadcast(void* bytes, std::int64_t count, int root = 0);
  void barrier();
  // Throws ConfigError on every rank when the ranks' `hash` values differ: a config,
  // parameters or data that should be identical everywhere are not. `what` names it.
  void require_agreement(std::uint64_t hash, const std::string& what);

  // The sum over all ranks of a device buffer, in place, through NCCL (one fused
  // buffer per call); the communicator is made on first use (ncclGetUniqueId on
  // rank 0, MPI_Bcast, ncclCommInitRank). Throws DeviceError in a build without NCCL.
  void device_allreduce_sum(float* device_values, std::int64_t count, void* cuda_stream);

  // With --device cuda: takes GPU local_rank(); more ranks on a node than GPUs is a
  // DeviceError on every rank (each sees the same counts), never a hang.
  void select_cuda_device();

  Distributed(const Distributed&) = delete;
  Distributed& operator=(const Distributed&) = delete;
  ~Distributed();

 private:
  Distributed();
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  bool initialized_mpi_ = false;
  void* nccl_comm_ = nullptr;  // ncclComm_t, made on first device_allreduce_sum
};

// FNV-1a over bytes: what require_agreement compares (config text, parameter bits).
std::uint64_t fnv1a(const void* bytes, std::size_t count, std::uint64_t hash = 1469598103934665603ull);

}  // namespace eqprop
