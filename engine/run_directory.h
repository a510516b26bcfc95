// The files of a training run directory beyond the checkpoint itself, and the rules
// that keep a directory's run safe: what counts as a run, which files a new run
// replaces, and run.json, the record of what ran it (bit-reproducibility depends on
// the build and the thread count, not on the config alone).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace eqprop {

// The checkpoint of the best test accuracy so far (model.safetensors is the last).
constexpr const char* kBestModelFile = "best.safetensors";
// One entry per start of the run (fresh or resumed): build, threads, ranks, backend.
constexpr const char* kRunRecordFile = "run.json";

// True when `dir` holds any file of a training run (config.json, metrics.jsonl, a
// checkpoint): starting another run there would replace it.
bool holds_run(const std::string& dir);

// Removes the files of an earlier run from `dir` (those holds_run looks for, run.json
// and the learning curve); other files stay. CheckpointError when one cannot go.
void remove_run_files(const std::string& dir);

// What runs this start: eqprop's version, commit and build flags, the OpenMP
// threads, the ranks, the backend and the epoch it starts from.
nlohmann::json run_start_record(const std::string& backend, const std::string& device, int ranks, int from_epoch);

// Appends `start` to dir/run.json (a fresh run: a new file with it alone).
void record_run_start(const std::string& dir, const nlohmann::json& start, bool fresh);

// Sets `key` of the last start in dir/run.json to `value` (what the start learned
// while running, e.g. the CPU team sizes its steps ran at: "thread_team").
void update_run_start(const std::string& dir, const std::string& key, const nlohmann::json& value);

}  // namespace eqprop
