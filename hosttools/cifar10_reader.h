// Reader for the CIFAR-10 binary version (www.cs.toronto.edu/~kriz/cifar.html):
// each batch file is a sequence of 3073-byte records, one label byte (0..9) then
// 3072 pixel bytes: the 32x32 red plane, then green, then blue, each row-major.
#pragma once

#include <string>
#include <vector>

#include "engine/dataset.h"

namespace eqprop {

// Concatenates the records of `paths`, in order, into one Dataset with sample_shape
// {3, 32, 32} (the record layout already is channel-major). Throws DataError naming
// the file if it is missing, its size is not a positive multiple of 3073 bytes, or
// a label is above 9.
Dataset read_cifar10_batches(const std::vector<std::string>& paths);

// train = data_batch_1.bin .. data_batch_5.bin, test = test_batch.bin, read from
// `dir`, or from `dir`/cifar-10-batches-bin (the layout of the official archive)
// when they are not all directly in `dir`. Throws DataError listing what was looked
// for and where if neither folder holds all six files.
DatasetSplits read_cifar10_dir(const std::string& dir);

}  // namespace eqprop
