// The launch shapes every block-body test runs a body over on the CPU execution
// context (kernels/execution_context.h): the thread orders and block sizes, and the
// orders' names for failure messages.
#pragma once

#include "kernels/execution_context.h"

namespace eqprop {
namespace test {

constexpr ThreadOrder kOrders[] = {ThreadOrder::forward, ThreadOrder::reverse, ThreadOrder::shuffled};
// 1, a few, a warp, a GPU block, and (for the small test problems) more threads
// than a block has elements.
constexpr int kBlockSizes[] = {1, 3, 32, 128};

inline const char* order_name(ThreadOrder order) {
  return order == ThreadOrder::forward ? "forward" : order == ThreadOrder::reverse ? "reverse" : "shuffled";
}

}  // namespace test
}  // namespace eqprop
