// The CUDA backend (kernels/cuda_backend.h): device memory, cuBLAS for the GEMMs,
// one templated grid-stride kernel that runs every single-source elementwise op of
// kernels/elementwise_ops.h, one templated block kernel that runs every fused body
// of kernels/block_bodies.h, CUB for the NaN/Inf count.
//
// Streams: all compute (kernels, GEMMs, synchronous copies, memsets) goes to one
// non-blocking compute stream, so every call is ordered after the previous ones as
// kernels/backend.h promises. Host -> device uploads go to a second, copy stream so
// that they overlap compute; two events per upload slot tie the streams together
// (see upload()).
//
// Build note: this translation unit must be compiled with -fmad=false. nvcc fuses
// a*b + c into one FMA by default; the CPU backend rounds the product and the sum
// separately, so the fused and the unfused results differ in the last bit, and the
// ops that are declared bit-exact across backends (LayerStepOp, AxpbyOp,
// SgdMomentumOp, ColumnSumOp, uniform FillRandomOp, ...) would not be. Memory-bound
// elementwise kernels lose nothing measurable by it; cuBLAS is a separate library
// and is not affected.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cub/device/device_reduce.cuh>
#include <cuda/std/functional>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <sstream>
#include <functional>
#include <string>
#include <type_traits>

#include "kernels/backend.h"
#include "kernels/cuda_backend.h"
#include "kernels/cuda_check.h"
#include "kernels/cuda_graph.h"
#ifdef EQPROP_HAVE_CUDNN
#include "kernels/cudnn_convolution.h"
#endif
#include "kernels/determinism.h"
#include "kernels/error.h"
#include "kernels/execution_context.h"

namespace eqprop {
namespace {

// ---------------------------------------------------------------------------
// Kernels

// Launch shape of elementwise_kernel, kept as data. 256 threads: 8 resident blocks
// fill an SM of 2048 threads on sm_80 and sm_90. The grid is capped at 4 waves of
// resident blocks (4 * 8 blocks per SM); beyond that each thread takes several
// indices through the grid-stride loop, which amortizes the per-thread setup
// (loading the op's fields) without changing any result. Not yet tuned by a
// benchmark (perf/ will settle it); any value is correct.
struct ElementwiseLaunchPolicy {
  static constexpr int threads_per_block = 256;
  static constexpr int blocks_per_sm = 4 * 8;
};

// Runs op(i) for every i in [0, count). Thread mapping: a grid-stride loop over the
// flat index, so the result does not depend on the grid size (the ops are pure
// functions of the index: no shared state, no reductions across indices).
template <class Op>
__global__ void __launch_bounds__(ElementwiseLaunchPolicy::threads_per_block)
    elementwise_kernel(Op op, std::int64_t count) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride)
    op(i);
}

// Runs a fused block body (kernels/execution_context.h): one CUDA block per body
// block, the body's phases separated by __syncthreads() through GpuBlockContext.
template <class Body>
__global__ void block_kernel(Body body) {
  GpuBlockContext context;
  body(context);
}

// 1 for NaN or +-Inf (exponent bits all ones), 0 otherwise. Exact, and independent
// of how a math library spells isfinite in device code.
struct NonfiniteIndicator {
  __device__ std::int64_t operator()(float x) const {
    return (__float_as_uint(x) & 0x7f800000u) == 0x7f800000u ? 1 : 0;
  }
};

// ---------------------------------------------------------------------------
// RAII owners of the CUDA resources. Destructors never throw: a failure while
// releasing (e.g. the runtime already shutting down at exit) is ignored and the
// thread's last-error state cleared so it does not surface at an unrelated call.

inline void ignore_cuda_error(cudaError_t status) noexcept {
  if (status != cudaSuccess) (void)cudaGetLastError();
}

// One handle, made by Kind::create and released by Kind::destroy.
template <class Handle, class Kind>
class CudaHandle {
 public:
  CudaHandle() { Kind::create(&handle_); }
  ~CudaHandle() { Kind::destroy(handle_); }
  CudaHandle(const CudaHandle&) = delete;
  CudaHandle& operator=(const CudaHandle&) = delete;
  Handle get() const { return handle_; }

 private:
  Handle handle_ = nullptr;
};

struct StreamKind {
  static void create(cudaStream_t* stream) {
    EQPROP_CUDA_CHECK(cudaStreamCreateWithFlags(stream, cudaStreamNonBlocking));
  }
  static void destroy(cudaStream_t stream) noexcept { ignore_cuda_error(cudaStreamDestroy(stream)); }
};
// Timing disabled: these events only order streams, and are cheaper without it.
struct EventKind {
  static void create(cudaEvent_t* event) { EQPROP_CUDA_CHECK(cudaEventCreateWithFlags(event, cudaEventDisableTiming)); }
  static void destroy(cudaEvent_t event) noexcept { ignore_cuda_error(cudaEventDestroy(event)); }
};
struct CublasKind {
  static void create(cublasHandle_t* handle) { EQPROP_CUBLAS_CHECK(cublasCreate(handle)); }
  static void destroy(cublasHandle_t handle) noexcept { (void)cublasDestroy(handle); }
};

using CudaStream = CudaHandle<cudaStream_t, StreamKind>;
using CudaEvent = CudaHandle<cudaEvent_t, EventKind>;
using CublasHandle = CudaHandle<cublasHandle_t, CublasKind>;

// Device bytes that only grow (scratch for CUB). The caller makes sure no work
// that uses the old allocation is still in flight when it grows.
class DeviceScratch {
 public:
  DeviceScratch() = default;
  explicit DeviceScratch(std::size_t bytes) { reserve(bytes); }
  ~DeviceScratch() { ignore_cuda_error(cudaFree(data_)); }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;

  void reserve(std::size_t bytes) {
    if (bytes <= capacity_) return;
    ignore_cuda_error(cudaFree(data_));
    data_ = nullptr;
    capacity_ = 0;
    EQPROP_CUDA_CHECK(cudaMalloc(&data_, bytes));
    capacity_ = bytes;
  }
  void* data() const { return data_; }

 private:
  void* data_ = nullptr;
  std::size_t capacity_ = 0;
};

class PinnedScratch {
 public:
  explicit PinnedScratch(std::size_t bytes) { EQPROP_CUDA_CHECK(cudaMallocHost(&data_, bytes)); }
  ~PinnedScratch() { ignore_cuda_error(cudaFreeHost(data_)); }
  PinnedScratch(const PinnedScratch&) = delete;
  PinnedScratch& operator=(const PinnedScratch&) = delete;
  void* data() const { return data_; }

 private:
  void* data_ = nullptr;
};

// Makes `device` current for this thread and describes it. Constructed first in
// CudaBackend, so every resource after it is created on that device.
struct DeviceInfo {
  explicit DeviceInfo(int device_index) : device(device_index) {
    EQPROP_CUDA_CHECK(cudaSetDevice(device));
    cudaDeviceProp properties{};
    EQPROP_CUDA_CHECK(cudaGetDeviceProperties(&properties, device));
    sm_count = properties.multiProcessorCount;
    compute_major = properties.major;
    max_shared_bytes_per_block = properties.sharedMemPerBlockOptin;
    std::ostringstream text;
    text.precision(3);
    text << properties.name << " (device " << device << ", sm_" << properties.major
         << properties.minor << ", " << sm_count << " SMs, "
         << static_cast<double>(properties.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0) << " GiB)";
    name = text.str();
  }
  int device;
  int sm_count = 0;
  int compute_major = 0;  // sm_80 and later have TF32 and BF16 tensor cores
  std::size_t max_shared_bytes_per_block = 0;  // with the opt-in beyond the default 48 KiB
  std::string name;
};

// ---------------------------------------------------------------------------

// Like every Backend, not thread-safe: calls from several host threads (e.g. a
// prefetch thread's upload()) must be serialized by the caller. The backend uses
// device 0, which is also every thread's default current device.
class CudaBackend final : public Backend {
 public:
  CudaBackend() : info_(0), count_result_(sizeof(std::int64_t)), host_count_(sizeof(std::int64_t)) {
    EQPROP_CUBLAS_CHECK(cublasSetStream(cublas_.get(), compute_stream_.get()));
    // Plain FP32 arithmetic (no TF32 tensor cores): GEMM results then agree with the
    // CPU backend up to summation order, which the parity tests and the EP gradient
    // checks (DESIGN.md §1) rely on. TF32 and BF16 (several times faster on sm_80+)
    // are the explicit option training.gemm_precision (set_gemm_precision), never a
    // silent default.
    EQPROP_CUBLAS_CHECK(cublasSetMathMode(cublas_.get(), CUBLAS_DEFAULT_MATH));
  }

  ~CudaBackend() override {
    // Let queued work finish before its streams, handle and scratch go away.
    ignore_cuda_error(cudaStreamSynchronize(copy_stream_.get()));
    ignore_cuda_error(cudaStreamSynchronize(compute_stream_.get()));
  }

  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string name() const override { return "cuda"; }
  BackendTraits traits() const override { return BackendTraits{/*is_device=*/true, /*has_on_chip_blocks=*/true}; }
  std::string device_name() const override { return info_.name; }
  bool native_gemm_precision(GemmPrecision precision) const override {
    return precision == GemmPrecision::fp32 || info_.compute_major >= 8;
  }

  // cudaMalloc aligns to 256 bytes. A zero-byte request gets a real (1-byte)
  // allocation so that, as on the CPU backend, a successful allocate never
  // returns null.
  void* allocate(std::size_t bytes) override {
    void* pointer = nullptr;
    EQPROP_CUDA_CHECK(cudaMalloc(&pointer, std::max<std::size_t>(bytes, 1)));
    counter_.added(pointer, bytes);
    return pointer;
  }
  void deallocate(void* pointer) noexcept override {
    counter_.removed(pointer);
    ignore_cuda_error(cudaFree(pointer));
  }
  MemoryUsage memory_usage() const override { return counter_.usage(); }
  void reset_peak_memory() override { counter_.reset_peak(); }
  // What the driver reports for the device: free already excludes this process's
  // context, cuBLAS workspace and every allocation (counted or not).
  DeviceMemory device_memory() const override {
    std::size_t free_bytes = 0, total_bytes = 0;
    EQPROP_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    return DeviceMemory{total_bytes, free_bytes};
  }
  void* allocate_host(std::size_t bytes) override {
    void* pointer = nullptr;
    EQPROP_CUDA_CHECK(cudaMallocHost(&pointer, std::max<std::size_t>(bytes, 1)));
    return pointer;
  }
  void deallocate_host(void* pointer) noexcept override {
    ignore_cuda_error(cudaFreeHost(pointer));
  }

  // The copy runs on the copy stream, fenced per slot (kernels/backend.h): it
  // waits for the slot's last reader (slot_read_done_, recorded by
  // end_slot_reads on compute), and the slot's readers wait for it
  // (slot_upload_done_, which begin_slot_reads makes compute wait for). Nothing
  // else orders the streams, so the upload of minibatch n+1 into one slot runs
  // while minibatch n computes from the other. An event never recorded is
  // complete, so a slot's first upload and first reads wait for nothing. The
  // source should be pinned (allocate_host / HostStagingBuffer); from pageable
  // memory CUDA stages the copy and blocks the host.
  void upload(int slot, void* device_destination, const void* host_source, std::size_t bytes) override {
    check_upload_slot(slot);
    if (bytes == 0) return;
    const std::size_t s = static_cast<std::size_t>(slot);
    EQPROP_CUDA_CHECK(cudaStreamWaitEvent(copy_stream_.get(), slot_read_done_[s].get(), 0));
    EQPROP_CUDA_CHECK(cudaMemcpyAsync(device_destination, host_source, bytes,
                                      cudaMemcpyHostToDevice, copy_stream_.get()));
    EQPROP_CUDA_CHECK(cudaEventRecord(slot_upload_done_[s].get(), copy_stream_.get()));
  }
  void begin_slot_reads(int slot) override {
    check_upload_slot(slot);
    EQPROP_CUDA_CHECK(
        cudaStreamWaitEvent(compute_stream_.get(), slot_upload_done_[static_cast<std::size_t>(slot)].get(), 0));
  }
  void end_slot_reads(int slot) override {
    check_upload_slot(slot);
    EQPROP_CUDA_CHECK(cudaEventRecord(slot_read_done_[static_cast<std::size_t>(slot)].get(), compute_stream_.get()));
  }
  void wait_uploads() override { EQPROP_CUDA_CHECK(cudaStreamSynchronize(copy_stream_.get())); }

  // Synchronous: on return the data has arrived, so a pageable host buffer may be
  // reused or read at once.
  void copy_to_device(void* device_destination, const void* host_source,
                      std::size_t bytes) override {
    if (bytes == 0) return;
    EQPROP_CUDA_CHECK(cudaMemcpyAsync(device_destination, host_source, bytes,
                                      cudaMemcpyHostToDevice, compute_stream_.get()));
    EQPROP_CUDA_CHECK(cudaStreamSynchronize(compute_stream_.get()));
  }
  // From pinned memory the copy is asynchronous (and a graph node under capture).
  void enqueue_copy_to_device(void* device_destination, const void* host_source, std::size_t bytes) override {
    EQPROP_CUDA_CHECK(cudaMemcpyAsync(device_destination, host_source, bytes, cudaMemcpyHostToDevice,
                                      compute_stream_.get()));
  }
  StreamCapture* stream_capture() override {
    if (!capture_) capture_ = make_cuda_stream_capture(compute_stream_.get());
    return capture_.get();
  }

  void copy_to_host(void* host_destination, const void* device_source, std::size_t bytes) override {
    if (bytes == 0) return;
    EQPROP_CUDA_CHECK(cudaMemcpyAsync(host_destination, device_source, bytes,
                                      cudaMemcpyDeviceToHost, compute_stream_.get()));
    EQPROP_CUDA_CHECK(cudaStreamSynchronize(compute_stream_.get()));
  }

  // memmove semantics, like the CPU backend: cudaMemcpy* is undefined for
  // overlapping ranges, so an overlapping move goes through a stream-ordered
  // temporary (rare; no host synchronization).
  void copy_on_device(void* device_destination, const void* device_source,
                      std::size_t bytes) override {
    if (bytes == 0 || device_destination == device_source) return;
    const auto destination = reinterpret_cast<std::uintptr_t>(device_destination);
    const auto source = reinterpret_cast<std::uintptr_t>(device_source);
    const bool overlap = destination < source + bytes && source < destination + bytes;
    cudaStream_t stream = compute_stream_.get();
    if (!overlap) {
      EQPROP_CUDA_CHECK(cudaMemcpyAsync(device_destination, device_source, bytes,
                                        cudaMemcpyDeviceToDevice, stream));
      return;
    }
    void* temporary = nullptr;
    EQPROP_CUDA_CHECK(cudaMallocAsync(&temporary, bytes, stream));
    const cudaError_t first =
        cudaMemcpyAsync(temporary, device_source, bytes, cudaMemcpyDeviceToDevice, stream);
    const cudaError_t second = first == cudaSuccess
                                   ? cudaMemcpyAsync(device_destination, temporary, bytes,
                                                     cudaMemcpyDeviceToDevice, stream)
                                   : first;
    ignore_cuda_error(cudaFreeAsync(temporary, stream));  // freed even if a copy failed
    EQPROP_CUDA_CHECK(second);
  }

  void fill_zero(void* device_destination, std::size_t bytes) override {
    if (bytes == 0) return;
    EQPROP_CUDA_CHECK(cudaMemsetAsync(device_destination, 0, bytes, compute_stream_.get()));
  }

  // Row-major c (m, n) = alpha op(a) (m, k) op(b) (k, n) + beta c on column-major
  // cuBLAS: a row-major matrix with row stride ld is, read column-major, its
  // transpose with leading dimension ld. So row-major C = op(A) op(B) is
  // column-major C^T = op(B)^T op(A)^T: swap the operands and m with n, keep each
  // operand's own transpose flag and leading dimension. The leading-dimension
  // rules then coincide: e.g. b not transposed is (k, n) row-major, ldb >= n, and
  // cuBLAS sees an (n, k) column-major matrix needing lda' = ldb >= n.
  // k == 0 is passed on: cuBLAS then computes c = beta * c, as BLAS does.
  void gemm(Transpose transpose_a, Transpose transpose_b, int m, int n, int k, float alpha,
            const float* a, int lda, const float* b, int ldb, float beta, float* c,
            int ldc) override {
    if (m == 0 || n == 0) return;
    const cublasOperation_t op_a = transpose_a == Transpose::yes ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_b = transpose_b == Transpose::yes ? CUBLAS_OP_T : CUBLAS_OP_N;
    // fp32: plain SGEMM, as before the option existed (bit-for-bit the same calls).
    // tf32 / bf16: the same FP32 arrays through cublasGemmEx with a "fast" compute
    // type, which lets cuBLAS round the inputs to TF32 or BF16 for the tensor cores
    // and accumulate in FP32 (kernels/gemm_precision.h).
    const cublasStatus_t status =
        precision_ == GemmPrecision::fp32
            ? cublasSgemm(cublas_.get(), op_b, op_a, n, m, k, &alpha, b, ldb, a, lda, &beta, c, ldc)
            : cublasGemmEx(cublas_.get(), op_b, op_a, n, m, k, &alpha, b, CUDA_R_32F, ldb, a, CUDA_R_32F, lda,
                           &beta, c, CUDA_R_32F, ldc,
                           precision_ == GemmPrecision::tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                            : CUBLAS_COMPUTE_32F_FAST_16BF,
                           CUBLAS_GEMM_DEFAULT_TENSOR_OP);
    if (status != CUBLAS_STATUS_SUCCESS) {
      std::ostringstream call;
      call << (precision_ == GemmPrecision::fp32 ? "cublasSgemm" : "cublasGemmEx")
           << " (" << gemm_precision_name(precision_) << ") for row-major gemm(transpose_a="
           << (transpose_a == Transpose::yes ? "yes" : "no")
           << ", transpose_b=" << (transpose_b == Transpose::yes ? "yes" : "no") << ", m=" << m
           << ", n=" << n << ", k=" << k << ", lda=" << lda << ", ldb=" << ldb << ", ldc=" << ldc
           << ")";
      cuda_detail::throw_cublas_error(status, call.str().c_str(), __FILE__, __LINE__);
    }
  }

#define EQPROP_DEFINE_RUN(Op) \
  EQPROP_REQUIRE_DETERMINISM(Op) \
  void run(const Op& op, std::int64_t count) override { launch_elementwise(op, count, #Op); }
  EQPROP_ELEMENTWISE_OPS(EQPROP_DEFINE_RUN)
#undef EQPROP_DEFINE_RUN

#define EQPROP_DEFINE_RUN_BLOCKS(Body)                                         \
  EQPROP_REQUIRE_DETERMINISM(Body)                                             \
  void run_blocks(const Body& body, int blocks, int threads_per_block) override { \
    launch_blocks(body, blocks, threads_per_block, #Body);                      \
  }
  EQPROP_BLOCK_BODIES(EQPROP_DEFINE_RUN_BLOCKS)
#undef EQPROP_DEFINE_RUN_BLOCKS

  // One block per system instead of one thread (kernels/row_reduction.h).
#define EQPROP_DEFINE_REDUCE_ROWS(Op, Body)                                                    \
  void reduce_rows(const Op& op, std::int64_t rows) override {                                \
    if (rows <= 0) return;                                                                     \
    launch_blocks(Body{op}, static_cast<int>(rows), RowReductionLaunchPolicy::threads_per_block(op.units), #Body); \
  }
  EQPROP_ROW_REDUCTIONS(EQPROP_DEFINE_REDUCE_ROWS)
#undef EQPROP_DEFINE_REDUCE_ROWS

  // A CUB transform-reduce of the 0/1 indicator into an int64 on the device, then
  // one 8-byte copy back. Exact (an integer sum). The temporary storage is kept
  // between calls; it is only reallocated to grow, after this call's previous use
  // has finished (every call ends with a stream synchronization).
  std::int64_t count_nonfinite(const float* data, std::int64_t count) override {
    if (count <= 0) return 0;
    cudaStream_t stream = compute_stream_.get();
    auto* device_count = static_cast<std::int64_t*>(count_result_.data());
    std::size_t temporary_bytes = 0;
    EQPROP_CUDA_CHECK(cub::DeviceReduce::TransformReduce(
        nullptr, temporary_bytes, data, device_count, count, ::cuda::std::plus<std::int64_t>{},
        NonfiniteIndicator{}, std::int64_t{0}, stream));
    reduce_scratch_.reserve(temporary_bytes);
    EQPROP_CUDA_CHECK(cub::DeviceReduce::TransformReduce(
        reduce_scratch_.data(), temporary_bytes, data, device_count, count,
        ::cuda::std::plus<std::int64_t>{}, NonfiniteIndicator{}, std::int64_t{0}, stream));
    EQPROP_CUDA_CHECK(cudaMemcpyAsync(host_count_.data(), device_count, sizeof(std::int64_t),
                                      cudaMemcpyDeviceToHost, stream));
    EQPROP_CUDA_CHECK(cudaStreamSynchronize(stream));
    return *static_cast<const std::int64_t*>(host_count_.data());
  }

  // Each launch is already parallel over the whole batch on the device.
  void parallel_over_rows(int rows, const std::function<void(int, int)>& body) override { body(0, rows); }

  void synchronize() override {
    EQPROP_CUDA_CHECK(cudaStreamSynchronize(copy_stream_.get()));
    EQPROP_CUDA_CHECK(cudaStreamSynchronize(compute_stream_.get()));
  }

  void* native_stream() override { return compute_stream_.get(); }

 private:
  template <class Op>
  void launch_elementwise(const Op& op, std::int64_t count, const char* op_name) {
    // The op travels to the device by value as a kernel parameter.
    static_assert(std::is_trivially_copyable<Op>::value,
                  "elementwise ops hold only raw pointers and PODs");
    if (count <= 0) return;
    constexpr int threads = ElementwiseLaunchPolicy::threads_per_block;
    const std::int64_t needed = (count + threads - 1) / threads;
    const std::int64_t cap = static_cast<std::int64_t>(std::max(info_.sm_count, 1)) *
                             ElementwiseLaunchPolicy::blocks_per_sm;
    const auto blocks = static_cast<unsigned int>(std::min(needed, cap));
    elementwise_kernel<Op><<<blocks, threads, 0, compute_stream_.get()>>>(op, count);
    const cudaError_t status = cudaGetLastError();
    if (status != cudaSuccess) {
      const std::string call = std::string("launch of elementwise_kernel<") + op_name + ">";
      cuda_detail::throw_cuda_error(status, call.c_str(), __FILE__, __LINE__);
    }
  }

  template <class Body>
  void launch_blocks(const Body& body, int blocks, int threads_per_block, const char* body_name) {
    static_assert(std::is_trivially_copyable<Body>::value, "block bodies hold only raw pointers and PODs");
    if (blocks <= 0) return;
    const std::size_t shared_bytes = body.shared_bytes();
    if (shared_bytes > info_.max_shared_bytes_per_block)
      throw DeviceError(std::string(body_name) + " needs " + std::to_string(shared_bytes) +
                        " bytes of shared memory per block; " + info_.name + " offers " +
                        std::to_string(info_.max_shared_bytes_per_block));
    // Beyond the default 48 KiB a kernel must opt in to more dynamic shared memory.
    constexpr std::size_t kDefaultSharedBytes = 48 * 1024;
    if (shared_bytes > kDefaultSharedBytes)
      EQPROP_CUDA_CHECK(cudaFuncSetAttribute(block_kernel<Body>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             static_cast<int>(shared_bytes)));
    const int threads = std::min(std::max(threads_per_block, 1), 1024);
    block_kernel<Body><<<static_cast<unsigned int>(blocks), threads, shared_bytes, compute_stream_.get()>>>(body);
    const cudaError_t status = cudaGetLastError();
    if (status != cudaSuccess) {
      const std::string call = std::string("launch of block_kernel<") + body_name + ">";
      cuda_detail::throw_cuda_error(status, call.c_str(), __FILE__, __LINE__);
    }
  }

  // Declaration order is construction order: the device is selected first; the
  // destructor releases in reverse (scratch, handle, events, streams).
  DeviceInfo info_;
  CudaStream compute_stream_;
  CudaStream copy_stream_;
  // Per upload slot: recorded on compute by end_slot_reads (the next upload into
  // the slot waits for it), and on copy after an upload (begin_slot_reads makes
  // compute wait for it).
  std::array<CudaEvent, kUploadSlots> slot_read_done_;
  std::array<CudaEvent, kUploadSlots> slot_upload_done_;
  CublasHandle cublas_;
  DeviceScratch reduce_scratch_;  // CUB temporary storage of count_nonfinite
  DeviceScratch count_result_;    // (1) int64 result of count_nonfinite
  PinnedScratch host_count_;      // (1) int64, its pinned host copy
  AllocationCounter counter_;     // what allocate() holds (not the scratch above)
  std::unique_ptr<StreamCapture> capture_;  // of compute_stream_, made on first use
#ifdef EQPROP_HAVE_CUDNN
  // Made on the first library convolution: a cuDNN handle costs GPU memory and time.
  std::unique_ptr<ConvolutionLibrary> convolutions_;
  ConvolutionLibrary* convolution_library() override {
    if (!convolutions_) convolutions_ = make_cudnn_convolutions(*this, compute_stream_.get());
    return convolutions_.get();
  }
#endif
};

// cudaGetDeviceCount, or 0 with the reason in *why. Never throws.
int probe_device_count(std::string* why) noexcept {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    if (why) {
      try {
        *why = std::string(cudaGetErrorName(status)) + " (" + cudaGetErrorString(status) + ")";
      } catch (...) {
      }
    }
    return 0;
  }
  return count;
}

}  // namespace

std::unique_ptr<Backend> make_cuda_backend() {
  std::string why = "no device found";
  if (probe_device_count(&why) == 0)
    throw DeviceError(
        "cannot start the cuda backend: no usable CUDA GPU (cudaGetDeviceCount: " + why + ")");
  return std::make_unique<CudaBackend>();
}

int cuda_device_count() { return probe_device_count(nullptr); }

}  // namespace eqprop

// The entry point of the libeqprop_cuda.so module (kernels/cuda_module.h), found by
// name with dlsym: a C name, so that the engine need not know a mangled one. The
// caller owns the backend; DeviceError passes through (both sides are C++).
extern "C" eqprop::Backend* eqprop_make_cuda_backend() { return eqprop::make_cuda_backend().release(); }
