// The step-parameter block (kernels/step_parameters.h) and the recording policy of
// training.cuda_graphs (engine/captured_step.h) on the CPU: values read through the
// block are the values passed before, a changed learning rate reaches the optimizer
// mid-run, a step makes the same calls with graphs on and off, and the policy
// records, replays, falls back and refuses as documented (with a stand-in capture:
// the CPU backend records nothing). Recording on a GPU: tests/cuda/test_cuda_captured_step.cpp.
#include <doctest/doctest.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/captured_step.h"
#include "engine/trainer.h"
#include "kernels/counting_backend.h"
#include "kernels/device_buffer.h"
#include "kernels/adc_read.h"
#include "kernels/dac_write.h"
#include "kernels/error.h"
#include "kernels/layer_step.h"
#include "kernels/step_parameters.h"
#include "tests/test_util.h"
#include "tests/tolerance.h"

namespace eqprop {
namespace {

Config small_dense(double lr, const std::string& cuda_graphs = "auto") {
  return parse_config(nlohmann::json{{"model", {{"layers", {16, 12, 4}}}},
                                     {"optimizer", {{"lr", lr}}},
                                     {"training", {{"batch_size", 8}, {"cuda_graphs", cuda_graphs}}}},
                      "test");
}

struct Batch {
  DeviceBuffer<float> x, target;
  Batch(Backend& backend, int batch, int inputs, int classes, unsigned seed)
      : x(backend, std::size_t(batch) * inputs), target(backend, std::size_t(batch) * classes) {
    std::mt19937 rng(seed);
    x.copy_from_host(test::random_vector(rng, x.size(), 0.0f, 1.0f));
    target.copy_from_host(test::random_one_hot(rng, batch, classes));
  }
};

std::vector<std::vector<float>> weights_of(Trainer& trainer) {
  std::vector<std::vector<float>> result;
  for (const DeviceBuffer<float>& w : trainer.model().parameters().weights) result.push_back(w.to_host());
  return result;
}

}  // namespace

TEST_CASE("step parameters: a learning rate changed mid-run through the block reaches the optimizer") {
  auto cpu = make_backend("cpu");
  // lr 0.05 at scales (1, 0.5) and lr 0.1 at scales (0.5, 0.25) are the same rates,
  // 0.05 then 0.025, bit for bit (scaling by a power of two is exact): the two
  // runs must agree exactly, and a scale of 0 must leave the weights as they are.
  Trainer a(*cpu, small_dense(0.05)), b(*cpu, small_dense(0.1));
  const Batch data(*cpu, 8, 16, 4, 3);
  const float scales_a[] = {1.0f, 0.5f}, scales_b[] = {0.5f, 0.25f};
  for (int step = 0; step < 2; ++step) {
    a.train_step(data.x.data(), data.target.data(), 8, step, scales_a[step]);
    b.train_step(data.x.data(), data.target.data(), 8, step, scales_b[step]);
  }
  const auto wa = weights_of(a), wb = weights_of(b);
  for (std::size_t l = 0; l < wa.size(); ++l) test::check_bit_exact("layer " + std::to_string(l), wa[l], wb[l]);
  a.train_step(data.x.data(), data.target.data(), 8, 2, 0.0f);
  const auto frozen = weights_of(a);
  for (std::size_t l = 0; l < wa.size(); ++l)
    test::check_bit_exact("layer " + std::to_string(l) + " after a step at learning rate 0", frozen[l], wa[l]);
  a.train_step(data.x.data(), data.target.data(), 8, 3, 1.0f);
  CHECK(weights_of(a)[0] != wa[0]);
}

TEST_CASE("step parameters: a step makes the same calls with cuda_graphs on and off, plus one block upload") {
  // On the CPU nothing is recorded, so `on` runs the step directly: the counts of
  // tests/test_counting_backend.cpp hold for both, and the block's upload is one
  // host-to-device copy that does not wait.
  auto cpu = make_backend("cpu");
  BackendCounts per_mode[2];
  std::vector<std::vector<float>> results[2];
  for (int on = 0; on < 2; ++on) {
    CountingBackend counting(*cpu);
    Trainer trainer(counting, small_dense(0.05, on ? "on" : "off"));
    CHECK_FALSE(trainer.captured_step().recording());
    const Batch data(*cpu, 8, 16, 4, 4);
    trainer.train_step(data.x.data(), data.target.data(), 8, 0, 1.0f);  // warm-up
    const BackendCounts before = counting.counts();
    trainer.train_step(data.x.data(), data.target.data(), 8, 1, 1.0f);
    per_mode[on] = counting.counts() - before;
    results[on] = weights_of(trainer);
  }
  for (const BackendCounts& counts : per_mode) {
    CHECK(counts.host_syncs == 0);
    CHECK(counts.host_to_device_copies == 1);
    CHECK(counts.bytes_host_to_device == static_cast<std::int64_t>(sizeof(StepParameters)));
  }
  CHECK(per_mode[0].kernel_launches == per_mode[1].kernel_launches);
  CHECK(per_mode[0].blas_calls == per_mode[1].blas_calls);
  for (std::size_t l = 0; l < results[0].size(); ++l)
    test::check_bit_exact("layer " + std::to_string(l), results[1][l], results[0][l]);
}

TEST_CASE("step parameters: ops that read their random keys from the block draw afresh when it changes") {
  // A replayed step runs the recorded ops again with their launch arguments; only
  // the block has changed. Each op that keys its draws on the step (Langevin noise,
  // DAC write, ADC read) must then draw as a freshly made op with the new step's
  // keys as arguments would.
  auto cpu = make_backend("cpu");
  StepParameterBlock block(*cpu, 1);
  const int rows = 4, units = 6, count = rows * units;
  std::mt19937 rng(8);
  const std::vector<float> start = test::random_vector(rng, count, 0.0f, 1.0f);
  const std::vector<float> drive = test::random_vector(rng, count, -1.0f, 1.0f);
  DeviceBuffer<float> replayed(*cpu, count), fresh(*cpu, count), field(*cpu, count), bias(*cpu, units);
  field.copy_from_host(drive);
  bias.copy_from_host(std::vector<float>(units, 0.1f));
  const std::uint64_t row_stride = 10, local_index = 3;  // a slice of a wider layout
  LayerStepOp recorded_step{replayed.data(), field.data(), nullptr, bias.data(), nullptr, 0.0f, 0.5f,
                            Integrator::fixed_point, units};
  recorded_step.noise_sigma = 0.3f;
  recorded_step.noise_seed = 5;
  recorded_step.noise_index = local_index;
  recorded_step.noise_row_stride = static_cast<std::int64_t>(row_stride);
  recorded_step.noise_step = noise_step_key(1, 2);
  recorded_step.noise_first_sample = block.first_sample();
  const QuantizerSpec quantizer{6, LevelConvention::asymmetric, Rounding::stochastic, -1.0f, 1.0f, nullptr};
  DeviceBuffer<float> source(*cpu, count), written_replayed(*cpu, count), written_fresh(*cpu, count);
  source.copy_from_host(drive);
  DacWriteOp recorded_write{source.data(), nullptr, written_replayed.data(), quantizer, 0.02f, 0.0f, 0.0f, 11, 7,
                            DrawCount(block.step_number(), 1), count};
  AdcReadOp recorded_read{source.data(), written_replayed.data(),
                          AdcSpec{quantizer, 0.5f, NoiseUnit::lsb, 11, 9, DrawCount(block.step_number(), 0)}, count};
  for (const std::uint32_t step : {4u, 17u}) {
    CAPTURE(step);
    const std::uint64_t first_sample = std::uint64_t(step) * 128;
    block.host(0).step_number = step;
    block.host(0).first_sample = first_sample;
    block.upload(0);
    replayed.copy_from_host(start);
    fresh.copy_from_host(start);
    cpu->run(recorded_step, count);
    LayerStepOp fresh_step = recorded_step;
    fresh_step.states = fresh.data();
    fresh_step.noise_first_sample = nullptr;
    fresh_step.noise_index = local_index + first_sample * row_stride;
    cpu->run(fresh_step, count);
    test::check_bit_exact("Langevin step", replayed.to_host(), fresh.to_host());
    CHECK(replayed.to_host() != start);

    cpu->run(recorded_write, count);
    DacWriteOp fresh_write = recorded_write;
    fresh_write.effective = written_fresh.data();
    fresh_write.write_count = DrawCount(step + 1);
    cpu->run(fresh_write, count);
    test::check_bit_exact("DAC write", written_replayed.to_host(), written_fresh.to_host());

    cpu->run(recorded_read, count);
    AdcReadOp fresh_read = recorded_read;
    fresh_read.out = written_fresh.data();
    fresh_read.adc.read_count = DrawCount(step);
    cpu->run(fresh_read, count);
    test::check_bit_exact("ADC read", written_replayed.to_host(), written_fresh.to_host());
  }
}

TEST_CASE("captured step: training.cuda_graphs = on is refused, naming why, where a step cannot be recorded") {
  const auto refused = [](nlohmann::json user, const std::string& reason) {
    user["training"]["cuda_graphs"] = "on";
    const std::string message = test::thrown_message<ConfigError>([&] { parse_config(user, "test"); });
    test::check_contains(message, {"training.cuda_graphs", reason});
    user["training"]["cuda_graphs"] = "auto";  // auto takes the same config and runs it directly
    CHECK(step_capture_refusal(parse_config(user, "test")) != "");
  };
  refused({{"dynamics", {{"tolerance", 0.01}}}}, "dynamics.tolerance");
  refused({{"training", {{"algorithm", "implicit"}}}}, "training.algorithm = implicit");
  refused(read_config_file(std::string(EQPROP_SOURCE_DIR) + "/configs/fashion_mnist_pc.json"), "model.kind");
  CHECK(step_capture_refusal(small_dense(0.05, "on")) == "");
  // Per-step random keys and the sign of beta no longer stop a recording: the keys
  // come from the step-parameter block, and each sign has its own recording.
  for (const nlohmann::json& accepted :
       {nlohmann::json{{"dynamics", {{"noise", 0.01}}}}, nlohmann::json{{"dynamics", {{"temperature", 0.01}}}},
        nlohmann::json{{"hardware", {{"dac", {{"enabled", true}}}, {"adc", {{"enabled", true}}}}}},
        nlohmann::json{{"ep", {{"nudging", "one_sided"}, {"random_sign", true}}}}}) {
    CAPTURE(accepted.dump());
    nlohmann::json user = accepted;
    user["training"]["cuda_graphs"] = "on";
    CHECK(step_capture_refusal(parse_config(user, "test")) == "");
  }
  auto cpu = make_backend("cpu");
  std::string why;
  CHECK_FALSE(records_steps(small_dense(0.05, "on"), *cpu, 1, &why));
  test::check_contains(why, {"cpu backend"});
  CHECK_FALSE(records_steps(small_dense(0.05, "off"), *cpu, 1, &why));
  test::check_contains(why, {"training.cuda_graphs = off"});
}

namespace {

// A stand-in for the CUDA capture: counts what the policy asks of it. Its "graph"
// replays nothing; `fail` makes the next recording fail as a host wait would.
struct CaptureLog {
  int begins = 0, ends = 0, aborts = 0, replays = 0;
  bool fail = false;
};

class StandInGraph final : public CapturedGraph {
 public:
  explicit StandInGraph(CaptureLog& log) : log_(log) {}
  void replay() override { ++log_.replays; }
  std::size_t nodes() const override { return 1; }

 private:
  CaptureLog& log_;
};

class StandInCapture final : public StreamCapture {
 public:
  explicit StandInCapture(CaptureLog& log) : log_(log) {}
  void begin_capture() override { ++log_.begins; }
  std::unique_ptr<CapturedGraph> end_capture() override {
    ++log_.ends;
    return std::make_unique<StandInGraph>(log_);
  }
  void abort_capture() noexcept override { ++log_.aborts; }

 private:
  CaptureLog& log_;
};

class RecordingCpuBackend final : public CountingBackend {
 public:
  RecordingCpuBackend(Backend& inner, CaptureLog& log) : CountingBackend(inner), capture_(log) {}
  StreamCapture* stream_capture() override { return &capture_; }

 private:
  StandInCapture capture_;
};

}  // namespace

TEST_CASE("captured step: each shape runs once directly, is recorded once, then replayed, and failures fall back") {
  auto cpu = make_backend("cpu");
  CaptureLog log;
  RecordingCpuBackend backend(*cpu, log);
  int direct = 0;
  const auto step = [&] {
    ++direct;
    if (log.fail && log.begins > log.ends + log.aborts) throw DeviceError("a host wait inside the capture");
  };
  float inputs[2] = {}, targets[2] = {};
  const StepShape slot0{&inputs[0], &targets[0], 8}, slot1{&inputs[1], &targets[1], 8};

  SUBCASE("two shapes, then more shapes than recordings") {
    CapturedStep captured(backend, true, false);
    CHECK(captured.recording());
    captured.run(slot0, step);  // warm-up
    CHECK((direct == 1 && log.begins == 0));
    captured.run(slot0, step);  // recorded (the enqueue runs into the capture), then replayed
    CHECK((direct == 2 && log.begins == 1 && log.ends == 1 && log.replays == 1));
    captured.run(slot0, step);
    captured.run(slot0, step);
    CHECK((direct == 2 && log.replays == 3));
    captured.run(slot1, step);
    captured.run(slot1, step);
    captured.run(slot1, step);
    CHECK((direct == 4 && log.ends == 2 && log.replays == 5 && captured.graphs() == 2));
    // kMaxGraphs - 2 more shapes fit; the two after them always run directly.
    const int fitting = static_cast<int>(CapturedStep::kMaxGraphs) - 2;
    std::vector<float> more(static_cast<std::size_t>(fitting + 2));
    for (int k = 0; k < fitting + 2; ++k) {
      const StepShape other{&more[std::size_t(k)], &targets[0], 4};
      for (int run = 0; run < 3; ++run) captured.run(other, step);
    }
    CHECK(captured.graphs() == CapturedStep::kMaxGraphs);
    const int direct_so_far = 4 + fitting * 2 + 2 * 3;
    CHECK(direct == direct_so_far);
    // The sign of beta is part of the shape: the other sign is another recording.
    captured.forget();
    StepShape negative = slot0;
    negative.beta_sign = -1.0f;
    for (int run = 0; run < 3; ++run) {
      captured.run(slot0, step);
      captured.run(negative, step);
    }
    CHECK(captured.graphs() == 2);
    CHECK(direct == direct_so_far + 4);
    // After forget() a shape warms up and records again.
    captured.forget();
    CHECK(captured.graphs() == 0);
    captured.run(slot0, step);
    captured.run(slot0, step);
    CHECK((direct == direct_so_far + 6 && log.ends == static_cast<int>(CapturedStep::kMaxGraphs) + 3));
  }
  SUBCASE("a step that cannot be recorded runs directly, and recording stops (auto)") {
    CapturedStep captured(backend, true, false);
    log.fail = true;
    captured.run(slot0, step);
    captured.run(slot0, step);  // the capture fails: aborted, then the step runs directly
    CHECK((log.aborts == 1 && direct == 3));
    CHECK_FALSE(captured.recording());
    test::check_contains(captured.failure(), {"host wait"});
    captured.run(slot0, step);
    CHECK((direct == 4 && log.begins == 1 && log.replays == 0));
  }
  SUBCASE("under training.cuda_graphs = on the failure is an error") {
    CapturedStep captured(backend, true, true);
    log.fail = true;
    captured.run(slot0, step);
    const std::string message = test::thrown_message<DeviceError>([&] { captured.run(slot0, step); });
    test::check_contains(message, {"training.cuda_graphs = on", "host wait"});
    CHECK(log.aborts == 1);
  }
  SUBCASE("not recording: every step runs directly") {
    CapturedStep captured(backend, false, false);
    for (int k = 0; k < 3; ++k) captured.run(slot0, step);
    CHECK((direct == 3 && log.begins == 0));
  }
}

namespace {

// small_dense with `extra` merged in and training.cuda_graphs set.
Config small_dense_with(const nlohmann::json& extra, const std::string& cuda_graphs) {
  nlohmann::json user{{"model", {{"layers", {16, 12, 4}}}},
                      {"optimizer", {{"lr", 0.05}}},
                      {"training", {{"batch_size", 8}, {"cuda_graphs", cuda_graphs}}}};
  user.merge_patch(extra);
  return parse_config(user, "test");
}

void check_same_training(Trainer& recorded, Trainer& direct) {
  const auto wr = weights_of(recorded), wd = weights_of(direct);
  for (std::size_t l = 0; l < wr.size(); ++l) test::check_bit_exact("layer " + std::to_string(l), wr[l], wd[l]);
  const BatchResult r = recorded.flush_metrics(), d = direct.flush_metrics();
  CHECK(r.batches == 2);
  CHECK(r.loss_sum == d.loss_sum);
  CHECK(r.correct_sum == d.correct_sum);
  CHECK(r.free_energies == d.free_energies);
}

}  // namespace

TEST_CASE("captured step: a trainer whose steps are recorded keeps its results (stand-in capture on the CPU)") {
  // With a stand-in capture the trainer takes the recording path (metrics into the
  // step arrays, then MetricSlotCopyOp; the random keys read from the step-parameter
  // block); its warm-up and recording runs execute on the CPU, so two steps give the
  // same weights and metrics as unrecorded ones, whose keys are launch arguments.
  const nlohmann::json plain = nlohmann::json::object();
  const nlohmann::json langevin{{"dynamics", {{"noise", 0.05}}}};
  const nlohmann::json hardware{
      {"hardware",
       {{"dac", {{"enabled", true}, {"bits", 6}, {"rounding", "stochastic"}}},
        {"input_dac", {{"enabled", true}, {"bits", 5}, {"rounding", "stochastic"}}},
        {"adc", {{"enabled", true}, {"bits", 6}, {"noise_sigma", 0.5}, {"rounding", "stochastic"}}},
        {"programming_noise", {{"additive", 0.01}}},
        {"mismatch_sigma", 0.02}}}};
  nlohmann::json calibrated = hardware;  // the ADC as a pass of its own, the ranges reduced on the device
  for (const char* converter : {"dac", "input_dac", "adc"}) calibrated["hardware"][converter]["range"] = "calibrated";
  const nlohmann::json random_sign{{"ep", {{"nudging", "one_sided"}, {"random_sign", true}}}};
  const nlohmann::json* const extras[] = {&plain, &langevin, &hardware, &calibrated, &random_sign};
  for (const nlohmann::json* extra : extras) {
    CAPTURE(extra->dump());
    auto cpu = make_backend("cpu");
    CaptureLog log;
    RecordingCpuBackend backend(*cpu, log);
    Trainer recorded(backend, small_dense_with(*extra, "on")), direct(*cpu, small_dense_with(*extra, "off"));
    CHECK(recorded.captured_step().recording());
    const Batch data(*cpu, 8, 16, 4, 6);
    // Two global batches from 3 on (keys other than 0), with the random sign the
    // first two of opposite signs (each sign a shape of its own: both steps run
    // directly).
    std::uint64_t first = 3;
    while (extra == &random_sign && recorded.beta_sign(first) == recorded.beta_sign(first + 1)) ++first;
    CHECK(first < 64);
    for (std::uint64_t step = first; step < first + 2; ++step) {
      recorded.train_step(data.x.data(), data.target.data(), 8, step, 1.0f);
      direct.train_step(data.x.data(), data.target.data(), 8, step, 1.0f);
    }
    CHECK(log.ends == (extra == &random_sign ? 0 : 1));
    check_same_training(recorded, direct);
  }
}

TEST_CASE("captured step: recorded Ising steps keep their results, annealed and by dSB (stand-in capture)") {
  // Their sweeps' uniforms and dSB's random starts key on the step's first sample,
  // read from the step-parameter block when recorded; on both relaxation paths.
  for (const std::string variant : {"annealing, gemm", "annealing, fused", "dsb"}) {
    CAPTURE(variant);
    nlohmann::json user = read_config_file(std::string(EQPROP_SOURCE_DIR) + "/configs/fashion_mnist_ising.json");
    user["model"]["layers"] = {16, 12, 4};
    user["ising"]["replicas"] = 2;
    user["dynamics"]["t_free"] = 6;
    user["dynamics"]["t_nudge"] = 3;
    user["training"]["batch_size"] = 8;
    if (variant == "dsb") user["ising"]["relaxation"] = "dsb";
    if (variant == "annealing, fused") user["training"]["relaxation_path"] = "fused";
    auto cpu = make_backend("cpu");
    CaptureLog log;
    RecordingCpuBackend backend(*cpu, log);
    user["training"]["cuda_graphs"] = "on";
    Trainer recorded(backend, parse_config(user, "test"));
    user["training"]["cuda_graphs"] = "off";
    Trainer direct(*cpu, parse_config(user, "test"));
    CHECK(recorded.captured_step().recording());
    const Batch data(*cpu, 8, 16, 4, 10);
    const BackendCounts before = backend.counts();
    for (std::uint64_t step = 5; step < 7; ++step) {
      recorded.train_step(data.x.data(), data.target.data(), 8, step, 1.0f);
      direct.train_step(data.x.data(), data.target.data(), 8, step, 1.0f);
    }
    CHECK((backend.counts() - before).host_syncs == 0);
    CHECK(log.ends == 1);
    check_same_training(recorded, direct);
  }
}

TEST_CASE("captured step: a recorded oscillator step with Langevin noise keeps its results (stand-in capture)") {
  nlohmann::json user = read_config_file(std::string(EQPROP_SOURCE_DIR) + "/configs/fashion_mnist_oscillator.json");
  user["model"]["layers"] = {16, 12, 4};
  user["dynamics"]["t_free"] = 8;
  user["dynamics"]["t_nudge"] = 3;
  user["dynamics"]["noise"] = 0.05;
  user["training"]["batch_size"] = 8;
  auto cpu = make_backend("cpu");
  CaptureLog log;
  RecordingCpuBackend backend(*cpu, log);
  user["training"]["cuda_graphs"] = "on";
  Trainer recorded(backend, parse_config(user, "test"));
  user["training"]["cuda_graphs"] = "off";
  Trainer direct(*cpu, parse_config(user, "test"));
  CHECK(recorded.captured_step().recording());
  const Batch data(*cpu, 8, 16, 4, 9);
  for (std::uint64_t step = 5; step < 7; ++step) {
    recorded.train_step(data.x.data(), data.target.data(), 8, step, 1.0f);
    direct.train_step(data.x.data(), data.target.data(), 8, step, 1.0f);
  }
  CHECK(log.ends == 1);
  check_same_training(recorded, direct);
}

}  // namespace eqprop
