#include "models/gradcheck_reference.h"

#include <algorithm>

namespace eqprop {

void add_gradient_comparison(nlohmann::json& report, const reference::Gradient& engine,
                             const reference::Gradient& exact) {
  nlohmann::json tensors = nlohmann::json::array();
  for (int l = 0; l < static_cast<int>(engine.weights.size()); ++l)
    tensors.push_back({{"tensor", l},
                       {"cosine", reference::cosine_similarity(engine, exact, l)},
                       {"relative_error", reference::relative_error(engine, exact, l)}});
  report["tensors"] = tensors;
  report["overall"] = {{"cosine", reference::cosine_similarity(engine, exact, -1)},
                       {"relative_error", reference::relative_error(engine, exact, -1)}};
}

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
