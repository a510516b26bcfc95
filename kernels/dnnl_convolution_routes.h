// Which convolutions the CPU backend's library path routes to im2col + the GEMM
// (ConvolutionLibrary::prefers_gemm, ConvolutionPath::library): a tuning table, kept
// as data with its evidence, in the manner of sgemm_cut_rules.h.
//
// oneDNN's direct convolution kernels block the output plane along its width; on a
// plane of at most 2x2 positions their registers stay mostly empty and they run at
// less than half of the GEMM that im2col turns the same convolution into (the
// GEMM's n is then batch * positions, long enough for the BLAS kernel). Measured
// with oneDNN 2.6.3 (jit:avx2) against OpenBLAS 0.3.21 (Haswell kernels) on a Zen 2
// core, one thread, GFLOP/s of the convolution and of its GEMM:
//
//   | convolution (batch, channels, plane -> plane)   | forward    | backward data | weights    |
//   |-------------------------------------------------|------------|---------------|------------|
//   | 16, 512 -> 512, 4x4 -> 2x2, no padding          | 40 vs 84   | 43 vs 75      | 23 vs 86   |
//   | 128, 512 -> 512, 4x4 -> 2x2, no padding         | 40 vs 91   | 42 vs 85      |            |
//   | 16, 64 -> 64, 4x4 -> 2x2, no padding            | 39 vs 80   | 42 vs 72      |            |
//   | 16, 512 -> 512, 2x2 -> 2x2, padding 1           | 54 vs 79   | 117 vs 69     |            |
//   | 16, 256 -> 512, 8x8 -> 8x8, padding 1           | 79 vs 96   | 108 vs 92     |            |
//
// The last conv layer of the CIFAR-10 recipe (configs/cifar10_conv4_laborieux.json)
// is the first row. Routing it, the whole training step (T1/T2 = 20/4) takes 0.94x
// the time of library_only at batch 16 and 0.95x at batch 128 on one thread, 0.90x
// and 0.97x on two (medians of interleaved runs, perf/ab_conv_step.sh). Routing
// larger planes does not pay once im2col's own pass is counted: the 8x8 layer's
// forward gave 1.00x, the 16x16 layer's 1.03x. A padded backward-data pass over a
// 2x2 plane stays on oneDNN (117 GFLOP/s).
//
// oneDNN's AVX-512 kernels (jit:avx512_core, which run fp32 on every AVX-512 ISA,
// AMX included) have the same weak spot, measured on an Intel Xeon (family 6 model
// 207, avx512_core_bf16, no AMX) against OpenBLAS's SkylakeX kernels, one thread,
// ONEDNN_VERBOSE rates in the CIFAR-10 step: that layer at 73 GFLOP/s forward, 90
// backward data and 37 backward weights, where the 16x16 and 8x8 layers run at
// 150-190. Routed by the same rule, the step took 0.988x the time of library_only
// at batch 16 on one thread and 0.981x on two (5 interleaved rounds each, the
// routed side faster in all 10), 0.994x and 1.004x at batch 128 (2 rounds each):
// a small gain where the batch is small, none measurable at 128, never a loss. In
// bf16 (jit_bf16:avx512_core_bf16 against im2col and oneDNN's bf16 matmul) routing
// made the step slower, 1.036x, so bf16 routes nothing on these kernels (AMX: below).
// Other ISAs were not measured and route nothing.
//
// With AMX (oneDNN's avx512_core_amx kernels, an Intel Xeon that reports family 6
// model 167), bf16 has the same weak spot: that layer ran at 103 GFLOP/s forward and
// 70 backward data (brgconv / jit:avx512_core_amx_bf16), where the 16x16 layer ran
// at 1360 and 1150 and the 8x8 one at 900 and 750. Routed, its matmuls
// (brg:avx512_core_amx_bf16, the weights converted once per training step,
// Backend::gemm_constant_a) ran at 530-600 GFLOP/s. The step's time, routed against
// not routed, 3 interleaved runs each: 0.77x at batch 16 on one thread, 0.81x on
// two, 0.86x at batch 128 on one and 0.89x on two. So bf16 routes by the fp32 rule
// on AMX, and only there.
#pragma once

#include "kernels/convolution_library.h"
#include "kernels/dnnl_isa.h"
#include "kernels/gemm_precision.h"

namespace eqprop {

// True where the table sends the call to im2col + GEMM: fp32 on oneDNN's AVX2 or
// AVX-512 kernels and bf16 on its AMX ones (kernels: dnnl_kernels()), an output
// plane of at most 4 positions, and for backward data only without padding.
inline bool dnnl_routes_to_gemm(const ConvolutionGeometry& geometry, GemmPrecision precision,
                                ConvolutionDirection direction, DnnlKernels kernels) {
  const bool measured = precision == GemmPrecision::fp32 ? kernels != DnnlKernels::other
                        : precision == GemmPrecision::bf16 ? kernels == DnnlKernels::avx512_core_amx
                                                            : false;
  if (!measured) return false;
  const SlidingWindow& window = geometry.window;
  if (window.out_h * window.out_w > 4) return false;
  return direction != ConvolutionDirection::backward_data || window.padding == 0;
}

}  // namespace eqprop
