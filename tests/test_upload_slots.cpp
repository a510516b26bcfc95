// The upload-slot contract of Backend (kernels/backend.h) on the CPU backend: a
// copy is complete when upload returns, the slot calls only check the slot, and the
// trainer's pattern (upload batch n+1 into one slot while batch n is read from the
// other) reads every batch intact. The GPU's overlap is tested in
// tests/cuda/test_cuda_backend.cpp.
#include <doctest/doctest.h>

#include <stdexcept>
#include <vector>

#include "kernels/backend.h"
#include "kernels/device_buffer.h"

namespace eqprop {
namespace {

TEST_CASE("upload slots: the CPU backend copies at once and checks the slot") {
  auto backend = make_backend("cpu");
  HostStagingBuffer<float> host(*backend, 8);
  for (int i = 0; i < 8; ++i) host.data()[i] = float(i);
  DeviceBuffer<float> device(*backend, 8);
  backend->upload(Backend::kUploadSlots - 1, device.data(), host.data(), device.bytes());
  host.data()[0] = -1.0f;  // the copy is complete: changing the source changes nothing
  CHECK(device.to_host() == std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7});
  CHECK_THROWS_AS(backend->upload(-1, device.data(), host.data(), device.bytes()), std::out_of_range);
  CHECK_THROWS_AS(backend->upload(Backend::kUploadSlots, device.data(), host.data(), device.bytes()),
                  std::out_of_range);
  CHECK_THROWS_AS(backend->begin_slot_reads(Backend::kUploadSlots), std::out_of_range);
  CHECK_THROWS_AS(backend->end_slot_reads(-1), std::out_of_range);
  CHECK_NOTHROW(backend->begin_slot_reads(0));
  CHECK_NOTHROW(backend->end_slot_reads(0));
  CHECK_NOTHROW(backend->wait_uploads());
}

TEST_CASE("upload slots: the double-buffered pattern reads every batch intact") {
  auto backend = make_backend("cpu");
  constexpr int kBatches = 5, kSize = 16;
  HostStagingBuffer<float> staging(*backend, kSize);
  DeviceBuffer<float> slots[2] = {DeviceBuffer<float>(*backend, kSize), DeviceBuffer<float>(*backend, kSize)};
  auto fill = [&](int batch) {
    for (int i = 0; i < kSize; ++i) staging.data()[i] = float(100 * batch + i);
  };
  fill(0);
  backend->upload(0, slots[0].data(), staging.data(), slots[0].bytes());
  backend->wait_uploads();
  for (int k = 0; k < kBatches; ++k) {
    const int slot = k % 2;
    if (k + 1 < kBatches) {
      fill(k + 1);
      backend->upload(1 - slot, slots[1 - slot].data(), staging.data(), slots[1 - slot].bytes());
    }
    backend->begin_slot_reads(slot);
    const std::vector<float> read = slots[slot].to_host();
    backend->end_slot_reads(slot);
    backend->wait_uploads();
    for (int i = 0; i < kSize; ++i) CHECK(read[i] == float(100 * k + i));
  }
}

}  // namespace
}  // namespace eqprop
