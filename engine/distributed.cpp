#include "engine/distributed.h"

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <string>
#include <type_traits>

#include "eqprop_build_info.h"
#include "kernels/backend.h"
#include "kernels/error.h"

#if defined(EQPROP_HAVE_MPI)
#include <mpi.h>
#endif
#if defined(EQPROP_HAVE_CUDA)
#include <cuda_runtime.h>
#endif
#if defined(EQPROP_HAVE_NCCL)
#include <nccl.h>
#endif

namespace eqprop {
namespace {

#if defined(EQPROP_HAVE_MPI)
// Set by mpirun (Open MPI), by MPICH/Intel MPI's Hydra and by srun's PMI/PMIx: a
// process started by hand has none, and then MPI_Init is never called.
bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMI_RANK", "PMIX_RANK"})
    if (std::getenv(name)) return true;
  return false;
}

void check_mpi(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw DeviceError(std::string(what) + " failed: " + std::string(text, length));
}
#endif

// Distributed::allreduce_sum for float and double. MPI counts are int: long
// buffers go in pieces.
template <typename T>
void allreduce_sum_in_pieces(int ranks, T* values, std::int64_t count) {
  static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value, "float or double");
  if (ranks == 1) return;
#if defined(EQPROP_HAVE_MPI)
  const MPI_Datatype type = std::is_same<T, float>::value ? MPI_FLOAT : MPI_DOUBLE;
  constexpr std::int64_t kPiece = std::numeric_limits<int>::max() / 2;
  for (std::int64_t done = 0; done < count; done += kPiece) {
    const int piece = static_cast<int>(std::min(kPiece, count - done));
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, values + done, piece, type, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
  }
#else
  (void)values, (void)count;
#endif
}

#if defined(EQPROP_HAVE_NCCL) && defined(EQPROP_HAVE_MPI)
void check_nccl(ncclResult_t code, const char* what) {
  if (code != ncclSuccess) throw DeviceError(std::string(what) + " failed: " + ncclGetErrorString(code));
}

void check_cuda(cudaError_t code, const char* what) {
  if (code != cudaSuccess) throw DeviceError(std::string(what) + " failed: " + cudaGetErrorString(code));
}
#endif

}  // namespace

#if defined(EQPROP_HAVE_NCCL) && defined(EQPROP_HAVE_MPI)
// The NCCL side of device_allreduce_sum: the collectives run on a stream of their
// own, joined to the compute stream by two events (nothing waits on the host).
// Released at exit, when the CUDA runtime may already be gone: errors are ignored.
struct Distributed::DeviceChannel {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  cudaEvent_t produced = nullptr;  // recorded on the compute stream before the sums
  cudaEvent_t reduced = nullptr;   // recorded on `stream` after them

  explicit DeviceChannel(Distributed& world) {
    ncclUniqueId id;
    if (world.rank() == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
    world.broadcast(&id, sizeof id);
    check_nccl(ncclCommInitRank(&comm, world.size(), id, world.rank()), "ncclCommInitRank");
    check_cuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    check_cuda(cudaEventCreateWithFlags(&produced, cudaEventDisableTiming), "cudaEventCreateWithFlags");
    check_cuda(cudaEventCreateWithFlags(&reduced, cudaEventDisableTiming), "cudaEventCreateWithFlags");
  }
  ~DeviceChannel() {
    if (reduced) (void)cudaEventDestroy(reduced);
    if (produced) (void)cudaEventDestroy(produced);
    if (stream) (void)cudaStreamDestroy(stream);
    if (comm) (void)ncclCommDestroy(comm);
  }
  DeviceChannel(const DeviceChannel&) = delete;
  DeviceChannel& operator=(const DeviceChannel&) = delete;
};
#else
struct Distributed::DeviceChannel {};
#endif

ReductionPath choose_reduction_path(int ranks, bool backend_has_native_stream, bool built_with_nccl) {
  if (ranks <= 1) return ReductionPath::single_rank;
  return backend_has_native_stream && built_with_nccl ? ReductionPath::device_nccl : ReductionPath::host_mpi;
}

std::string reduction_path_name(ReductionPath path) {
  switch (path) {
    case ReductionPath::single_rank:
      return "single rank";
    case ReductionPath::host_mpi:
      return "host with MPI";
    case ReductionPath::device_nccl:
      return "device with NCCL";
  }
  return "?";
}

std::uint64_t fnv1a(const void* bytes, std::size_t count, std::uint64_t hash) {
  const auto* p = static_cast<const unsigned char*>(bytes);
  for (std::size_t i = 0; i < count; ++i) hash = (hash ^ p[i]) * 1099511628211ull;
  return hash;
}

bool Distributed::built_with_mpi() { return EQPROP_BUILT_WITH_MPI; }

bool Distributed::built_with_nccl() { return EQPROP_BUILT_WITH_NCCL; }

Distributed& Distributed::world() {
  static Distributed instance;
  return instance;
}

Distributed::Distributed() {
#if defined(EQPROP_HAVE_MPI)
  if (!launched_by_mpi()) return;
  int already = 0;
  MPI_Initialized(&already);
  if (!already) {
    check_mpi(MPI_Init(nullptr, nullptr), "MPI_Init");
    initialized_mpi_ = true;
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm node;
  check_mpi(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node),
            "MPI_Comm_split_type");
  MPI_Comm_rank(node, &local_rank_);
  MPI_Comm_size(node, &local_size_);
  MPI_Comm_free(&node);
#endif
}

Distributed::~Distributed() {
  device_channel_.reset();  // NCCL's communicator goes before MPI
#if defined(EQPROP_HAVE_MPI)
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (initialized_mpi_ && !finalized) MPI_Finalize();
#endif
}

ReductionPath Distributed::reduction_path(Backend& backend) const {
  return choose_reduction_path(size_, backend.native_stream() != nullptr, built_with_nccl());
}

RankShare Distributed::share_of(std::int64_t count) const {
  return {count * rank_ / size_, count * (rank_ + 1) / size_};
}

void Distributed::require_rows_for_every_rank(std::int64_t global_batch) const {
  if (size_ > 1 && global_batch < size_)
    throw ConfigError("training.batch_size = " + std::to_string(global_batch) + " (the global batch) is smaller than the " +
                      std::to_string(size_) + " MPI ranks");
}

void Distributed::allreduce_sum(float* values, std::int64_t count) { allreduce_sum_in_pieces(size_, values, count); }

void Distributed::allreduce_sum(double* values, std::int64_t count) { allreduce_sum_in_pieces(size_, values, count); }

std::int64_t Distributed::allreduce_max(std::int64_t value) {
  if (size_ == 1) return value;
#if defined(EQPROP_HAVE_MPI)
  long long v = value;
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_LONG_LONG, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
  value = v;
#endif
  return value;
}

void Distributed::broadcast(void* bytes, std::int64_t count, int root) {
  if (size_ == 1) return;
#if defined(EQPROP_HAVE_MPI)
  check_mpi(MPI_Bcast(bytes, static_cast<int>(count), MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
#else
  (void)bytes, (void)count, (void)root;
#endif
}

void Distributed::barrier() {
  if (size_ == 1) return;
#if defined(EQPROP_HAVE_MPI)
  check_mpi(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
#endif
}

void Distributed::require_agreement(std::uint64_t hash, const std::string& what) {
  if (size_ == 1) return;
  std::uint64_t root_hash = hash;
  broadcast(&root_hash, sizeof root_hash);
  if (allreduce_max(root_hash != hash ? 1 : 0) != 0)
    throw ConfigError(what + " differs between the MPI ranks (rank " + std::to_string(rank_) +
                      (root_hash != hash ? " disagrees with rank 0)" : " agrees with rank 0, another does not)"));
}

void Distributed::select_cuda_device() {
#if defined(EQPROP_HAVE_CUDA)
  if (size_ == 1) return;
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess) devices = 0;
  if (local_size_ > devices)
    throw DeviceError(std::to_string(local_size_) + " MPI ranks on this node but " + std::to_string(devices) +
                      " CUDA device(s): start at most one rank per GPU");
  if (cudaSetDevice(local_rank_) != cudaSuccess)
    throw DeviceError("cannot select CUDA device " + std::to_string(local_rank_));
#else
  throw DeviceError("this build has no CUDA backend");
#endif
}

void Distributed::device_allreduce_sum(std::initializer_list<DeviceFloats> buffers, void* compute_stream) {
  if (size_ == 1) return;
#if defined(EQPROP_HAVE_NCCL) && defined(EQPROP_HAVE_MPI)
  if (!device_channel_) device_channel_ = std::make_unique<DeviceChannel>(*this);
  DeviceChannel& channel = *device_channel_;
  const auto compute = static_cast<cudaStream_t>(compute_stream);
  check_cuda(cudaEventRecord(channel.produced, compute), "cudaEventRecord");
  check_cuda(cudaStreamWaitEvent(channel.stream, channel.produced, 0), "cudaStreamWaitEvent");
  check_nccl(ncclGroupStart(), "ncclGroupStart");
  for (const DeviceFloats& buffer : buffers)
    check_nccl(ncclAllReduce(buffer.values, buffer.values, static_cast<std::size_t>(buffer.count), ncclFloat,
                             ncclSum, channel.comm, channel.stream),
               "ncclAllReduce");
  check_nccl(ncclGroupEnd(), "ncclGroupEnd");
  check_cuda(cudaEventRecord(channel.reduced, channel.stream), "cudaEventRecord");
  check_cuda(cudaStreamWaitEvent(compute, channel.reduced, 0), "cudaStreamWaitEvent");
#else
  (void)buffers, (void)compute_stream;
  throw DeviceError("this build has no NCCL: the CUDA backend cannot reduce across ranks on the device");
#endif
}

}  // namespace eqprop
