#include "hosttools/dataset_files.h"

#include <cstdlib>
#include <filesystem>

#include "hosttools/cifar10_reader.h"
#include "hosttools/idx_reader.h"
#include "kernels/error.h"

namespace eqprop {
namespace {

namespace fs = std::filesystem;

// dir/stem if it exists, else dir/stem.gz; raw first because an unpacked copy is
// the one a user made on purpose. Both readers accept either encoding anyway.
std::string find_idx_file(const std::string& dir, const std::string& stem) {
  const fs::path raw = fs::path(dir) / stem;
  const fs::path gz = fs::path(dir) / (stem + ".gz");
  std::error_code ec;
  if (fs::exists(raw, ec)) return raw.string();
  if (fs::exists(gz, ec)) return gz.string();
  const std::string where = fs::is_directory(dir, ec) ? "" : " (" + dir + " is not a directory)";
  throw DataError("IDX file not found: neither " + raw.string() + " nor " + gz.string() +
                  " exists" + where);
}

DatasetSplits load_idx_dir(const std::string& dir) {
  // Named variables fix the search order, so the first missing file is the one reported.
  const std::string train_images = find_idx_file(dir, "train-images-idx3-ubyte");
  const std::string train_labels = find_idx_file(dir, "train-labels-idx1-ubyte");
  const std::string test_images = find_idx_file(dir, "t10k-images-idx3-ubyte");
  const std::string test_labels = find_idx_file(dir, "t10k-labels-idx1-ubyte");
  return {read_idx_dataset(train_images, train_labels), read_idx_dataset(test_images, test_labels)};
}

std::string shape_text(const Dataset& data) {
  std::string text;
  for (int d : data.sample_shape) text += (text.empty() ? "" : "x") + std::to_string(d);
  return text;
}

// The model is sized from the training split; a test split of another sample shape
// would be read with the training split's sizes.
DatasetSplits matching_splits(DatasetSplits splits, const std::string& dir) {
  if (splits.test.sample_shape != splits.train.sample_shape || splits.test.num_classes != splits.train.num_classes)
    throw DataError(dir + ": the test split's samples are " + shape_text(splits.test) + " (" +
                    std::to_string(splits.test.num_classes) + " classes) but the training split's are " +
                    shape_text(splits.train) + " (" + std::to_string(splits.train.num_classes) + " classes)");
  return splits;
}

}  // namespace

std::string default_data_dir(const std::string& name) {
  return name == "fashion_mnist" ? "/usr/share/datasets/fashion-mnist" : "";
}

DatasetSplits load_dataset(const std::string& name, const std::string& dir) {
  if (name != "fashion_mnist" && name != "mnist" && name != "cifar10")
    throw ConfigError("data.name \"" + name +
                      "\" is not a known dataset; allowed: fashion_mnist, mnist, cifar10");
  const std::string folder = dir.empty() ? default_data_dir(name) : dir;
  if (folder.empty())
    throw ConfigError("data.dir is required for " + name + " (it has no default location)");
  std::error_code ec;
  // Inside the images of docker/ (EQPROP_CONTAINER is set there), a data directory
  // that is missing or empty (the image's own /data bind point) is almost always a
  // bind mount left out: say which one.
  if (std::getenv("EQPROP_CONTAINER") && (!fs::is_directory(folder, ec) || fs::is_empty(folder, ec)))
    throw DataError(folder + " is missing or empty inside this container: bind the host's " + name +
                    " directory, e.g. `--bind /path/on/host:/data` (Apptainer, Charliecloud) or `-v "
                    "/path/on/host:/data` (Docker, podman), and pass --set data.dir=/data");
  return matching_splits(name == "cifar10" ? read_cifar10_dir(folder) : load_idx_dir(folder), folder);
}

}  // namespace eqprop
