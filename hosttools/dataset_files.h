// Maps a dataset name from the config ("data.name") and a folder ("data.dir") to
// the files of that dataset, and reads them with the matching reader.
#pragma once

#include <string>

#include "engine/dataset.h"

namespace eqprop {

// Where the dataset is installed on these machines, or "" if it has no known place:
// "/usr/share/datasets/fashion-mnist" for "fashion_mnist" (Debian package
// dataset-fashion-mnist installs its four .gz files there), "" otherwise.
std::string default_data_dir(const std::string& name);

// Reads the train and test splits of `name` ("fashion_mnist", "mnist" or "cifar10")
// from `dir`, or from default_data_dir(name) when `dir` is empty. For the IDX sets
// each of train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte
// and t10k-labels-idx1-ubyte is taken raw if present, else with a .gz suffix.
// Throws ConfigError for an unknown name or an empty dir without a default, and
// DataError (listing the paths tried) for a missing file or bad data, and for a
// test split whose sample shape or classes differ from the training split's.
DatasetSplits load_dataset(const std::string& name, const std::string& dir);

}  // namespace eqprop
