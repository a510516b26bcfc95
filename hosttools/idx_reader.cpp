#include "hosttools/idx_reader.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <new>
#include <vector>

#include "hosttools/input_file.h"
#include "kernels/error.h"

namespace eqprop {
namespace {

constexpr std::uint32_t kImagesMagic = 0x00000803;  // ubyte (0x08), 3 dimensions
constexpr std::uint32_t kLabelsMagic = 0x00000801;  // ubyte (0x08), 1 dimension
// Largest pixel payload we allocate for. Real sets are ~47 MB; a header that
// promises more is corrupt or not IDX, and must not trigger a huge allocation.
constexpr std::uint64_t kMaxPixelBytes = std::uint64_t{1} << 31;
// Deflate's largest expansion (a stream of maximal back-references: 258 bytes per
// 2 bits, ~1032:1). A gzip file inflates to at most this many times its own size,
// so a header that promises more cannot be backed by the file.
constexpr std::uint64_t kMaxInflateRatio = 1032;
// The first step of a payload buffer that grows as data arrives.
constexpr std::uint64_t kFirstChunk = std::uint64_t{1} << 20;

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08X", v);
  return buf;
}

// A file read through zlib: gzread inflates a file that starts with the gzip magic
// bytes 1f 8b and passes any other file through unchanged, so the name does not
// matter. Bytes after the end of a gzip stream are ignored by zlib; trailing bytes
// inside the (inflated) IDX data are what read_idx_dataset rejects.
class IdxInput {
 public:
  explicit IdxInput(const std::string& path) : path_(path) {
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (!std::filesystem::exists(status)) throw DataError(path + ": no such file");
    refuse_special_file(path, "an IDX file");
    file_size_ = std::filesystem::file_size(path, ec);
    if (ec) throw DataError(path + ": cannot read its size: " + ec.message());
    file_ = gzopen(path.c_str(), "rb");
    if (file_ == nullptr)
      throw DataError(path + ": cannot open: " + std::strerror(errno ? errno : ENOMEM));
  }
  ~IdxInput() { gzclose(file_); }
  IdxInput(const IdxInput&) = delete;
  IdxInput& operator=(const IdxInput&) = delete;

  const std::string& path() const { return path_; }

  // Reads up to n bytes into out; returns how many arrived (fewer only at the end
  // of the data). Throws DataError on an I/O or gzip format error.
  std::uint64_t read(std::uint8_t* out, std::uint64_t n) {
    std::uint64_t got = 0;
    while (got < n) {
      // gzread takes an unsigned count and returns an int, so read in chunks.
      const unsigned chunk = static_cast<unsigned>(std::min<std::uint64_t>(n - got, 1u << 30));
      const int r = gzread(file_, out + got, chunk);
      if (r < 0) throw DataError(path_ + ": cannot read: " + zlib_error());
      if (r == 0) break;
      got += static_cast<std::uint64_t>(r);
    }
    consumed_ += got;
    return got;
  }

  // The next big-endian u32 of a header that is header_size bytes long in all.
  std::uint32_t read_u32(std::uint64_t header_size) {
    std::uint8_t b[4];
    if (read(b, 4) < 4)
      throw DataError(path_ + ": truncated header: expected " + std::to_string(header_size) +
                      " bytes, found " + std::to_string(consumed_) + ends_early_hint());
    return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) |
           (std::uint32_t{b[2]} << 8) | std::uint32_t{b[3]};
  }

  // Reads exactly n payload bytes into out, or throws saying how many were found.
  // The header's n is not trusted for the allocation: the buffer starts at what the
  // file can hold (its remaining bytes when raw, kMaxInflateRatio times its size
  // when gzip) and grows only as data arrives, so a 16-byte header that promises
  // 2 GiB costs nothing before the reader finds the data missing.
  void read_payload(std::vector<std::uint8_t>& out, std::uint64_t n, std::uint64_t header_size) {
    const bool raw = gzdirect(file_) == 1;
    const std::uint64_t left_in_file = file_size_ > consumed_ ? file_size_ - consumed_ : 0;
    const std::uint64_t backed = raw ? left_in_file : file_size_ * kMaxInflateRatio;
    std::uint64_t got = 0;
    try {
      out.clear();
      out.reserve(static_cast<std::size_t>(std::min(n, backed)));
      while (got < n) {
        const std::uint64_t step = std::min(n - got, std::max(got, kFirstChunk));
        out.resize(static_cast<std::size_t>(got + step));
        const std::uint64_t arrived = read(out.data() + got, step);
        got += arrived;
        if (arrived < step) break;
      }
    } catch (const std::bad_alloc&) {
      throw DataError(path_ + ": out of memory holding " + std::to_string(got) + " of the " +
                      std::to_string(n) + " data bytes the header promises");
    }
    if (got < n)
      throw DataError(path_ + ": truncated: header promises " + std::to_string(n) +
                      " data bytes after the " + std::to_string(header_size) +
                      "-byte header, found " + std::to_string(got) + ends_early_hint());
    std::uint8_t scratch[4096];
    std::uint64_t extra = 0;
    for (std::uint64_t r; (r = read(scratch, sizeof scratch)) > 0;) extra += r;
    if (extra > 0)
      throw DataError(path_ + ": " + std::to_string(extra) +
                      " trailing bytes after the " + std::to_string(n) +
                      " data bytes the header promises");
  }

 private:
  std::string zlib_error() {
    int code = Z_OK;
    const std::string msg = gzerror(file_, &code);
    if (code == Z_ERRNO) return std::strerror(errno);
    // zlib prefixes its message with the path, which our message already leads with.
    const std::string prefix = path_ + ": ";
    return msg.compare(0, prefix.size(), prefix) == 0 ? msg.substr(prefix.size()) : msg;
  }
  // zlib reports a gzip stream cut short as Z_BUF_ERROR, not as a read error.
  std::string ends_early_hint() {
    int code = Z_OK;
    gzerror(file_, &code);
    return code == Z_BUF_ERROR ? " (the gzip stream ends early)" : "";
  }

  std::string path_;
  gzFile file_ = nullptr;
  std::uint64_t file_size_ = 0;  // bytes on disk (compressed, for gzip)
  std::uint64_t consumed_ = 0;  // bytes read so far (after inflating)
};

void check_magic(const IdxInput& in, std::uint32_t magic, std::uint32_t expected,
                 const char* kind) {
  if (magic == expected) return;
  std::string hint;
  if (magic == kLabelsMagic) hint = "; this looks like an IDX labels file";
  if (magic == kImagesMagic) hint = "; this looks like an IDX images file";
  throw DataError(in.path() + ": bad magic number " + hex32(magic) + " (expected " +
                  hex32(expected) + " for IDX " + kind + ")" + hint);
}

}  // namespace

Dataset read_idx_dataset(const std::string& images_path, const std::string& labels_path,
                         int num_classes) {
  if (num_classes < 1 || num_classes > 256)
    throw ConfigError("num_classes must be in [1, 256] for byte labels, got " +
                      std::to_string(num_classes));
  constexpr std::uint64_t kImagesHeader = 16, kLabelsHeader = 8;

  // Both headers first, so a mismatch is reported before the big allocation.
  IdxInput images(images_path);
  check_magic(images, images.read_u32(kImagesHeader), kImagesMagic, "images");
  const std::uint64_t count = images.read_u32(kImagesHeader);
  const std::uint64_t rows = images.read_u32(kImagesHeader);
  const std::uint64_t cols = images.read_u32(kImagesHeader);
  const std::string dims = std::to_string(count) + " images of " + std::to_string(rows) +
                           "x" + std::to_string(cols);
  if (count == 0 || rows == 0 || cols == 0)
    throw DataError(images_path + ": header declares " + dims + "; every size must be > 0");
  // Each factor < 2^32, so rows*cols < 2^64; check it before multiplying by count.
  // Sides must also fit the int of sample_shape (only 2^31 itself would not).
  if (rows * cols > kMaxPixelBytes || count * rows * cols > kMaxPixelBytes ||
      rows > INT32_MAX || cols > INT32_MAX)
    throw DataError(images_path + ": header declares " + dims +
                    ", too large (over 2^31 pixel bytes, or a side beyond int); the file is "
                    "corrupt or not IDX");

  IdxInput labels(labels_path);
  check_magic(labels, labels.read_u32(kLabelsHeader), kLabelsMagic, "labels");
  const std::uint64_t label_count = labels.read_u32(kLabelsHeader);
  if (label_count != count)
    throw DataError(labels_path + ": holds " + std::to_string(label_count) + " labels but " +
                    images_path + " holds " + std::to_string(count) + " images");

  Dataset out;
  out.sample_shape = {1, static_cast<int>(rows), static_cast<int>(cols)};
  out.num_classes = num_classes;
  labels.read_payload(out.labels, count, kLabelsHeader);  // (count)
  for (std::uint64_t i = 0; i < count; ++i)
    if (out.labels[i] >= num_classes)
      throw DataError(labels_path + ": label " + std::to_string(out.labels[i]) +
                      " at index " + std::to_string(i) + " is not below num_classes = " +
                      std::to_string(num_classes));
  images.read_payload(out.pixels, count * rows * cols, kImagesHeader);  // (count, 1, rows, cols)
  return out;
}

}  // namespace eqprop
