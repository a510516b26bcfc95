#include "hosttools/dataset_files.h"

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
  return name == "cifar10" ? read_cifar10_dir(folder) : load_idx_dir(folder);
}

}  // namespace eqprop
