// Every op of EQPROP_ELEMENTWISE_OPS (kernels/elementwise_ops.h) run by the CPU
// backend against naive reference loops written here (STYLE.md, habits 3 and 5).
// FillRandomOp is covered in tests/test_philox.cpp.
//
// Tolerances follow each op's declared determinism:
//  - ops without transcendental math (LayerStepOp, ColumnSumOp, AxpbyOp,
//    SgdMomentumOp, RowMetricsOp with the MSE cost) must equal a float reference
//    written in the same order of operations bit for bit, and a double reference
//    to 1e-6 of the magnitude of the terms involved (a few float roundings use
//    ~2e-7; a serial sum of n terms is held to the n * 2^-24 error bound);
//  - ops through expf/logf (SoftmaxResidualOp, RowMetricsOp with cross-entropy)
//    agree with the double reference to a few ulp of the magnitudes involved.
// Sizes are odd (batch 7, units 13) for the serial loop and above the CPU
// backend's OpenMP threshold (8192 indices) for its parallel loop. Every
// tolerance check reports the fraction of its budget the worst element used.
#include <doctest/doctest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/device_buffer.h"
#include "kernels/elementwise_ops.h"
#include "kernels/hard_sigmoid.h"
#include "tests/test_util.h"

namespace {

using eqprop::Backend;
using eqprop::test::bits_of;
using eqprop::test::check_bit_exact;
using eqprop::test::check_within;
using eqprop::test::random_one_hot;
using eqprop::test::random_vector;
using eqprop::DeviceBuffer;

constexpr double kFloatEps = FLT_EPSILON;  // 2^-23, one ulp at 1
constexpr double kRelative = 1e-6;         // budget of ops without transcendentals
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// The sizes every op runs at: odd and small (serial), and large (OpenMP).
struct Shape {
  int batch;
  int units;
};
constexpr Shape kShapes[] = {{7, 13}, {64, 300}};

// Host arrays in device buffers of one backend.
DeviceBuffer<float> on_device(Backend& backend, const std::vector<float>& host) {
  DeviceBuffer<float> buffer(backend, host.size());
  buffer.copy_from_host(host);
  return buffer;
}

// ---------------------------------------------------------------------------------
// LayerStepOp

struct LayerCase {
  eqprop::Integrator integrator;
  bool feedback;
  bool target;
  float beta;  // used when target
  std::string name() const {
    std::ostringstream out;
    out << (integrator == eqprop::Integrator::fixed_point ? "fixed point" : "gradient flow")
        << (feedback ? ", feedback" : ", no feedback");
    if (target) {
      out << ", MSE nudge beta " << beta;
    } else {
      out << ", not nudged";
    }
    return out.str();
  }
};

std::vector<LayerCase> all_layer_cases() {
  std::vector<LayerCase> cases;
  for (auto integrator : {eqprop::Integrator::gradient_flow, eqprop::Integrator::fixed_point})
    for (bool feedback : {false, true}) {
      cases.push_back({integrator, feedback, false, 0.0f});
      cases.push_back({integrator, feedback, true, 0.4f});
      cases.push_back({integrator, feedback, true, -0.3f});
    }
  return cases;
}

struct LayerData {
  int batch = 0, units = 0;
  std::vector<float> states, drive, feedback, bias, target;  // (batch, units) / (units)
};

// States mostly in [0, 1], with units exactly at the bounds (where rho' = 1
// still) and a few just outside (rho' = 0); fields large enough to clip.
LayerData random_layer(std::mt19937& rng, int batch, int units) {
  LayerData d;
  d.batch = batch;
  d.units = units;
  const std::size_t n = static_cast<std::size_t>(batch) * units;
  d.states = random_vector(rng, n, 0.0f, 1.0f);
  for (std::size_t i = 0; i < n; i += 5) d.states[i] = (i / 5) % 2 ? 1.0f : 0.0f;
  for (std::size_t i = 3; i < n; i += 17) d.states[i] = (i / 17) % 2 ? 1.05f : -0.05f;
  d.drive = random_vector(rng, n, -1.5f, 1.5f);
  d.feedback = random_vector(rng, n, -1.0f, 1.0f);
  d.bias = random_vector(rng, static_cast<std::size_t>(units), -0.5f, 0.5f);
  d.target = random_vector(rng, n, 0.0f, 1.0f);
  return d;
}

eqprop::LayerStepOp layer_op(float* states, const float* drive, const float* feedback, const float* bias,
                             const float* target, float beta, float dt, eqprop::Integrator integrator,
                             int units) {
  eqprop::LayerStepOp op{};
  op.states = states;
  op.drive = drive;
  op.feedback = feedback;
  op.bias = bias;
  op.target = target;
  op.beta = beta;
  op.dt = dt;
  op.integrator = integrator;
  op.units = units;
  return op;
}

// A step through op(i), the GPU's thread mapping, in a plain loop.
std::vector<float> layer_step_per_element(const LayerData& d, const LayerCase& c, float dt) {
  std::vector<float> s = d.states;
  const auto op = layer_op(s.data(), d.drive.data(), c.feedback ? d.feedback.data() : nullptr, d.bias.data(),
                           c.target ? d.target.data() : nullptr, c.beta, dt, c.integrator, d.units);
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(s.size()); ++i) op(i);
  return s;
}

// A step through backend.run (the CPU backend's row(r) loop).
std::vector<float> layer_step_on_backend(Backend& backend, const LayerData& d, const LayerCase& c, float dt) {
  auto s = on_device(backend, d.states);
  auto drive = on_device(backend, d.drive);
  auto feedback = on_device(backend, d.feedback);
  auto bias = on_device(backend, d.bias);
  auto target = on_device(backend, d.target);
  backend.run(layer_op(s.data(), drive.data(), c.feedback ? feedback.data() : nullptr, bias.data(),
                       c.target ? target.data() : nullptr, c.beta, dt, c.integrator, d.units),
              static_cast<std::int64_t>(d.states.size()));
  backend.synchronize();
  return s.to_host();
}

float clip_float(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
double clip_double(double x) { return x < 0.0 ? 0.0 : (x > 1.0 ? 1.0 : x); }

// The float reference, in the kernel's order of operations: field = (drive + bias)
// + feedback; gradient flow s + dt * ((rho'(s) field - s) - beta (s - y)); fixed
// point (field + beta y) / (1 + beta); a layer that is not nudged has beta = y = 0.
std::vector<float> layer_step_float_reference(const LayerData& d, const LayerCase& c, float dt) {
  std::vector<float> out(d.states.size());
  for (std::size_t i = 0; i < out.size(); ++i) {
    const float s = d.states[i];
    float field = d.drive[i] + d.bias[i % d.units];
    if (c.feedback) field += d.feedback[i];
    const float beta = c.target ? c.beta : 0.0f;
    const float y = c.target ? d.target[i] : 0.0f;
    if (c.integrator == eqprop::Integrator::fixed_point) {
      out[i] = clip_float((field + beta * y) / (1.0f + beta));
    } else {
      const float rho_prime = (s >= 0.0f && s <= 1.0f) ? 1.0f : 0.0f;
      out[i] = clip_float(s + dt * (rho_prime * field - s - beta * (s - y)));
    }
  }
  return out;
}

// The double reference (DESIGN.md §1) and, per element, a budget of 1e-6 of the
// magnitude of the terms summed.
void layer_step_double_reference(const LayerData& d, const LayerCase& c, float dt, std::vector<double>& out,
                                 std::vector<double>& budget) {
  out.assign(d.states.size(), 0.0);
  budget.assign(d.states.size(), 0.0);
  for (std::size_t i = 0; i < out.size(); ++i) {
    const double s = d.states[i];
    const double drive = d.drive[i], bias = d.bias[i % d.units], feedback = c.feedback ? d.feedback[i] : 0.0;
    const double field = drive + bias + feedback;
    const double field_magnitude = std::fabs(drive) + std::fabs(bias) + std::fabs(feedback);
    const double beta = c.target ? c.beta : 0.0;
    const double y = c.target ? d.target[i] : 0.0;
    if (c.integrator == eqprop::Integrator::fixed_point) {
      out[i] = clip_double((field + beta * y) / (1.0 + beta));
      budget[i] = kRelative * (field_magnitude + std::fabs(beta * y)) / std::fabs(1.0 + beta);
    } else {
      const double rho_prime = (s >= 0.0 && s <= 1.0) ? 1.0 : 0.0;
      out[i] = clip_double(s + dt * (rho_prime * field - s - beta * (s - y)));
      budget[i] = kRelative * (std::fabs(s) + dt * (rho_prime * field_magnitude + std::fabs(s) +
                                                    std::fabs(beta) * (std::fabs(s) + std::fabs(y))));
    }
    budget[i] = std::max(budget[i], 1e-30);
  }
}

// ---------------------------------------------------------------------------------
// Row ops

eqprop::SoftmaxResidualOp softmax_op(const float* logits, const float* target, float* residual, int classes,
                                     const float* bias) {
  eqprop::SoftmaxResidualOp op{};
  op.logits = logits;
  op.target = target;
  op.residual = residual;
  op.classes = classes;
  op.bias = bias;
  return op;
}

// softmax(logits + bias) - target in double, with a budget of `ulps` float ulps of
// the magnitudes |p| + |y| (the error of p is relative; p - y then cancels).
void softmax_double_reference(const std::vector<float>& logits, const std::vector<float>& target,
                              const std::vector<float>* bias, int classes, double ulps,
                              std::vector<double>& out, std::vector<double>& budget) {
  const std::size_t rows = logits.size() / classes;
  out.assign(logits.size(), 0.0);
  budget.assign(logits.size(), 0.0);
  for (std::size_t r = 0; r < rows; ++r) {
    std::vector<double> z(classes);
    double max_z = -INFINITY;
    for (int k = 0; k < classes; ++k) {
      z[k] = double(logits[r * classes + k]) + (bias ? double((*bias)[k]) : 0.0);
      max_z = std::max(max_z, z[k]);
    }
    double total = 0.0;
    for (int k = 0; k < classes; ++k) total += std::exp(z[k] - max_z);
    for (int k = 0; k < classes; ++k) {
      const double p = std::exp(z[k] - max_z) / total;
      const double y = target[r * classes + k];
      out[r * classes + k] = p - y;
      budget[r * classes + k] = ulps * kFloatEps * (p + std::fabs(y)) + 1e-30;
    }
  }
}

eqprop::RowMetricsOp metrics_op(const float* outputs, const float* target, float* loss, float* correct,
                                eqprop::CostKind cost, int classes, const float* bias) {
  eqprop::RowMetricsOp op{};
  op.outputs = outputs;
  op.target = target;
  op.loss = loss;
  op.correct = correct;
  op.cost = cost;
  op.classes = classes;
  op.bias = bias;
  return op;
}

struct Metrics {
  std::vector<float> loss, correct;
};

Metrics metrics_on_backend(Backend& backend, const std::vector<float>& outputs, const std::vector<float>& target,
                           const std::vector<float>* bias, eqprop::CostKind cost, int classes) {
  const std::size_t rows = outputs.size() / classes;
  auto o = on_device(backend, outputs);
  auto y = on_device(backend, target);
  auto b = on_device(backend, bias ? *bias : std::vector<float>(classes, 0.0f));
  DeviceBuffer<float> loss(backend, rows), correct(backend, rows);
  backend.run(metrics_op(o.data(), y.data(), loss.data(), correct.data(), cost, classes, bias ? b.data() : nullptr),
              static_cast<std::int64_t>(rows));
  backend.synchronize();
  return {loss.to_host(), correct.to_host()};
}

// The first index of the maximum (ties go to the lowest index).
int first_argmax(const std::vector<double>& v) {
  int best = 0;
  for (int k = 1; k < static_cast<int>(v.size()); ++k)
    if (v[k] > v[best]) best = k;
  return best;
}

}  // namespace

// ---------------------------------------------------------------------------------

TEST_CASE("ops: hard_sigmoid and its derivative at and around the bounds") {
  struct Point {
    float s, rho, rho_prime;
  };
  // rho' is 1 on the closed interval [0, 1] (DESIGN.md §1).
  const Point points[] = {{-1.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 1.0f}, {0.5f, 0.5f, 1.0f},
                          {1.0f, 1.0f, 1.0f},  {2.0f, 1.0f, 0.0f}, {-1e-7f, 0.0f, 0.0f},
                          {1.0000001f, 1.0f, 0.0f}};
  for (const Point& p : points) {
    INFO("s = " << p.s);
    CHECK(eqprop::hard_sigmoid(p.s) == p.rho);
    CHECK(eqprop::hard_sigmoid_derivative(p.s) == p.rho_prime);
  }
  CHECK(std::isnan(eqprop::hard_sigmoid(kNaN)));  // clip must not hide a NaN
  CHECK(eqprop::hard_sigmoid_derivative(kNaN) == 0.0f);
  CHECK(eqprop::hard_sigmoid(kInf) == 1.0f);
  CHECK(eqprop::hard_sigmoid(-kInf) == 0.0f);
}

TEST_CASE("ops: LayerStepOp matches the float and double references, row(r) and op(i) are bit-identical") {
  auto backend = eqprop::make_backend("cpu");
  std::mt19937 rng(1234);
  const float dt = 0.3f;
  for (const Shape shape : kShapes) {
    const LayerData d = random_layer(rng, shape.batch, shape.units);
    for (const LayerCase& c : all_layer_cases()) {
      const std::string name = c.name() + ", batch " + std::to_string(shape.batch) + " x units " +
                               std::to_string(shape.units);
      INFO(name);
      const std::vector<float> per_element = layer_step_per_element(d, c, dt);
      const std::vector<float> rows = layer_step_on_backend(*backend, d, c, dt);
      check_bit_exact(name + ": backend (row) vs op(i)", rows, per_element);
      check_bit_exact(name + ": backend vs float reference", rows, layer_step_float_reference(d, c, dt));
      std::vector<double> expected, budget;
      layer_step_double_reference(d, c, dt, expected, budget);
      check_within(name + ": backend vs double reference", rows, expected, budget);
      for (float s : rows)
        if (!(s >= 0.0f && s <= 1.0f)) FAIL_CHECK(name << ": state " << s << " outside [0, 1]");
    }
  }
}

TEST_CASE("ops: LayerStepOp with beta = 0 and a target equals the un-nudged step") {
  // The free phase may pass the output layer's target with beta = 0.
  auto backend = eqprop::make_backend("cpu");
  std::mt19937 rng(77);
  const LayerData d = random_layer(rng, 7, 13);
  for (auto integrator : {eqprop::Integrator::gradient_flow, eqprop::Integrator::fixed_point}) {
    const LayerCase with_target{integrator, true, true, 0.0f};
    const LayerCase without{integrator, true, false, 0.0f};
    check_bit_exact(with_target.name(), layer_step_on_backend(*backend, d, with_target, 0.25f),
                    layer_step_on_backend(*backend, d, without, 0.25f));
  }
}

TEST_CASE("ops: LayerStepOp propagates NaN instead of clipping it away") {
  auto backend = eqprop::make_backend("cpu");
  std::mt19937 rng(99);
  for (const Shape shape : kShapes) {
    const LayerData clean = random_layer(rng, shape.batch, shape.units);
    const std::size_t n = clean.states.size();
    const std::vector<std::size_t> planted = {0, 1, n / 2, n - 1};
    for (const LayerCase& c : all_layer_cases()) {
      // What carries the NaN: the state (gradient flow reads it; the fixed-point map
      // s <- rho(h) does not read the old state at all), the drive, the feedback,
      // the target (when nudged with beta != 0).
      enum class Where { state, drive, feedback, target };
      for (Where where : {Where::state, Where::drive, Where::feedback, Where::target}) {
        if (where == Where::state && c.integrator == eqprop::Integrator::fixed_point) continue;
        if (where == Where::feedback && !c.feedback) continue;
        if (where == Where::target && !c.target) continue;
        LayerData d = clean;
        std::vector<float>& array = where == Where::state      ? d.states
                                    : where == Where::drive    ? d.drive
                                    : where == Where::feedback ? d.feedback
                                                               : d.target;
        for (std::size_t i : planted) array[i] = kNaN;
        const char* names[] = {"state", "drive", "feedback", "target"};
        const std::string name = c.name() + ", NaN in " + names[static_cast<int>(where)] + ", " +
                                 std::to_string(shape.batch) + " x " + std::to_string(shape.units);
        INFO(name);
        const std::vector<float> per_element = layer_step_per_element(d, c, 0.3f);
        const std::vector<float> rows = layer_step_on_backend(*backend, d, c, 0.3f);
        for (std::size_t i : planted) {
          CHECK_MESSAGE(std::isnan(rows[i]), name << ": backend gave " << rows[i] << " at " << i);
          CHECK_MESSAGE(std::isnan(per_element[i]), name << ": op(i) gave " << per_element[i] << " at " << i);
        }
        // Only the planted elements are NaN.
        std::size_t nan_count = 0;
        for (float s : rows) nan_count += std::isnan(s);
        CHECK(nan_count == planted.size());
      }
    }
  }
}

TEST_CASE("ops: SoftmaxResidualOp matches a double softmax, rows of the residual sum to 0") {
  auto backend = eqprop::make_backend("cpu");
  std::mt19937 rng(5);
  // Budget: expf within 1 ulp per term, a serial sum of `classes` terms, a
  // division: (classes + 4) ulp of |p| + |y| covers the worst case.
  for (const Shape shape : {Shape{7, 13}, Shape{8193, 10}}) {
    const int rows = shape.batch, classes = shape.units;
    const std::vector<float> logits = random_vector(rng, std::size_t(rows) * classes, -6.0f, 6.0f);
    const std::vector<float> target = random_one_hot(rng, rows, classes);
    const std::vector<float> bias = random_vector(rng, classes, -1.0f, 1.0f);
    const double ulps = classes + 4.0;
    for (bool with_bias : {false, true}) {
      const std::string name = std::string(with_bias ? "with bias" : "no bias") + ", " + std::to_string(rows) +
                               " x " + std::to_string(classes);
      INFO(name);
      auto l = on_device(*backend, logits);
      auto y = on_device(*backend, target);
      auto b = on_device(*backend, bias);
      DeviceBuffer<float> residual(*backend, logits.size());
      backend->run(softmax_op(l.data(), y.data(), residual.data(), classes, with_bias ? b.data() : nullptr), rows);
      backend->synchronize();
      const std::vector<float> out = residual.to_host();
      std::vector<double> expected, budget;
      softmax_double_reference(logits, target, with_bias ? &bias : nullptr, classes, ulps, expected, budget);
      check_within(name + ": residual vs double", out, expected, budget);

      // sum_k (p_k - y_k) = 0 for a one-hot y: within the row's summed budget.
      std::vector<float> row_sums(rows);
      std::vector<double> zeros(rows, 0.0), sum_budget(rows, 0.0);
      for (int r = 0; r < rows; ++r) {
        double sum = 0.0;
        for (int k = 0; k < classes; ++k) {
          sum += out[std::size_t(r) * classes + k];
          sum_budget[r] += budget[std::size_t(r) * classes + k];
        }
        row_sums[r] = static_cast<float>(sum);
      }
      check_within(name + ": row sums of the residual", row_sums, zeros, sum_budget);

      // The residual may alias the logits.
      auto in_place = on_device(*backend, logits);
      backend->run(softmax_op(in_place.data(), y.data(), in_place.data(), classes, with_bias ? b.data() : nullptr),
                   rows);
      backend->synchronize();
      check_bit_exact(name + ": in place vs out of place", in_place.to_host(), out);
    }
  }
}

TEST_CASE("ops: SoftmaxResidualOp does not overflow on large logits") {
  auto backend = eqprop::make_backend("cpu");
  const int classes = 4;
  const std::vector<float> logits = {1000.0f, 999.0f, -1000.0f, 0.0f,     // max first
                                     -1000.0f, 1000.0f, 1000.0f, 80.0f,   // a tie at the max
                                     3e38f,    -3e38f,  0.0f,    1.0f};   // near FLT_MAX
  const std::vector<float> target = {1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0};
  const std::vector<float> bias = {0.0f, 0.0f, 0.0f, 0.0f};
  auto l = on_device(*backend, logits);
  auto y = on_device(*backend, target);
  DeviceBuffer<float> residual(*backend, logits.size());
  backend->run(softmax_op(l.data(), y.data(), residual.data(), classes, nullptr), 3);
  const std::vector<float> out = residual.to_host();
  for (float v : out) CHECK(std::isfinite(v));
  std::vector<double> expected, budget;
  softmax_double_reference(logits, target, nullptr, classes, classes + 4.0, expected, budget);
  check_within("large logits", out, expected, budget);
}

TEST_CASE("ops: ColumnSumOp is the serial float column sum, with and without b") {
  auto backend = eqprop::make_backend("cpu");
  std::mt19937 rng(11);
  for (const Shape shape : {Shape{7, 13}, Shape{64, 300}, Shape{5, 8200}}) {
    const int batch = shape.batch, units = shape.units;
    const std::vector<float> a = random_vector(rng, std::size_t(batch) * units, -1.0f, 1.0f);
    const std::vector<float> b = random_vector(rng, std::size_t(batch) * units, -1.0f, 1.0f);
    const float scale_a = 1.0f / 0.02f, scale_b = -1.0f / 0.02f;
    for (bool with_b : {false, true}) {
      const std::string name = std::string(with_b ? "a and b" : "a only") + ", " + std::to_string(batch) +
                               " x " + std::to_string(units);
      INFO(name);
      auto da = on_device(*backend, a);
      auto db = on_device(*backend, b);
      DeviceBuffer<float> out(*backend, units);
      eqprop::ColumnSumOp op{};
      op.a = da.data();
      op.b = with_b ? db.data() : nullptr;
      op.out = out.data();
      op.scale_a = scale_a;
      op.scale_b = scale_b;
      op.batch = batch;
      op.units = units;
      backend->run(op, units);
      backend->synchronize();
      const std::vector<float> result = out.to_host();

      std::vector<float> float_reference(units);
      std::vector<double> expected(units), budget(units);
      for (int j = 0; j < units; ++j) {
        float sum_a = 0.0f, sum_b = 0.0f;
        double exact_a = 0.0, exact_b = 0.0, magnitude_a = 0.0, magnitude_b = 0.0;
        for (int r = 0; r < batch; ++r) {
          const std::size_t i = std::size_t(r) * units + j;
          sum_a += a[i];
          exact_a += a[i];
          magnitude_a += std::fabs(a[i]);
          if (with_b) {
            sum_b += b[i];
            exact_b += b[i];
            magnitude_b += std::fabs(b[i]);
          }
        }
        float_reference[j] = scale_a * sum_a + scale_b * sum_b;
        expected[j] = double(scale_a) * exact_a + double(scale_b) * exact_b;
        // A serial sum of n terms errs by at most n * 2^-24 of sum |terms|; the
        // scaling and the final add by a few more roundings of the result.
        const double sum_bound = (batch + 3) * kFloatEps / 2;
        budget[j] = std::max(sum_bound * (std::fabs(scale_a) * magnitude_a + std::fabs(scale_b) * magnitude_b),
                             1e-30);
      }
      check_bit_exact(name + ": vs float reference", result, float_reference);
      check_within(name + ": vs double reference", result, expected, budget);
    }
  }
}

TEST_CASE("ops: AxpbyOp, including out aliasing x or y") {
  auto backend = eqprop::make_backend("cpu");
  std::mt19937 rng(12);
  for (std::size_t count : {std::size_t{91}, std::size_t{20011}}) {
    const std::vector<float> x = random_vector(rng, count, -2.0f, 2.0f);
    const std::vector<float> y = random_vector(rng, count, -2.0f, 2.0f);
    const float alpha = 0.7f, beta = -1.3f;
    std::vector<float> float_reference(count);
    std::vector<double> expected(count), budget(count);
    for (std::size_t i = 0; i < count; ++i) {
      float_reference[i] = alpha * x[i] + beta * y[i];
      expected[i] = double(alpha) * x[i] + double(beta) * y[i];
      budget[i] = kRelative * (std::fabs(double(alpha) * x[i]) + std::fabs(double(beta) * y[i])) + 1e-30;
    }
    const std::string size = "count " + std::to_string(count);
    INFO(size);
    for (int alias = 0; alias < 3; ++alias) {  // 0: separate out, 1: out = x, 2: out = y
      auto dx = on_device(*backend, x);
      auto dy = on_device(*backend, y);
      DeviceBuffer<float> separate(*backend, count);
      float* out = alias == 0 ? separate.data() : alias == 1 ? dx.data() : dy.data();
      eqprop::AxpbyOp op{};
      op.x = dx.data();
      op.y = dy.data();
      op.out = out;
      op.alpha = alpha;
      op.beta = beta;
      backend->run(op, static_cast<std::int64_t>(count));
      backend->synchronize();
      const std::vector<float> result = alias == 0 ? separate.to_host() : alias == 1 ? dx.to_host() : dy.to_host();
      const std::string name = size + (alias == 0 ? ", separate out" : alias == 1 ? ", out = x" : ", out = y");
      check_bit_exact(name + ": vs float reference", result, float_reference);
      check_within(name + ": vs double reference", result, expected, budget);
    }
  }
}

TEST_CASE("ops: SgdMomentumOp follows PyTorch's SGD (momentum, no dampening, L2 decay) over 3 steps") {
  auto backend = eqprop::make_backend("cpu");
  std::mt19937 rng(13);
  const float learning_rate = 0.05f, momentum = 0.9f, weight_decay = 5e-4f;
  for (std::size_t count : {std::size_t{91}, std::size_t{20011}}) {
    INFO("count " << count);
    std::vector<float> weights = random_vector(rng, count, -1.0f, 1.0f);
    std::vector<float> float_w = weights, float_v(count, 0.0f);
    std::vector<double> double_w(weights.begin(), weights.end()), double_v(count, 0.0);
    // Error bound of the float recursion, per element: grows by a few roundings of
    // the magnitudes of each update.
    std::vector<double> w_magnitude(count), v_magnitude(count, 0.0);
    for (std::size_t i = 0; i < count; ++i) w_magnitude[i] = std::fabs(weights[i]);
    auto dw = on_device(*backend, weights);
    auto dlr = on_device(*backend, {learning_rate});  // read by the op when it runs
    DeviceBuffer<float> dv(*backend, count);
    dv.zero();
    for (int step = 0; step < 3; ++step) {
      const std::vector<float> gradient = random_vector(rng, count, -1.0f, 1.0f);
      auto dg = on_device(*backend, gradient);
      eqprop::SgdMomentumOp op{};
      op.weights = dw.data();
      op.velocity = dv.data();
      op.gradient = dg.data();
      op.learning_rate = dlr.data();
      op.momentum = momentum;
      op.weight_decay = weight_decay;
      backend->run(op, static_cast<std::int64_t>(count));
      backend->synchronize();
      for (std::size_t i = 0; i < count; ++i) {
        const float g = gradient[i] + weight_decay * float_w[i];
        float_v[i] = momentum * float_v[i] + g;
        float_w[i] -= learning_rate * float_v[i];
        const double g_exact = double(gradient[i]) + double(weight_decay) * double_w[i];
        double_v[i] = double(momentum) * double_v[i] + g_exact;
        double_w[i] -= double(learning_rate) * double_v[i];
        v_magnitude[i] = double(momentum) * v_magnitude[i] + std::fabs(gradient[i]) +
                         double(weight_decay) * w_magnitude[i];
        w_magnitude[i] += double(learning_rate) * v_magnitude[i];
      }
      const std::string name = "step " + std::to_string(step + 1);
      check_bit_exact(name + ": weights vs float reference", dw.to_host(), float_w);
      check_bit_exact(name + ": velocity vs float reference", dv.to_host(), float_v);
      std::vector<double> w_budget(count), v_budget(count);
      for (std::size_t i = 0; i < count; ++i) {
        w_budget[i] = kRelative * w_magnitude[i] + 1e-30;
        v_budget[i] = kRelative * v_magnitude[i] + 1e-30;
      }
      check_within(name + ": weights vs double reference", dw.to_host(), double_w, w_budget);
      check_within(name + ": velocity vs double reference", dv.to_host(), double_v, v_budget);
    }
  }
}

TEST_CASE("ops: SgdMomentumOp's first step from zero velocity is w - lr (grad + wd w)") {
  // A hand-checked value: w = 1, grad = 0.5, wd = 0.1, m = 0.9, lr = 0.1 ->
  // g = 0.6, v = 0.6, w = 0.94; second step with grad 0.5: g = 0.594,
  // v = 0.54 + 0.594 = 1.134, w = 0.94 - 0.1134 = 0.8266.
  auto backend = eqprop::make_backend("cpu");
  auto w = on_device(*backend, {1.0f});
  auto v = on_device(*backend, {0.0f});
  auto g = on_device(*backend, {0.5f});
  auto lr = on_device(*backend, {0.1f});
  eqprop::SgdMomentumOp op{};
  op.weights = w.data();
  op.velocity = v.data();
  op.gradient = g.data();
  op.learning_rate = lr.data();
  op.momentum = 0.9f;
  op.weight_decay = 0.1f;
  backend->run(op, 1);
  CHECK(w.to_host()[0] == doctest::Approx(0.94).epsilon(1e-6));
  CHECK(v.to_host()[0] == doctest::Approx(0.6).epsilon(1e-6));
  backend->run(op, 1);
  CHECK(v.to_host()[0] == doctest::Approx(1.134).epsilon(1e-6));
  CHECK(w.to_host()[0] == doctest::Approx(0.8266).epsilon(1e-6));
}

TEST_CASE("ops: RowMetricsOp loss and correctness for mse and cross-entropy, with and without bias") {
  auto backend = eqprop::make_backend("cpu");
  std::mt19937 rng(14);
  for (const Shape shape : {Shape{7, 13}, Shape{8193, 10}}) {
    const int rows = shape.batch, classes = shape.units;
    const std::vector<float> target = random_one_hot(rng, rows, classes);
    const std::vector<float> bias = random_vector(rng, classes, -0.5f, 0.5f);
    for (auto cost : {eqprop::CostKind::mse, eqprop::CostKind::cross_entropy}) {
      const bool mse = cost == eqprop::CostKind::mse;
      const std::vector<float> outputs =
          mse ? random_vector(rng, std::size_t(rows) * classes, 0.0f, 1.0f)
              : random_vector(rng, std::size_t(rows) * classes, -8.0f, 8.0f);
      for (bool with_bias : {false, true}) {
        const std::string name = std::string(mse ? "mse" : "cross-entropy") + (with_bias ? ", bias" : ", no bias") +
                                 ", " + std::to_string(rows) + " x " + std::to_string(classes);
        INFO(name);
        const Metrics m = metrics_on_backend(*backend, outputs, target, with_bias ? &bias : nullptr, cost, classes);
        std::vector<float> float_loss(rows), expected_correct(rows);
        std::vector<double> expected_loss(rows), budget(rows);
        for (int r = 0; r < rows; ++r) {
          std::vector<double> z(classes);
          int label = 0;
          for (int k = 0; k < classes; ++k) {
            const std::size_t i = std::size_t(r) * classes + k;
            z[k] = double(outputs[i]) + (with_bias ? double(bias[k]) : 0.0);
            if (target[i] > target[std::size_t(r) * classes + label]) label = k;
          }
          expected_correct[r] = first_argmax(z) == label ? 1.0f : 0.0f;
          if (mse) {
            double loss = 0.0, magnitude = 0.0;
            float loss_float = 0.0f;
            for (int k = 0; k < classes; ++k) {
              const std::size_t i = std::size_t(r) * classes + k;
              const double e = z[k] - target[i];
              loss += 0.5 * e * e;
              magnitude += 0.5 * (std::fabs(z[k]) + target[i]) * (std::fabs(z[k]) + target[i]);
              const float o = outputs[i] + (with_bias ? bias[k] : 0.0f);
              loss_float += 0.5f * (o - target[i]) * (o - target[i]);
            }
            expected_loss[r] = loss;
            float_loss[r] = loss_float;
            // A serial sum of `classes` terms, each a few roundings.
            budget[r] = (classes + 4) * kFloatEps / 2 * magnitude + 1e-30;
          } else {
            const double max_z = *std::max_element(z.begin(), z.end());
            double total = 0.0;
            for (double v : z) total += std::exp(v - max_z);
            expected_loss[r] = std::log(total) + max_z - z[label];
            // log-sum-exp within (classes + 4) ulp of its terms' magnitudes.
            budget[r] = (classes + 4) * kFloatEps *
                            (std::fabs(std::log(total)) + std::fabs(max_z) + std::fabs(z[label]) + 1.0) +
                        1e-30;
          }
        }
        check_bit_exact(name + ": correct", m.correct, expected_correct);
        if (mse) check_bit_exact(name + ": loss vs float reference", m.loss, float_loss);
        check_within(name + ": loss vs double reference", m.loss, expected_loss, budget);
      }
    }
  }
}

TEST_CASE("ops: RowMetricsOp argmax ties pick the first index, NaN outputs give a NaN loss") {
  auto backend = eqprop::make_backend("cpu");
  const int classes = 4;
  // Ties at the maximum: the first tied index is the prediction.
  const std::vector<float> tied = {0.2f, 0.9f, 0.9f, 0.1f,   // label 1: correct
                                   0.2f, 0.9f, 0.9f, 0.1f,   // label 2: not correct
                                   0.5f, 0.5f, 0.5f, 0.5f,   // label 0: correct
                                   0.5f, 0.5f, 0.5f, 0.5f};  // label 3: not correct
  const std::vector<float> tied_target = {0, 1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1};
  for (auto cost : {eqprop::CostKind::mse, eqprop::CostKind::cross_entropy}) {
    INFO((cost == eqprop::CostKind::mse ? "mse" : "cross-entropy"));
    const Metrics m = metrics_on_backend(*backend, tied, tied_target, nullptr, cost, classes);
    CHECK(m.correct == std::vector<float>{1.0f, 0.0f, 1.0f, 0.0f});
    // A tie created by the bias: outputs 0.3, 0.1 with bias 0, 0.2.
    const std::vector<float> bias = {0.0f, 0.25f, 0.0f, 0.0f};
    const Metrics biased = metrics_on_backend(*backend, {0.5f, 0.25f, 0.0f, 0.0f}, {0, 1, 0, 0}, &bias, cost, classes);
    CHECK(biased.correct[0] == 0.0f);  // 0.5 vs 0.25 + 0.25: a tie, index 0 wins

    // NaN anywhere in a row (first, middle, last, all) gives a NaN loss for that row
    // only.
    const std::vector<float> with_nan = {kNaN, 0.1f, 0.2f, 0.3f,   //
                                         0.1f, kNaN, 0.2f, 0.3f,   //
                                         0.1f, 0.2f, 0.3f, kNaN,   //
                                         kNaN, kNaN, kNaN, kNaN,   //
                                         0.1f, 0.2f, 0.3f, 0.4f};  // a clean row
    const std::vector<float> target = {0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1};
    const Metrics nan_metrics = metrics_on_backend(*backend, with_nan, target, nullptr, cost, classes);
    for (int r = 0; r < 4; ++r) CHECK_MESSAGE(std::isnan(nan_metrics.loss[r]), "row " << r << ": " << nan_metrics.loss[r]);
    CHECK(std::isfinite(nan_metrics.loss[4]));
    CHECK(nan_metrics.correct[4] == 1.0f);
    // A NaN bias poisons every row.
    const std::vector<float> nan_bias = {0.0f, 0.0f, kNaN, 0.0f};
    const Metrics poisoned = metrics_on_backend(*backend, tied, tied_target, &nan_bias, cost, classes);
    for (float l : poisoned.loss) CHECK(std::isnan(l));
  }
}

TEST_CASE("ops: RowMetricsOp cross-entropy does not overflow on large logits") {
  auto backend = eqprop::make_backend("cpu");
  const int classes = 3;
  const std::vector<float> logits = {1000.0f, 0.0f, -1000.0f, 1000.0f, 1000.0f, 0.0f};
  const std::vector<float> target = {1, 0, 0, 0, 1, 0};
  const Metrics m = metrics_on_backend(*backend, logits, target, nullptr, eqprop::CostKind::cross_entropy, classes);
  for (float l : m.loss) CHECK(std::isfinite(l));
  // Exact values: log(1 + e^-1000 + e^-2000) = 0 and log 2 (two equal maxima).
  // The kernel forms (log total + max) - logit[label], so its error is a few ulp
  // of the logits' magnitude (1000), not of the loss: the same budget as above.
  const std::vector<double> expected = {0.0, std::log(2.0)};
  const std::vector<double> budget = {(classes + 4) * kFloatEps * (0.0 + 1000.0 + 1000.0 + 1.0),
                                      (classes + 4) * kFloatEps * (std::log(2.0) + 1000.0 + 1000.0 + 1.0)};
  check_within("cross-entropy at logits 1000", m.loss, expected, budget);
  CHECK(m.correct[0] == 1.0f);
  CHECK(m.correct[1] == 0.0f);  // the tie goes to index 0, the label is 1
}

TEST_CASE("ops: count_nonfinite counts planted NaN, +Inf and -Inf and nothing else") {
  auto backend = eqprop::make_backend("cpu");
  std::mt19937 rng(15);
  for (std::size_t count : {std::size_t{1}, std::size_t{37}, std::size_t{20011}}) {
    INFO("count " << count);
    std::vector<float> data = random_vector(rng, count, -1.0f, 1.0f);
    // Extreme finite values are not counted.
    data[0] = FLT_MAX;
    if (count > 3) {
      data[1] = -FLT_MAX;
      data[2] = FLT_MIN / 4.0f;  // subnormal
      data[3] = -0.0f;
    }
    auto clean = on_device(*backend, data);
    CHECK(backend->count_nonfinite(clean.data(), static_cast<std::int64_t>(count)) == 0);
    const float planted_values[] = {kNaN, kInf, -kInf};
    // Up to 9 distinct positions spread over the array, the last element included.
    std::set<std::size_t> positions;
    for (std::size_t k = 0; k < 9; ++k) positions.insert(count - 1 - k * (count / 9));
    std::int64_t planted = 0;
    for (std::size_t i : positions) data[i] = planted_values[planted++ % 3];
    auto dirty = on_device(*backend, data);
    CHECK(backend->count_nonfinite(dirty.data(), static_cast<std::int64_t>(count)) == planted);
    // Each kind alone.
    for (float bad : planted_values) {
      std::vector<float> one = random_vector(rng, count, -1.0f, 1.0f);
      one[count / 2] = bad;
      auto d = on_device(*backend, one);
      CHECK(backend->count_nonfinite(d.data(), static_cast<std::int64_t>(count)) == 1);
    }
  }
}
