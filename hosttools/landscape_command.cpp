#include "hosttools/landscape_command.h"

#include <algorithm>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine/atomic_file.h"
#include "engine/batch_loader.h"
#include "engine/checkpoint.h"
#include "engine/landscape.h"
#include "engine/trainer.h"
#include "engine/training_run.h"
#include "hosttools/cli_options.h"
#include "hosttools/dataset_files.h"
#include "hosttools/svg_plot.h"
#include "kernels/error.h"

namespace eqprop {

int command_landscape(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  (void)err;
  const Options options =
      parse_options(args, 1, {"--checkpoint", "--samples", "--starts", "--integrator", "--steps", "--split", "--seed",
                              "--out", "--data", "--device", "--set"});
  if (!options.has("--checkpoint")) throw UsageError("--checkpoint DIR is required");
  const std::string dir = options.get("--checkpoint");
  Options adjusted = options;
  if (options.has("--data")) adjusted.repeated["--set"].push_back("data.dir=" + options.get("--data"));
  if (options.has("--integrator"))
    adjusted.repeated["--set"].push_back("dynamics.integrator=" + options.get("--integrator"));
  if (options.has("--steps")) adjusted.repeated["--set"].push_back("dynamics.t_free=" + options.get("--steps"));
  const Config config = load_config(adjusted, nlohmann::json::object(), dir + "/" + kConfigFile, read_checkpoint_config(dir));
  if (config.model.kind != "dense_hopfield" && config.model.kind != "conv_hopfield")
    throw UsageError("landscape: model.kind = \"" + config.model.kind +
                     "\" is not supported (dense_hopfield and conv_hopfield, whose states lie in [0, 1])");
  const std::string split = options.get("--split", "test");
  if (split != "test" && split != "train") throw UsageError("--split must be test or train, got '" + split + "'");
  const int samples = parse_positive(options, "--samples", 10);
  LandscapeOptions landscape;
  landscape.starts = parse_positive(options, "--starts", 16);
  landscape.seed = static_cast<std::uint64_t>(parse_positive(options, "--seed", 1));

  auto backend = make_backend(config.device);
  const DatasetSplits data = load_dataset(config.data.name, config.data.dir);
  const Dataset& set = split == "test" ? data.test : data.train;
  const int size = static_cast<int>(set.sample_size()), classes = data.train.num_classes;
  Trainer trainer(*backend, config, size, classes);
  load_checkpoint(dir, trainer, /*with_optimizer=*/false);
  EnergyModel& model = trainer.model();
  const Normalization normalization = make_normalization(config, data.train);
  PhaseSpec spec = trainer.phase_spec(false, 0.0f, 0, 0);
  spec.noise_sigma = 0.0f;  // minima of the deterministic dynamics

  const int count = static_cast<int>(std::min<std::int64_t>(samples, set.count()));
  const int channels = static_cast<int>(normalization.mean.size());
  const int per_channel = size / channels;
  DeviceBuffer<float> x(*backend, std::size_t(model.max_batch()) * size),
      target(*backend, std::size_t(model.max_batch()) * classes);
  std::ostringstream csv;
  csv << "sample,label,minima,lowest_energy,reset_energy,gap,reset_visits,unsettled,energies,visits\n";
  double minima_sum = 0, gap_sum = 0;
  int minima_max = 0, with_gap = 0, unsettled = 0;
  PlotSeries minima_plot{"distinct minima", {}, {}}, reset_plot{"starts ending in the reset state's minimum", {}, {}};
  for (int first = 0; first < count; first += model.max_batch()) {
    const int batch = std::min(model.max_batch(), count - first);
    // Whole buffers (rows from `batch` on unused): an upload fills a buffer exactly.
    std::vector<float> inputs(x.size(), 0.0f), targets(target.size(), 0.0f);
    for (int s = 0; s < batch; ++s) {
      const std::uint8_t* pixels = set.pixels.data() + std::size_t(first + s) * size;
      for (int i = 0; i < size; ++i) {
        const int c = i / per_channel;
        inputs[std::size_t(s) * size + i] = (pixels[i] / 255.0f - normalization.mean[c]) / normalization.std[c];
      }
      targets[std::size_t(s) * classes + set.labels[first + s]] = 1.0f;
    }
    x.copy_from_host(inputs);
    target.copy_from_host(targets);
    model.set_input(x.data(), batch);
    const std::vector<SampleLandscape> result = explore_landscape(model, target.data(), batch, spec, landscape);
    for (int s = 0; s < batch; ++s) {
      const SampleLandscape& r = result[s];
      const int minima = static_cast<int>(r.energies.size());
      minima_sum += minima;
      minima_max = std::max(minima_max, minima);
      gap_sum += r.gap;
      with_gap += r.reset_minimum > 0;
      unsettled += r.unsettled;
      minima_plot.x.push_back(first + s);
      minima_plot.y.push_back(minima);
      reset_plot.x.push_back(first + s);
      reset_plot.y.push_back(r.visits[r.reset_minimum]);
      csv << first + s << ',' << int(set.labels[first + s]) << ',' << minima << ',' << r.energies.front() << ','
          << r.reset_energy << ',' << r.gap << ',' << r.visits[r.reset_minimum] << ',' << r.unsettled << ',';
      for (int m = 0; m < minima; ++m) csv << (m ? ";" : "") << r.energies[m];
      csv << ',';
      for (int m = 0; m < minima; ++m) csv << (m ? ";" : "") << r.visits[m];
      csv << '\n';
    }
  }
  if (options.has("--out")) {
    // FILE.csv and, beside it, FILE.svg: the counts per sample.
    std::string path = options.get("--out");
    write_file_atomically(path, csv.str());
    const std::size_t dot = path.rfind('.');
    if (dot != std::string::npos && path.find('/', dot) == std::string::npos) path.resize(dot);
    write_file_atomically(path + ".svg",
                          line_plot_svg({minima_plot, reset_plot},
                                        {"Minima reached from " + std::to_string(landscape.starts + 1) + " starts",
                                         "sample", "starts / minima"}));
  }
  out << nlohmann::json{{"samples", count},
                        {"starts", landscape.starts},
                        {"integrator", config.resolved["dynamics"]["integrator"]},
                        {"steps", spec.steps},
                        {"minima_mean", minima_sum / count},
                        {"minima_max", minima_max},
                        {"gap_mean", gap_sum / count},
                        {"samples_with_gap", with_gap},
                        {"unsettled_starts", unsettled}}
             .dump()
      << std::endl;
  return 0;
}

}  // namespace eqprop
