// CIFAR-10 binary reader: exact round trips through batch files written in the
// published record layout, the folder layouts read_cifar10_dir accepts, and one
// test per data error.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "hosttools/cifar10_reader.h"
#include "hosttools/dataset_files.h"
#include "kernels/error.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

using test::check_contains;
using test::TempDir;
using test::thrown_message;
using test::write_bytes;
using Bytes = std::vector<std::uint8_t>;

constexpr std::size_t kPixels = 3 * 32 * 32;  // 3072 bytes per image

// The 3072 pixel bytes of image `id`: distinct per image and per position.
Bytes image_pixels(int id) {
  Bytes p(kPixels);
  for (std::size_t i = 0; i < kPixels; ++i) p[i] = static_cast<std::uint8_t>(i * 7 + id * 31);
  return p;
}

// A batch file of records (label, pixels) for images first_id, first_id + 1, ...
Bytes batch(const Bytes& labels, int first_id) {
  Bytes out;
  for (std::size_t r = 0; r < labels.size(); ++r) {
    out.push_back(labels[r]);
    const Bytes p = image_pixels(first_id + static_cast<int>(r));
    out.insert(out.end(), p.begin(), p.end());
  }
  return out;
}

// Checks d holds images first_id .. first_id + labels.size() - 1 with these labels.
void check_batch(const Dataset& d, const Bytes& labels, int first_id) {
  CHECK(d.sample_shape == std::vector<int>{3, 32, 32});
  CHECK(d.num_classes == 10);
  REQUIRE(d.count() == static_cast<std::int64_t>(labels.size()));
  CHECK(d.labels == labels);
  Bytes expected;
  for (std::size_t r = 0; r < labels.size(); ++r) {
    const Bytes p = image_pixels(first_id + static_cast<int>(r));
    expected.insert(expected.end(), p.begin(), p.end());
  }
  CHECK(d.pixels == expected);
}

// Writes the six official files into `folder` (created if needed): batch i has
// i records starting at image 10 * i, the test batch 2 records from image 100.
void write_official_files(const std::filesystem::path& folder) {
  std::filesystem::create_directories(folder);
  for (int i = 1; i <= 5; ++i)
    write_bytes(folder / ("data_batch_" + std::to_string(i) + ".bin"),
                batch(Bytes(static_cast<std::size_t>(i), static_cast<std::uint8_t>(i)), 10 * i));
  write_bytes(folder / "test_batch.bin", batch({9, 0}, 100));
}

void check_official_splits(const DatasetSplits& s) {
  Bytes train_labels;
  for (int i = 1; i <= 5; ++i) train_labels.insert(train_labels.end(), std::size_t(i), std::uint8_t(i));
  CHECK(s.train.labels == train_labels);
  CHECK(s.train.count() == 15);
  // Batch 3 starts at record 1 + 2 = 3 and holds image 30.
  const Bytes image30 = image_pixels(30);
  CHECK(Bytes(s.train.pixels.begin() + 3 * kPixels, s.train.pixels.begin() + 4 * kPixels) ==
        image30);
  check_batch(s.test, {9, 0}, 100);
}

}  // namespace

TEST_CASE("cifar10: batches round-trip exactly and concatenate in order") {
  TempDir dir;
  write_bytes(dir.file("a.bin"), batch({3, 0}, 0));
  write_bytes(dir.file("b.bin"), batch({9, 1, 5}, 2));
  check_batch(read_cifar10_batches({dir.file("a.bin"), dir.file("b.bin")}), {3, 0, 9, 1, 5}, 0);
}

TEST_CASE("cifar10: the record's R, G, B planes become channels 0, 1, 2") {
  TempDir dir;
  Bytes record(1 + kPixels);
  record[0] = 4;
  for (std::size_t i = 0; i < kPixels; ++i) record[1 + i] = static_cast<std::uint8_t>(1 + i / 1024);
  record[1 + 5 * 32 + 7] = 200;  // red, row 5, column 7
  write_bytes(dir.file("one.bin"), record);
  const Dataset d = read_cifar10_batches({dir.file("one.bin")});
  CHECK(d.pixels[0] == 1);
  CHECK(d.pixels[1024] == 2);
  CHECK(d.pixels[2048] == 3);
  CHECK(d.pixels[(0 * 32 + 5) * 32 + 7] == 200);  // (c, y, x) index of that pixel
}

TEST_CASE("cifar10: a size that is not a positive multiple of 3073 bytes") {
  TempDir dir;
  Bytes bytes = batch({1}, 0);
  bytes.insert(bytes.end(), 5, 0);
  write_bytes(dir.file("odd.bin"), bytes);
  check_contains(thrown_message<DataError>([&] { read_cifar10_batches({dir.file("odd.bin")}); }),
                 {"odd.bin", "3078", "multiple of 3073 bytes"});
  write_bytes(dir.file("empty.bin"), {});
  check_contains(thrown_message<DataError>([&] { read_cifar10_batches({dir.file("empty.bin")}); }),
                 {"empty.bin", "size 0", "positive multiple of 3073 bytes"});
}

TEST_CASE("cifar10: a label above 9") {
  TempDir dir;
  write_bytes(dir.file("bad.bin"), batch({2, 10}, 0));
  check_contains(thrown_message<DataError>([&] { read_cifar10_batches({dir.file("bad.bin")}); }),
                 {"bad.bin", "label 10", "record 1"});
}

TEST_CASE("cifar10: a missing batch file") {
  TempDir dir;
  write_bytes(dir.file("a.bin"), batch({1}, 0));
  check_contains(thrown_message<DataError>([&] {
                   read_cifar10_batches({dir.file("a.bin"), dir.file("gone.bin")});
                 }),
                 {"gone.bin", "no such file"});
}

TEST_CASE("cifar10: read_cifar10_dir, flat and official subfolder layouts") {
  TempDir dir;
  SUBCASE("files directly in dir") {
    write_official_files(dir.path());
    check_official_splits(read_cifar10_dir(dir.path().string()));
  }
  SUBCASE("files in dir/cifar-10-batches-bin") {
    write_official_files(dir.path() / "cifar-10-batches-bin");
    check_official_splits(read_cifar10_dir(dir.path().string()));
  }
  SUBCASE("through load_dataset") {
    write_official_files(dir.path());
    check_official_splits(load_dataset("cifar10", dir.path().string()));
  }
}

TEST_CASE("cifar10: read_cifar10_dir lists what it looked for") {
  TempDir dir;
  write_official_files(dir.path());
  std::filesystem::remove(dir.path() / "data_batch_5.bin");
  std::filesystem::remove(dir.path() / "test_batch.bin");
  check_contains(thrown_message<DataError>([&] { read_cifar10_dir(dir.path().string()); }),
                 {"data_batch_1.bin", "test_batch.bin", dir.path().string(),
                  "cifar-10-batches-bin", "missing data_batch_5.bin, test_batch.bin",
                  "no such directory"});
}

}  // namespace eqprop
