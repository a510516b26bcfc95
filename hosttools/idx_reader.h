// Reader for the IDX format of MNIST and FashionMNIST (yann.lecun.com/exdb/mnist):
// big-endian u32 header fields, then raw unsigned bytes. Files may be raw or gzip.
#pragma once

#include <string>

#include "engine/dataset.h"

namespace eqprop {

// Reads an IDX image file (magic 0x00000803: count, rows, cols, then pixels) and its
// IDX label file (magic 0x00000801: count, then labels) into one Dataset with
// sample_shape {1, rows, cols}. Gzip is recognized by its 1f 8b magic bytes, not by
// the file name. Throws DataError naming the file for: a missing or unreadable file,
// a directory, FIFO or device (refused before opening: a FIFO would block),
// a wrong magic number, a header promising more than 2^31 pixel bytes or a zero
// dimension, fewer bytes than the header promises (found before a buffer of the
// promised size is allocated), bytes past what it promises,
// image and label counts that differ, and a label >= num_classes.
Dataset read_idx_dataset(const std::string& images_path, const std::string& labels_path,
                         int num_classes = 10);

}  // namespace eqprop
