#include "kernels/counting_backend.h"

namespace eqprop {
namespace {

constexpr std::int64_t kFloat = sizeof(float);

// Napkin estimates of the device memory bytes one op moves over `count` indices:
// every array it reads or writes is counted once per element it touches (from the
// op's pointer fields: an optional array counts where it is set), with no credit
// for caches and nothing for per-unit vectors (bias: (units), read from cache).
// Ops without a formula here take the fallback: one float read and one written
// per index, which undercounts ops whose index is a row.
template <class Op>
std::int64_t estimated_bytes(const Op&, std::int64_t count) {
  return 2 * kFloat * count;
}

std::int64_t estimated_bytes(const LayerStepOp& op, std::int64_t count) {  // count: batch * units
  const int arrays = 3 /* states read and written, drive */ + (op.feedback ? 1 : 0) + (op.target ? 1 : 0) +
                     (op.momenta ? 2 : 0) + (op.readout ? 1 : 0);
  return arrays * kFloat * count;
}
std::int64_t estimated_bytes(const SoftmaxResidualOp& op, std::int64_t rows) {  // logits, target, residual
  return 3 * kFloat * rows * op.classes;
}
std::int64_t estimated_bytes(const ColumnSumOp& op, std::int64_t columns) {  // a (and b) read, out written
  return kFloat * columns * (std::int64_t(op.batch) * (op.b ? 2 : 1) + 1);
}
std::int64_t estimated_bytes(const AxpbyOp&, std::int64_t count) { return 3 * kFloat * count; }
std::int64_t estimated_bytes(const SgdMomentumOp&, std::int64_t count) {  // w, v, g read; v, w written
  return 5 * kFloat * count;
}
std::int64_t estimated_bytes(const RowMetricsOp& op, std::int64_t rows) {  // outputs, target; loss, correct
  return kFloat * rows * (2 * std::int64_t(op.classes) + 2);
}
std::int64_t estimated_bytes(const FillRandomOp&, std::int64_t count) { return kFloat * count; }
std::int64_t estimated_bytes(const RowEnergyOp& op, std::int64_t rows) {  // states, drive; energy
  return kFloat * rows * (2 * std::int64_t(op.units) + (op.accumulate ? 2 : 1));
}
std::int64_t estimated_bytes(const RowMaxChangeOp& op, std::int64_t rows) {  // states, previous; residual
  return kFloat * rows * ((op.readout ? 3 : 2) * std::int64_t(op.units) + (op.accumulate ? 2 : 1));
}
std::int64_t estimated_bytes(const PlaneRelayoutOp& op, std::int64_t count) {
  return (op.accumulate ? 3 : 2) * kFloat * count;
}
// count: elements, each read (with its subtrahend where given) and written in bf16.
std::int64_t estimated_bytes(const ChannelsLastBf16Op& op, std::int64_t count) {
  return count * (kFloat * (op.subtrahend ? 2 : 1) + std::int64_t(sizeof(std::uint16_t)));
}
// count: elements, each read in bf16 and written (read first where beta != 0).
std::int64_t estimated_bytes(const PlanesFromBf16Op& op, std::int64_t count) {
  return count * (kFloat * (op.beta == 0.0f ? 1 : 2) + std::int64_t(sizeof(std::uint16_t)));
}
// count: column entries. Each is written once and gathers one input value.
std::int64_t estimated_bytes(const Im2colOp&, std::int64_t count) { return 2 * kFloat * count; }
// count: output elements; together they read every column entry once.
std::int64_t estimated_bytes(const Col2imOp& op, std::int64_t count) {
  const std::int64_t columns = std::int64_t(op.channels) * op.window.kernel * op.window.kernel * op.positions;
  return kFloat * (columns + (op.accumulate ? 2 : 1) * count);
}
// count: output elements, each reading its kernel x kernel window.
std::int64_t estimated_bytes(const MaxPoolOp& op, std::int64_t count) {
  return count * (kFloat * op.window.kernel * op.window.kernel + kFloat + sizeof(std::int32_t));
}
std::int64_t estimated_bytes(const AvgPoolOp& op, std::int64_t count) {
  return count * kFloat * (op.window.kernel * op.window.kernel + 1);
}
// count: output elements, each reading its argmax and the one input it names.
std::int64_t estimated_bytes(const MaxPoolSelectOp&, std::int64_t count) {
  return count * (2 * kFloat + sizeof(std::int32_t));
}
// count: input-plane elements, each reading the pooled value (and argmax) of its
// window and the subtrahend where given, and writing fp32 or bf16.
std::int64_t estimated_bytes(const MaxUnpoolOp& op, std::int64_t count) {
  const std::int64_t written = op.result_bf16 ? std::int64_t(sizeof(std::uint16_t)) : kFloat;
  return count * (kFloat * (1 + (op.accumulate ? 1 : 0) + (op.subtrahend ? 1 : 0)) + written + sizeof(std::int32_t));
}
std::int64_t estimated_bytes(const AvgUnpoolOp& op, std::int64_t count) {
  return count * kFloat * (op.accumulate ? 3 : 2);
}
// blocks: replicas. Every step of a block reads all of J (from L2 at best); x and y
// are read and written once, the signs written once.
std::int64_t estimated_bytes(const FusedSbBlock& body, std::int64_t blocks) {
  const std::int64_t units = body.units, steps = body.last_step - body.first_step;
  return blocks * kFloat * (steps * units * units + 5 * units);
}
// blocks: groups of systems. Every step of a block reads every coupling above the
// input twice (drive and feedback, from L2 at best); the states are read and
// written once, the input drive (and a nudge's target) read once.
std::int64_t estimated_bytes(const FusedRelaxationBlock& body, std::int64_t blocks) {
  std::int64_t couplings = 0, units = 0;
  for (int i = 0; i < body.layers; ++i) {
    units += body.units[i];
    if (i > 0) couplings += std::int64_t(body.units[i - 1]) * body.units[i];
  }
  const std::int64_t systems = body.batch;
  return kFloat * (blocks * body.steps * 2 * couplings + systems * (2 * units + body.units[0] +
                                                                     (body.target ? body.units[body.layers - 1] : 0)));
}
std::int64_t estimated_bytes(const TransposeOp&, std::int64_t count) { return 2 * kFloat * count; }

const char* const kOpNames[] = {
#define EQPROP_OP_NAME(Op) #Op,
    EQPROP_ELEMENTWISE_OPS(EQPROP_OP_NAME) EQPROP_BLOCK_BODIES(EQPROP_OP_NAME)
#undef EQPROP_OP_NAME
};
const char* const kSyncCallNames[] = {"copy_to_host", "copy_to_device", "count_nonfinite", "wait_uploads",
                                      "synchronize"};

std::map<std::string, std::int64_t> difference(const std::map<std::string, std::int64_t>& later,
                                               const std::map<std::string, std::int64_t>& earlier) {
  std::map<std::string, std::int64_t> result = later;
  for (const auto& [key, value] : earlier) result[key] -= value;
  for (auto it = result.begin(); it != result.end();) it = it->second == 0 ? result.erase(it) : std::next(it);
  return result;
}

}  // namespace

BackendCounts operator-(const BackendCounts& later, const BackendCounts& earlier) {
  BackendCounts d;
  d.kernel_launches = later.kernel_launches - earlier.kernel_launches;
  d.blas_calls = later.blas_calls - earlier.blas_calls;
  d.memsets = later.memsets - earlier.memsets;
  d.host_syncs = later.host_syncs - earlier.host_syncs;
  d.host_to_device_copies = later.host_to_device_copies - earlier.host_to_device_copies;
  d.device_to_host_copies = later.device_to_host_copies - earlier.device_to_host_copies;
  d.device_to_device_copies = later.device_to_device_copies - earlier.device_to_device_copies;
  d.bytes_host_to_device = later.bytes_host_to_device - earlier.bytes_host_to_device;
  d.bytes_device_to_host = later.bytes_device_to_host - earlier.bytes_device_to_host;
  d.bytes_device_to_device = later.bytes_device_to_device - earlier.bytes_device_to_device;
  d.bytes_zeroed = later.bytes_zeroed - earlier.bytes_zeroed;
  d.gemm_flops = later.gemm_flops - earlier.gemm_flops;
  d.gemm_bytes_estimate = later.gemm_bytes_estimate - earlier.gemm_bytes_estimate;
  d.op_bytes_estimate = later.op_bytes_estimate - earlier.op_bytes_estimate;
  d.device_allocations = later.device_allocations - earlier.device_allocations;
  d.device_frees = later.device_frees - earlier.device_frees;
  d.row_slices = later.row_slices - earlier.row_slices;
  d.launches_by_op = difference(later.launches_by_op, earlier.launches_by_op);
  d.syncs_by_call = difference(later.syncs_by_call, earlier.syncs_by_call);
  return d;
}

BackendCounts CountingBackend::counts() const {
  const auto field = [&](Field f) { return fields_[f].load(std::memory_order_relaxed); };
  BackendCounts c;
  c.kernel_launches = field(kKernelLaunches);
  c.blas_calls = field(kBlasCalls);
  c.memsets = field(kMemsets);
  c.host_syncs = field(kHostSyncs);
  c.host_to_device_copies = field(kHostToDeviceCopies);
  c.device_to_host_copies = field(kDeviceToHostCopies);
  c.device_to_device_copies = field(kDeviceToDeviceCopies);
  c.bytes_host_to_device = field(kBytesHostToDevice);
  c.bytes_device_to_host = field(kBytesDeviceToHost);
  c.bytes_device_to_device = field(kBytesDeviceToDevice);
  c.bytes_zeroed = field(kBytesZeroed);
  c.gemm_flops = field(kGemmFlops);
  c.gemm_bytes_estimate = field(kGemmBytes);
  c.op_bytes_estimate = field(kOpBytes);
  c.device_allocations = field(kDeviceAllocations);
  c.device_frees = field(kDeviceFrees);
  c.row_slices = field(kRowSlices);
  for (int op = 0; op < kOpKinds; ++op)
    if (const std::int64_t n = launches_[op].load(std::memory_order_relaxed)) c.launches_by_op[kOpNames[op]] = n;
  for (int call = 0; call < kSyncCalls; ++call)
    if (const std::int64_t n = syncs_[call].load(std::memory_order_relaxed)) c.syncs_by_call[kSyncCallNames[call]] = n;
  return c;
}

void CountingBackend::reset_counts() {
  for (Counter& counter : fields_) counter.store(0, std::memory_order_relaxed);
  for (Counter& counter : launches_) counter.store(0, std::memory_order_relaxed);
  for (Counter& counter : syncs_) counter.store(0, std::memory_order_relaxed);
}

void CountingBackend::record_launch(OpIndex op, std::int64_t bytes) {
  add(kKernelLaunches, 1);
  add(kOpBytes, bytes);
  launches_[op].fetch_add(1, std::memory_order_relaxed);
}

void CountingBackend::record_sync(SyncCall call) {
  add(kHostSyncs, 1);
  syncs_[call].fetch_add(1, std::memory_order_relaxed);
}

void* CountingBackend::allocate(std::size_t bytes) {
  void* pointer = inner_.allocate(bytes);
  add(kDeviceAllocations, 1);
  return pointer;
}

void CountingBackend::deallocate(void* pointer) noexcept {
  inner_.deallocate(pointer);
  add(kDeviceFrees, 1);
}

void CountingBackend::record_transfer(Field operations, Field bytes_field, std::size_t bytes) {
  add(operations, 1);
  add(bytes_field, static_cast<std::int64_t>(bytes));
}

void CountingBackend::upload(int slot, void* device_destination, const void* host_source, std::size_t bytes) {
  inner_.upload(slot, device_destination, host_source, bytes);
  if (bytes == 0) return;
  record_transfer(kHostToDeviceCopies, kBytesHostToDevice, bytes);
}

void CountingBackend::wait_uploads() {
  inner_.wait_uploads();
  record_sync(kWaitUploads);
}

void CountingBackend::copy_to_device(void* device_destination, const void* host_source, std::size_t bytes) {
  inner_.copy_to_device(device_destination, host_source, bytes);
  if (bytes == 0) return;
  record_transfer(kHostToDeviceCopies, kBytesHostToDevice, bytes);
  record_sync(kCopyToDevice);
}

void CountingBackend::enqueue_copy_to_device(void* device_destination, const void* host_source,
                                             std::size_t bytes) {
  inner_.enqueue_copy_to_device(device_destination, host_source, bytes);
  if (bytes == 0) return;
  record_transfer(kHostToDeviceCopies, kBytesHostToDevice, bytes);
}

void CountingBackend::copy_to_host(void* host_destination, const void* device_source, std::size_t bytes) {
  inner_.copy_to_host(host_destination, device_source, bytes);
  if (bytes == 0) return;
  record_transfer(kDeviceToHostCopies, kBytesDeviceToHost, bytes);
  record_sync(kCopyToHost);
}

void CountingBackend::copy_on_device(void* device_destination, const void* device_source, std::size_t bytes) {
  inner_.copy_on_device(device_destination, device_source, bytes);
  if (bytes == 0 || device_destination == device_source) return;
  record_transfer(kDeviceToDeviceCopies, kBytesDeviceToDevice, bytes);
}

void CountingBackend::fill_zero(void* device_destination, std::size_t bytes) {
  inner_.fill_zero(device_destination, bytes);
  if (bytes == 0) return;
  record_transfer(kMemsets, kBytesZeroed, bytes);
}

void CountingBackend::gemm(Transpose transpose_a, Transpose transpose_b, int m, int n, int k, float alpha,
                           const float* a, int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  inner_.gemm(transpose_a, transpose_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  record_gemm(m, n, k, beta);
}

void CountingBackend::gemm_constant_a(Transpose transpose_a, Transpose transpose_b, int m, int n, int k, float alpha,
                                      const float* a, int lda, std::uint64_t a_version, const float* b, int ldb,
                                      float beta, float* c, int ldc) {
  inner_.gemm_constant_a(transpose_a, transpose_b, m, n, k, alpha, a, lda, a_version, b, ldb, beta, c, ldc);
  record_gemm(m, n, k, beta);
}

// One BLAS call, its FLOPs and its operands' traffic (a and b read once, c written,
// and read too where beta != 0), whatever the backend kept converted.
void CountingBackend::record_gemm(int m, int n, int k, float beta) {
  if (m == 0 || n == 0) return;
  const std::int64_t mm = m, nn = n, kk = k;
  add(kBlasCalls, 1);
  add(kGemmFlops, 2 * mm * nn * kk);
  add(kGemmBytes, kFloat * (mm * kk + kk * nn + (beta != 0.0f ? 2 : 1) * mm * nn));
}

void CountingBackend::record_convolution(const ConvolutionGeometry& geometry, bool reads_result) {
  const SlidingWindow& s = geometry.window;
  const std::int64_t weights = std::int64_t(geometry.out_channels) * geometry.in_channels * s.kernel * s.kernel,
                     x = std::int64_t(geometry.batch) * geometry.in_channels * s.in_plane(),
                     y = std::int64_t(geometry.batch) * geometry.out_channels * s.out_plane(),
                     positions = std::int64_t(geometry.batch) * s.out_plane();
  add(kBlasCalls, 1);
  add(kGemmFlops, 2 * weights * positions);
  add(kGemmBytes, kFloat * (weights + x + y + (reads_result ? weights : 0)));
}

bool CountingBackend::convolution_forward(const ConvolutionGeometry& geometry, const void* x, const float* weights,
                                          float* y) {
  if (!inner_.convolution_forward(geometry, x, weights, y)) return false;
  record_convolution(geometry, false);
  return true;
}

bool CountingBackend::convolution_backward_data(const ConvolutionGeometry& geometry, const void* y,
                                                const float* weights, float* x) {
  if (!inner_.convolution_backward_data(geometry, y, weights, x)) return false;
  record_convolution(geometry, false);
  return true;
}

bool CountingBackend::convolution_backward_weights(const ConvolutionGeometry& geometry, const void* x,
                                                   const void* y, float alpha, float beta,
                                                   float* weight_gradient) {
  if (!inner_.convolution_backward_weights(geometry, x, y, alpha, beta, weight_gradient)) return false;
  record_convolution(geometry, beta != 0.0f);
  return true;
}

#define EQPROP_DEFINE_COUNTED_RUN(Op)                                  \
  void CountingBackend::run(const Op& op, std::int64_t count) {        \
    inner_.run(op, count);                                             \
    if (count > 0) record_launch(k##Op, estimated_bytes(op, count));   \
  }
EQPROP_ELEMENTWISE_OPS(EQPROP_DEFINE_COUNTED_RUN)
#undef EQPROP_DEFINE_COUNTED_RUN

// One launch of the op's reduction (a block per row on the GPU), counted as the op.
#define EQPROP_DEFINE_COUNTED_REDUCE_ROWS(Op, Body)                     \
  void CountingBackend::reduce_rows(const Op& op, std::int64_t rows) { \
    inner_.reduce_rows(op, rows);                                      \
    if (rows > 0) record_launch(k##Op, estimated_bytes(op, rows));     \
  }
EQPROP_ROW_REDUCTIONS(EQPROP_DEFINE_COUNTED_REDUCE_ROWS)
#undef EQPROP_DEFINE_COUNTED_REDUCE_ROWS

#define EQPROP_DEFINE_COUNTED_RUN_BLOCKS(Body)                                           \
  void CountingBackend::run_blocks(const Body& body, int blocks, int threads_per_block) { \
    inner_.run_blocks(body, blocks, threads_per_block);                                  \
    if (blocks > 0) record_launch(k##Body, estimated_bytes(body, blocks));               \
  }
EQPROP_BLOCK_BODIES(EQPROP_DEFINE_COUNTED_RUN_BLOCKS)
#undef EQPROP_DEFINE_COUNTED_RUN_BLOCKS

void CountingBackend::parallel_over_rows(int rows, const std::function<void(int begin, int end)>& body) {
  inner_.parallel_over_rows(rows, [&](int begin, int end) {
    add(kRowSlices, 1);
    body(begin, end);
  });
}

std::int64_t CountingBackend::count_nonfinite(const float* data, std::int64_t count) {
  const std::int64_t result = inner_.count_nonfinite(data, count);
  if (count > 0) record_sync(kCountNonfinite);
  return result;
}

void CountingBackend::synchronize() {
  inner_.synchronize();
  record_sync(kSynchronize);
}

}  // namespace eqprop
