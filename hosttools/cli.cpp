#include "hosttools/cli.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <map>
#include <optional>
#include <sstream>

#include "engine/batch_planner.h"
#include "engine/captured_step.h"
#include "engine/benchmark.h"
#include "engine/checkpoint.h"
#include "engine/config.h"
#include "engine/gradcheck.h"
#include "engine/sweep.h"
#include "engine/distributed.h"
#include "engine/model_factory.h"
#include "engine/precision_summary.h"
#include "engine/run_directory.h"
#include "engine/training_run.h"
#include "kernels/dnnl_isa.h"
#include "engine/atomic_file.h"
#include "hosttools/cli_options.h"
#include "hosttools/learning_curve.h"
#include "hosttools/plot_files.h"
#include "hosttools/dataset_files.h"
#include "hosttools/landscape_command.h"
#include "hosttools/progress_bar.h"
#include "hosttools/solve_command.h"
#include "hosttools/sweep_command.h"
#include "kernels/error.h"
#include "eqprop_build_info.h"

namespace eqprop {
namespace {

// train stopped early with a resumable checkpoint (signal, --time-limit).
constexpr int kStoppedExitCode = 4;

// One entry per command: `eqprop help` lists them all, `eqprop COMMAND --help` its own.
struct CommandUsage {
  const char* name;
  const char* text;
};

const CommandUsage kCommands[] = {
    {"train",
     "  train      --config FILE [--out DIR] [--overwrite] [--device auto|cpu|cuda] [--set key=value ...]\n"
     "             [--memory-gib X]   refuses before training when the batch does not fit (see plan)\n"
     "             refuses a DIR that holds a run unless --overwrite (which replaces it once the\n"
     "             new run has started) or --resume\n"
     "             train --resume DIR [--set training.epochs=N ...]\n"
     "             train --resume auto --config FILE --out DIR   resumes DIR's checkpoint, else starts\n"
     "             [--time-limit SECONDS] [--stop-after-batches N]   stop early like a signal does\n"
     "             SIGTERM, SIGINT or SIGUSR1 (Slurm: --signal=B:USR1@300) finish the current batch\n"
     "             (of training or of the epoch's evaluation), write a checkpoint of the position\n"
     "             inside the epoch and exit with code 4;\n"
     "             --resume continues exactly as if never stopped. Under mpirun/srun each rank\n"
     "             relaxes its share of every batch (README.md: Several GPUs and clusters)\n"},
    {"eval",
     "  eval       --checkpoint DIR [--best] [--data DIR] [--split test|train] [--device ...] [--set ...]\n"
     "             the last checkpoint (model.safetensors), or with --best the best (best.safetensors);\n"
     "             data.test_limit (train_limit) as the run had it unless --set changes it\n"
     "             [--sweep KEY=A:B[:STEP]|KEY=V1,V2,... [--out DIR]]   evaluate under each value; CSV and plot\n"},
    {"gradcheck", "  gradcheck  --config FILE | --checkpoint DIR [--split test|train] [--samples N] [--device ...] [--set ...]\n"},
    {"bench",
     "  bench      [--config FILE] [--device ...] [--set key=value ...] [--repeats N] [--warmup N]\n"
     "             times training steps; prints JSON with ms_per_batch, threads and OpenMP wait policy\n"},
    {"plan",
     "  plan       --config FILE [--device cpu|cuda] [--memory-gib X] [--set ...]   the largest batch that\n"
     "             fits the device (or X GiB): builds the trainer at two small batches, counts the device\n"
     "             bytes (fixed + per system), keeps 10% free; prints JSON\n"},
    {"solve",
     "  solve      --problem maxcut --graph FILE | --problem ising --couplings FILE\n"
     "             [--method bsb|dsb|sa|oim] [--replicas R] [--steps K] [--rounds N] [--seed S]\n"
     "             [--time-limit SEC] [--device ...] [--out FILE] [--dt DT] [--c0 C0] [--evaluations E]\n"
     "             [--path auto|fused|gemm]\n"
     "             many-replica Ising / MAX-CUT solver; prints one JSON line, --out gets the best\n"
     "             assignment (one 1 or -1 per line); --path: bsb/dsb as one fused kernel per replica\n"
     "             (fused), or a GEMM per step for all replicas (gemm); auto: fused for small problems;\n"
     "             under mpirun the ranks share the replicas (the result of 1 rank), rank 0 prints\n"},
    {"sweep",
     "  sweep      --config FILE --sweep KEY=V1,V2,... [--with KEY=V1,V2,...] [--variant NAME:KEY=VALUE]\n"
     "             [--out DIR] [--device ...] [--set ...]   one training run per value (and variant);\n"
     "             writes DIR/sweep.csv, sweep.jsonl and SVG plots of accuracy and energy; a finished\n"
     "             run is reused only when its resolved config is unchanged\n"},
    {"landscape",
     "  landscape  --checkpoint DIR [--samples N] [--starts K] [--integrator ...] [--steps T] [--out CSV]\n"
     "             the distinct minima of each sample from the reset state and K random starts; JSON\n"},
    {"config",
     "  config     [--config FILE] [--set ...]   print the resolved config\n"
     "  config     --reference                  print every config key with its default\n"},
};

const char* kUsageHead =
    "usage: eqprop <command> [options]\n"
    "\n"
    "Simulates layered Hopfield networks and trains them with Equilibrium Propagation.\n"
    "\n"
    "commands:\n";
const char* kUsageTail =
    "  help       this text (COMMAND --help: one command's usage)\n"
    "  --version  version, git commit and build flags\n"
    "\n";
const char* kOutputsAndExitCodes =
    "Output of train (in --out, default runs/<config name>): config.json (resolved config),\n"
    "metrics.jsonl (one JSON record per epoch), model.safetensors (the last checkpoint, written\n"
    "after each epoch; --resume continues it), best.safetensors (the checkpoint of the best test\n"
    "accuracy so far), run.json (build, threads and ranks of each start).\n"
    "Exit codes: 0 ok, 1 runtime error, 2 usage or config error, 3 training diverged,\n"
    "4 train stopped early (signal or limit) with a resumable checkpoint.\n";

std::string usage() {
  std::string text = kUsageHead;
  for (const CommandUsage& command : kCommands) text += command.text;
  return text + kUsageTail + kOutputsAndExitCodes;
}

// The usage of one command, or the whole usage for an unknown one.
std::string usage_of(const std::string& name) {
  for (const CommandUsage& command : kCommands)
    if (name == command.name)
      return "usage: eqprop " + name + " [options]\n\n" + command.text + "\n" +
             (name == "train" ? kOutputsAndExitCodes : "");
  return usage();
}

std::string version_text() {
  std::ostringstream text;
  text << "eqprop " << EQPROP_VERSION << " (commit " << EQPROP_GIT_COMMIT << ")\n"
       << "build: " << EQPROP_BUILD_TYPE << ", " << EQPROP_CXX_COMPILER << ", CUDA backend "
#ifdef EQPROP_HAVE_CUDA
       << "on (architectures " << EQPROP_CUDA_ARCHITECTURES << ")"
#else
       << "off"
#endif
       << ", mpi: " << (Distributed::built_with_mpi() ? "yes" : "no")
       << ", nccl: " << (Distributed::built_with_nccl() ? "yes" : "no")
       << ", onednn: " << (built_with_dnnl() ? "yes" : "no") << "\n";
  return text.str();
}

// The OpenMP settings a run used: its threads and how idle threads wait (the eqprop
// command sets a passive wait where the user has not chosen, see hosttools/main.cpp).
nlohmann::json openmp_settings() {
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  const char* spincount = std::getenv("GOMP_SPINCOUNT");
  std::string wait = policy ? policy : spincount ? "" : "unset (OpenMP default: spin)";
  if (spincount) wait += std::string(wait.empty() ? "" : ", ") + "GOMP_SPINCOUNT=" + spincount;
  return {{"threads", omp_get_max_threads()}, {"omp_wait_policy", wait}};
}

DatasetSplits load_data(const Config& config) { return load_dataset(config.data.name, config.data.dir); }

std::string percent(double fraction) {
  std::ostringstream text;
  text << std::fixed << std::setprecision(2) << 100.0 * fraction << "%";
  return text.str();
}

// --memory-gib X as bytes, or nothing when absent (plan for the device's free memory).
std::optional<std::int64_t> memory_option(const Options& options) {
  if (!options.has("--memory-gib")) return std::nullopt;
  const std::string text = options.get("--memory-gib");
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !(value > 0) || value > 1e6)
    throw UsageError("--memory-gib must be a positive number of GiB, got '" + text + "'");
  return static_cast<std::int64_t>(value * 1024.0 * 1024.0 * 1024.0);
}

int command_train(const std::vector<std::string>& args, std::ostream& out) {
  const Options options =
      parse_options(args, 1, {"--config", "--out", "--device", "--set", "--resume", "--memory-gib", "--time-limit",
                              "--stop-after-batches"}, {"--overwrite"});
  // --resume auto --out DIR: continue DIR's checkpoint when there is one, else start
  // from --config (a job script that is requeued after preemption runs unchanged).
  const bool resume_auto = options.has("--resume") && options.get("--resume") == "auto";
  if (resume_auto && !options.has("--out")) throw UsageError("--resume auto needs --out DIR");
  const bool resume = resume_auto ? std::filesystem::exists(std::filesystem::path(options.get("--out")) / kModelFile)
                                  : options.has("--resume");
  if (resume && options.has("--config") && !resume_auto)
    throw UsageError("--resume DIR continues with DIR/config.json; do not pass --config with it");
  RunLimits limits;
  limits.stop_on_signals = true;
  if (options.has("--time-limit")) {
    const std::string text = options.get("--time-limit");
    char* end = nullptr;
    limits.time_limit_seconds = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || !(limits.time_limit_seconds > 0))
      throw UsageError("--time-limit must be a positive number of seconds, got '" + text + "'");
  }
  limits.stop_after_batches = options.has("--stop-after-batches") ? parse_positive(options, "--stop-after-batches", 0) : 0;
  std::string out_dir;
  Config config;
  if (resume) {
    out_dir = resume_auto ? options.get("--out") : options.get("--resume");
    if (options.has("--out") && options.get("--out") != out_dir)
      throw UsageError("--resume writes into the directory it resumes; drop --out");
    config = load_config(options, nlohmann::json::object(), out_dir + "/" + kConfigFile, read_checkpoint_config(out_dir));
  } else {
    config = config_from_options(options, true);
    out_dir = options.get("--out", "runs/" + std::filesystem::path(options.get("--config")).stem().string());
  }
  // An earlier run is replaced only when asked (run_training removes it once the new
  // run has started); --resume auto without a checkpoint has nothing to keep.
  if (options.has("--overwrite") && options.has("--resume"))
    throw UsageError("--overwrite replaces a run and --resume continues it; pass one of them");
  if (!resume && !resume_auto && !options.has("--overwrite") && holds_run(out_dir))
    throw UsageError(out_dir + " holds a run; use --resume to continue it, --overwrite to replace it, or --out to "
                     "choose another directory");
  // Under mpirun/srun: one rank per GPU of its node; rank 0 alone prints.
  Distributed& world = Distributed::world();
  if (world.size() > 1 && config.device == "cuda") world.select_cuda_device();
  std::ostream silent(nullptr);
  std::ostream& report = world.is_root() ? out : silent;
  auto backend = make_backend(config.device);
  // Before the data is read and the first epoch starts: a batch that cannot fit
  // fails now, with the size that would, not with an allocation error mid-run.
  check_batch_fits(plan_batch(*backend, config, memory_option(options)));
  const DatasetSplits data = load_data(config);
  // The samples the run uses: a data.*_limit takes the first ones.
  const auto used = [](std::int64_t count, std::int64_t limit) {
    return limit > 0 && limit < count ? std::to_string(limit) + " of " + std::to_string(count) : std::to_string(count);
  };
  report << "eqprop train: " << config.data.name << " (" << used(data.train.count(), config.data.train_limit)
      << " train, " << used(data.test.count(), config.data.test_limit) << " test)\n"
      << "    model " << model_summary(config) << "\n"
      << "    backend " << backend->name() << " (" << backend->device_name() << "), output " << out_dir << "\n"
      << "    precision: " << gemm_precision_summary(*backend, config.training.gemm_precision) << "\n"
      << "    cuda graphs: " << step_capture_summary(config, *backend, world.size()) << "\n"
      << "    mpi: " << (Distributed::built_with_mpi() ? "yes" : "no") << " (" << world.size()
      << (world.size() == 1 ? " rank)"
                            : " ranks, sums on the " + reduction_path_name(world.reduction_path(*backend)) + ")")
      << std::endl;

  ProgressBar bar(stderr);
  RunCallbacks callbacks;
  callbacks.on_epoch_start = [&](int epoch, int epochs) {
    if (!world.is_root()) return;
    std::ostringstream label;
    label << "epoch " << epoch << "/" << epochs;
    std::int64_t samples = data.train.count();
    if (config.data.train_limit > 0) samples = std::min(samples, config.data.train_limit);
    bar.start(label.str(), samples / config.training.batch_size, config.training.batch_size);
  };
  callbacks.on_batch = [&](std::int64_t done, std::int64_t, const BatchResult& so_far) {
    if (!world.is_root()) return;
    bar.update(done, "loss " + std::to_string(so_far.loss_sum / so_far.size).substr(0, 6) + "  acc " +
                         percent(so_far.correct_sum / so_far.size));
  };
  callbacks.on_eval_start = [&](int epoch) {
    const std::int64_t samples = config.data.test_limit > 0 ? std::min(data.test.count(), config.data.test_limit)
                                                            : data.test.count();
    const std::int64_t batch = config.training.eval_batch_size;
    bar.start("test " + std::to_string(epoch) + "/" + std::to_string(config.training.epochs),
              (samples + batch - 1) / batch, batch);
  };
  callbacks.on_eval_batch = [&](std::int64_t done, std::int64_t, const BatchResult& so_far) {
    bar.update(done, "acc " + percent(so_far.correct_sum / so_far.size));
  };
  // Two lines per epoch, each within 80 columns: the accuracies, then speed and
  // the relaxation diagnostics.
  callbacks.on_epoch_end = [&](const EpochRecord& r) {
    if (!world.is_root()) return;
    bar.finish();
    report << std::fixed << "epoch " << r.epoch << "/" << config.training.epochs << "  test " << percent(r.test_acc)
        << " (loss " << std::setprecision(4) << r.test_loss << ")  train " << percent(r.train_acc) << " (loss "
        << r.train_loss << ")  " << std::setprecision(1) << r.seconds << " s\n"
        << "    " << std::setprecision(0) << r.samples_per_s << " samples/s  steps " << std::setprecision(1)
        << r.free_steps_mean << "+" << r.nudge_steps_mean << "  E_free " << std::setprecision(3)
        << r.free_energy_mean << std::defaultfloat;
    if (r.adjoint_residual_max) report << "  adjoint residual " << std::setprecision(2) << *r.adjoint_residual_max;
    report << std::endl;
    if (world.is_root()) write_learning_curve(out_dir);  // metrics.jsonl holds this epoch's record by now
  };
  const auto started = std::chrono::steady_clock::now();
  std::vector<EpochRecord> records;
  try {
    records = run_training(*backend, config, data, out_dir, resume, callbacks, limits);
  } catch (const TrainingStopped& stopped) {
    bar.finish();
    report << "eqprop train: " << stopped.what() << std::endl;
    return kStoppedExitCode;
  } catch (...) {
    bar.finish();
    throw;
  }
  if (records.empty()) {
    report << "nothing to do: the checkpoint in " << out_dir << " already has " << config.training.epochs
        << " epochs (raise training.epochs with --set to continue)" << std::endl;
    return 0;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const EpochRecord& last = records.back();
  const EpochRecord& best = *std::max_element(records.begin(), records.end(), [](const auto& a, const auto& b) {
    return a.test_acc < b.test_acc;
  });
  const std::filesystem::path dir(out_dir);
  report << "done: epochs " << records.front().epoch << "-" << last.epoch << " in " << format_duration(seconds) << "\n"
      << "test accuracy: best " << percent(best.test_acc) << " (epoch " << best.epoch << "), last "
      << percent(last.test_acc) << " (epoch " << last.epoch << ")\n"
      << "checkpoint " << (dir / kModelFile).string() << "\n"
      << "metrics    " << (dir / kMetricsFile).string() << std::endl;
  return 0;
}

// "KEY=A:B" (integers A..B), "KEY=A:B:STEP" or "KEY=V1,V2,..." -> (KEY, values).
std::pair<std::string, std::vector<std::string>> parse_eval_sweep(const std::string& text) {
  const std::size_t equals = text.find('=');
  if (equals == std::string::npos || equals == 0 || equals + 1 == text.size())
    throw UsageError("--sweep '" + text + "': expected KEY=A:B, KEY=A:B:STEP or KEY=V1,V2,...");
  const std::string key = text.substr(0, equals), list = text.substr(equals + 1);
  std::vector<std::string> values;
  if (list.find(':') != std::string::npos) {
    try {
      values = sweep_range_values(list);
    } catch (const ConfigError& error) {
      throw UsageError("--sweep " + key + ": " + error.what());
    }
  } else {
    std::stringstream items(list);
    for (std::string item; std::getline(items, item, ',');)
      if (!item.empty()) values.push_back(item);
  }
  if (values.empty()) throw UsageError("--sweep '" + text + "': no values");
  return {key, values};
}

int command_eval(const std::vector<std::string>& args, std::ostream& out) {
  const Options options =
      parse_options(args, 1, {"--checkpoint", "--data", "--device", "--split", "--set", "--sweep", "--out"},
                    {"--best"});
  if (!options.has("--checkpoint")) throw UsageError("--checkpoint DIR is required");
  const std::string dir = options.get("--checkpoint");
  Options adjusted = options;
  if (options.has("--data")) adjusted.repeated["--set"].push_back("data.dir=" + options.get("--data"));
  const std::string source = dir + "/" + kConfigFile;
  const nlohmann::json checkpoint = read_checkpoint_config(dir), user = nlohmann::json::object();
  const Config config = load_config(adjusted, user, source, checkpoint);
  const std::string split = options.get("--split", "test");
  if (split != "test" && split != "train") throw UsageError("--split must be test or train, got '" + split + "'");
  // Without --sweep: one evaluation. With it: one per value of the key, every
  // config checked before the first evaluation.
  std::string key;
  std::vector<std::string> values{""};
  if (options.has("--sweep")) std::tie(key, values) = parse_eval_sweep(options.get("--sweep"));
  std::vector<Config> configs;
  for (const std::string& value : values) {
    Options point = adjusted;
    if (!key.empty()) point.repeated["--set"].push_back(key + "=" + value);
    configs.push_back(load_config(point, user, source, checkpoint));
  }
  auto backend = make_backend(config.device);
  const DatasetSplits data = load_data(config);
  const Dataset& evaluated = split == "test" ? data.test : data.train;
  const std::int64_t limit = split == "test" ? config.data.test_limit : config.data.train_limit;
  // Said in the record: a limit the run had carries into its evaluation silently otherwise.
  const std::string limit_key = split == "test" ? "data.test_limit" : "data.train_limit";
  const auto& sets = options.all("--set");
  const bool limit_set = std::any_of(sets.begin(), sets.end(), [&](const std::string& assignment) {
    return assignment.rfind(limit_key + "=", 0) == 0;
  });
  const char* model_file = options.has("--best") ? kBestModelFile : kModelFile;
  std::string csv = key.empty() ? "" : key + ",accuracy,loss,free_energy_mean,samples\n";
  PlotSeries accuracy{"test accuracy", {}, {}};
  for (std::size_t i = 0; i < values.size(); ++i) {
    const Config& point = configs[i];
    Trainer trainer(*backend, point, static_cast<int>(data.train.sample_size()), data.train.num_classes);
    require_fits_model(evaluated, "the " + split + " split", trainer.model().input_size(), trainer.model().classes());
    const int epochs = load_checkpoint(dir, trainer, /*with_optimizer=*/false, nullptr, model_file);
    const EvalResult result = trainer.evaluate(evaluated, make_normalization(point, data.train), limit);
    nlohmann::json record{{"checkpoint", dir},
                          {"model_file", model_file},
                          {"epochs_trained", epochs},
                          {"split", split},
                          {"samples", result.samples},
                          {limit_key, limit},
                          {"limit_from", limit_set ? "--set" : source},
                          {"loss", result.loss},
                          {"accuracy", result.accuracy},
                          {"free_energy_mean", result.free_energy_mean},
                          {"free_steps_mean", result.free_steps_mean},
                          {"integrator", relaxation_name(point)},
                          {"t_free", point.dynamics.t_free},
                          {"backend", backend->name()}};
    if (!key.empty()) record[key] = values[i];
    out << record.dump() << std::endl;
    if (key.empty()) continue;
    csv += values[i] + "," + std::to_string(result.accuracy) + "," + std::to_string(result.loss) + "," +
           std::to_string(result.free_energy_mean) + "," + std::to_string(result.samples) + "\n";
    char* end = nullptr;
    const double x = std::strtod(values[i].c_str(), &end);
    accuracy.x.push_back(end && *end == '\0' ? x : static_cast<double>(i));
    accuracy.y.push_back(100 * result.accuracy);
  }
  if (key.empty()) return 0;
  const std::filesystem::path out_dir = options.get("--out", (std::filesystem::path(dir) / ("eval_sweep_" + key)).string());
  create_output_directory(out_dir.string());
  write_file_atomically((out_dir / "sweep.csv").string(), csv);
  PlotOptions plot{"accuracy of " + dir + " against " + key, key, split + " accuracy (%)"};
  plot.min_y_span = 10, plot.y_floor = 0, plot.y_ceiling = 100;
  write_line_plot_files((out_dir / "sweep_accuracy").string(), {accuracy}, plot);
  out << "wrote " << (out_dir / "sweep.csv").string() << ", sweep_accuracy.svg and sweep_accuracy.png" << std::endl;
  return 0;
}

int command_gradcheck(const std::vector<std::string>& args, std::ostream& out) {
  const Options options =
      parse_options(args, 1, {"--config", "--checkpoint", "--device", "--set", "--samples", "--split"});
  GradcheckOptions gradcheck;
  // --checkpoint: the trained weights and the config they were trained with
  // (--set changes e.g. the dynamics whose EP estimate is checked).
  gradcheck.checkpoint = options.get("--checkpoint", "");
  gradcheck.samples = parse_positive(options, "--samples", gradcheck.samples);
  if (!gradcheck.checkpoint.empty() && options.has("--config"))
    throw UsageError("gradcheck takes --config FILE or --checkpoint DIR, not both");
  const Config config =
      gradcheck.checkpoint.empty()
          ? config_from_options(options, true)
          : load_config(options, nlohmann::json::object(), gradcheck.checkpoint + "/" + kConfigFile,
                        read_checkpoint_config(gradcheck.checkpoint));
  // --split: the data set's images in order (normalised as in training) instead of
  // random inputs, which saturate a trained network's units.
  if (options.has("--split")) {
    const std::string split = options.get("--split");
    if (split != "test" && split != "train") throw UsageError("--split must be test or train, got '" + split + "'");
    const DatasetSplits data = load_data(config);
    const Dataset& images = split == "test" ? data.test : data.train;
    const Normalization normalization = make_normalization(config, data.train);
    const std::int64_t size = images.sample_size(), per_channel = size / static_cast<std::int64_t>(normalization.mean.size());
    // As many candidates as the draws may use (100 per sample).
    const std::int64_t count = std::min<std::int64_t>(images.count(), 100 * static_cast<std::int64_t>(gradcheck.samples));
    for (std::int64_t i = 0; i < count; ++i) {
      for (std::int64_t j = 0; j < size; ++j) {
        const std::size_t channel = static_cast<std::size_t>(j / per_channel);
        gradcheck.candidates.push_back((images.pixels[static_cast<std::size_t>(i * size + j)] / 255.0f -
                                        normalization.mean[channel]) / normalization.std[channel]);
      }
      gradcheck.candidate_labels.push_back(images.labels[static_cast<std::size_t>(i)]);
    }
  }
  auto backend = make_backend(config.device);
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
  nlohmann::json result = run_benchmark(*backend, config, bench);
  result.update(openmp_settings());
  out << result.dump() << std::endl;
  return 0;
}

int command_plan(const std::vector<std::string>& args, std::ostream& out) {
  const Options options = parse_options(args, 1, {"--config", "--device", "--set", "--memory-gib"});
  const Config config = config_from_options(options, true);
  auto backend = make_backend(config.device);
  out << plan_batch(*backend, config, memory_option(options)).to_json().dump() << std::endl;
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

std::string out_of_memory_message(const std::string& command) {
  const bool batched = command == "train" || command == "eval" || command == "gradcheck" || command == "bench" ||
                       command == "plan";
  return batched ? "eqprop: out of memory (try a smaller training.batch_size)" : "eqprop: out of memory";
}

int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    (args.empty() ? err : out) << usage();
    return args.empty() ? 2 : 0;
  }
  const std::string& command = args[0];
  if (command == "--version" || command == "version") {
    out << version_text();
    return 0;
  }
  if (std::find(args.begin(), args.end(), "--help") != args.end()) {
    out << usage_of(command);
    return 0;
  }
  // One line on err for every error, and the exit code of its kind.
  const auto fail = [&err](const std::string& message, int code) {
    err << "eqprop: " << message << std::endl;
    return code;
  };
  try {
    if (command == "train") return command_train(args, out);
    if (command == "eval") return command_eval(args, out);
    if (command == "gradcheck") return command_gradcheck(args, out);
    if (command == "bench") return command_bench(args, out);
    if (command == "plan") return command_plan(args, out);
    if (command == "config") return command_config(args, out);
    if (command == "solve") return command_solve(args, out, err);
    if (command == "sweep") return command_sweep(args, out, err);
    if (command == "landscape") return command_landscape(args, out, err);
    throw UsageError("unknown command '" + command + "' (commands: train, eval, gradcheck, bench, plan, solve, sweep, landscape, config, help)");
  } catch (const UsageError& error) {
    return fail(error.what(), 2);
  } catch (const ConfigError& error) {
    return fail(std::string("config error: ") + error.what(), 2);
  } catch (const DivergenceError& error) {
    return fail(error.what(), 3);
  } catch (const Error& error) {
    return fail(error.what(), 1);
  } catch (const std::bad_alloc&) {
    err << out_of_memory_message(command) << std::endl;
    return 1;
  } catch (const std::exception& error) {
    // Not expected: every user error is a typed eqprop::Error. Still one line, no abort.
    return fail(std::string("internal error: ") + error.what(), 1);
  }
}

}  // namespace eqprop
