// The interface between the numerics and a device. A backend owns memory, a BLAS,
// a way to run the single-source elementwise ops of kernels/elementwise_ops.h
// over an index range and one to run the fused block bodies of
// kernels/block_bodies.h over blocks. The CPU backend (OpenMP + OpenBLAS) and the CUDA backend
// (cuBLAS + one kernel per op) implement it; models/ and engine/ only see this.
//
// Ordering: every call is ordered after the previous calls on the same backend
// (one compute stream on the GPU), except upload(), which is ordered only through
// its slot (see upload). Calls that return data to the host wait for it.
// Thread safety: one thread drives a backend (the loader thread only fills host
// staging memory), except inside parallel_over_rows on the CPU backend.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include "kernels/block_bodies.h"
#include "kernels/allocation_counter.h"
#include "kernels/convolution_library.h"
#include "kernels/elementwise_ops.h"
#include "kernels/gemm_precision.h"
#include "kernels/plane_layout.h"
#include "kernels/sliding_window.h"
#include "kernels/stream_capture.h"

namespace eqprop {

enum class Transpose : bool { no = false, yes = true };

// The memory of the device a backend computes on: the GPU's (cudaMemGetInfo), or
// the machine's RAM for the CPU backend (free = what the kernel reports available).
struct DeviceMemory {
  std::size_t total_bytes = 0;
  std::size_t free_bytes = 0;
};

// What a backend is, for the choices that depend on the device (problem sizes,
// which of two equivalent paths runs faster): callers ask these, never name().
struct BackendTraits {
  // Work goes to an accelerator with its own memory and many cores: calls return
  // before the work is done (time it around synchronize()), and only large
  // problems (a GEMM of thousands) fill the device.
  bool is_device = false;
  // run_blocks runs its blocks concurrently, one per multiprocessor, with the
  // block-shared memory on chip next to an L1 cache (a GPU's SMs): a fused block
  // that re-reads a small operand from that cache at every step can beat a GEMM
  // launch per step. On the CPU a block is one core's loop, and a GEMM that reuses
  // its operands in registers is faster.
  bool has_on_chip_blocks = false;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;         // "cpu" or "cuda": for reports, not decisions
  virtual BackendTraits traits() const = 0;
  virtual std::string device_name() const = 0;  // e.g. "2-core x86_64" or the GPU's name

  // Device memory. Prefer DeviceBuffer (kernels/device_buffer.h) to calling these.
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void deallocate(void* pointer) noexcept = 0;
  // Host memory the device copies from fastest (pinned on CUDA).
  virtual void* allocate_host(std::size_t bytes) = 0;
  virtual void deallocate_host(void* pointer) noexcept = 0;
  // Device bytes held through allocate() now and at most since reset_peak_memory()
  // (kernels/allocation_counter.h; host staging memory is not counted).
  virtual MemoryUsage memory_usage() const = 0;
  virtual void reset_peak_memory() = 0;
  virtual DeviceMemory device_memory() const = 0;

  // Host -> device copies that run concurrently with compute (a copy stream on
  // CUDA), into device buffers named by a slot in [0, kUploadSlots) (e.g. the two
  // input buffers a trainer fills in turn). Ordering, per slot and nothing else:
  //  - upload(slot, ...) waits for the compute that the slot's last
  //    end_slot_reads(slot) closed (the last reader of its previous contents);
  //  - begin_slot_reads(slot): compute submitted after it waits for the uploads
  //    into the slot submitted before it;
  //  - end_slot_reads(slot): the compute submitted so far is the slot's reader.
  // So the upload of batch n+1 into slot 1 overlaps the compute of batch n from
  // slot 0. Compute that reads an uploaded buffer without begin_slot_reads, or an
  // upload into a buffer that compute still uses outside the slot protocol, races.
  // The host source must stay valid until wait_uploads() returns. Throws
  // std::out_of_range for a slot outside [0, kUploadSlots). The CPU backend copies
  // at once (the slot calls only check the slot).
  static constexpr int kUploadSlots = 4;
  virtual void upload(int slot, void* device_destination, const void* host_source, std::size_t bytes) = 0;
  virtual void begin_slot_reads(int slot) = 0;
  virtual void end_slot_reads(int slot) = 0;
  virtual void wait_uploads() = 0;
  // Synchronous copies.
  virtual void copy_to_device(void* device_destination, const void* host_source,
                              std::size_t bytes) = 0;
  virtual void copy_to_host(void* host_destination, const void* device_source,
                            std::size_t bytes) = 0;
  virtual void copy_on_device(void* device_destination, const void* device_source,
                              std::size_t bytes) = 0;
  virtual void fill_zero(void* device_destination, std::size_t bytes) = 0;
  // A host -> device copy ordered with compute like a kernel and not waited for
  // (kernels/step_parameters.h): host_source is allocate_host memory that must not
  // change until the copy has run, i.e. until the host next waits for the device.
  // The CPU backend copies at once.
  virtual void enqueue_copy_to_device(void* device_destination, const void* host_source, std::size_t bytes) {
    copy_to_device(device_destination, host_source, bytes);
  }
  // Recording calls into a replayable graph (kernels/stream_capture.h); null where
  // the backend runs every call directly (the CPU backend).
  virtual StreamCapture* stream_capture() { return nullptr; }

  // Row-major single-precision GEMM:
  //   c (m, n) = alpha * op(a) (m, k) * op(b) (k, n) + beta * c,
  // lda/ldb/ldc are the row strides of a, b and c as stored.
  virtual void gemm(Transpose transpose_a, Transpose transpose_b, int m, int n, int k, float alpha,
                    const float* a, int lda, const float* b, int ldb, float beta, float* c,
                    int ldc) = 0;
  // gemm whose `a` is a constant of the caller's: a nonzero a_version promises that a
  // holds the same values at every call with this address and version (a conv
  // layer's weights between two updates, ConvolutionGeometry::weights_version), so
  // that a backend may keep its own converted copy of a (the CPU's bf16 operand,
  // kernels/dnnl_matmul.h) instead of converting it at every call. 0: no promise.
  virtual void gemm_constant_a(Transpose transpose_a, Transpose transpose_b, int m, int n, int k, float alpha,
                               const float* a, int lda, std::uint64_t a_version, const float* b, int ldb, float beta,
                               float* c, int ldc) {
    (void)a_version;
    gemm(transpose_a, transpose_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  // The precision of gemm's products (kernels/gemm_precision.h); fp32 unless set.
  // The CUDA backend uses the tensor cores for tf32 and bf16; the CPU backend runs
  // bf16 on oneDNN where the CPU multiplies bf16 and emulates the rest by rounding a
  // copy of the inputs.
  // The state lives here, once for every backend; virtual so that a wrapper
  // (kernels/counting_backend.h) can forward to the backend it wraps.
  virtual void set_gemm_precision(GemmPrecision precision) { precision_ = precision; }
  virtual GemmPrecision gemm_precision() const { return precision_; }
  // Whether `precision` runs on this device's own instructions (the tensor cores; on
  // the CPU, AMX or AVX-512 bf16 through oneDNN) rather than emulated by rounding a
  // copy of the operands before the fp32 GEMM, which is for accuracy studies and
  // slower than fp32 (engine/precision_summary.h words it for the user).
  virtual bool native_gemm_precision(GemmPrecision precision) const { return precision == GemmPrecision::fp32; }

  // Convolutions by the device's library (oneDNN, cuDNN), in gemm_precision() with
  // fp32 accumulation and fp32 results; equal to conv_ops' im2col + gemm up to the
  // summation order (cuDNN's bf16 results are also rounded to bf16 on the way:
  // kernels/cudnn_convolution.h). Each returns false, computing nothing, where the backend has
  // no library or the library does not take the shape or precision (the caller
  // then runs the im2col path). Primitives are built once per geometry and cached.
  //   forward:          y = conv(x, weights)
  //   backward_data:    x = conv_T(y, weights), the adjoint of forward
  //   backward_weights: weight_gradient = alpha sum_b corr(x_b, y_b) + beta weight_gradient
  // Which path models/conv_ops.h takes (training.conv_path): the library calls
  // below (library_only: all of them; library: all but those the library routes to
  // im2col, convolution_prefers_gemm), im2col + gemm, or automatic (library for
  // bf16 products, where its kernels are far faster and results are not
  // bit-reproducible anyway; im2col, the bit-exact reference, for fp32 and tf32).
  // Without a library, automatic runs im2col and library / library_only throw
  // DeviceError (models/conv_ops.h).
  virtual void set_convolution_path(ConvolutionPath path) { convolution_path_ = path; }
  virtual ConvolutionPath convolution_path() const { return convolution_path_; }
  // x and y, where read, point to geometry.x_type / y_type values (fp32 unless the
  // backend takes bf16 operands: convolution_takes_bf16_operands).
  virtual bool convolution_forward(const ConvolutionGeometry& geometry, const void* x, const float* weights,
                                   float* y) {
    ConvolutionLibrary* library = convolution_library();
    return counted(library && library->forward(geometry, gemm_precision(), x, weights, y));
  }
  virtual bool convolution_backward_data(const ConvolutionGeometry& geometry, const void* y, const float* weights,
                                         float* x) {
    ConvolutionLibrary* library = convolution_library();
    return counted(library && library->backward_data(geometry, gemm_precision(), y, weights, x));
  }
  virtual bool convolution_backward_weights(const ConvolutionGeometry& geometry, const void* x, const void* y,
                                            float alpha, float beta, float* weight_gradient) {
    ConvolutionLibrary* library = convolution_library();
    return counted(
        library && library->backward_weights(geometry, gemm_precision(), x, y, alpha, beta, weight_gradient));
  }
  // ConvolutionLibrary::prefers_gemm of the backend's library at gemm_precision();
  // false where it has none.
  virtual bool convolution_prefers_gemm(const ConvolutionGeometry& geometry, ConvolutionDirection direction) {
    ConvolutionLibrary* library = convolution_library();
    return library && library->prefers_gemm(geometry, gemm_precision(), direction);
  }
  // ConvolutionLibrary::prefers_channels_last of the backend's library at
  // gemm_precision(); false where it has none.
  virtual bool convolution_prefers_channels_last(const ConvolutionGeometry& geometry) {
    ConvolutionLibrary* library = convolution_library();
    return library && library->prefers_channels_last(geometry, gemm_precision());
  }
  // ConvolutionLibrary::takes_bf16_operands of the backend's library at
  // gemm_precision(); false where it has none.
  virtual bool convolution_takes_bf16_operands(const ConvolutionGeometry& geometry, ConvolutionDirection direction) {
    ConvolutionLibrary* library = convolution_library();
    return library && library->takes_bf16_operands(geometry, gemm_precision(), direction);
  }
  // The library convolutions run so far (calls that returned true). oneDNN threads
  // its convolutions itself and their bits depend on the thread count, so a trainer
  // that sees one run holds its CPU team at one size (engine/thread_team.h).
  virtual std::int64_t library_convolutions_run() const { return library_convolutions_run_; }
  // ConvolutionLibrary::description of the backend's library; empty where it has none.
  virtual std::string convolution_library_description() {
    ConvolutionLibrary* library = convolution_library();
    return library ? library->description() : std::string();
  }

  // Runs op(i) for i in [0, count). One virtual per op type (generated from the list).
#define EQPROP_DECLARE_RUN(Op) virtual void run(const Op& op, std::int64_t count) = 0;
  EQPROP_ELEMENTWISE_OPS(EQPROP_DECLARE_RUN)
#undef EQPROP_DECLARE_RUN

  // Runs a fused block body (kernels/execution_context.h) over blocks [0, blocks),
  // each with body.shared_bytes() of block-shared memory. threads_per_block is the
  // GPU's block size; the CPU backend runs each block as one thread taking
  // kCpuTileWidth elements at a time (threads of one core would only take turns:
  // kernels/execution_context.h) and spreads
  // the blocks over the cores. A body's result depends on neither. Throws
  // DeviceError where the device cannot give a block that much shared memory.
#define EQPROP_DECLARE_RUN_BLOCKS(Body) \
  virtual void run_blocks(const Body& body, int blocks, int threads_per_block) = 0;
  EQPROP_BLOCK_BODIES(EQPROP_DECLARE_RUN_BLOCKS)
#undef EQPROP_DECLARE_RUN_BLOCKS

  // Runs a per-system reduction op (kernels/block_bodies.h: EQPROP_ROW_REDUCTIONS)
  // over rows [0, rows), with run(op, rows)'s meaning. The CPU backend runs the op
  // (one thread per row, a serial loop: unchanged results); the CUDA backend runs
  // the op's block body, one block per row (kernels/row_reduction.h): maxima are
  // bit-exact against the op, sums deterministic (any launch) and equal to the
  // op's up to summation order.
#define EQPROP_DECLARE_REDUCE_ROWS(Op, Body) \
  virtual void reduce_rows(const Op& op, std::int64_t rows) { run(op, rows); }
  EQPROP_ROW_REDUCTIONS(EQPROP_DECLARE_REDUCE_ROWS)
#undef EQPROP_DECLARE_REDUCE_ROWS

  // Runs body(begin, end) over slices that cover [0, rows): the rows of a batch are
  // independent systems. The CPU backend runs one slice per core concurrently (the
  // backend calls inside then run single-threaded, and are safe to make from
  // several threads); a GPU backend runs body(0, rows) once, since each call is
  // already parallel on the device. body must not throw.
  virtual void parallel_over_rows(int rows, const std::function<void(int begin, int end)>& body) = 0;

  // Number of NaN or Inf values in data (count). Waits for the result.
  virtual std::int64_t count_nonfinite(const float* data, std::int64_t count) = 0;

  // Blocks the host until all submitted work is finished.
  virtual void synchronize() = 0;

  // The compute stream as an opaque handle (a cudaStream_t on CUDA), for the
  // engine's collectives across ranks (engine/distributed.h: NCCL) to order
  // themselves after the work that produced their buffers and before the work that
  // reads them, without a wait on the host; nullptr where a call's work is done
  // when it returns (the CPU backend: the host reduces there).
  virtual void* native_stream() { return nullptr; }

 protected:
  // The device's convolution library behind convolution_*; null (none) unless the
  // backend was built with one.
  virtual ConvolutionLibrary* convolution_library() { return nullptr; }

  // What set_gemm_precision and set_convolution_path chose (each backend's gemm
  // reads precision_).
  GemmPrecision precision_ = GemmPrecision::fp32;
  ConvolutionPath convolution_path_ = ConvolutionPath::automatic;

 private:
  std::int64_t library_convolutions_run_ = 0;
  bool counted(bool ran) {
    library_convolutions_run_ += ran ? 1 : 0;
    return ran;
  }
};

// Throws std::out_of_range unless slot is in [0, Backend::kUploadSlots).
inline void check_upload_slot(int slot) {
  if (slot < 0 || slot >= Backend::kUploadSlots)
    throw std::out_of_range("upload slot " + std::to_string(slot) + " is outside [0, " +
                            std::to_string(Backend::kUploadSlots) + ")");
}

// "cpu", "cuda" or "auto" (CUDA where a GPU is present, else CPU). Throws
// DeviceError for "cuda" on a machine or build without one, ConfigError otherwise.
std::unique_ptr<Backend> make_backend(const std::string& device);

// True if this build has the CUDA backend and a GPU is visible.
bool cuda_device_available();

}  // namespace eqprop
