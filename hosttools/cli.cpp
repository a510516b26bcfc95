#include "hosttools/cli.h"

#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <map>
#include <sstream>

#include "engine/benchmark.h"
#include "engine/checkpoint.h"
#include "engine/config.h"
#include "engine/gradcheck.h"
#include "engine/training_run.h"
#include "hosttools/cli_options.h"
#include "hosttools/dataset_files.h"
#include "hosttools/progress_bar.h"
#include "hosttools/sweep_command.h"
#include "kernels/error.h"

namespace eqprop {
namespace {

const char* kUsage =
    "usage: eqprop <command> [options]\n"
    "\n"
    "Simulates layered Hopfield networks and trains them with Equilibrium Propagation.\n"
    "\n"
    "commands:\n"
    "  train      --config FILE [--out DIR] [--device auto|cpu|cuda] [--set key=value ...]\n"
    "             train --resume DIR [--set training.epochs=N ...]\n"
    "  eval       --checkpoint DIR [--data DIR] [--split test|train] [--device ...]\n"
    "  gradcheck  --config FILE [--samples N] [--device ...] [--set key=value ...]\n"
    "  bench      [--config FILE] [--device ...] [--set key=value ...] [--repeats N] [--warmup N]\n"
    "  sweep      --config FILE --sweep KEY=V1,V2,... [--with KEY=V1,V2,...] [--variant NAME:KEY=VALUE]\n"
    "             [--out DIR] [--device ...] [--set ...]   one training run per value (and variant);\n"
    "             writes DIR/sweep.csv, sweep.jsonl and SVG plots of accuracy and energy\n"
    "  config     [--config FILE] [--set ...]   print the resolved config\n"
    "  config     --reference                  print every config key with its default\n"
    "  help       this text\n"
    "\n"
    "Output of train (in --out, default runs/<config name>): config.json (resolved config),\n"
    "metrics.jsonl (one JSON record per epoch), model.safetensors (checkpoint after each epoch).\n"
    "Exit codes: 0 ok, 1 runtime error, 2 usage or config error, 3 training diverged.\n";

DatasetSplits load_data(const Config& config) { return load_dataset(config.data.name, config.data.dir); }

std::string percent(double fraction) {
  std::ostringstream text;
  text << std::fixed << std::setprecision(2) << 100.0 * fraction << "%";
  return text.str();
}

int command_train(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const Options options = parse_options(args, 1, {"--config", "--out", "--device", "--set", "--resume"});
  const bool resume = options.has("--resume");
  if (resume && options.has("--config"))
    throw UsageError("--resume DIR continues with DIR/config.json; do not pass --config with it");
  std::string out_dir;
  Config config;
  if (resume) {
    out_dir = options.get("--resume");
    if (options.has("--out") && options.get("--out") != out_dir)
      throw UsageError("--resume writes into the directory it resumes; drop --out");
    config = load_config(options, read_checkpoint_config(out_dir), out_dir + "/" + kConfigFile);
  } else {
    config = config_from_options(options, true);
    out_dir = options.get("--out", "runs/" + std::filesystem::path(options.get("--config")).stem().string());
  }
  auto backend = make_backend(config.device);
  const DatasetSplits data = load_data(config);
  out << "eqprop train: " << config.data.name << " (" << data.train.count() << " train, " << data.test.count()
      << " test), layers " << config.resolved["model"]["layers"].dump() << ", backend " << backend->name() << " ("
      << backend->device_name() << "), output " << out_dir << std::endl;

  ProgressBar bar(stderr);
  RunCallbacks callbacks;
  callbacks.on_epoch_start = [&](int epoch, int epochs) {
    std::ostringstream label;
    label << "epoch " << epoch << "/" << epochs;
    std::int64_t samples = data.train.count();
    if (config.data.train_limit > 0) samples = std::min(samples, config.data.train_limit);
    bar.start(label.str(), samples / config.training.batch_size, config.training.batch_size);
  };
  callbacks.on_batch = [&](std::int64_t done, std::int64_t, const BatchResult& so_far) {
    bar.update(done, "loss " + std::to_string(so_far.loss_sum / so_far.size).substr(0, 6) + "  acc " +
                         percent(so_far.correct_sum / so_far.size));
  };
  callbacks.on_epoch_end = [&](const EpochRecord& r) {
    bar.finish();
    out << "epoch " << r.epoch << "/" << config.training.epochs << "  train_loss " << std::setprecision(4)
        << r.train_loss << "  train_acc " << percent(r.train_acc) << "  test_loss " << r.test_loss
        << "  test_acc " << percent(r.test_acc) << "  " << std::fixed << std::setprecision(1) << r.seconds
        << " s  " << std::setprecision(0) << r.samples_per_s << " samples/s  steps " << std::setprecision(1)
        << r.free_steps_mean << "+" << r.nudge_steps_mean << "  E_free " << std::setprecision(3)
        << r.free_energy_mean << std::defaultfloat << std::endl;
  };
  try {
    const auto records = run_training(*backend, config, data, out_dir, resume, callbacks);
    if (records.empty())
      out << "nothing to do: the checkpoint in " << out_dir << " already has " << config.training.epochs
          << " epochs (raise training.epochs with --set to continue)" << std::endl;
  } catch (...) {
    bar.finish();
    throw;
  }
  (void)err;
  return 0;
}

int command_eval(const std::vector<std::string>& args, std::ostream& out) {
  const Options options = parse_options(args, 1, {"--checkpoint", "--data", "--device", "--split", "--set"});
  if (!options.has("--checkpoint")) throw UsageError("--checkpoint DIR is required");
  const std::string dir = options.get("--checkpoint");
  Options adjusted = options;
  if (options.has("--data")) adjusted.repeated["--set"].push_back("data.dir=" + options.get("--data"));
  const Config config = load_config(adjusted, read_checkpoint_config(dir), dir + "/" + kConfigFile);
  const std::string split = options.get("--split", "test");
  if (split != "test" && split != "train") throw UsageError("--split must be test or train, got '" + split + "'");
  auto backend = make_backend(config.device);
  const DatasetSplits data = load_data(config);
  Trainer trainer(*backend, config, static_cast<int>(data.train.sample_size()), data.train.num_classes);
  const int epochs = load_checkpoint(dir, trainer, /*with_optimizer=*/false);
  const Dataset& evaluated = split == "test" ? data.test : data.train;
  const std::int64_t limit = split == "test" ? config.data.test_limit : config.data.train_limit;
  const EvalResult result = trainer.evaluate(evaluated, make_normalization(config, data.train), limit);
  out << nlohmann::json{{"checkpoint", dir},
                        {"epochs_trained", epochs},
                        {"split", split},
                        {"samples", result.samples},
                        {"loss", result.loss},
                        {"accuracy", result.accuracy},
                        {"free_energy_mean", result.free_energy_mean},
                        {"free_steps_mean", result.free_steps_mean},
                        {"integrator", config.resolved["dynamics"]["integrator"]},
                        {"t_free", config.dynamics.t_free},
                        {"backend", backend->name()}}
             .dump()
      << std::endl;
  return 0;
}

int command_gradcheck(const std::vector<std::string>& args, std::ostream& out) {
  const Options options = parse_options(args, 1, {"--config", "--device", "--set", "--samples"});
  const Config config = config_from_options(options, true);
  auto backend = make_backend(config.device);
  GradcheckOptions gradcheck;
  gradcheck.samples = parse_positive(options, "--samples", gradcheck.samples);
  out << run_gradcheck(*backend, config, gradcheck).dump(2) << std::endl;
  return 0;
}

int command_bench(const std::vector<std::string>& args, std::ostream& out) {
  const Options options = parse_options(args, 1, {"--config", "--device", "--set", "--repeats", "--warmup"});
  const Config config = config_from_options(options, false);
  auto backend = make_backend(config.device);
  BenchmarkOptions bench;
  bench.repeats = parse_positive(options, "--repeats", bench.repeats);
  bench.warmup = parse_positive(options, "--warmup", bench.warmup);
  out << run_benchmark(*backend, config, bench).dump() << std::endl;
  return 0;
}

int command_config(const std::vector<std::string>& args, std::ostream& out) {
  const Options options = parse_options(args, 1, {"--config", "--set", "--device"}, {"--reference"});
  if (options.has("--reference")) {
    out << config_reference_markdown();
    return 0;
  }
  out << config_from_options(options, false).resolved.dump(2) << std::endl;
  return 0;
}

}  // namespace

int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    (args.empty() ? err : out) << kUsage;
    return args.empty() ? 2 : 0;
  }
  const std::string& command = args[0];
  if (std::find(args.begin(), args.end(), "--help") != args.end()) {
    out << kUsage;
    return 0;
  }
  try {
    if (command == "train") return command_train(args, out, err);
    if (command == "eval") return command_eval(args, out);
    if (command == "gradcheck") return command_gradcheck(args, out);
    if (command == "bench") return command_bench(args, out);
    if (command == "config") return command_config(args, out);
    if (command == "sweep") return command_sweep(args, out, err);
    throw UsageError("unknown command '" + command + "' (commands: train, eval, gradcheck, bench, sweep, config, help)");
  } catch (const UsageError& error) {
    err << "eqprop: " << error.what() << std::endl;
    return 2;
  } catch (const ConfigError& error) {
    err << "eqprop: config error: " << error.what() << std::endl;
    return 2;
  } catch (const DivergenceError& error) {
    err << "eqprop: " << error.what() << std::endl;
    return 3;
  } catch (const Error& error) {
    err << "eqprop: " << error.what() << std::endl;
    return 1;
  } catch (const std::bad_alloc&) {
    err << "eqprop: out of memory (try a smaller training.batch_size)" << std::endl;
    return 1;
  } catch (const std::exception& error) {
    // Not expected: every user error is a typed eqprop::Error. Still one line, no abort.
    err << "eqprop: internal error: " << error.what() << std::endl;
    return 1;
  }
}

}  // namespace eqprop
