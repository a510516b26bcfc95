// The library convolutions (Backend::convolution_*: oneDNN on the CPU) and the
// im2col path of models/conv_ops.h, each against naive nested loops in double:
// forward, transposed (backward-data) and kernel update (backward-weights), on odd
// shapes (C = 1, Co = 3, stride 2, padding 0 / 1 / 2, non-square planes, a
// channel-major y as the pooled model uses).
//
// Tolerances, per element, on S = the sum of |products| of that element:
//  - fp32 (either path): 1e-5 S, the declared bound (summation order only);
//  - bf16: each operand rounded to 8 significant bits (relative error <= u = 2^-8
//    per operand, so <= 2u + u^2 per product), plus the fp32 accumulation:
//    (2^-7 + 2^-16 + 1e-5) S.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <cstring>
#include <stdexcept>

#include "engine/config.h"
#include "engine/gradcheck.h"
#include "kernels/bf16.h"
#include "kernels/dnnl_convolution_routes.h"
#include "kernels/dnnl_isa.h"
#include "tests/conv_library_check.h"

using namespace eqprop::test::conv_library;

TEST_CASE("conv library: im2col in fp32 and bf16 matches the naive double reference") {
  auto backend = eqprop::make_backend("cpu");
  check_path(*backend, ConvolutionPath::im2col, GemmPrecision::fp32, kFp32Tolerance, YLayout::nchw);
  check_path(*backend, ConvolutionPath::im2col, GemmPrecision::fp32, kFp32Tolerance, YLayout::cnhw);
  check_path(*backend, ConvolutionPath::im2col, GemmPrecision::fp32, kFp32Tolerance, YLayout::nhwc);
  check_path(*backend, ConvolutionPath::im2col, GemmPrecision::bf16, kBf16Tolerance, YLayout::nchw);
}

TEST_CASE("conv library: oneDNN fp32 matches the naive double reference (NCHW, channel-major and channels-last y)") {
  if (eqprop::test::skip_case_if(!cpu_has_library(), "built without oneDNN (EQPROP_ENABLE_DNNL)")) return;
  auto backend = eqprop::make_backend("cpu");
  // library_only throws where oneDNN refuses a shape and routes nothing to im2col:
  // every case ran on oneDNN. library: each on its route (some on im2col here).
  check_path(*backend, ConvolutionPath::library_only, GemmPrecision::fp32, kFp32Tolerance, YLayout::nchw);
  check_path(*backend, ConvolutionPath::library_only, GemmPrecision::fp32, kFp32Tolerance, YLayout::cnhw);
  check_path(*backend, ConvolutionPath::library_only, GemmPrecision::fp32, kFp32Tolerance, YLayout::nhwc);
  check_path(*backend, ConvolutionPath::library, GemmPrecision::fp32, kFp32Tolerance, YLayout::nchw);
  check_path(*backend, ConvolutionPath::library, GemmPrecision::fp32, kFp32Tolerance, YLayout::cnhw);
  check_path(*backend, ConvolutionPath::library, GemmPrecision::fp32, kFp32Tolerance, YLayout::nhwc);
}

TEST_CASE("conv library: the routing table sends fp32 convolutions onto a 2x2 plane on AVX2 and AVX-512 kernels, bf16 ones on AMX, to im2col") {
  using eqprop::ConvolutionDirection;
  using eqprop::DnnlKernels;
  auto routes = [](int index, GemmPrecision precision, ConvolutionDirection direction, DnnlKernels kernels) {
    return eqprop::dnnl_routes_to_gemm(kCases[index].geometry(), precision, direction, kernels);
  };
  for (const ConvolutionDirection direction : {ConvolutionDirection::forward, ConvolutionDirection::backward_data,
                                               ConvolutionDirection::backward_weights}) {
    CAPTURE(static_cast<int>(direction));
    // Only the measured kernels and precision, only planes of at most 4 positions.
    CHECK_FALSE(routes(kValidOntoTwoByTwo, GemmPrecision::fp32, direction, DnnlKernels::other));
    CHECK_FALSE(routes(kValidOntoTwoByTwo, GemmPrecision::bf16, direction, DnnlKernels::other));
    for (const DnnlKernels kernels : {DnnlKernels::avx2, DnnlKernels::avx512_core, DnnlKernels::avx512_core_amx}) {
      CAPTURE(static_cast<int>(kernels));
      const bool amx = kernels == DnnlKernels::avx512_core_amx;
      CHECK(routes(kValidOntoTwoByTwo, GemmPrecision::fp32, direction, kernels));
      CHECK(routes(kValidOntoTwoByTwo, GemmPrecision::bf16, direction, kernels) == amx);
      CHECK_FALSE(routes(kValidOntoTwoByTwo, GemmPrecision::tf32, direction, kernels));
      for (int other = 0; other < kValidOntoTwoByTwo; ++other)
        for (const GemmPrecision precision : {GemmPrecision::fp32, GemmPrecision::bf16})
          CHECK_FALSE(routes(other, precision, direction, kernels));
      // A padded backward-data pass onto 2x2 is one oneDNN runs fast.
      for (const GemmPrecision precision : {GemmPrecision::fp32, GemmPrecision::bf16})
        CHECK(routes(kPaddedOntoTwoByTwo, precision, direction, kernels) ==
              ((precision == GemmPrecision::fp32 || amx) && direction != ConvolutionDirection::backward_data));
    }
  }
}

TEST_CASE("conv library: a bad shape on the library path is refused with the field it names") {
  auto backend = eqprop::make_backend("cpu");
  ConvShape shape = kCases[kValidOntoTwoByTwo];
  ConvScratch scratch(*backend, shape);
  eqprop::DeviceBuffer<float> x(*backend, shape.input_size()), w(*backend, shape.weight_size()),
      y(*backend, shape.output_size());
  shape.stride = 0;  // its window would divide by the stride: refused before any routing looks at it
  for (const ConvolutionPath path : {ConvolutionPath::library, ConvolutionPath::library_only}) {
    backend->set_convolution_path(path);
    CHECK_THROWS_WITH_AS(eqprop::conv2d_forward(*backend, shape, x.data(), w.data(), nullptr, y.data(),
                                                scratch.workspace()),
                         doctest::Contains("stride 0"), std::invalid_argument);
    CHECK_THROWS_AS(eqprop::conv2d_transpose(*backend, shape, y.data(), w.data(), x.data(), scratch.workspace()),
                    std::invalid_argument);
  }
}

TEST_CASE("conv library: a routed convolution runs im2col + GEMM on the library path and oneDNN on library_only") {
  if (eqprop::test::skip_case_if(!cpu_has_library(), "built without oneDNN (EQPROP_ENABLE_DNNL)")) return;
  using eqprop::ConvolutionDirection;
  auto inner = eqprop::make_backend("cpu");
  eqprop::CountingBackend counting(*inner);
  const ConvShape shape = kCases[kValidOntoTwoByTwo];
  const eqprop::ConvolutionGeometry geometry = shape.geometry();
  // The backend's answer is the table's on this machine's ISA.
  const bool routed = eqprop::dnnl_kernels() != eqprop::DnnlKernels::other;
  MESSAGE("oneDNN ISA " << eqprop::dnnl_isa_description() << std::string(routed ? ": routed" : ": not routed"));
  for (const ConvolutionDirection direction : {ConvolutionDirection::forward, ConvolutionDirection::backward_data,
                                               ConvolutionDirection::backward_weights})
    CHECK(counting.convolution_prefers_gemm(geometry, direction) == routed);
  ConvScratch scratch(counting, shape);
  eqprop::DeviceBuffer<float> x(counting, shape.input_size()), w(counting, shape.weight_size()),
      y(counting, shape.output_size()), g(counting, shape.weight_size());
  for (eqprop::DeviceBuffer<float>* buffer : {&x, &w, &y})
    counting.fill_zero(buffer->data(), buffer->size() * sizeof(float));
  for (const ConvolutionPath path : {ConvolutionPath::library, ConvolutionPath::library_only}) {
    CAPTURE(static_cast<int>(path));
    counting.set_convolution_path(path);
    const std::int64_t library_before = counting.library_convolutions_run();
    const eqprop::BackendCounts before = counting.counts();
    eqprop::conv2d_forward(counting, shape, x.data(), w.data(), nullptr, y.data(), scratch.workspace());
    eqprop::conv2d_transpose(counting, shape, y.data(), w.data(), x.data(), scratch.workspace());
    eqprop::conv2d_weight_gradient(counting, shape, x.data(), y.data(), 1.0f, 0.0f, g.data(), scratch.workspace());
    const eqprop::BackendCounts used = counting.counts() - before;
    const bool on_library = path == ConvolutionPath::library_only || !routed;
    CHECK(counting.library_convolutions_run() - library_before == (on_library ? 3 : 0));
    // im2col, col2im and the NCHW reorderings are launches; a library call has none.
    CHECK((used.kernel_launches == 0) == on_library);
    CHECK(used.blas_calls == 3);
  }
}

TEST_CASE("conv library: oneDNN bf16 matches the naive double reference within the bf16 bound") {
  if (eqprop::test::skip_case_if(!cpu_has_library(), "built without oneDNN (EQPROP_ENABLE_DNNL)")) return;
  if (eqprop::test::skip_case_if(!eqprop::dnnl_has_bf16_instructions(),
                                 "this CPU has no bf16 instructions: oneDNN ISA " + eqprop::dnnl_isa_description()))
    return;
  auto backend = eqprop::make_backend("cpu");
  check_path(*backend, ConvolutionPath::library_only, GemmPrecision::bf16, kBf16Tolerance, YLayout::nchw);
  check_path(*backend, ConvolutionPath::library_only, GemmPrecision::bf16, kBf16Tolerance, YLayout::cnhw);
  check_path(*backend, ConvolutionPath::library_only, GemmPrecision::bf16, kBf16Tolerance, YLayout::nhwc);
  // With AMX the 2x2-plane cases are routed to im2col + oneDNN's bf16 matmul.
  check_path(*backend, ConvolutionPath::library, GemmPrecision::bf16, kBf16Tolerance, YLayout::nchw);
  check_path(*backend, ConvolutionPath::library, GemmPrecision::bf16, kBf16Tolerance, YLayout::cnhw);
  check_path(*backend, ConvolutionPath::library, GemmPrecision::bf16, kBf16Tolerance, YLayout::nhwc);
}

TEST_CASE("conv library: auto takes the library for bf16 only, tf32 has no library primitive") {
  auto backend = eqprop::make_backend("cpu");
  backend->set_convolution_path(ConvolutionPath::automatic);
  backend->set_gemm_precision(GemmPrecision::fp32);
  CHECK_FALSE(eqprop::conv_uses_library(*backend));
  backend->set_gemm_precision(GemmPrecision::bf16);
  CHECK(eqprop::conv_uses_library(*backend));
  backend->set_convolution_path(ConvolutionPath::im2col);
  CHECK_FALSE(eqprop::conv_uses_library(*backend));
  if (!cpu_has_library()) return;
  // tf32 on the library path: refused with DeviceError, not silently run in fp32.
  backend->set_convolution_path(ConvolutionPath::library);
  backend->set_gemm_precision(GemmPrecision::tf32);
  const ConvShape shape = kCases[0];
  ConvScratch scratch(*backend, shape);
  eqprop::DeviceBuffer<float> x(*backend, shape.input_size()), w(*backend, shape.weight_size()),
      y(*backend, shape.output_size());
  CHECK_THROWS_AS(eqprop::conv2d_forward(*backend, shape, x.data(), w.data(), nullptr, y.data(), scratch.workspace()),
                  eqprop::DeviceError);
}

TEST_CASE("conv library: the counting backend forwards library convolutions as one BLAS-like call each") {
  if (eqprop::test::skip_case_if(!cpu_has_library(), "built without oneDNN (EQPROP_ENABLE_DNNL)")) return;
  auto inner = eqprop::make_backend("cpu");
  eqprop::CountingBackend counting(*inner);
  counting.set_convolution_path(ConvolutionPath::library);
  CHECK(inner->convolution_path() == ConvolutionPath::library);
  const ConvShape shape = kCases[4];
  ConvScratch scratch(counting, shape);
  eqprop::DeviceBuffer<float> x(counting, shape.input_size()), w(counting, shape.weight_size()),
      y(counting, shape.output_size()), g(counting, shape.weight_size());
  counting.fill_zero(x.data(), x.size() * sizeof(float));
  counting.fill_zero(w.data(), w.size() * sizeof(float));
  counting.fill_zero(y.data(), y.size() * sizeof(float));
  const eqprop::BackendCounts before = counting.counts();
  eqprop::conv2d_forward(counting, shape, x.data(), w.data(), nullptr, y.data(), scratch.workspace());
  eqprop::conv2d_transpose(counting, shape, y.data(), w.data(), x.data(), scratch.workspace());
  eqprop::conv2d_weight_gradient(counting, shape, x.data(), y.data(), 1.0f, 0.0f, g.data(), scratch.workspace());
  const eqprop::BackendCounts used = counting.counts() - before;
  CHECK(used.blas_calls == 3);
  CHECK(used.gemm_flops == std::int64_t(3 * shape.gemm_flops()));
  CHECK(used.kernel_launches == 0);  // no im2col, col2im or reordering ops
}

TEST_CASE("conv library: the backend names its library, version and ISA, through the counting backend too") {
  auto inner = eqprop::make_backend("cpu");
  eqprop::CountingBackend counting(*inner);
  const std::string description = counting.convolution_library_description();
  CHECK(description == inner->convolution_library_description());
  if (!cpu_has_library()) {
    CHECK(description.empty());
    return;
  }
  MESSAGE("convolution library: " << description);
  CHECK(description.rfind("oneDNN ", 0) == 0);
  CHECK(description.find("ISA ") != std::string::npos);
  CHECK(description.find("ISA other") == std::string::npos);
}

TEST_CASE("conv library: the conv gradcheck passes in fp32 on the oneDNN path") {
  if (eqprop::test::skip_case_if(!cpu_has_library(), "built without oneDNN (EQPROP_ENABLE_DNNL)")) return;
  auto backend = eqprop::make_backend("cpu");
  backend->set_convolution_path(ConvolutionPath::library);  // throws where a shape has no primitive
  // As tests/test_conv_hopfield.cpp's gradcheck: symmetric EP at small beta against
  // central differences, max pooling and cross-entropy read-out.
  nlohmann::json user =
      eqprop::read_config_file(std::string(EQPROP_SOURCE_DIR) + "/configs/gradcheck_tiny_conv.json");
  user["training"]["conv_path"] = "library";
  const nlohmann::json report =
      eqprop::run_gradcheck(*backend, eqprop::parse_config(user, "gradcheck_tiny_conv"), eqprop::GradcheckOptions{6});
  MESSAGE(report["tensors"].dump());
  for (const auto& tensor : report["tensors"]) {
    CAPTURE(tensor.dump());
    CHECK(tensor["cosine"].get<double>() > 0.9999);
    CHECK(tensor["relative_error"].get<double>() < 5e-3);
  }
}

TEST_CASE("conv library: oneDNN sees weights changed in place between calls (reordered weights never stale)") {
  if (eqprop::test::skip_case_if(!cpu_has_library(), "built without oneDNN (EQPROP_ENABLE_DNNL)")) return;
  // The library keeps the weights reordered into its layout across calls; an update
  // in place (the same pointer, as the EP update writes) must reach the next
  // forward and backward-data call exactly as on a backend that never saw the old
  // values.
  for (const GemmPrecision precision : {GemmPrecision::fp32, GemmPrecision::bf16}) {
    CAPTURE(static_cast<int>(precision));
    // bf16 primitives exist only where the CPU multiplies bf16 (the case above
    // reports that skip); fp32 runs everywhere.
    if (precision == GemmPrecision::bf16 && !eqprop::dnnl_has_bf16_instructions()) continue;
    const ConvShape shape = kCases[7];
    std::mt19937 rng(77);
    const Floats x = eqprop::test::random_vector(rng, shape.input_size(), -1.0f, 1.0f);
    const Floats y = eqprop::test::random_vector(rng, shape.output_size(), -1.0f, 1.0f);
    const Floats w_old = eqprop::test::random_vector(rng, shape.weight_size(), -1.0f, 1.0f);
    Floats w_new = w_old;
    w_new[w_new.size() / 2] += 0.25f;  // one weight moves: the whole reorder must rerun
    auto run = [&](Backend& backend, eqprop::DeviceBuffer<float>& w) {
      ConvScratch scratch(backend, shape);
      auto x_d = upload(backend, x), y_d = upload(backend, y);
      eqprop::DeviceBuffer<float> out(backend, shape.output_size()), back(backend, shape.input_size());
      eqprop::conv2d_forward(backend, shape, x_d.data(), w.data(), nullptr, out.data(), scratch.workspace());
      eqprop::conv2d_transpose(backend, shape, y_d.data(), w.data(), back.data(), scratch.workspace());
      Floats both = download(backend, out, shape.output_size());
      const Floats x_back = download(backend, back, shape.input_size());
      both.insert(both.end(), x_back.begin(), x_back.end());
      return both;
    };
    auto warm = eqprop::make_backend("cpu"), fresh = eqprop::make_backend("cpu");
    for (Backend* b : {warm.get(), fresh.get()}) {
      b->set_convolution_path(ConvolutionPath::library);
      b->set_gemm_precision(precision);
    }
    auto w_warm = upload(*warm, w_old);
    const Floats before = run(*warm, w_warm);
    CHECK(run(*warm, w_warm) == before);  // unchanged weights: the cached reorder, the same result
    warm->copy_to_device(w_warm.data(), w_new.data(), w_new.size() * sizeof(float));
    auto w_fresh = upload(*fresh, w_new);
    const Floats expected = run(*fresh, w_fresh);
    CHECK(expected != before);
    CHECK(run(*warm, w_warm) == expected);
  }
}

TEST_CASE("conv library: a weights version promises unchanged weights, and a fresh one is read again") {
  if (eqprop::test::skip_case_if(!cpu_has_library(), "built without oneDNN (EQPROP_ENABLE_DNNL)")) return;
  // ConvolutionGeometry::weights_version: under one version the library reuses its
  // reordered weights without reading them (a change in place under that version
  // breaks the caller's promise and is not seen: that is what the promise saves);
  // the next version, as a model's next set_input takes, sees the new values.
  ConvShape shape = kCases[7];
  std::mt19937 rng(78);
  const Floats x = eqprop::test::random_vector(rng, shape.input_size(), -1.0f, 1.0f);
  const Floats w_old = eqprop::test::random_vector(rng, shape.weight_size(), -1.0f, 1.0f);
  Floats w_new = w_old;
  w_new[0] += 0.5f;
  auto backend = eqprop::make_backend("cpu");
  backend->set_convolution_path(ConvolutionPath::library);
  ConvScratch scratch(*backend, shape);
  auto x_d = upload(*backend, x), w = upload(*backend, w_old);
  eqprop::DeviceBuffer<float> out(*backend, shape.output_size());
  auto forward = [&] {
    eqprop::conv2d_forward(*backend, shape, x_d.data(), w.data(), nullptr, out.data(), scratch.workspace());
    return download(*backend, out, shape.output_size());
  };
  shape.weights_version = eqprop::fresh_weights_version();
  const Floats with_old = forward();
  backend->copy_to_device(w.data(), w_new.data(), w_new.size() * sizeof(float));
  CHECK(forward() == with_old);  // the promise: not read again
  shape.weights_version = eqprop::fresh_weights_version();
  const Floats with_new = forward();
  CHECK(with_new != with_old);
  shape.weights_version = 0;  // no promise: compared by value, the same values
  CHECK(forward() == with_new);
}

TEST_CASE("conv library: bf16 operands handed over give oneDNN's own conversion's results, bit for bit") {
  if (eqprop::test::skip_case_if(!cpu_has_library(), "built without oneDNN (EQPROP_ENABLE_DNNL)")) return;
  if (eqprop::test::skip_case_if(!eqprop::dnnl_has_bf16_instructions(),
                                 "this CPU has no bf16 instructions: oneDNN ISA " + eqprop::dnnl_isa_description()))
    return;
  using eqprop::OperandType;
  auto backend = eqprop::make_backend("cpu");
  backend->set_convolution_path(ConvolutionPath::library_only);
  backend->set_gemm_precision(GemmPrecision::bf16);
  std::mt19937 rng(31);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  // Operands with what a conversion can get wrong: values half-way between two
  // bf16 numbers (both neighbours' parities), denormals (the CPU's conversion makes
  // them zeros) and plain random values.
  const auto operand = [&](std::size_t count) {
    Floats values(count);
    for (std::size_t i = 0; i < count; ++i) {
      std::uint32_t bits;
      const float u = uniform(rng);
      std::memcpy(&bits, &u, sizeof bits);
      if (i % 5 == 1) bits = (bits & 0xffff0000u) | 0x8000u;  // a tie
      if (i % 7 == 2) bits = (bits & 0x80000000u) | (bits & 0x007fffffu);  // a denormal
      std::memcpy(&values[i], &bits, sizeof bits);
    }
    return values;
  };
  for (const ConvShape& base : kCases) {
    for (const YLayout y_layout : {YLayout::nchw, YLayout::nhwc}) {
      for (const bool x_nhwc : {false, true}) {
        ConvShape shape = base;
        shape.output_layout = layout_of(y_layout, shape);
        const std::string where = text(shape) + (x_nhwc ? ", x NHWC" : ", x NCHW") +
                                  (y_layout == YLayout::nhwc ? ", y NHWC" : ", y NCHW");
        CAPTURE(where);
        ConvShape bf16_query = shape;
        bf16_query.x_type = bf16_query.y_type = OperandType::bf16;
        for (const auto direction : {eqprop::ConvolutionDirection::forward, eqprop::ConvolutionDirection::backward_data,
                                     eqprop::ConvolutionDirection::backward_weights})
          REQUIRE(eqprop::conv_library_takes_bf16(*backend, bf16_query, direction));
        const Floats x = operand(shape.input_size()), y = operand(shape.output_size());
        const Floats w = eqprop::test::random_vector(rng, shape.weight_size(), -1.0f, 1.0f);
        auto x_f32 = upload(*backend, x), y_f32 = upload(*backend, y), weights = upload(*backend, w);
        // x and y in NCHW (logical order) for the fp32 calls; the bf16 copies in
        // the shape's layouts.
        ConvShape fp32 = shape;
        fp32.output_layout = eqprop::nchw_layout(shape.out_channels);
        ConvShape bf16 = shape;
        bf16.input_layout = x_nhwc ? eqprop::nhwc_layout(shape.in_channels) : eqprop::nchw_layout(shape.in_channels);
        bf16.x_type = bf16.y_type = OperandType::bf16;
        auto x_bf16 =
            bf16_copy(*backend, x, shape.batch, shape.in_channels, shape.in_h * shape.in_w, bf16.input_planes());
        auto y_bf16 = bf16_copy(*backend, y, shape.batch, shape.out_channels, shape.out_h() * shape.out_w(),
                                bf16.output_planes());
        eqprop::DeviceBuffer<float> out_a(*backend, shape.output_size()), out_b(*backend, shape.output_size());
        eqprop::conv2d_forward_library(*backend, fp32, x_f32.data(), weights.data(), out_a.data());
        ConvShape bf16_forward = bf16;  // its y (the result) in NCHW as fp32's
        bf16_forward.output_layout = fp32.output_layout;
        eqprop::conv2d_forward_library(*backend, bf16_forward, x_bf16.data(), weights.data(), out_b.data());
        eqprop::test::check_bit_exact("forward, " + where, out_b.to_host(), out_a.to_host());
        eqprop::DeviceBuffer<float> in_a(*backend, shape.input_size()), in_b(*backend, shape.input_size());
        eqprop::conv2d_transpose_library(*backend, fp32, y_f32.data(), weights.data(), in_a.data());
        ConvShape bf16_backward = bf16;  // its x (the result) in NCHW as fp32's
        bf16_backward.input_layout = fp32.input_planes();
        eqprop::conv2d_transpose_library(*backend, bf16_backward, y_bf16.data(), weights.data(), in_b.data());
        eqprop::test::check_bit_exact("backward data, " + where, in_b.to_host(), in_a.to_host());
        eqprop::DeviceBuffer<float> g_a(*backend, shape.weight_size()), g_b(*backend, shape.weight_size());
        eqprop::conv2d_weight_gradient_library(*backend, fp32, x_f32.data(), y_f32.data(), 0.5f, 0.0f, g_a.data());
        eqprop::conv2d_weight_gradient_library(*backend, bf16, x_bf16.data(), y_bf16.data(), 0.5f, 0.0f, g_b.data());
        eqprop::test::check_bit_exact("backward weights, " + where, g_b.to_host(), g_a.to_host());
      }
    }
  }
}

TEST_CASE("conv library: bf16 operands are refused where no library call takes them") {
  using eqprop::OperandType;
  auto backend = eqprop::make_backend("cpu");
  const ConvShape base = kCases[1];
  ConvScratch scratch(*backend, base);
  eqprop::DeviceBuffer<float> x(*backend, base.input_size()), w(*backend, base.weight_size()),
      y(*backend, base.output_size());
  ConvShape bf16 = base;
  bf16.x_type = OperandType::bf16;
  // The im2col path and its library calls take fp32 x and y only.
  CHECK_THROWS_WITH_AS(eqprop::conv2d_forward(*backend, bf16, x.data(), w.data(), nullptr, y.data(),
                                              scratch.workspace()),
                       doctest::Contains("bf16 operands go to the *_library calls"), std::invalid_argument);
  // fp32 products take no bf16 operands; neither does a build without a library.
  backend->set_convolution_path(ConvolutionPath::library_only);
  backend->set_gemm_precision(GemmPrecision::fp32);
  CHECK_FALSE(eqprop::conv_library_takes_bf16(*backend, bf16, eqprop::ConvolutionDirection::forward));
  CHECK_THROWS_AS(eqprop::conv2d_forward_library(*backend, bf16, x.data(), w.data(), y.data()), eqprop::DeviceError);
  // bf16 products take them where oneDNN has the primitive (on a CPU with bf16
  // instructions at least), never without a library.
  backend->set_gemm_precision(GemmPrecision::bf16);
  const bool taken = eqprop::conv_library_takes_bf16(*backend, bf16, eqprop::ConvolutionDirection::forward);
  if (!cpu_has_library()) CHECK_FALSE(taken);
  if (cpu_has_library() && eqprop::dnnl_has_bf16_instructions()) CHECK(taken);
}
