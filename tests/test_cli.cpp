// The eqprop command line, driven in-process through run_cli: usage and config
// errors (exit 2), data, device and checkpoint errors (exit 1), and short real runs
// of train / eval / resume, gradcheck, bench and config.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/atomic_file.h"
#include "engine/run_directory.h"
#include "engine/safetensors.h"
#include "engine/sweep.h"
#include "hosttools/cli.h"
#include "kernels/backend.h"
#include "kernels/dnnl_isa.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::check_contains;
using test::TempDir;
using test::write_bytes;

struct CliResult {
  int code = -1;
  std::string out, err;
};

CliResult run(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  CliResult result;
  result.code = run_cli(args, out, err);
  result.out = out.str();
  result.err = err.str();
  return result;
}

// Prints what the command said when an exit code is not the expected one.
void check_code(const CliResult& result, int expected) {
  CHECK_MESSAGE(result.code == expected, "exit " << result.code << "\nstdout:\n"
                                                 << result.out << "\nstderr:\n" << result.err);
}

void write_json(const std::string& path, const json& value) { std::ofstream(path) << value.dump(2); }

// A one-epoch FashionMNIST run of a few seconds: 784-16-10, 640 training images.
void write_tiny_fashion_config(const std::string& path) {
  write_json(path, {{"model", {{"layers", {784, 16, 10}}}},
                    {"training", {{"epochs", 1}, {"batch_size", 64}, {"eval_batch_size", 500}}},
                    {"data", {{"train_limit", 640}, {"test_limit", 500}}},
                    {"dynamics", {{"t_free", 8}, {"t_nudge", 4}}}});
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "cannot open " << path);
  return json::parse(in);
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  return lines;
}

// The JSON object a command printed: the last non-empty line of stdout that parses
// (eval prints one line), or the whole of stdout (gradcheck pretty-prints).
json printed_json(const std::string& out) {
  const json whole = json::parse(out, nullptr, false);
  if (!whole.is_discarded()) return whole;
  std::istringstream lines(out);
  json last;
  for (std::string line; std::getline(lines, line);) {
    const json parsed = json::parse(line, nullptr, false);
    if (!parsed.is_discarded() && parsed.is_object()) last = parsed;
  }
  REQUIRE_MESSAGE(last.is_object(), "no JSON object in stdout:\n" << out);
  return last;
}

void append_u32_be(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

constexpr const char* kFashionTrainImages = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

TEST_CASE("cli: usage and command-line errors") {
  SUBCASE("no arguments") {
    const CliResult r = run({});
    check_code(r, 2);
    check_contains(r.err, {"usage"});
    CHECK(r.out.empty());
  }
  SUBCASE("help lists the commands") {
    for (const char* help : {"help", "--help", "-h"}) {
      const CliResult r = run({help});
      check_code(r, 0);
      check_contains(r.out, {"usage", "train", "eval", "gradcheck", "bench", "config", "plan", "--memory-gib"});
    }
  }
  SUBCASE("--help after a command") {
    const CliResult r = run({"train", "--help"});
    check_code(r, 0);
    check_contains(r.out, {"usage"});
  }
  SUBCASE("unknown command") {
    const CliResult r = run({"frobnicate"});
    check_code(r, 2);
    check_contains(r.err, {"frobnicate"});
  }
  SUBCASE("unknown option") {
    const CliResult r = run({"train", "--confg", "x.json"});
    check_code(r, 2);
    check_contains(r.err, {"--confg"});
  }
  SUBCASE("an option of another command") {
    const CliResult r = run({"bench", "--checkpoint", "dir"});
    check_code(r, 2);
    check_contains(r.err, {"--checkpoint"});
  }
  SUBCASE("option missing its value") {
    const CliResult r = run({"train", "--config"});
    check_code(r, 2);
    check_contains(r.err, {"--config", "value"});
  }
  SUBCASE("bad counts") {
    const CliResult zero = run({"bench", "--device", "cpu", "--repeats", "0"});
    check_code(zero, 2);
    check_contains(zero.err, {"--repeats"});
    const CliResult word = run({"bench", "--device", "cpu", "--warmup", "many"});
    check_code(word, 2);
    check_contains(word.err, {"--warmup", "many"});
  }
  SUBCASE("eval without --checkpoint") {
    const CliResult r = run({"eval", "--device", "cpu"});
    check_code(r, 2);
    check_contains(r.err, {"--checkpoint"});
  }
}

TEST_CASE("cli: train config errors") {
  TempDir dir;
  SUBCASE("no --config") {
    const CliResult r = run({"train", "--device", "cpu"});
    check_code(r, 2);
    check_contains(r.err, {"--config"});
  }
  SUBCASE("--config of a missing file") {
    const std::string path = dir.file("nowhere.json");
    const CliResult r = run({"train", "--config", path, "--device", "cpu"});
    check_code(r, 2);
    check_contains(r.err, {path});
  }
  SUBCASE("malformed config file") {
    const std::string path = dir.file("broken.json");
    std::ofstream(path) << "{\"model\": ";
    const CliResult r = run({"train", "--config", path, "--device", "cpu"});
    check_code(r, 2);
    check_contains(r.err, {path});
  }
  SUBCASE("a config with an unknown key") {
    const std::string path = dir.file("typo.json");
    write_json(path, {{"training", {{"epoch", 3}}}});
    const CliResult r = run({"train", "--config", path, "--device", "cpu", "--out", dir.file("run")});
    check_code(r, 2);
    check_contains(r.err, {path, "training.epoch", "training.epochs"});
    CHECK_FALSE(fs::exists(dir.file("run")));  // nothing written for a bad config
  }
  SUBCASE("a bad --set") {
    const std::string path = dir.file("ok.json");
    write_json(path, json::object());
    const CliResult r = run({"train", "--config", path, "--device", "cpu", "--set", "dynamics.dt=0"});
    check_code(r, 2);
    check_contains(r.err, {"dynamics.dt"});
  }
  SUBCASE("a number beyond double precision, in the file or in --set") {
    const std::string path = dir.file("huge.json");
    std::ofstream(path) << R"({"ep": {"beta": 1e400}})";
    const CliResult in_file = run({"train", "--config", path, "--device", "cpu", "--out", dir.file("run")});
    check_code(in_file, 2);
    check_contains(in_file.err, {path, "ep.beta", "1e400"});
    CHECK(in_file.err.find("internal error") == std::string::npos);
    const std::string ok = dir.file("ok.json");
    write_json(ok, json::object());
    const CliResult in_set = run({"train", "--config", ok, "--device", "cpu", "--set", "ep.beta=1e400"});
    check_code(in_set, 2);
    check_contains(in_set.err, {"ep.beta", "1e400"});
    CHECK(in_set.err.find("internal error") == std::string::npos);
  }
  SUBCASE("a bad --device") {
    const std::string path = dir.file("ok.json");
    write_json(path, json::object());
    const CliResult r = run({"train", "--config", path, "--device", "tpu"});
    check_code(r, 2);
    check_contains(r.err, {"device", "tpu"});
  }
  SUBCASE("--resume with --config") {
    const std::string path = dir.file("ok.json");
    write_json(path, json::object());
    const CliResult r = run({"train", "--resume", dir.path().string(), "--config", path});
    check_code(r, 2);
    check_contains(r.err, {"--resume"});
  }
  SUBCASE("--resume of a directory that is not a checkpoint") {
    const CliResult r = run({"train", "--resume", dir.path().string(), "--device", "cpu"});
    check_code(r, 1);
    check_contains(r.err, {"config.json"});
  }
  SUBCASE("--device cuda without a GPU") {
    if (cuda_device_available()) {
      MESSAGE("skipped: a CUDA GPU is available, so --device cuda is not an error here");
      return;
    }
    const std::string path = dir.file("ok.json");
    write_json(path, json::object());
    const CliResult r = run({"train", "--config", path, "--device", "cuda", "--out", dir.file("run")});
    check_code(r, 1);
    check_contains(r.err, {"cuda"});
  }
}

TEST_CASE("cli: sweep ranges A:B and A:B:STEP") {
  CHECK(sweep_range_values("2:5") == std::vector<std::string>{"2", "3", "4", "5"});
  const std::vector<std::string> noise = sweep_range_values("0:0.1:0.01");
  REQUIRE(noise.size() == 11);
  CHECK(noise[0] == "0");
  CHECK(noise[3] == "0.03");
  CHECK(noise[10] == "0.1");
  CHECK(sweep_range_values("0.1:1:0.3") == std::vector<std::string>{"0.1", "0.4", "0.7", "1"});
  CHECK(sweep_range_values("1e-3:3e-3:1e-3") == std::vector<std::string>{"0.001", "0.002", "0.003"});
  for (const char* bad : {"0:0.5", "3:1", "0:1:0", "0:1:-1", "0:1:x", "a:b", "0:1:0.1:2", "0:100000", "0:1:1e-9"})
    CHECK_THROWS_AS(sweep_range_values(bad), ConfigError);
}

TEST_CASE("cli: --set into a config file whose section is not an object") {
  TempDir dir;
  const std::string path = dir.file("bad_section.json");
  write_json(path, {{"training", 5}});
  // Without --set: a config error naming the section.
  const CliResult plain = run({"config", "--config", path});
  check_code(plain, 2);
  check_contains(plain.err, {path, "training"});
  CliResult with_set;
  CHECK_NOTHROW(with_set = run({"config", "--config", path, "--set", "training.epochs=5"}));
  CHECK(with_set.code == 2);
}

TEST_CASE("cli: --config naming a directory") {
  TempDir dir;
  CliResult r;
  CHECK_NOTHROW(r = run({"train", "--config", dir.path().string(), "--device", "cpu"}));
  CHECK(r.code == 2);
}

// Four IDX files whose magic number is wrong (0x00000000 for images, 0x00000802 for labels).
void write_bad_idx_dir(const TempDir& dir) {
  std::vector<std::uint8_t> images, labels;
  for (std::uint32_t v : {0x00000000u, 1u, 2u, 2u}) append_u32_be(images, v);
  images.insert(images.end(), 4, 0);
  for (std::uint32_t v : {0x00000802u, 1u}) append_u32_be(labels, v);
  labels.push_back(0);
  for (const char* name : {"train-images-idx3-ubyte", "t10k-images-idx3-ubyte"})
    write_bytes(dir.path() / name, images);
  for (const char* name : {"train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"})
    write_bytes(dir.path() / name, labels);
}

TEST_CASE("cli: data errors") {
  TempDir config_dir;
  const std::string config_path = config_dir.file("mnist.json");
  SUBCASE("IDX files with a wrong magic number") {
    TempDir data;
    write_bad_idx_dir(data);
    write_json(config_path, {{"data", {{"name", "mnist"}, {"dir", data.path().string()}}}});
    const CliResult r =
        run({"train", "--config", config_path, "--device", "cpu", "--out", config_dir.file("run")});
    check_code(r, 1);
    check_contains(r.err, {data.file("train-images-idx3-ubyte"), "magic"});
  }
  SUBCASE("data.dir does not exist") {
    const std::string missing = config_dir.file("no_such_data");
    write_json(config_path, {{"data", {{"name", "mnist"}, {"dir", missing}}}});
    const CliResult r = run({"train", "--config", config_path, "--device", "cpu", "--out", config_dir.file("run")});
    check_code(r, 1);
    check_contains(r.err, {missing});
  }
  SUBCASE("data.dir given with --set") {
    const std::string missing = config_dir.file("elsewhere");
    write_json(config_path, {{"data", {{"name", "mnist"}}}});
    const CliResult r = run({"train", "--config", config_path, "--device", "cpu", "--out",
                             config_dir.file("run"), "--set", "data.dir=" + missing});
    check_code(r, 1);
    check_contains(r.err, {missing});
  }
  SUBCASE("mnist has no default data.dir") {
    write_json(config_path, {{"data", {{"name", "mnist"}}}});
    const CliResult r = run({"train", "--config", config_path, "--device", "cpu", "--out", config_dir.file("run")});
    check_code(r, 2);
    check_contains(r.err, {"data.dir"});
  }
}

TEST_CASE("cli: train, eval and resume a short run on FashionMNIST") {
  if (!fs::exists(kFashionTrainImages)) {
    MESSAGE("skipped: " << kFashionTrainImages << " is not installed (Debian package dataset-fashion-mnist)");
    return;
  }
  TempDir dir;
  const std::string config_path = dir.file("tiny.json");
  write_tiny_fashion_config(config_path);
  const std::string run_dir = dir.file("run");
  const std::string metrics = run_dir + "/metrics.jsonl";
  const std::string config_json = run_dir + "/config.json";

  const CliResult train = run({"train", "--config", config_path, "--out", run_dir, "--device", "cpu"});
  check_code(train, 0);
  REQUIRE(train.code == 0);
  check_contains(train.out, {"epoch 1/1"});

  // The run directory: resolved config, one metrics record, the checkpoint.
  const json resolved = read_json(config_json);
  CHECK(resolved["model"]["layers"] == json({784, 16, 10}));
  CHECK(resolved["training"]["epochs"] == 1);
  CHECK(resolved["dynamics"]["t_free"] == 8);
  CHECK(resolved["device"] == "cpu");
  CHECK(resolved.contains("optimizer"));  // defaults are written out too
  std::vector<std::string> lines = read_lines(metrics);
  REQUIRE(lines.size() == 1);
  const json record = json::parse(lines[0]);
  for (const char* key : {"epoch", "train_loss", "train_acc", "test_acc", "seconds", "samples_per_s"})
    CHECK_MESSAGE(record.contains(key), "metrics record lacks " << key << ": " << lines[0]);
  CHECK(record["epoch"] == 1);
  CHECK(record["train_acc"].get<double>() >= 0.0);
  CHECK(record["train_acc"].get<double>() <= 1.0);
  CHECK(record["test_acc"].get<double>() >= 0.0);
  CHECK(record["test_acc"].get<double>() <= 1.0);
  CHECK(record["samples_per_s"].get<double>() > 0.0);
  CHECK(fs::exists(run_dir + "/model.safetensors"));

  SUBCASE("eval, resume, nothing to do") {
    const CliResult eval = run({"eval", "--checkpoint", run_dir, "--device", "cpu"});
    check_code(eval, 0);
    if (eval.code == 0) {
      const json result = printed_json(eval.out);
      CHECK(result["accuracy"].get<double>() >= 0.0);
      CHECK(result["accuracy"].get<double>() <= 1.0);
      CHECK(result["epochs_trained"] == 1);
      CHECK(result["split"] == "test");
      CHECK(result["samples"] == 500);
    }

    // Evaluated under each value of a key: one JSON line each, then CSV and plot.
    const std::string sweep_dir = dir.file("adc_sweep");
    const CliResult sweep = run({"eval", "--checkpoint", run_dir, "--device", "cpu", "--set",
                                 "hardware.adc.enabled=true", "--sweep", "hardware.adc.bits=1:3", "--out", sweep_dir});
    check_code(sweep, 0);
    std::vector<std::string> sweep_lines;
    std::istringstream sweep_out(sweep.out);
    for (std::string line; std::getline(sweep_out, line);)
      if (!line.empty() && line[0] == '{') sweep_lines.push_back(line);
    REQUIRE(sweep_lines.size() == 3);
    CHECK(json::parse(sweep_lines[2])["hardware.adc.bits"] == "3");
    const std::vector<std::string> csv = read_lines(sweep_dir + "/sweep.csv");
    REQUIRE(csv.size() == 4);
    CHECK(csv[0] == "hardware.adc.bits,accuracy,loss,free_energy_mean,samples");
    CHECK(std::filesystem::exists(sweep_dir + "/sweep_accuracy.svg"));
    check_code(run({"eval", "--checkpoint", run_dir, "--device", "cpu", "--sweep", "hardware.adc.bits=3:1"}), 2);
    const CliResult bad_value = run({"eval", "--checkpoint", run_dir, "--device", "cpu", "--sweep", "hardware.adc.bits=0,4"});
    check_code(bad_value, 2);
    check_contains(bad_value.err, {"hardware.adc.bits", "0"});

    const CliResult bad_split = run({"eval", "--checkpoint", run_dir, "--device", "cpu", "--split", "valid"});
    check_code(bad_split, 2);
    check_contains(bad_split.err, {"--split", "valid"});
    const std::string no_data = dir.file("no_data");
    const CliResult missing_data = run({"eval", "--checkpoint", run_dir, "--device", "cpu", "--data", no_data});
    check_code(missing_data, 1);
    check_contains(missing_data.err, {no_data});
    const CliResult other_out =
        run({"train", "--resume", run_dir, "--out", dir.file("elsewhere"), "--device", "cpu"});
    check_code(other_out, 2);
    check_contains(other_out.err, {"--resume"});

    const CliResult resume = run({"train", "--resume", run_dir, "--set", "training.epochs=2", "--device", "cpu"});
    check_code(resume, 0);
    check_contains(resume.out, {"epoch 2/2"});
    lines = read_lines(metrics);
    REQUIRE(lines.size() == 2);
    CHECK(json::parse(lines[0]) == record);  // the first epoch's record is kept as it was
    CHECK(json::parse(lines[1])["epoch"] == 2);
    CHECK(read_json(config_json)["training"]["epochs"] == 2);

    const CliResult again = run({"train", "--resume", run_dir, "--device", "cpu"});
    check_code(again, 0);
    check_contains(again.out, {"nothing to do"});
    CHECK(read_lines(metrics).size() == 2);
  }

  SUBCASE("an output directory that cannot be made is an error naming it") {
    const std::string blocker = dir.file("a_file");
    std::ofstream(blocker) << "not a directory";
    const std::string out = blocker + "/sweep";
    const CliResult eval_sweep = run({"eval", "--checkpoint", run_dir, "--device", "cpu", "--sweep",
                                      "hardware.adc.bits=2,3", "--set", "hardware.adc.enabled=true", "--out", out});
    check_code(eval_sweep, 1);
    check_contains(eval_sweep.err, {"cannot create output directory", out});
    CHECK(eval_sweep.err.find("internal error") == std::string::npos);
    const CliResult sweep = run({"sweep", "--config", config_path, "--device", "cpu", "--sweep",
                                 "training.epochs=1,2", "--out", out});
    check_code(sweep, 1);
    check_contains(sweep.err, {"cannot create output directory", out});
    CHECK(sweep.err.find("internal error") == std::string::npos);
  }

  SUBCASE("a checkpoint whose metadata counts are not counts") {
    const std::string model_file = run_dir + "/model.safetensors";
    const SafetensorsFile original = read_safetensors(model_file);
    for (const char* key : {"epochs_done", "device_writes"})
      for (const char* bad : {"-5", "2abc", "", "x", "99999999999999999999"}) {
        SafetensorsFile damaged = original;
        damaged.metadata[key] = bad;
        write_safetensors(model_file, damaged);
        const CliResult r = run({"train", "--resume", run_dir, "--set", "training.epochs=2", "--device", "cpu"});
        CAPTURE(key);
        CAPTURE(bad);
        check_code(r, 1);
        check_contains(r.err, {model_file, key});
        CHECK(r.err.find("internal error") == std::string::npos);
      }
  }

  SUBCASE("gradcheck of the trained weights") {
    const std::vector<std::string> converged{"--device", "cpu", "--samples", "4", "--set", "ep.beta=0.01",
                                             "--set", "dynamics.t_free=300", "--set", "dynamics.t_nudge=300"};
    std::vector<std::string> trained{"gradcheck", "--checkpoint", run_dir}, initial{"gradcheck", "--config", config_path};
    trained.insert(trained.end(), converged.begin(), converged.end());
    initial.insert(initial.end(), converged.begin(), converged.end());
    const CliResult on_trained = run(trained), on_initial = run(initial);
    check_code(on_trained, 0);
    check_code(on_initial, 0);
    REQUIRE(on_trained.code == 0);
    REQUIRE(on_initial.code == 0);
    const json a = printed_json(on_trained.out), b = printed_json(on_initial.out);
    INFO(a.dump());
    CHECK(a["overall"]["cosine"].get<double>() > 0.99);
    // Same config, same random inputs: only the loaded weights can change the result.
    CHECK(a["overall"]["relative_error"] != b["overall"]["relative_error"]);
    // Test images instead of random inputs: the report names how many were skipped.
    std::vector<std::string> on_images = trained;
    on_images.insert(on_images.end(), {"--split", "test"});
    const CliResult images = run(on_images);
    check_code(images, 0);
    REQUIRE(images.code == 0);
    const json c = printed_json(images.out);
    CHECK(c["overall"]["cosine"].get<double>() > 0.99);
    CHECK(c["overall"]["relative_error"] != a["overall"]["relative_error"]);
    on_images.back() = "validation";
    check_code(run(on_images), 2);
    std::vector<std::string> both = trained;
    both.insert(both.end(), {"--config", config_path});
    check_code(run(both), 2);
  }

  SUBCASE("eval of a directory without config.json") {
    TempDir empty;
    const CliResult r = run({"eval", "--checkpoint", empty.path().string(), "--device", "cpu"});
    check_code(r, 1);
    check_contains(r.err, {"config.json"});
  }

  SUBCASE("eval of a checkpoint whose config does not fit its tensors") {
    json edited = resolved;
    edited["model"]["layers"] = json({784, 17, 10});
    write_json(config_json, edited);
    const CliResult r = run({"eval", "--checkpoint", run_dir, "--device", "cpu"});
    check_code(r, 1);
    check_contains(r.err, {"weights.0", "[784, 16]", "[784, 17]"});
  }
}

TEST_CASE("cli: gradcheck on a small network") {
  TempDir dir;
  const std::string path = dir.file("gradcheck.json");
  write_json(path, {{"model", {{"layers", {6, 5, 4}}}},
                    {"dynamics", {{"t_free", 400}, {"t_nudge", 400}}},
                    {"ep", {{"beta", 0.01}}}});
  const CliResult r = run({"gradcheck", "--config", path, "--device", "cpu"});
  check_code(r, 0);
  REQUIRE(r.code == 0);
  const json result = printed_json(r.out);
  REQUIRE(result.contains("tensors"));
  REQUIRE(result["tensors"].size() == 2);  // one entry per weight tensor (weights and biases)
  for (const json& tensor : result["tensors"]) {
    INFO(tensor.dump());
    CHECK(tensor["cosine"].get<double>() > 0.99);
  }
  CHECK(result["backend"] == "cpu");
}

TEST_CASE("cli: gradcheck with a beta too large for its samples names the beta that works") {
  TempDir dir;
  const std::string path = dir.file("gradcheck.json");
  write_json(path, {{"model", {{"layers", {6, 5, 4}}}},
                    {"dynamics", {{"t_free", 400}, {"t_nudge", 400}}},
                    {"ep", {{"beta", 0.45}, {"nudging", "one_sided"}}}});
  const CliResult refused = run({"gradcheck", "--config", path, "--device", "cpu", "--samples", "20"});
  check_code(refused, 2);
  check_contains(refused.err, {"fewer than 1 in 100", "lower ep.beta to "});
  const std::size_t at = refused.err.find("lower ep.beta to ") + std::string("lower ep.beta to ").size();
  const std::string beta = refused.err.substr(at, refused.err.find(' ', at) - at);
  INFO(refused.err);
  REQUIRE(std::stod(beta) > 0);
  CHECK(std::stod(beta) < 0.45);
  const CliResult works =
      run({"gradcheck", "--config", path, "--device", "cpu", "--samples", "20", "--set", "ep.beta=" + beta});
  check_code(works, 0);
}

TEST_CASE("cli: bench on a small network") {
  const CliResult r = run({"bench", "--device", "cpu", "--set", "model.layers=[32,16,10]", "--set",
                           "training.batch_size=8", "--repeats", "2", "--warmup", "1"});
  check_code(r, 0);
  REQUIRE(r.code == 0);
  const json result = printed_json(r.out);
  CHECK(result["ms_per_batch"].get<double>() > 0.0);
  CHECK(result["samples_per_s"].get<double>() > 0.0);
  CHECK(result["batch"] == 8);
  CHECK(result["layers"] == json({32, 16, 10}));
  CHECK(result["backend"] == "cpu");
  CHECK(result["precision"] == "fp32");
  CHECK(result["precision_native"] == true);
  // bf16: native or emulated as the backend says, and the words agree with the flag.
  const json bf16 = printed_json(run({"bench", "--device", "cpu", "--set", "model.layers=[32,16,10]", "--set",
                                      "training.batch_size=8", "--set", "training.gemm_precision=bf16", "--repeats",
                                      "1", "--warmup", "1"})
                                     .out);
  const bool emulated = bf16["precision"].get<std::string>().find("emulated") != std::string::npos;
  CHECK(bf16["precision_native"] == !emulated);
  CHECK(bf16["precision"].get<std::string>().rfind("bf16", 0) == 0);
}

TEST_CASE("cli: config") {
  SUBCASE("--reference") {
    const CliResult r = run({"config", "--reference"});
    check_code(r, 0);
    check_contains(r.out, {"dynamics.t_free", "model.layers", "| key |"});
  }
  SUBCASE("prints the resolved config with overrides") {
    const CliResult r = run({"config", "--set", "training.epochs=4", "--device", "cpu"});
    check_code(r, 0);
    REQUIRE(r.code == 0);
    const json resolved = printed_json(r.out);
    CHECK(resolved["training"]["epochs"] == 4);
    CHECK(resolved["device"] == "cpu");
    CHECK(resolved["model"]["layers"] == json({784, 500, 10}));
  }
  SUBCASE("a bad --set names the key") {
    const CliResult r = run({"config", "--set", "dynamics.t_fre=3"});
    check_code(r, 2);
    check_contains(r.err, {"dynamics.t_fre", "dynamics.t_free"});
  }
}

}  // namespace
}  // namespace eqprop

namespace eqprop {
namespace {

// CIFAR-10 batch files in the published record layout (hosttools/cifar10_reader.h):
// data_batch_i.bin with `per_batch` records, test_batch.bin with `test` records;
// labels cycle through 0..9, pixels vary per record and position.
void write_cifar10_files(const fs::path& folder, int per_batch, int test) {
  fs::create_directories(folder);
  int id = 0;
  const auto records = [&](int count) {
    std::vector<std::uint8_t> bytes;
    for (int r = 0; r < count; ++r, ++id) {
      bytes.push_back(static_cast<std::uint8_t>(id % 10));
      for (int p = 0; p < 3072; ++p) bytes.push_back(static_cast<std::uint8_t>((p * 7 + id * 31 + (id % 10) * 40) % 256));
    }
    return bytes;
  };
  for (int i = 1; i <= 5; ++i) write_bytes(folder / ("data_batch_" + std::to_string(i) + ".bin"), records(per_batch));
  write_bytes(folder / "test_batch.bin", records(test));
}

json cifar_config(const std::string& data_dir) {
  return {{"model", {{"layers", {3072, 16, 10}}}},
          {"training", {{"epochs", 1}, {"batch_size", 4}, {"eval_batch_size", 5}}},
          {"dynamics", {{"t_free", 4}, {"t_nudge", 2}}},
          {"data",
           {{"name", "cifar10"},
            {"dir", data_dir},
            {"normalize", "standardize"},
            {"augment_crop_padding", 4},
            {"augment_flip", true}}}};
}

}  // namespace

TEST_CASE("cli: train on CIFAR-10 batch files, augmented and standardized") {
  TempDir dir;
  write_cifar10_files(dir.path() / "cifar-10-batches-bin", 4, 10);
  const std::string config_path = dir.file("cifar.json");
  write_json(config_path, cifar_config(dir.path().string()));
  const CliResult r = run({"train", "--config", config_path, "--device", "cpu", "--out", dir.file("run")});
  check_code(r, 0);
  check_contains(r.out, {"cifar10 (20 train, 10 test)", "epoch 1/1"});
  const std::vector<std::string> metrics = read_lines(dir.file("run") + "/metrics.jsonl");
  REQUIRE(metrics.size() == 1);
  const json record = json::parse(metrics[0]);
  CHECK(record["test_acc"].get<double>() >= 0.0);
  const json resolved = read_json(dir.file("run") + "/config.json");
  CHECK(resolved["data"]["augment_crop_padding"] == 4);
  CHECK(resolved["data"]["augment_flip"] == true);
}

TEST_CASE("cli: CIFAR-10 data errors name the file") {
  TempDir dir;
  write_cifar10_files(dir.path(), 2, 2);
  const std::string config_path = dir.file("cifar.json");
  write_json(config_path, cifar_config(dir.path().string()));
  SUBCASE("a missing batch") {
    fs::remove(dir.path() / "data_batch_3.bin");
    const CliResult r = run({"train", "--config", config_path, "--device", "cpu", "--out", dir.file("run")});
    check_code(r, 1);
    check_contains(r.err, {"missing data_batch_3.bin", dir.path().string()});
  }
  SUBCASE("a batch of the wrong size") {
    std::ofstream(dir.path() / "test_batch.bin", std::ios::app) << "xyz";
    const CliResult r = run({"train", "--config", config_path, "--device", "cpu", "--out", dir.file("run")});
    check_code(r, 1);
    check_contains(r.err, {"test_batch.bin", "6149", "multiple of 3073 bytes"});
  }
}

TEST_CASE("cli: plan prints the batch plan, train refuses a batch that does not fit") {
  TempDir dir;
  const std::string config_path = dir.file("plan.json");
  write_json(config_path, {{"model", {{"layers", {64, 32, 10}}}},
                           {"training", {{"batch_size", 64}, {"eval_batch_size", 200}}}});
  SUBCASE("plan") {
    const CliResult r = run({"plan", "--config", config_path, "--device", "cpu", "--memory-gib", "1"});
    check_code(r, 0);
    REQUIRE(r.code == 0);
    const json plan = printed_json(r.out);
    CHECK(plan["bytes_per_system"].get<std::int64_t>() > 0);
    CHECK(plan["fixed_bytes"].get<std::int64_t>() > 0);
    CHECK(plan["available_bytes"] == std::int64_t{1} << 30);
    CHECK(plan["configured_batch"] == 200);
    CHECK(plan["fits"] == true);
    CHECK(plan["max_batch"].get<std::int64_t>() >= 200);
  }
  SUBCASE("plan for the device's free memory") {
    const CliResult r = run({"plan", "--config", config_path, "--device", "cpu"});
    check_code(r, 0);
    REQUIRE(r.code == 0);
    CHECK(printed_json(r.out)["available_from"] == "device free memory");
  }
  SUBCASE("a bad --memory-gib") {
    for (const char* bad : {"0", "-1", "lots", ""}) {
      const CliResult r = run({"plan", "--config", config_path, "--device", "cpu", "--memory-gib", bad});
      check_code(r, 2);
      check_contains(r.err, {"--memory-gib"});
    }
  }
  SUBCASE("train refuses before reading data or writing anything") {
    // The data directory does not exist: the refusal must come first.
    const CliResult r = run({"train", "--config", config_path, "--device", "cpu", "--out", dir.file("run"),
                             "--set", "data.name=mnist", "--set", "data.dir=" + dir.file("no_data"),
                             "--memory-gib", "0.0001"});
    check_code(r, 2);
    check_contains(r.err, {"does not fit", "200 systems", "largest batch that fits is", "eqprop plan"});
    CHECK_FALSE(fs::exists(dir.file("run")));
  }
}

}  // namespace eqprop

namespace eqprop {
namespace {

TEST_CASE("cli: --version and each command's --help") {
  const CliResult version = run({"--version"});
  check_code(version, 0);
  check_contains(version.out, {"eqprop 0.", "commit", "build:", "CUDA backend"});
  check_contains(version.out, {built_with_dnnl() ? "onednn: yes" : "onednn: no"});
  for (const char* command : {"train", "eval", "gradcheck", "bench", "plan", "solve", "sweep", "config"}) {
    INFO(command);
    const CliResult help = run({command, "--help"});
    check_code(help, 0);
    check_contains(help.out, {std::string("usage: eqprop ") + command, std::string("  ") + command + " "});
    if (std::string(command) != "gradcheck") CHECK(help.out.find("gradcheck  --config") == std::string::npos);
  }
}

TEST_CASE("cli: bench says which threads and OpenMP wait policy ran") {
  const CliResult r = run({"bench", "--device", "cpu", "--set", "model.layers=[32,16,10]", "--set",
                           "training.batch_size=8", "--repeats", "1", "--warmup", "1"});
  check_code(r, 0);
  const json result = printed_json(r.out);
  CHECK(result["threads"].get<int>() >= 1);
  CHECK(!result["omp_wait_policy"].get<std::string>().empty());
}

TEST_CASE("cli: train's epoch lines fit 80 columns and a summary ends the run") {
  TempDir dir;
  write_cifar10_files(dir.path() / "cifar-10-batches-bin", 4, 10);
  const std::string config_path = dir.file("cifar.json");
  json config = cifar_config(dir.path().string());
  config["training"]["epochs"] = 2;
  write_json(config_path, config);
  const CliResult r = run({"train", "--config", config_path, "--device", "cpu", "--out", dir.file("run")});
  check_code(r, 0);
  check_contains(r.out, {"epoch 1/2  test ", "epoch 2/2  test ", "samples/s", "done: epochs 1-2 in ",
                         "test accuracy: best ", "), last ", "(epoch 2)", dir.file("run") + "/model.safetensors",
                         dir.file("run") + "/metrics.jsonl"});
  std::istringstream lines(r.out);
  std::string line;
  std::getline(lines, line);  // the heading names the data and the output directory
  while (std::getline(lines, line)) {
    if (line.find(dir.path().string()) != std::string::npos) continue;  // paths are as long as they are
    INFO(line);
    CHECK(line.size() <= 80);
  }
}

// Every file of a directory with its bytes: a refused command must not change any.
std::map<std::string, std::string> directory_bytes(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::directory_iterator(dir)) files[entry.path().filename().string()] = read_file(entry.path().string());
  return files;
}

TEST_CASE("cli: train refuses a directory that holds a run, --overwrite replaces it, --resume continues it") {
  TempDir dir;
  write_cifar10_files(dir.path() / "cifar-10-batches-bin", 4, 10);
  const std::string config_path = dir.file("cifar.json");
  json config = cifar_config(dir.path().string());
  config["training"]["epochs"] = 2;
  write_json(config_path, config);
  const std::string run_dir = dir.file("run");
  check_code(run({"train", "--config", config_path, "--device", "cpu", "--out", run_dir}), 0);
  for (const char* file : {"config.json", "metrics.jsonl", "model.safetensors", "best.safetensors", "run.json"}) {
    CAPTURE(file);
    CHECK(fs::exists(fs::path(run_dir) / file));
  }
  const std::map<std::string, std::string> before = directory_bytes(run_dir);

  // Refused with one line and exit 2, the run untouched.
  const CliResult again = run({"train", "--config", config_path, "--device", "cpu", "--out", run_dir});
  check_code(again, 2);
  CHECK(again.err == "eqprop: " + run_dir +
                         " holds a run; use --resume to continue it, --overwrite to replace it, or --out to choose "
                         "another directory\n");
  CHECK(directory_bytes(run_dir) == before);
  // --overwrite with a config that does not validate leaves it as it was too.
  check_code(run({"train", "--config", config_path, "--device", "cpu", "--out", run_dir, "--overwrite", "--set",
                  "training.epochs=0"}),
             2);
  CHECK(directory_bytes(run_dir) == before);
  check_code(run({"train", "--resume", run_dir, "--overwrite", "--device", "cpu"}), 2);
  CHECK(directory_bytes(run_dir) == before);
  // --resume auto of a finished run: nothing to do, nothing changed but run.json.
  const CliResult automatic = run({"train", "--resume", "auto", "--config", config_path, "--out", run_dir, "--device", "cpu"});
  check_code(automatic, 0);
  check_contains(automatic.out, {"nothing to do"});
  CHECK(read_file(run_dir + "/model.safetensors") == before.at("model.safetensors"));

  SUBCASE("--overwrite replaces the run") {
    const std::string stray = run_dir + "/notes.txt";
    std::ofstream(stray) << "mine";
    const CliResult replaced = run({"train", "--config", config_path, "--device", "cpu", "--out", run_dir,
                                    "--overwrite", "--set", "training.epochs=1", "--set", "seed=2"});
    check_code(replaced, 0);
    CHECK(read_json(run_dir + "/config.json")["seed"] == 2);
    CHECK(read_lines(run_dir + "/metrics.jsonl").size() == 1);
    CHECK(read_safetensors(run_dir + "/best.safetensors").metadata.at("epochs_done") == "1");
    CHECK(read_json(run_dir + "/run.json")["starts"].size() == 1);
    CHECK(fs::exists(stray));  // not a file of the run
  }

  SUBCASE("best.safetensors holds the best epoch, model.safetensors the last; eval reads either") {
    const std::vector<std::string> lines = read_lines(run_dir + "/metrics.jsonl");
    REQUIRE(lines.size() == 2);
    const double first = json::parse(lines[0])["test_acc"], second = json::parse(lines[1])["test_acc"];
    const int best_epoch = second > first ? 2 : 1;
    CHECK(read_safetensors(run_dir + "/best.safetensors").metadata.at("epochs_done") == std::to_string(best_epoch));
    CHECK(read_safetensors(run_dir + "/model.safetensors").metadata.at("epochs_done") == "2");
    const json last = printed_json(run({"eval", "--checkpoint", run_dir, "--device", "cpu"}).out);
    CHECK(last["model_file"] == "model.safetensors");
    CHECK(last["epochs_trained"] == 2);
    const json best = printed_json(run({"eval", "--checkpoint", run_dir, "--device", "cpu", "--best"}).out);
    CHECK(best["model_file"] == "best.safetensors");
    CHECK(best["epochs_trained"] == best_epoch);
    CHECK(best["accuracy"] == std::max(first, second));
    // A resumed run continues the last checkpoint and keeps the best one.
    check_code(run({"train", "--resume", run_dir, "--set", "training.epochs=3", "--device", "cpu"}), 0);
    CHECK(read_safetensors(run_dir + "/model.safetensors").metadata.at("epochs_done") == "3");
    CHECK(read_json(run_dir + "/run.json")["starts"].size() == 3);  // train, resume auto, resume
  }

  SUBCASE("a resumed run clears dead processes' temp files, never a live one's") {
    const pid_t child = ::fork();
    if (child == 0) ::_exit(0);
    REQUIRE(child > 0);
    ::waitpid(child, nullptr, 0);
    const std::string dead = run_dir + "/model.safetensors.tmp." + std::to_string(child);
    // (a name the run itself does not write: this process is the run)
    const std::string live = run_dir + "/weights_export.bin.tmp." + std::to_string(::getpid());
    std::ofstream(dead) << "half a checkpoint";
    std::ofstream(live) << "a write in flight";
    check_code(run({"train", "--resume", run_dir, "--set", "training.epochs=3", "--device", "cpu"}), 0);
    CHECK(!fs::exists(dead));
    CHECK(fs::exists(live));
  }
}

TEST_CASE("cli: the run header and records say what ran: samples used, layer shapes, relaxation, limits") {
  TempDir dir;
  write_cifar10_files(dir.path() / "cifar-10-batches-bin", 4, 10);
  const std::string config_path = dir.file("cifar.json");
  write_json(config_path, cifar_config(dir.path().string()));

  SUBCASE("limits: the header counts the samples used; eval says which limit and from where") {
    const std::string run_dir = dir.file("limited");
    const CliResult train = run({"train", "--config", config_path, "--device", "cpu", "--out", run_dir, "--set",
                                 "data.train_limit=12", "--set", "data.test_limit=6"});
    check_code(train, 0);
    check_contains(train.out, {"cifar10 (12 of 20 train, 6 of 10 test)", "    precision: fp32\n"});
    const json inherited = printed_json(run({"eval", "--checkpoint", run_dir, "--device", "cpu"}).out);
    CHECK(inherited["samples"] == 6);
    CHECK(inherited["data.test_limit"] == 6);
    CHECK(inherited["limit_from"] == run_dir + "/config.json");
    const json set = printed_json(
        run({"eval", "--checkpoint", run_dir, "--device", "cpu", "--set", "data.test_limit=0"}).out);
    CHECK(set["samples"] == 10);
    CHECK(set["data.test_limit"] == 0);
    CHECK(set["limit_from"] == "--set");
    const json starts = read_json(run_dir + "/run.json")["starts"];
    REQUIRE(starts.size() == 1);
    CHECK(starts[0]["threads"].get<int>() >= 1);
    CHECK(starts[0]["eqprop"].contains("commit"));
  }

  SUBCASE("a conv network's header gives its conv stack") {
    json conv = cifar_config(dir.path().string());
    conv["model"] = {{"kind", "conv_hopfield"}, {"layers", {10}}, {"cost", "cross_entropy"}};
    conv["conv"] = {{"input_shape", {3, 32, 32}}, {"channels", {2}}, {"kernel", {3}}, {"padding", {1}}, {"pool", "max"}};
    write_json(config_path, conv);
    const CliResult train = run({"train", "--config", config_path, "--device", "cpu", "--out", dir.file("conv")});
    check_code(train, 0);
    check_contains(train.out, {"model conv_hopfield, layers [10], conv {", "\"channels\":[2]", "\"kernel\":[3]",
                               "\"padding\":[1]", "\"pool\":\"max\"", "\"input_shape\":[3,32,32]"});
  }

  SUBCASE("an Ising network: real widths in the checkpoint, its relaxation in eval") {
    json ising = cifar_config(dir.path().string());
    ising["model"] = {{"kind", "ising"}, {"layers", {3072, 8, 10}}};
    ising["ising"] = {{"spins_per_class", 3}};
    ising["data"]["normalize"] = "unit";
    write_json(config_path, ising);
    const std::string run_dir = dir.file("ising");
    const CliResult train = run({"train", "--config", config_path, "--device", "cpu", "--out", run_dir});
    check_code(train, 0);
    check_contains(train.out, {"model ising, layers [3072,8,10], ising {", "\"spins_per_class\":3"});
    const SafetensorsFile checkpoint = read_safetensors(run_dir + "/model.safetensors");
    CHECK(checkpoint.metadata.at("layers") == "[3072,8,30]");
    CHECK(checkpoint.tensors.at("weights.1").shape == std::vector<std::int64_t>{8, 30});
    const json annealed = printed_json(run({"eval", "--checkpoint", run_dir, "--device", "cpu"}).out);
    CHECK(annealed["integrator"] == "annealing (gibbs)");
    const json bifurcated =
        printed_json(run({"eval", "--checkpoint", run_dir, "--device", "cpu", "--set", "ising.relaxation=dsb"}).out);
    CHECK(bifurcated["integrator"] == "dsb");
  }
}

}  // namespace
TEST_CASE("cli: train --stop-after-batches exits with code 4 and a checkpoint that --resume finishes") {
  if (!fs::exists(kFashionTrainImages)) {
    MESSAGE("skipped: " << kFashionTrainImages << " is not installed (Debian package dataset-fashion-mnist)");
    return;
  }
  TempDir dir;
  const std::string config_path = dir.file("tiny.json");
  write_tiny_fashion_config(config_path);
  const std::string run_dir = dir.file("run");
  const CliResult stopped = run({"train", "--config", config_path, "--out", run_dir, "--device", "cpu",
                                 "--stop-after-batches", "3"});
  check_code(stopped, 4);
  check_contains(stopped.out, {"stopped by the batch limit", "after batch 3 of 10", "--resume"});
  CHECK(fs::exists(run_dir + "/model.safetensors"));
  const CliResult resumed = run({"train", "--resume", run_dir, "--device", "cpu"});
  check_code(resumed, 0);
  check_contains(resumed.out, {"epoch 1/1"});
}

}  // namespace eqprop
