#include "hosttools/solve_command.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "engine/distributed.h"
#include "engine/maxcut_solver.h"
#include "hosttools/cli_options.h"
#include "hosttools/gset_reader.h"
#include "kernels/backend.h"
#include "kernels/error.h"

namespace eqprop {
namespace {

const std::vector<std::string> kFlags = {"--problem", "--graph",  "--couplings", "--method", "--replicas",
                                         "--steps",   "--rounds", "--seed",      "--time-limit", "--device",
                                         "--out",     "--dt",     "--c0",        "--evaluations", "--path"};

template <class T>
T parse_number(const std::string& flag, const std::string& text, T low, T high, const char* expected) {
  try {
    std::size_t used = 0;
    long double value;
    if constexpr (std::is_integral<T>::value) {
      if (!text.empty() && text[0] == '-') throw std::invalid_argument("negative");
      value = static_cast<long double>(std::stoull(text, &used));
    } else {
      value = std::stold(text, &used);
    }
    if (used == text.size() && std::isfinite(static_cast<double>(value)) && value >= low && value <= high)
      return static_cast<T>(value);
  } catch (const std::exception&) {
  }
  throw UsageError(flag + " " + text + ": expected " + expected);
}

// Integers print without a fraction when the weights are integers.
nlohmann::ordered_json number(double value, bool integral) {
  if (integral && std::fabs(value) < 9.0e15) return static_cast<std::int64_t>(std::llround(value));
  return value;
}

int run_solve(const std::vector<std::string>& args, std::ostream& out) {
  const Options flags = parse_options(args, 1, kFlags);
  auto get = [&](const std::string& flag, const std::string& fallback = "") { return flags.get(flag, fallback); };
  const std::string problem_kind = get("--problem", "maxcut");
  if (problem_kind != "maxcut" && problem_kind != "ising")
    throw UsageError("--problem must be maxcut or ising, got '" + problem_kind + "'");
  const bool maxcut = problem_kind == "maxcut";
  const char* file_flag = maxcut ? "--graph" : "--couplings";
  const char* other_flag = maxcut ? "--couplings" : "--graph";
  if (flags.has(other_flag))
    throw UsageError(std::string(other_flag) + " is for --problem " + (maxcut ? "ising" : "maxcut") +
                          "; --problem " + problem_kind + " reads " + file_flag + " FILE");
  if (!flags.has(file_flag))
    throw UsageError(std::string("--problem ") + problem_kind + " needs " + file_flag + " FILE");
  const std::string path = get(file_flag);

  SolverOptions options;
  const std::string method = get("--method", "dsb");
  try {
    options.method = parse_solver_method(method);
  } catch (const ConfigError& error) {
    throw UsageError(std::string("--method: ") + error.what());
  }
  if (flags.has("--replicas"))
    options.replicas = parse_number<int>("--replicas", get("--replicas"), 1, 1 << 24, "an integer in [1, 2^24]");
  if (flags.has("--steps"))
    options.steps = parse_number<int>("--steps", get("--steps"), 1, 1 << 30, "an integer in [1, 2^30]");
  if (flags.has("--rounds"))
    options.rounds = parse_number<int>("--rounds", get("--rounds"), 1, 1 << 30, "an integer in [1, 2^30]");
  if (flags.has("--evaluations"))
    options.evaluations =
        parse_number<int>("--evaluations", get("--evaluations"), 1, 1 << 30, "an integer in [1, 2^30]");
  if (flags.has("--seed"))
    options.seed = parse_number<std::uint64_t>("--seed", get("--seed"), 0, (1ULL << 53),
                                               "an integer in [0, 2^53]");
  if (flags.has("--time-limit"))
    options.time_limit_s =
        parse_number<double>("--time-limit", get("--time-limit"), 1e-9, 1e9, "a positive number of seconds");
  if (flags.has("--dt")) options.dt = parse_number<float>("--dt", get("--dt"), 1e-6f, 100.0f, "a number in (0, 100]");
  if (flags.has("--c0")) options.c0 = parse_number<float>("--c0", get("--c0"), 1e-30f, 1e30f, "a positive number");
  try {
    options.path = parse_solver_path(get("--path", "auto"));
  } catch (const ConfigError& error) {
    throw UsageError(std::string("--path: ") + error.what());
  }
  const std::string device = get("--device", "auto");
  if (device != "auto" && device != "cpu" && device != "cuda")
    throw UsageError("--device must be auto, cpu or cuda, got '" + device + "'");

  Graph graph;
  IsingProblem problem;
  if (maxcut) {
    graph = read_gset_graph(path);
    problem = maxcut_to_ising(graph);
  } else {
    problem = read_ising_couplings(path);
  }
  // Under mpirun the ranks share the replicas (engine/maxcut_solver.h), one GPU
  // each with CUDA; every rank ends with the same best, and rank 0 reports it.
  Distributed& world = Distributed::world();
  if (world.size() > 1 && (device == "cuda" || (device == "auto" && cuda_device_available())))
    world.select_cuda_device();
  auto backend = make_backend(device);
  const SolverResult result = solve_ising(*backend, problem, options);
  if (!world.is_root()) return 0;

  const bool integral = maxcut ? graph.integer_weights() : problem.integer_coefficients();
  nlohmann::ordered_json line;
  line["problem"] = problem_kind;
  line["file"] = path;
  line["n"] = problem.spins;
  line["edges"] = problem.couplings.size();
  if (!maxcut) line["fields"] = std::count_if(problem.fields.begin(), problem.fields.end(), [](double h) { return h != 0; });
  line["method"] = method;
  line["replicas"] = options.replicas;
  if (world.size() > 1) line["ranks"] = world.size();
  line["steps"] = options.steps;
  line["rounds"] = options.rounds;
  line["seed"] = options.seed;
  if (maxcut) line["best_cut"] = number(cut_value(graph, result.best_spins.data()), integral);
  line["best_energy"] = number(result.best_energy, integral);
  line["time_to_best_s"] = result.time_to_best_s;
  line["seconds"] = result.seconds;
  line["spin_updates_per_s"] = result.spin_updates_per_s;
  line["backend"] = backend->name();
  line["device"] = backend->device_name();
  line["steps_done"] = result.steps_done;
  line["rounds_done"] = result.rounds_done;
  line["time_limit_reached"] = result.time_limit_reached;
  line["setup_seconds"] = result.setup_seconds;
  line["evaluation_seconds"] = result.evaluation_seconds;
  line["best_round"] = result.best_round;
  line["best_replica"] = result.best_replica;
  if (options.method == SolverMethod::sa) {
    line["beta_start"] = result.beta_start;
    line["beta_end"] = result.beta_end;
  } else {
    line["c0"] = result.c0;
    line["dt"] = result.dt;
    line["path"] = solver_path_name(result.path);
  }
  if (flags.has("--out")) {
    write_spin_assignment(get("--out"), result.best_spins);
    line["out"] = get("--out");
  }
  out << line.dump() << std::endl;
  return 0;
}

}  // namespace

int command_solve(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  try {
    return run_solve(args, out);
  } catch (const UsageError& error) {
    err << "eqprop: " << error.what() << std::endl;
    return 2;
  }
}

}  // namespace eqprop
