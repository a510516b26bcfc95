// Time of im2col and col2im (kernels/im2col.h) through the CPU backend's run(), on
// the conv recipes' layers as the model calls them (NCHW states): CIFAR-10's 4x4 ->
// 2x2 last layer (no padding; routed to im2col + GEMM on AMX), its 8x8 and 16x16
// layers, FashionMNIST's 14x14 one. Prints one JSON line per shape: the best of
// `repeats` calls, in ms, and im2col's GB/s (the column matrix written and read
// once). Run it with OMP_NUM_THREADS=1 for one core; build two commits and run both
// to compare them (the numbers in kernels/im2col.h):
//   build-cpu/eqprop_conv_rows [batch] [repeats]     defaults: 16, 100
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "kernels/im2col.h"
#include "models/conv_ops.h"
#include "perf/row_timing.h"

int main(int argc, char** argv) {
  if (argc > 1 && (std::string(argv[1]) == "-h" || std::string(argv[1]) == "--help")) {
    std::printf("usage: eqprop_conv_rows [batch] [repeats]   (defaults 16, 100; OMP_NUM_THREADS sets the threads)\n");
    return 0;
  }
  const int batch = eqprop::perf::positive_argument("eqprop_conv_rows", argc, argv, 1, 16);
  const int repeats = eqprop::perf::positive_argument("eqprop_conv_rows", argc, argv, 2, 100);
  struct Layer {
    const char* net;
    int in_channels, size, out_channels, padding;
  };
  const Layer layers[] = {{"cifar10 conv4", 512, 4, 512, 0},
                          {"cifar10 conv3", 256, 8, 512, 1},
                          {"cifar10 conv2", 128, 16, 256, 1},
                          {"fashion_mnist conv2", 16, 14, 32, 1}};
  auto backend = eqprop::make_backend("cpu");
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (const Layer& layer : layers) {
    const eqprop::ConvShape shape{batch, layer.in_channels, layer.size, layer.size, layer.out_channels, 3, 1,
                                  layer.padding};
    std::vector<float> host(shape.input_size());
    for (float& v : host) v = uniform(rng);
    eqprop::DeviceBuffer<float> x(*backend, host.size()), columns(*backend, shape.columns_size()),
        folded(*backend, host.size());
    x.copy_from_host(host);
    const auto positions = static_cast<std::int32_t>(shape.positions());
    const double im2col_ms = eqprop::perf::best_ms(repeats, [&] {
      backend->run(eqprop::Im2colOp{x.data(), columns.data(), shape.input_planes(), shape.window(),
                                    shape.in_channels, positions},
                   shape.columns_size());
    });
    const double col2im_ms = eqprop::perf::best_ms(repeats, [&] {
      backend->run(eqprop::Col2imOp{columns.data(), folded.data(), shape.input_planes(), shape.window(),
                                    shape.in_channels, positions, false},
                   shape.input_size());
    });
    std::printf(
        "{\"shape\": \"%s\", \"batch\": %d, \"channels\": %d, \"plane\": \"%dx%d\", \"padding\": %d, "
        "\"columns\": %lld, \"im2col_ms\": %.4f, \"im2col_gb_per_s\": %.2f, \"col2im_ms\": %.4f}\n",
        layer.net, batch, layer.in_channels, layer.size, layer.size, layer.padding,
        static_cast<long long>(shape.columns_size()), im2col_ms, 8.0 * double(shape.columns_size()) / im2col_ms * 1e-6,
        col2im_ms);
  }
  return 0;
}
