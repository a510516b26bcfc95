#include "models/gradcheck_reference.h"

#include <algorithm>

namespace eqprop {

bool KinkMargin::usable(double margin) {
  if (margin < needed_) return false;
  smallest_ = std::min(smallest_, margin);
  return true;
}

std::string KinkMargin::remedy() const {
  return "fewer are at least " + std::to_string(needed_) + " (2 * ep.beta) from a kink of the loss; lower ep.beta";
}

void KinkMargin::report(int redrawn, nlohmann::json& report) const {
  report["samples_redrawn_near_a_kink"] = redrawn;
  report["smallest_field_margin"] = smallest_;
}

}  // namespace eqprop
