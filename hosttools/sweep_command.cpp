#include "hosttools/sweep_command.h"

#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>

#include "engine/atomic_file.h"
#include "engine/sweep.h"
#include "hosttools/cli_options.h"
#include "hosttools/dataset_files.h"
#include "hosttools/plot_files.h"

namespace eqprop {
namespace {

// "KEY=V1,V2,..." -> (KEY, {V1, V2, ...})
std::pair<std::string, std::vector<std::string>> key_and_values(const std::string& flag, const std::string& text) {
  const std::size_t equals = text.find('=');
  if (equals == std::string::npos || equals == 0 || equals + 1 == text.size())
    throw UsageError(flag + " '" + text + "': expected KEY=V1,V2,...");
  std::vector<std::string> values;
  std::stringstream list(text.substr(equals + 1));
  for (std::string value; std::getline(list, value, ',');) {
    if (value.empty()) throw UsageError(flag + " '" + text + "': an empty value");
    values.push_back(value);
  }
  return {text.substr(0, equals), values};
}

std::vector<PlotSeries> series_of(const std::vector<SweepPoint>& points, double (*metric)(const SweepPoint&)) {
  std::vector<PlotSeries> series;
  std::map<std::string, std::size_t> index;
  for (const SweepPoint& p : points) {
    if (!index.count(p.variant)) {
      index[p.variant] = series.size();
      series.push_back(PlotSeries{p.variant.empty() ? "runs" : p.variant, {}, {}});
    }
    PlotSeries& s = series[index[p.variant]];
    char* end = nullptr;
    const double x = std::strtod(p.value.c_str(), &end);
    s.x.push_back(end && *end == '\0' ? x : static_cast<double>(s.x.size()));
    s.y.push_back(metric(p));
  }
  return series;
}

}  // namespace

int command_sweep(const std::vector<std::string>& args, std::ostream& out, std::ostream& /*err*/) {
  const Options options = parse_options(args, 1, {"--config", "--sweep", "--with", "--variant", "--out", "--device", "--set"},
                                        {}, {"--with", "--variant"});
  if (!options.has("--sweep")) throw UsageError("--sweep KEY=V1,V2,... is required");
  SweepSpec spec;
  std::tie(spec.key, spec.values) = key_and_values("--sweep", options.get("--sweep"));
  for (const std::string& with : options.all("--with")) spec.tied.push_back(key_and_values("--with", with));
  for (const std::string& variant : options.all("--variant")) {
    const std::size_t colon = variant.find(':');
    if (colon == std::string::npos || colon == 0 || variant.find('=', colon) == std::string::npos)
      throw UsageError("--variant '" + variant + "': expected NAME:KEY=VALUE");
    const std::string name = variant.substr(0, colon);
    auto it = std::find_if(spec.variants.begin(), spec.variants.end(), [&](const auto& v) { return v.first == name; });
    if (it == spec.variants.end()) it = spec.variants.insert(spec.variants.end(), {name, {}});
    it->second.push_back(variant.substr(colon + 1));
  }
  nlohmann::json user = user_config_from_options(options, true);
  for (const std::string& assignment : options.all("--set")) apply_override(user, assignment);
  if (options.has("--device")) apply_override(user, "device=" + options.get("--device"));
  const std::string source = options.get("--config");
  validate_sweep(user, spec);  // every point's config, before any training

  const Config base = parse_config(user, source);
  const std::string out_dir = options.get("--out", "runs/sweep");
  create_output_directory(out_dir);
  auto backend = make_backend(base.device);
  const DatasetSplits data = load_dataset(base.data.name, base.data.dir);
  const std::size_t total = spec.values.size() * std::max<std::size_t>(1, spec.variants.size());
  out << "eqprop sweep: " << spec.key << " over " << spec.values.size() << " values, "
      << std::max<std::size_t>(1, spec.variants.size()) << " variant(s): " << total << " runs of "
      << base.training.epochs << " epochs on " << backend->name() << ", into " << out_dir << std::endl;

  std::string jsonl;
  auto on_point = [&](const SweepPoint& p) {
    nlohmann::json record = {{"variant", p.variant}, {spec.key, p.value},      {"epochs", p.last.epoch},
                             {"test_acc", p.last.test_acc}, {"test_loss", p.last.test_loss},
                             {"train_acc", p.last.train_acc}, {"free_energy_mean", p.last.free_energy_mean},
                             {"free_steps_mean", p.last.free_steps_mean}, {"nudge_steps_mean", p.last.nudge_steps_mean},
                             {"seconds", p.seconds},        {"run_dir", p.run_dir}};
    for (std::size_t t = 0; t < spec.tied.size(); ++t) record[spec.tied[t].first] = p.tied[t];
    jsonl += record.dump() + "\n";
    write_file_atomically((std::filesystem::path(out_dir) / "sweep.jsonl").string(), jsonl);
    if (!p.retrained_because.empty())
      out << p.run_dir << ": config changed since the earlier run (" << p.retrained_because << "), trained again"
          << std::endl;
    out << (p.variant.empty() ? "" : p.variant + "  ") << spec.key << "=" << p.value << "  test_acc "
        << 100 * p.last.test_acc << "%  E_free " << p.last.free_energy_mean << "  steps " << p.last.free_steps_mean
        << "+" << p.last.nudge_steps_mean << "  " << p.seconds << " s" << std::endl;
  };
  const std::vector<SweepPoint> points = run_sweep(*backend, user, source, spec, data, out_dir, {}, on_point);

  const std::filesystem::path dir(out_dir);
  write_file_atomically((dir / "sweep.csv").string(), sweep_csv(spec, points));
  bool log_x = true;
  double lo = HUGE_VAL, hi = -HUGE_VAL;
  for (const std::string& v : spec.values) {
    char* end = nullptr;
    const double x = std::strtod(v.c_str(), &end);
    if (!(end && *end == '\0') || x <= 0) log_x = false;
    lo = std::min(lo, x), hi = std::max(hi, x);
  }
  log_x = log_x && hi >= 8 * lo;
  const std::string epochs = std::to_string(base.training.epochs) + " epoch" + (base.training.epochs > 1 ? "s" : "");
  PlotOptions accuracy{"test accuracy after " + epochs, spec.key, "test accuracy (%)", log_x};
  accuracy.min_y_span = 10, accuracy.y_floor = 0, accuracy.y_ceiling = 100;
  write_line_plot_files((dir / "sweep_test_acc").string(),
                        series_of(points, [](const SweepPoint& p) { return 100 * p.last.test_acc; }), accuracy);
  write_line_plot_files((dir / "sweep_free_energy").string(),
                        series_of(points, [](const SweepPoint& p) { return p.last.free_energy_mean; }),
                        {"mean free-phase energy, last epoch", spec.key, "E at the end of the free phase", log_x});
  out << "wrote " << (dir / "sweep.csv").string()
      << ", sweep.jsonl, sweep_test_acc.svg/.png, sweep_free_energy.svg/.png" << std::endl;
  return 0;
}

}  // namespace eqprop
