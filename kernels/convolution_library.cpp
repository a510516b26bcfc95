#include "kernels/convolution_library.h"

#include <atomic>

namespace eqprop {

std::uint64_t fresh_weights_version() {
  static std::atomic<std::uint64_t> last{0};
  return last.fetch_add(1, std::memory_order_relaxed) + 1;
}

}  // namespace eqprop
