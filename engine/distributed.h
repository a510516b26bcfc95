// The ranks of a data-parallel run (README.md "Several GPUs and clusters"): the one
// place that speaks MPI (and NCCL), so that nothing else includes mpi.h. A process
// started without mpirun/srun (no launcher variables in its environment) never
// calls MPI_Init and is a world of one rank, whose collectives are no-ops: a
// single-process run computes exactly what it computed before this file existed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

namespace eqprop {

class Backend;

// A rank's contiguous share [begin, end) of `count` items (rows of a batch,
// replicas of a solve): [count r / N, count (r + 1) / N), so that the shares of
// ranks 0..N-1 follow one another and cover the items.
struct RankShare {
  std::int64_t begin = 0, end = 0;
  std::int64_t size() const { return end - begin; }
};

// Where the sums of a data-parallel step (the contrastive update, the metrics of a
// flush) are made.
enum class ReductionPath {
  single_rank,  // one rank: nothing to sum
  host_mpi,     // copied to the host, MPI_Allreduce, copied back
  device_nccl,  // ncclAllReduce on the device buffers, ordered on the backend's stream
};

// device_nccl on a backend with a native stream (CUDA) in a build with NCCL;
// host_mpi otherwise with several ranks (the CPU backend, whose buffers are host
// memory, or CUDA without NCCL); single_rank with one.
ReductionPath choose_reduction_path(int ranks, bool backend_has_native_stream, bool built_with_nccl);
// "single rank", "host with MPI" or "device with NCCL".
std::string reduction_path_name(ReductionPath path);

// A device buffer of floats, for Distributed::device_allreduce_sum.
struct DeviceFloats {
  float* values;
  std::int64_t count;
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
  // ConfigError unless a global batch of `global_batch` rows gives every rank one.
  void require_rows_for_every_rank(std::int64_t global_batch) const;

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

  // choose_reduction_path for this world and `backend`.
  ReductionPath reduction_path(Backend& backend) const;

  // The sums over all ranks of device buffers, in place, through NCCL on a stream
  // of its own: an event orders it after the work submitted to `compute_stream`
  // (Backend::native_stream) so far, another orders the work submitted there
  // afterwards (the optimizer) after it; the host never waits, and a stream capture
  // sees the usual fork and join. The buffers of one call are one NCCL group (one
  // launch). The communicator (ncclGetUniqueId on rank 0, MPI_Bcast,
  // ncclCommInitRank), stream and events are made on first use. Throws DeviceError
  // in a build without NCCL.
  void device_allreduce_sum(std::initializer_list<DeviceFloats> buffers, void* compute_stream);

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
  // NCCL's communicator, stream and ordering events (engine/distributed.cpp), made
  // on the first device_allreduce_sum.
  struct DeviceChannel;
  std::unique_ptr<DeviceChannel> device_channel_;
};

// FNV-1a over bytes: what require_agreement compares (config text, parameter bits).
std::uint64_t fnv1a(const void* bytes, std::size_t count, std::uint64_t hash = 1469598103934665603ull);

}  // namespace eqprop
