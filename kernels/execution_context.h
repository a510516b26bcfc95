// The execution context of a fused block kernel: one source for a kernel that
// needs block-shared memory and barriers, run by a CUDA block on the GPU and by a
// loop over thread indices on the CPU.
//
// A block body is a trivially copyable struct with
//   std::size_t shared_bytes() const;                  // its block-shared memory
//   template <class Context> EQ_HD void operator()(Context& ctx) const;
// and is written bulk-synchronously, as a sequence of phases:
//   ctx.for_each_thread([&](int thread) { ... });    // one phase; a barrier after it
// The context offers
//   ctx.block()          this block's index in [0, blocks)
//   ctx.block_size()     the number of threads of the block (any value >= 1)
//   ctx.shared_memory()  shared_bytes() bytes shared by the threads of the block
//   Context::tile_width  how many consecutive elements one thread takes at a time
//                        in a strided loop (for_each_tile below): 1 on the GPU
//                        (neighbouring threads read neighbouring addresses:
//                        coalesced), a long run on the CPU (one CPU thread stands
//                        for a whole block; a contiguous run vectorizes).
// Rules that make a body correct on both:
//  - a phase's loops stride over the work by (thread, block_size()), so the body is
//    correct for any block size, including 1;
//  - threads communicate only through shared (or global) memory, and only across a
//    phase boundary: what one thread writes in a phase, another may read in a later
//    phase, never in the same one;
//  - no per-thread value lives across a phase boundary unless it is in shared
//    memory (on the CPU every thread of a phase runs before any of the next);
//  - code between phases is block-uniform: it reads only the body's parameters
//    (never shared memory, which the next phase may already be writing on the GPU).
// The CPU context runs the threads of a phase in a configurable order (forward,
// reverse, shuffled): a body that breaks the rules (a missing barrier, a read of
// another thread's element in the same phase) then gives different results for
// different orders or block sizes, and the tests see it without a GPU.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/hostdevice.h"

namespace eqprop {

// The order in which the CPU context runs the threads of a phase.
enum class ThreadOrder { forward, reverse, shuffled };

// The CPU's tile: 1024 floats (4 KiB) keep a tile's outputs and a tile of a row of
// a matrix in L1 together, and are long enough that a loop over them runs at the
// SIMD units' rate.
constexpr int kCpuTileWidth = 1024;

// A thread's share of the elements [0, count) in a phase: runs of TileWidth
// consecutive indices, the runs strided by the block; calls tile(first, end) for
// each run. Every index goes to exactly one thread, for any block size.
template <int TileWidth, class Tile>
EQ_HD void for_each_tile(int thread, int threads, int count, Tile&& tile) {
  for (int first = thread * TileWidth; first < count; first += threads * TileWidth)
    tile(first, count - first < TileWidth ? count : first + TileWidth);
}

// One block on one CPU thread: a phase is a loop over the thread indices.
template <int TileWidth = kCpuTileWidth>
class CpuBlockContext {
 public:
  static constexpr int tile_width = TileWidth;

  // shared_memory: the block's shared memory, owned by the caller.
  CpuBlockContext(int block, int block_size, void* shared_memory, ThreadOrder order = ThreadOrder::forward)
      : block_(block), block_size_(block_size), shared_memory_(shared_memory), order_(order) {
    if (order_ != ThreadOrder::forward) {
      threads_.resize(static_cast<std::size_t>(block_size_));
      std::iota(threads_.begin(), threads_.end(), 0);
      if (order_ == ThreadOrder::reverse) std::reverse(threads_.begin(), threads_.end());
      shuffler_.seed(static_cast<std::uint32_t>(block) + 1);
    }
  }

  int block() const { return block_; }
  int block_size() const { return block_size_; }
  void* shared_memory() const { return shared_memory_; }

  // Runs phase(thread) for every thread of the block; the end of the call is the
  // barrier. Shuffled: a fresh permutation for every phase.
  template <class Phase>
  void for_each_thread(Phase&& phase) {
    if (order_ == ThreadOrder::forward) {
      for (int thread = 0; thread < block_size_; ++thread) phase(thread);
      return;
    }
    if (order_ == ThreadOrder::shuffled) std::shuffle(threads_.begin(), threads_.end(), shuffler_);
    for (const int thread : threads_) phase(thread);
  }

 private:
  int block_;
  int block_size_;
  void* shared_memory_;
  ThreadOrder order_;
  std::vector<int> threads_;  // the order of a phase, unless forward
  std::minstd_rand shuffler_;  // cheap to construct: one per block
};

// Calls run_block(block, shared_memory) for every block in [0, blocks): the blocks
// are independent, so OpenMP spreads them over the cores; each OpenMP thread reuses
// one buffer of shared_bytes for the blocks it runs.
template <class RunBlock>
void for_each_block_on_cpu(int blocks, std::size_t shared_bytes, const RunBlock& run_block) {
  const std::size_t words = (shared_bytes + sizeof(std::max_align_t) - 1) / sizeof(std::max_align_t);
#pragma omp parallel if (blocks > 1)
  {
    std::vector<std::max_align_t> shared_memory(std::max<std::size_t>(words, 1));
#pragma omp for schedule(static)
    for (int block = 0; block < blocks; ++block) run_block(block, static_cast<void*>(shared_memory.data()));
  }
}

// Runs body over `blocks` blocks of `block_size` threads on the CPU, the threads of
// every phase in `order`.
template <int TileWidth = kCpuTileWidth, class Body>
void run_blocks_on_cpu(const Body& body, int blocks, int block_size, ThreadOrder order = ThreadOrder::forward) {
  for_each_block_on_cpu(blocks, body.shared_bytes(), [&](int block, void* shared_memory) {
    CpuBlockContext<TileWidth> context(block, block_size, shared_memory, order);
    body(context);
  });
}

#if defined(__CUDACC__)
// One block of CUDA threads: a phase is the calling thread's share of the work,
// then __syncthreads(). Every thread of the block runs the body, so every thread
// reaches every barrier (phases are never inside thread-dependent branches).
struct GpuBlockContext {
  static constexpr int tile_width = 1;

  __device__ int block() const { return static_cast<int>(blockIdx.x); }
  __device__ int block_size() const { return static_cast<int>(blockDim.x); }
  __device__ void* shared_memory() const {
    extern __shared__ float4 block_shared_memory[];  // float4: 16-byte aligned
    return block_shared_memory;
  }

  template <class Phase>
  __device__ void for_each_thread(Phase&& phase) {
    phase(static_cast<int>(threadIdx.x));
    __syncthreads();
  }
};
#endif

}  // namespace eqprop
