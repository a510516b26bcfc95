// Data-parallel EP over MPI ranks (engine/distributed.h): two CPU ranks, each
// relaxing half of every global batch and summing the weighted gradients, train the
// same model as one process with the same global batch, up to the order of the
// float sums; a config that differs between the ranks is refused by every rank; a
// rank that dies mid-run takes the others down with it instead of leaving them
// waiting in a collective. `eqprop solve` over 2 ranks (each running half of the
// replicas) finds the best cut and spins of 1 rank. Where the sums are made: on the
// host with MPI for the CPU backend, on the device with NCCL for a backend with a
// native stream in a build with NCCL (the CUDA side: tests/cuda/test_cuda_distributed.cpp).
// Runs the eqprop binary under mpirun; skipped where there is no MPI or no data.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/distributed.h"
#include "kernels/backend.h"
#include "tests/mpi_runs.h"
#include "tests/skip.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

namespace fs = std::filesystem;
using test::file_text;
using test::kMpirun;
using test::largest_parameter_difference;
using test::run_command;
using test::test_accuracy;
using test::TempDir;
using test::train_args;

bool skip_without_mpi() { return test::skip_without_mpirun_or_data(); }

// G11 of the G-set (800 nodes on a torus, weights +-1) where the G-set lies next
// to the source tree; else a graph of that kind, a 20 x 40 torus with seeded +-1
// weights, written into `dir`.
std::string maxcut_instance(const TempDir& dir) {
  const std::string gset = std::string(EQPROP_SOURCE_DIR) + "/../shared/gset/G11.txt";
  if (fs::exists(gset)) return gset;
  const int rows = 20, columns = 40;
  std::ostringstream edges;
  std::uint32_t state = 12345;
  int count = 0;
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < columns; ++c) {
      const int node = r * columns + c;
      for (const int neighbour : {r * columns + (c + 1) % columns, ((r + 1) % rows) * columns + c}) {
        state = state * 1664525u + 1013904223u;
        edges << node + 1 << ' ' << neighbour + 1 << ' ' << ((state >> 31) ? 1 : -1) << '\n';
        ++count;
      }
    }
  const std::string path = dir.file("torus.txt");
  std::ofstream(path) << rows * columns << ' ' << count << '\n' << edges.str();
  return path;
}

}  // namespace

TEST_CASE("distributed: 2 MPI ranks train the parameters of one process with the same global batch") {
  if (skip_without_mpi()) return;
  TempDir dir;
  const std::string single = dir.file("single"), ranks = dir.file("ranks");
  REQUIRE(run_command(std::string("OMP_NUM_THREADS=1 ") + EQPROP_CLI_PATH + train_args(single)) == 0);
  REQUIRE(run_command(std::string(kMpirun) + " -np 2 " + EQPROP_CLI_PATH + train_args(ranks)) == 0);

  // The sums differ only in their order (each rank's mean weighted by its share,
  // then summed): float rounding, which 10 momentum steps carry forward without
  // growth in these contracting fixed-point dynamics. 1e-4 is some 300 times the
  // largest difference seen (3.4e-7).
  const double worst = largest_parameter_difference(single, ranks);
  MESSAGE("largest parameter difference, 1 vs 2 ranks: " << worst);
  CHECK(worst < 1e-4);
  // Sharded, reduced evaluation: the same accuracy within 0.1 points.
  CHECK(std::fabs(test_accuracy(single) - test_accuracy(ranks)) <= 0.001);
}

TEST_CASE("distributed: 2 MPI ranks train the conv model of one process with the same global batch") {
  if (skip_without_mpi()) return;
  TempDir dir;
  const std::string single = dir.file("single"), ranks = dir.file("ranks");
  // A small conv network (4 and 8 channels, 8 + 3 steps): 10 steps of a global batch
  // of 100. Average pooling: with max pooling, the float sums' order flips an argmax
  // now and then, and from there the runs follow different (equally valid) paths
  // (0.005 apart after these 10 steps, 6e-6 after one).
  const auto conv_args = [](const std::string& out) {
    return std::string(" train --config ") + EQPROP_SOURCE_DIR + "/configs/fashion_mnist_conv.json --device cpu" +
           " --out " + out + " --set training.epochs=1 --set training.batch_size=100 --set data.train_limit=1000" +
           " --set data.test_limit=1000 --set conv.channels=[4,8] --set dynamics.t_free=8 --set dynamics.t_nudge=3" +
           " --set conv.pool=avg";
  };
  REQUIRE(run_command(std::string("OMP_NUM_THREADS=1 ") + EQPROP_CLI_PATH + conv_args(single)) == 0);
  REQUIRE(run_command(std::string(kMpirun) + " -np 2 " + EQPROP_CLI_PATH + conv_args(ranks)) == 0);
  // As for the dense model: the sums differ only in their order.
  const double worst = largest_parameter_difference(single, ranks);
  MESSAGE("largest parameter difference, conv, 1 vs 2 ranks: " << worst);
  CHECK(worst < 1e-4);
  CHECK(std::fabs(test_accuracy(single) - test_accuracy(ranks)) <= 0.001);
}

TEST_CASE("distributed: ranks with different configs are refused on every rank") {
  if (skip_without_mpi()) return;
  TempDir dir;
  // MPMD: rank 1 asks for another seed; both ranks exit with the config error code.
  const std::string out = dir.file("run");
  const std::string command = std::string(kMpirun) + " -np 1 " + EQPROP_CLI_PATH + train_args(out) +
                              " --set seed=1 : -np 1 " + EQPROP_CLI_PATH + train_args(out) + " --set seed=2";
  CHECK(run_command(command) == 2);
  CHECK(!fs::exists(out + "/model.safetensors"));
}

TEST_CASE("distributed: a global batch smaller than the ranks is refused on every rank, before any file is written") {
  if (skip_without_mpi()) return;
  TempDir dir;
  const std::string out = dir.file("run"), log = dir.file("log.txt");
  const std::string command = std::string(kMpirun) + " -np 2 " + EQPROP_CLI_PATH + train_args(out) +
                              " --set training.batch_size=1 > " + log + " 2>&1";
  CHECK(std::system(command.c_str()) != 0);
  const std::string text = file_text(log);
  const std::string line = "config error: training.batch_size = 1 (the global batch) is smaller than the 2 MPI ranks";
  const std::size_t first = text.find(line);
  REQUIRE(first != std::string::npos);
  CHECK(text.find(line, first + 1) != std::string::npos);  // one line from each rank
  CHECK(!fs::exists(out + "/config.json"));
  CHECK(!fs::exists(out + "/model.safetensors"));
}

TEST_CASE("distributed: a rank killed mid-run ends the run on every rank, with an error, within minutes") {
  if (skip_without_mpi()) return;
  TempDir dir;
  const std::string out = dir.file("run");
  // Rank 1 is killed (SIGKILL: no handler, no message) once rank 0 has written its
  // first epoch record, so the ranks are inside their per-batch collectives. MPI's
  // default error handling (errors are fatal) and the launcher's abort on a rank's
  // abnormal exit end rank 0 too; `timeout` turns a hang into a failure (code 124)
  // instead of a stuck suite. The uninterrupted run would take hours.
  const std::string kill_rank1 = "[ \"$OMPI_COMM_WORLD_RANK\" = 1 ] && (while [ ! -s " + out +
                                 "/metrics.jsonl ]; do sleep 0.2; done; kill -9 $$) & exec ";
  const std::string command = "timeout 600 " + std::string(kMpirun) + " -np 2 sh -c '" + kill_rank1 +
                              EQPROP_CLI_PATH + train_args(out) + " --set training.epochs=100000'";
  const auto start = std::chrono::steady_clock::now();
  const int code = run_command(command);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  MESSAGE("exit code " << code << " after " << seconds << " s");
  CHECK(code != 0);
  CHECK(code != 124);
  CHECK(seconds < 300);
}

TEST_CASE("distributed: a 2-rank run stopped by SIGUSR1 mid-epoch and resumed by 1 rank matches the 2-rank run") {
  if (skip_without_mpi()) return;
  TempDir dir;
  const std::string whole = dir.file("whole"), stopped = dir.file("stopped");
  // 2 epochs of 20 batches; 3000 free steps make a batch slow enough (about 0.1 s)
  // for a signal to land inside an epoch. Few steps keep the float-order drift
  // between 1 and 2 ranks at rounding level (it grows with the steps: 900 steps
  // of 30000 samples end 0.3 apart, with the same accuracy).
  const std::string longer =
      " --set training.epochs=2 --set data.train_limit=2000 --set dynamics.t_free=3000";
  REQUIRE(run_command(std::string(kMpirun) + " -np 2 " + EQPROP_CLI_PATH + train_args(whole) + longer) == 0);

  // SIGUSR1 to rank 0 alone, 0.1 s after it has drawn the learning curve, the last
  // thing it does in epoch 1: the ranks agree on the stop at the next batch
  // boundary, inside the second epoch.
  const std::string signal_rank0 = "[ \"$OMPI_COMM_WORLD_RANK\" = 0 ] && (while [ ! -s " + stopped +
                                   "/learning_curve.png ]; do sleep 0.02; done; sleep 0.1; kill -USR1 $$) & exec ";
  const std::string log = dir.file("stopped.log");
  CHECK(run_command("(timeout 600 " + std::string(kMpirun) + " -np 2 sh -c '" + signal_rank0 + EQPROP_CLI_PATH +
                    train_args(stopped) + longer + "' > " + log + " 2>&1)") == 4);
  std::ifstream log_in(log);
  const std::string said((std::istreambuf_iterator<char>(log_in)), std::istreambuf_iterator<char>());
  MESSAGE(said.substr(said.find("stopped by")).substr(0, 80));
  CHECK(said.find("stopped by SIGUSR1 in epoch 2 after batch") != std::string::npos);
  {  // stopped inside the second epoch: one epoch record so far
    std::ifstream metrics(stopped + "/metrics.jsonl");
    int records = 0;
    for (std::string line; std::getline(metrics, line);) records += !line.empty();
    CHECK(records == 1);
  }
  REQUIRE(run_command(std::string("OMP_NUM_THREADS=1 ") + EQPROP_CLI_PATH + " train --device cpu --resume " +
                      stopped) == 0);

  // One rank sums its batch in another order than two: equal within float
  // rounding, as in the first case.
  const double worst = largest_parameter_difference(whole, stopped);
  MESSAGE("largest parameter difference, 2 ranks vs 2 ranks stopped and 1 resumed: " << worst);
  CHECK(worst < 1e-4);
  CHECK(std::fabs(test_accuracy(whole) - test_accuracy(stopped)) <= 0.002);
}

TEST_CASE("distributed: eqprop solve over 2 MPI ranks finds the best cut and spins of 1 rank") {
  if (test::skip_without_mpirun()) return;
  TempDir dir;
  const std::string graph = maxcut_instance(dir);
  MESSAGE("graph: " << graph);
  for (const std::string method : {"dsb", "sa"}) {
    CAPTURE(method);
    // 2 rounds of 16 replicas: rank 1 runs replicas 8-15, keyed as 1 rank keys them.
    const auto solve = [&](const std::string& launcher, const std::string& name) {
      const std::string command = launcher + EQPROP_CLI_PATH + " solve --graph " + graph + " --method " + method +
                                  " --replicas 16 --steps 400 --rounds 2 --seed 11 --device cpu --out " +
                                  dir.file(name + ".cut") + " > " + dir.file(name + ".json") + " 2> " +
                                  dir.file(name + ".err");
      // stdout holds the JSON line alone; stderr may carry a sanitizer's report.
      const int status = std::system(command.c_str());
      INFO("stderr: " << file_text(dir.file(name + ".err")));
      REQUIRE(status == 0);
      return nlohmann::json::parse(file_text(dir.file(name + ".json")));
    };
    const nlohmann::json one = solve("OMP_NUM_THREADS=1 ", method + "1");
    const nlohmann::json two = solve(std::string(kMpirun) + " -np 2 ", method + "2");
    MESSAGE(method << ": best cut " << one["best_cut"] << " (replica " << one["best_replica"] << ") with 1 rank, "
                   << two["best_cut"] << " (replica " << two["best_replica"] << ") with 2");
    CHECK(two["ranks"] == 2);
    for (const char* key : {"best_cut", "best_energy", "best_round", "best_replica", "steps_done", "rounds_done"})
      CHECK_MESSAGE(one[key] == two[key], key);
    CHECK(file_text(dir.file(method + "1.cut")) == file_text(dir.file(method + "2.cut")));
  }
}

TEST_CASE("distributed: the CPU backend sums over the ranks on the host with MPI, a CUDA stream with NCCL on the device") {
  auto cpu = make_backend("cpu");
  CHECK(cpu->native_stream() == nullptr);
  // One rank: nothing to sum, whatever the backend.
  CHECK(choose_reduction_path(1, false, true) == ReductionPath::single_rank);
  CHECK(choose_reduction_path(1, true, true) == ReductionPath::single_rank);
  CHECK(Distributed::world().reduction_path(*cpu) == ReductionPath::single_rank);  // this process is one rank
  // CPU backend -> host path, with or without NCCL in the build.
  for (const bool nccl : {false, true}) {
    CHECK(choose_reduction_path(2, cpu->native_stream() != nullptr, nccl) == ReductionPath::host_mpi);
    CHECK(choose_reduction_path(8, false, nccl) == ReductionPath::host_mpi);
  }
  // A device stream: NCCL where the build has it, else the host path.
  CHECK(choose_reduction_path(2, true, true) == ReductionPath::device_nccl);
  CHECK(choose_reduction_path(2, true, false) == ReductionPath::host_mpi);
  CHECK(reduction_path_name(ReductionPath::device_nccl) == "device with NCCL");
  CHECK(reduction_path_name(ReductionPath::host_mpi) == "host with MPI");
}

}  // namespace eqprop
