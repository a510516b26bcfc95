// The rules that keep a run directory safe: stale temp files of dead writers are
// cleared and a live writer's never, what counts as a run, and which files a new
// run replaces.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "engine/atomic_file.h"
#include "engine/checkpoint.h"
#include "engine/run_directory.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

namespace fs = std::filesystem;

// The pid of a child that has exited and been reaped: no live process has it (the
// kernel hands pids out in increasing order, so it is not reused within a test).
pid_t dead_pid() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  REQUIRE(child > 0);
  int status = 0;
  ::waitpid(child, &status, 0);
  return child;
}

void touch(const fs::path& path) { std::ofstream(path) << "x"; }

}  // namespace

TEST_CASE("run directory: stale temp files of dead processes go, a live process's stay") {
  test::TempDir dir;
  const fs::path dead = dir.path() / ("model.safetensors.tmp." + std::to_string(dead_pid()));
  const fs::path live = dir.path() / ("model.safetensors.tmp." + std::to_string(::getpid()));
  const fs::path parent = dir.path() / ("metrics.jsonl.tmp." + std::to_string(::getppid()));
  const fs::path not_temp = dir.path() / "notes.tmp.txt";
  const fs::path no_pid = dir.path() / "config.json.tmp.";
  for (const fs::path& path : {dead, live, parent, not_temp, no_pid}) touch(path);

  const std::vector<std::string> removed = remove_stale_temp_files(dir.path().string());
  REQUIRE(removed.size() == 1);
  CHECK(removed[0] == dead.string());
  CHECK(!fs::exists(dead));
  for (const fs::path& path : {live, parent, not_temp, no_pid}) {
    CAPTURE(path);
    CHECK(fs::exists(path));
  }
  CHECK(remove_stale_temp_files((dir.path() / "absent").string()).empty());
}

TEST_CASE("run directory: what holds a run, and what replacing it removes") {
  test::TempDir dir;
  const std::string path = dir.path().string();
  touch(dir.path() / "notes.txt");
  CHECK(!holds_run(path));
  CHECK(!holds_run(path + "/absent"));
  for (const char* file : {kConfigFile, kMetricsFile, kModelFile, kBestModelFile}) {
    CAPTURE(file);
    touch(dir.path() / file);
    CHECK(holds_run(path));
    fs::remove(dir.path() / file);
  }
  for (const char* file : {kConfigFile, kMetricsFile, kModelFile, kBestModelFile, kRunRecordFile, "learning_curve.svg"})
    touch(dir.path() / file);
  remove_run_files(path);
  CHECK(!holds_run(path));
  CHECK(!fs::exists(dir.path() / kRunRecordFile));
  CHECK(!fs::exists(dir.path() / "learning_curve.svg"));
  CHECK(fs::exists(dir.path() / "notes.txt"));  // not the run's
}

TEST_CASE("run directory: run.json records each start with the build and the threads") {
  test::TempDir dir;
  const std::string path = dir.path().string();
  record_run_start(path, run_start_record("cpu", "test device", 1, 0), /*fresh=*/true);
  record_run_start(path, run_start_record("cpu", "test device", 1, 3), /*fresh=*/false);
  const auto record = nlohmann::json::parse(read_file(path + "/" + kRunRecordFile));
  REQUIRE(record["starts"].size() == 2);
  CHECK(record["starts"][1]["from_epoch"] == 3);
  CHECK(record["starts"][0]["threads"].get<int>() >= 1);
  for (const char* key : {"commit", "version", "build_type", "compiler"}) {
    CAPTURE(key);
    CHECK(record["starts"][0]["eqprop"].contains(key));
  }
  record_run_start(path, run_start_record("cpu", "test device", 1, 0), /*fresh=*/true);
  CHECK(nlohmann::json::parse(read_file(path + "/" + kRunRecordFile))["starts"].size() == 1);
}

}  // namespace eqprop
