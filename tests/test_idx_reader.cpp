// IDX reader and load_dataset: exact round trips through raw and gzip files written
// in the published format, one test per data error, and the real FashionMNIST
// files when the Debian package is installed.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "hosttools/dataset_files.h"
#include "hosttools/idx_reader.h"
#include "kernels/error.h"
#include "tests/skip.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

using test::check_contains;
using test::TempDir;
using test::thrown_message;
using test::write_bytes;
using test::write_gzip;
using Bytes = std::vector<std::uint8_t>;

void append_u32_be(Bytes& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

// An IDX images file; pixels is (count, rows, cols).
Bytes idx_images(std::uint32_t count, std::uint32_t rows, std::uint32_t cols, const Bytes& pixels,
                 std::uint32_t magic = 0x00000803) {
  Bytes out;
  for (std::uint32_t v : {magic, count, rows, cols}) append_u32_be(out, v);
  out.insert(out.end(), pixels.begin(), pixels.end());
  return out;
}

// An IDX labels file; labels is (count).
Bytes idx_labels(std::uint32_t count, const Bytes& labels) {
  Bytes out;
  for (std::uint32_t v : {0x00000801u, count}) append_u32_be(out, v);
  out.insert(out.end(), labels.begin(), labels.end());
  return out;
}

// 3 images of 2x4 (rows != cols, so a transposed read would show), every byte distinct.
constexpr std::uint32_t kCount = 3, kRows = 2, kCols = 4;
Bytes sample_pixels() {
  Bytes p(kCount * kRows * kCols);
  for (std::size_t i = 0; i < p.size(); ++i) p[i] = static_cast<std::uint8_t>(i * 37 + 5);
  return p;
}
const Bytes kLabels = {7, 0, 9};

void check_sample_dataset(const Dataset& d) {
  CHECK(d.sample_shape == std::vector<int>{1, int(kRows), int(kCols)});
  CHECK(d.num_classes == 10);
  CHECK(d.count() == kCount);
  CHECK(d.pixels == sample_pixels());
  CHECK(d.labels == kLabels);
}

// Writes a good labels file and the given images bytes, then returns the error text.
std::string images_error(const TempDir& dir, const Bytes& images) {
  write_bytes(dir.file("imgs"), images);
  write_bytes(dir.file("lbls"), idx_labels(kCount, kLabels));
  return thrown_message<DataError>([&] { read_idx_dataset(dir.file("imgs"), dir.file("lbls")); });
}

std::string labels_error(const TempDir& dir, const Bytes& labels, int num_classes = 10) {
  write_bytes(dir.file("imgs"), idx_images(kCount, kRows, kCols, sample_pixels()));
  write_bytes(dir.file("lbls"), labels);
  return thrown_message<DataError>(
      [&] { read_idx_dataset(dir.file("imgs"), dir.file("lbls"), num_classes); });
}

}  // namespace

TEST_CASE("idx: raw files round-trip exactly") {
  TempDir dir;
  write_bytes(dir.file("images"), idx_images(kCount, kRows, kCols, sample_pixels()));
  write_bytes(dir.file("labels"), idx_labels(kCount, kLabels));
  check_sample_dataset(read_idx_dataset(dir.file("images"), dir.file("labels")));
}

TEST_CASE("idx: gzip is detected by content, not by name") {
  TempDir dir;
  const Bytes images = idx_images(kCount, kRows, kCols, sample_pixels());
  const Bytes labels = idx_labels(kCount, kLabels);
  SUBCASE("gzip named .gz") {
    write_gzip(dir.file("images.gz"), images);
    write_gzip(dir.file("labels.gz"), labels);
    check_sample_dataset(read_idx_dataset(dir.file("images.gz"), dir.file("labels.gz")));
  }
  SUBCASE("gzip without .gz, raw with .gz") {
    write_gzip(dir.file("images"), images);
    write_bytes(dir.file("labels.gz"), labels);
    check_sample_dataset(read_idx_dataset(dir.file("images"), dir.file("labels.gz")));
  }
}

TEST_CASE("idx: a missing or unreadable file is a DataError naming it") {
  TempDir dir;
  write_bytes(dir.file("lbls"), idx_labels(kCount, kLabels));
  check_contains(thrown_message<DataError>([&] {
                   read_idx_dataset(dir.file("no-such-images"), dir.file("lbls"));
                 }),
                 {"no-such-images", "no such file"});
  write_bytes(dir.file("imgs"), idx_images(kCount, kRows, kCols, sample_pixels()));
  check_contains(thrown_message<DataError>([&] {
                   read_idx_dataset(dir.file("imgs"), dir.file("no-such-labels"));
                 }),
                 {"no-such-labels", "no such file"});
  check_contains(thrown_message<DataError>([&] {
                   read_idx_dataset(dir.path().string(), dir.file("lbls"));
                 }),
                 {dir.path().string(), "directory"});
}

TEST_CASE("idx: wrong magic numbers") {
  TempDir dir;
  check_contains(images_error(dir, Bytes(16 + kCount * kRows * kCols, 0)),
                 {"imgs", "bad magic number 0x00000000", "expected 0x00000803 for IDX images"});
  // A labels file given as the images file: the message says so.
  check_contains(images_error(dir, idx_labels(kCount, kLabels)),
                 {"imgs", "0x00000801", "looks like an IDX labels file"});
  check_contains(labels_error(dir, idx_images(kCount, kRows, kCols, sample_pixels())),
                 {"lbls", "bad magic number 0x00000803", "expected 0x00000801 for IDX labels"});
}

TEST_CASE("idx: truncated files say how many bytes were expected and found") {
  TempDir dir;
  Bytes images = idx_images(kCount, kRows, kCols, sample_pixels());
  images.resize(images.size() - 5);
  check_contains(images_error(dir, images), {"imgs", "truncated", "promises 24", "found 19"});
  check_contains(images_error(dir, Bytes{0, 0, 8, 3, 0, 0}),
                 {"imgs", "truncated header", "expected 16 bytes, found 6"});
  Bytes labels = idx_labels(kCount, kLabels);
  labels.pop_back();
  check_contains(labels_error(dir, labels), {"lbls", "truncated", "promises 3", "found 2"});

  SUBCASE("a gzip stream cut short") {
    write_gzip(dir.file("full.gz"), idx_images(kCount, kRows, kCols, sample_pixels()));
    std::ifstream in(dir.file("full.gz"), std::ios::binary);
    Bytes gz((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    gz.resize(gz.size() / 2);
    check_contains(images_error(dir, gz), {"imgs", "truncated"});
  }
}

TEST_CASE("idx: a corrupt gzip stream") {
  TempDir dir;
  Bytes gz = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};  // a valid gzip header ...
  gz.insert(gz.end(), 20, 0xff);                     // ... then no valid deflate block
  const std::string message = images_error(dir, gz);
  check_contains(message, {"imgs", "cannot read"});
  CHECK(message.find("imgs", message.find("imgs") + 1) == std::string::npos);  // path once
}

TEST_CASE("idx: trailing bytes are an error") {
  TempDir dir;
  Bytes images = idx_images(kCount, kRows, kCols, sample_pixels());
  images.insert(images.end(), {1, 2, 3});
  check_contains(images_error(dir, images), {"imgs", "3 trailing bytes"});
  Bytes labels = idx_labels(kCount, kLabels);
  labels.push_back(0);
  check_contains(labels_error(dir, labels), {"lbls", "1 trailing bytes"});
}

TEST_CASE("idx: image and label counts must agree") {
  TempDir dir;
  check_contains(labels_error(dir, idx_labels(2, {7, 0})),
                 {"lbls", "2 labels", "imgs", "3 images"});
}

TEST_CASE("idx: labels must be below num_classes") {
  TempDir dir;
  check_contains(labels_error(dir, idx_labels(kCount, {7, 10, 1})),
                 {"lbls", "label 10", "index 1", "num_classes = 10"});
  check_contains(labels_error(dir, idx_labels(kCount, {2, 1, 3}), 3),
                 {"lbls", "label 3", "index 2", "num_classes = 3"});
}

TEST_CASE("idx: zero and absurd header sizes are rejected before allocating") {
  TempDir dir;
  check_contains(images_error(dir, idx_images(kCount, 0, kCols, {})), {"imgs", "must be > 0"});
  check_contains(images_error(dir, idx_images(0, kRows, kCols, {})), {"imgs", "must be > 0"});
  // 2^20 images of 1024x1024 would be 1 TiB; the header is all the file holds.
  check_contains(images_error(dir, idx_images(1u << 20, 1024, 1024, {})),
                 {"imgs", "too large"});
  check_contains(images_error(dir, idx_images(0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, {})),
                 {"imgs", "too large"});
  check_contains(images_error(dir, idx_images(1, 1u << 31, 1, {})), {"imgs", "too large"});
}

TEST_CASE("load_dataset: IDX files by their published names, raw or .gz") {
  TempDir dir;
  const Bytes images = idx_images(kCount, kRows, kCols, sample_pixels());
  const Bytes labels = idx_labels(kCount, kLabels);
  write_gzip(dir.file("train-images-idx3-ubyte.gz"), images);
  write_bytes(dir.file("train-labels-idx1-ubyte"), labels);
  write_bytes(dir.file("t10k-images-idx3-ubyte"), images);
  // Missing test labels: the error lists both candidate paths.
  check_contains(thrown_message<DataError>([&] { load_dataset("mnist", dir.path().string()); }),
                 {dir.file("t10k-labels-idx1-ubyte"), dir.file("t10k-labels-idx1-ubyte.gz")});
  write_gzip(dir.file("t10k-labels-idx1-ubyte.gz"), labels);
  const DatasetSplits splits = load_dataset("mnist", dir.path().string());
  check_sample_dataset(splits.train);
  check_sample_dataset(splits.test);
}

TEST_CASE("load_dataset: unknown names and missing dirs are ConfigErrors") {
  check_contains(thrown_message<ConfigError>([] { load_dataset("imagenet", "/tmp"); }),
                 {"imagenet", "fashion_mnist", "mnist", "cifar10"});
  check_contains(thrown_message<ConfigError>([] { load_dataset("mnist", ""); }),
                 {"data.dir is required for mnist"});
  check_contains(thrown_message<ConfigError>([] { load_dataset("cifar10", ""); }),
                 {"data.dir is required for cifar10"});
  CHECK(default_data_dir("fashion_mnist") == "/usr/share/datasets/fashion-mnist");
  CHECK(default_data_dir("mnist").empty());
  CHECK(default_data_dir("cifar10").empty());
}

TEST_CASE("load_dataset: the installed FashionMNIST, if present") {
  const std::string probe = default_data_dir("fashion_mnist") + "/train-images-idx3-ubyte.gz";
  if (test::skip_case_if(!std::filesystem::exists(probe),
                         probe + " does not exist (install dataset-fashion-mnist)"))
    return;
  const DatasetSplits splits = load_dataset("fashion_mnist", "");  // default dir
  for (const Dataset* d : {&splits.train, &splits.test}) {
    CHECK(d->sample_shape == std::vector<int>{1, 28, 28});
    CHECK(d->pixels.size() == static_cast<std::size_t>(d->count()) * 28 * 28);
    bool labels_ok = true;
    for (std::uint8_t label : d->labels) labels_ok = labels_ok && label < 10;
    CHECK(labels_ok);
  }
  CHECK(splits.train.count() == 60000);
  CHECK(splits.test.count() == 10000);
}

}  // namespace eqprop
