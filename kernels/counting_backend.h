// A Backend decorator that forwards every call to the backend it wraps and counts
// what a GPU would be asked to do: kernel launches (by op), BLAS calls, the calls
// that make the host wait for the device, copies and their bytes, and a napkin
// estimate of the device memory traffic of the ops. Wrap the backend a Trainer (or
// anything else) is built on and read counts() around the interval of interest:
//
//   CountingBackend counting(*backend);
//   Trainer trainer(counting, config);
//   const BackendCounts before = counting.counts();
//   trainer.train_step(...);
//   const BackendCounts step = counting.counts() - before;
//
// The results are the wrapped backend's, bit for bit: nothing is computed here.
// The counts follow the CUDA backend's rules (kernels/cuda_backend.cu), so a CPU
// run predicts a GPU's: a call with no work (count 0, bytes 0, m or n 0) launches
// and waits for nothing. One caveat: on the CPU backend parallel_over_rows runs
// its body once per core slice and every call inside once per slice, so count on a
// CPU backend limited to one OpenMP thread (row_slices says how many slices ran;
// a GPU runs one per call).
// Thread safety: the counters are atomic, since the CPU backend calls into the
// decorator from several threads inside parallel_over_rows.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <string>

#include "kernels/backend.h"

namespace eqprop {

// Counts over an interval (a snapshot minus an earlier one).
struct BackendCounts {
  std::int64_t kernel_launches = 0;  // run() and run_blocks() with work: one GPU kernel each
  std::int64_t blas_calls = 0;       // gemm() with work: one cuBLAS call each
  std::int64_t memsets = 0;          // fill_zero(): one cudaMemsetAsync each
  // Calls that block the host until the device has finished: copy_to_host,
  // copy_to_device (synchronous on CUDA), count_nonfinite, wait_uploads, synchronize.
  std::int64_t host_syncs = 0;
  std::int64_t host_to_device_copies = 0;  // upload() and copy_to_device()
  std::int64_t device_to_host_copies = 0;
  std::int64_t device_to_device_copies = 0;
  std::int64_t bytes_host_to_device = 0;
  std::int64_t bytes_device_to_host = 0;
  std::int64_t bytes_device_to_device = 0;
  std::int64_t bytes_zeroed = 0;  // by fill_zero
  // 2 m n k per gemm.
  std::int64_t gemm_flops = 0;
  // Napkin estimates of device memory traffic (kernels/counting_backend.cpp says
  // how, per op): each operand of a gemm read once and c written (read too when
  // beta != 0); each op's arrays read and written once per element.
  std::int64_t gemm_bytes_estimate = 0;
  std::int64_t op_bytes_estimate = 0;
  // cudaMalloc / cudaFree on CUDA; cudaFree waits for the whole device.
  std::int64_t device_allocations = 0;
  std::int64_t device_frees = 0;
  // Bodies run by parallel_over_rows: one per call on a GPU or a one-thread CPU.
  std::int64_t row_slices = 0;
  std::map<std::string, std::int64_t> launches_by_op;  // op or block body name -> launches
  std::map<std::string, std::int64_t> syncs_by_call;   // backend call -> host waits

  std::int64_t bytes_copied() const { return bytes_host_to_device + bytes_device_to_host + bytes_device_to_device; }
  // Device memory traffic: ops, gemms, device copies (read and written), memsets.
  std::int64_t bytes_moved_estimate() const {
    return op_bytes_estimate + gemm_bytes_estimate + 2 * bytes_device_to_device + bytes_zeroed;
  }
};

// What happened between `earlier` and `later` (maps: per key; keys that end at 0 dropped).
BackendCounts operator-(const BackendCounts& later, const BackendCounts& earlier);

class CountingBackend : public Backend {
 public:
  // `inner` must outlive the decorator.
  explicit CountingBackend(Backend& inner) : inner_(inner) {}

  // Everything counted since construction or reset_counts().
  BackendCounts counts() const;
  void reset_counts();

  Backend& inner() { return inner_; }

  std::string name() const override { return inner_.name(); }
  std::string device_name() const override { return inner_.device_name(); }

  void* allocate(std::size_t bytes) override;
  void deallocate(void* pointer) noexcept override;
  void* allocate_host(std::size_t bytes) override { return inner_.allocate_host(bytes); }
  void deallocate_host(void* pointer) noexcept override { inner_.deallocate_host(pointer); }
  MemoryUsage memory_usage() const override { return inner_.memory_usage(); }
  void reset_peak_memory() override { inner_.reset_peak_memory(); }
  DeviceMemory device_memory() const override { return inner_.device_memory(); }

  void upload(int slot, void* device_destination, const void* host_source, std::size_t bytes) override;
  void begin_slot_reads(int slot) override { inner_.begin_slot_reads(slot); }
  void end_slot_reads(int slot) override { inner_.end_slot_reads(slot); }
  void wait_uploads() override;
  void copy_to_device(void* device_destination, const void* host_source, std::size_t bytes) override;
  void copy_to_host(void* host_destination, const void* device_source, std::size_t bytes) override;
  void copy_on_device(void* device_destination, const void* device_source, std::size_t bytes) override;
  void fill_zero(void* device_destination, std::size_t bytes) override;
  // Counted as a host -> device copy without a host wait (a stream-ordered copy).
  void enqueue_copy_to_device(void* device_destination, const void* host_source, std::size_t bytes) override;
  StreamCapture* stream_capture() override { return inner_.stream_capture(); }

  void gemm(Transpose transpose_a, Transpose transpose_b, int m, int n, int k, float alpha, const float* a,
            int lda, const float* b, int ldb, float beta, float* c, int ldc) override;
  void gemm_constant_a(Transpose transpose_a, Transpose transpose_b, int m, int n, int k, float alpha, const float* a,
                       int lda, std::uint64_t a_version, const float* b, int ldb, float beta, float* c,
                       int ldc) override;
  void set_gemm_precision(GemmPrecision precision) override { inner_.set_gemm_precision(precision); }
  GemmPrecision gemm_precision() const override { return inner_.gemm_precision(); }
  bool native_gemm_precision(GemmPrecision precision) const override {
    return inner_.native_gemm_precision(precision);
  }
  BackendTraits traits() const override { return inner_.traits(); }
  // Library convolutions count as one BLAS-like call each, with the FLOPs and
  // operand traffic of the equivalent GEMM (kernels/im2col.h).
  void set_convolution_path(ConvolutionPath path) override { inner_.set_convolution_path(path); }
  std::string convolution_library_description() override { return inner_.convolution_library_description(); }
  std::int64_t library_convolutions_run() const override { return inner_.library_convolutions_run(); }
  ConvolutionPath convolution_path() const override { return inner_.convolution_path(); }
  bool convolution_prefers_gemm(const ConvolutionGeometry& geometry, ConvolutionDirection direction) override {
    return inner_.convolution_prefers_gemm(geometry, direction);
  }
  bool convolution_prefers_channels_last(const ConvolutionGeometry& geometry) override {
    return inner_.convolution_prefers_channels_last(geometry);
  }
  bool convolution_takes_bf16_operands(const ConvolutionGeometry& geometry, ConvolutionDirection direction) override {
    return inner_.convolution_takes_bf16_operands(geometry, direction);
  }
  bool convolution_forward(const ConvolutionGeometry& geometry, const void* x, const float* weights,
                           float* y) override;
  bool convolution_backward_data(const ConvolutionGeometry& geometry, const void* y, const float* weights,
                                 float* x) override;
  bool convolution_backward_weights(const ConvolutionGeometry& geometry, const void* x, const void* y,
                                    float alpha, float beta, float* weight_gradient) override;

#define EQPROP_DECLARE_COUNTED_REDUCE_ROWS(Op, Body) void reduce_rows(const Op& op, std::int64_t rows) override;
  EQPROP_ROW_REDUCTIONS(EQPROP_DECLARE_COUNTED_REDUCE_ROWS)
#undef EQPROP_DECLARE_COUNTED_REDUCE_ROWS
#define EQPROP_DECLARE_COUNTED_RUN(Op) void run(const Op& op, std::int64_t count) override;
  EQPROP_ELEMENTWISE_OPS(EQPROP_DECLARE_COUNTED_RUN)
#undef EQPROP_DECLARE_COUNTED_RUN
#define EQPROP_DECLARE_COUNTED_RUN_BLOCKS(Body) \
  void run_blocks(const Body& body, int blocks, int threads_per_block) override;
  EQPROP_BLOCK_BODIES(EQPROP_DECLARE_COUNTED_RUN_BLOCKS)
#undef EQPROP_DECLARE_COUNTED_RUN_BLOCKS

  void parallel_over_rows(int rows, const std::function<void(int begin, int end)>& body) override;
  std::int64_t count_nonfinite(const float* data, std::int64_t count) override;
  void synchronize() override;
  void* native_stream() override { return inner_.native_stream(); }

 private:
  void record_gemm(int m, int n, int k, float beta);
  void record_convolution(const ConvolutionGeometry& geometry, bool reads_result);
  // One index per op and block body of the generated lists.
  enum OpIndex : int {
#define EQPROP_OP_INDEX(Op) k##Op,
    EQPROP_ELEMENTWISE_OPS(EQPROP_OP_INDEX) EQPROP_BLOCK_BODIES(EQPROP_OP_INDEX)
#undef EQPROP_OP_INDEX
        kOpKinds
  };
  enum SyncCall : int { kCopyToHost, kCopyToDevice, kCountNonfinite, kWaitUploads, kSynchronize, kSyncCalls };
  // One counter per BackendCounts scalar field, in its order (counts() maps them).
  enum Field : int {
    kKernelLaunches, kBlasCalls, kMemsets, kHostSyncs, kHostToDeviceCopies, kDeviceToHostCopies,
    kDeviceToDeviceCopies, kBytesHostToDevice, kBytesDeviceToHost, kBytesDeviceToDevice, kBytesZeroed,
    kGemmFlops, kGemmBytes, kOpBytes, kDeviceAllocations, kDeviceFrees, kRowSlices, kFields
  };
  using Counter = std::atomic<std::int64_t>;

  void add(Field field, std::int64_t amount) { fields_[field].fetch_add(amount, std::memory_order_relaxed); }
  void record_launch(OpIndex op, std::int64_t bytes);
  void record_sync(SyncCall call);
  // One copy or fill of `bytes` bytes: 1 to `operations`, the bytes to `bytes_field`.
  void record_transfer(Field operations, Field bytes_field, std::size_t bytes);

  Backend& inner_;
  std::array<Counter, kFields> fields_{};
  std::array<Counter, kOpKinds> launches_{};
  std::array<Counter, kSyncCalls> syncs_{};
};

}  // namespace eqprop
