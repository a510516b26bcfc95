// Time of max pooling and max unpooling (kernels/max_pool.h) through the CPU
// backend's run(), on the planes of the conv recipes: 2x2 windows over the
// CIFAR-10 network's 32x32, 16x16, 8x8 and 2x2 planes and FashionMNIST's 28x28 and
// 14x14. Prints one JSON line per shape: the best of `repeats` calls, in
// ms and in GB/s of the bytes each call must move (pooling reads the plane and
// writes the pooled values and their argmax; unpooling reads those and writes the
// plane). Run it with OMP_NUM_THREADS=1 for one core; build two commits and run
// both to compare them (the numbers in kernels/max_pool.h, with_pooled_plane):
//   build-cpu/eqprop_pool_rows [batch] [repeats] [layout]     defaults: 16, 50, nchw
// layout: of the unpooled plane (kernels/plane_layout.h), the pooled side NCHW as
// in the conv model: nchw, cnhw (the im2col path's pre-pooling tensor) or nhwc
// (oneDNN's bf16 one, the channel-block rows of kernels/max_pool.h).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/channels_last_bf16.h"
#include "kernels/device_buffer.h"
#include "models/conv_ops.h"
#include "perf/row_timing.h"

using eqprop::perf::best_ms;

int main(int argc, char** argv) {
  if (argc > 1 && (std::string(argv[1]) == "-h" || std::string(argv[1]) == "--help")) {
    std::printf(
        "usage: eqprop_pool_rows [batch] [repeats] [nchw|cnhw|nhwc]   (defaults 16, 50, nchw; OMP_NUM_THREADS sets "
        "the threads)\n");
    return 0;
  }
  const int batch = eqprop::perf::positive_argument("eqprop_pool_rows", argc, argv, 1, 16);
  const int repeats = eqprop::perf::positive_argument("eqprop_pool_rows", argc, argv, 2, 50);
  const std::string layout = argc > 3 ? argv[3] : "nchw";
  if (layout != "nchw" && layout != "cnhw" && layout != "nhwc") {
    std::fprintf(stderr, "eqprop_pool_rows: layout %s: expected nchw, cnhw or nhwc\n", layout.c_str());
    return 2;
  }
  struct Plane {
    const char* net;
    int channels, size;
  };
  const Plane planes[] = {{"cifar10 conv1", 128, 32}, {"cifar10 conv2", 256, 16}, {"cifar10 conv3", 512, 8},
                          {"cifar10 conv4", 512, 2},
                          {"fashion_mnist conv1", 16, 28}, {"fashion_mnist conv2", 32, 14}};
  auto backend = eqprop::make_backend("cpu");
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (const Plane& p : planes) {
    eqprop::PoolShape shape;
    shape.batch = batch;
    shape.channels = p.channels;
    shape.in_h = shape.in_w = p.size;
    if (layout == "cnhw") shape.input_layout = eqprop::cnhw_layout(batch);
    if (layout == "nhwc") shape.input_layout = eqprop::nhwc_layout(p.channels);
    const std::size_t in = shape.input_size(), out = shape.output_size();
    std::vector<float> host(in);
    for (float& v : host) v = uniform(rng);
    eqprop::DeviceBuffer<float> x(*backend, in), pooled(*backend, out), unpooled(*backend, in);
    eqprop::DeviceBuffer<std::int32_t> argmax(*backend, out);
    x.copy_from_host(host);
    const double pool_ms =
        best_ms(repeats, [&] { eqprop::max_pool2d(*backend, shape, x.data(), pooled.data(), argmax.data()); });
    const double unpool_ms = best_ms(repeats, [&] {
      eqprop::max_unpool2d(*backend, shape, pooled.data(), argmax.data(), unpooled.data(), false);
    });
    // The bf16 operands of a bf16 library convolution: the unpooled field in bf16,
    // and the pooled state (the next layer's x) into bf16 channels-last.
    eqprop::DeviceBuffer<std::uint16_t> unpooled_bf16(*backend, in), state_bf16(*backend, out);
    const double unpool_bf16_ms = best_ms(repeats, [&] {
      eqprop::max_unpool2d_operand(*backend, shape, pooled.data(), argmax.data(), nullptr, nullptr,
                                   unpooled_bf16.data());
    });
    const std::int32_t pooled_plane = shape.out_h() * shape.out_w();
    const double state_bf16_ms = best_ms(repeats, [&] {
      backend->run(eqprop::ChannelsLastBf16Op{pooled.data(), nullptr, state_bf16.data(),
                                              eqprop::nchw_layout(p.channels), eqprop::nhwc_layout(p.channels),
                                              p.channels, pooled_plane},
                   std::int64_t(out));
    });
    const double bytes = 4.0 * double(in + 2 * out);
    std::printf(
        "{\"shape\": \"%s\", \"layout\": \"%s\", \"batch\": %d, \"channels\": %d, \"plane\": \"%dx%d -> %dx%d\", "
        "\"pool_ms\": %.4f, "
        "\"pool_gb_per_s\": %.2f, \"unpool_ms\": %.4f, \"unpool_gb_per_s\": %.2f, \"unpool_bf16_ms\": %.4f, "
        "\"pooled_to_bf16_nhwc_ms\": %.4f, \"pooled_to_bf16_nhwc_gb_per_s\": %.2f}\n",
        p.net, layout.c_str(), batch, p.channels, p.size, p.size, shape.out_h(), shape.out_w(), pool_ms, bytes / pool_ms * 1e-6,
        unpool_ms, bytes / unpool_ms * 1e-6, unpool_bf16_ms, state_bf16_ms, 6.0 * double(out) / state_bf16_ms * 1e-6);
  }
  return 0;
}
