#include "models/gradcheck_reference.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace eqprop {

reference::Gradient host_tensors(const ParameterSet& set) {
  reference::Gradient host;
  for (std::size_t l = 0; l < set.weights.size(); ++l) {
    const auto w = set.weights[l].to_host();
    const auto b = set.biases[l].to_host();
    host.weights.emplace_back(w.begin(), w.end());
    host.biases.emplace_back(b.begin(), b.end());
  }
  return host;
}

double hard_sigmoid_kink_margin(const std::vector<std::vector<double>>& inputs, double bound) {
  double margin = 1e300;
  for (const auto& layer : inputs)
    for (double a : layer) margin = std::min({margin, std::abs(a), std::abs(a - bound)});
  return margin;
}

bool KinkMargin::usable(double margin) {
  margins_.push_back(margin);
  if (margin < needed_) return false;
  smallest_ = std::min(smallest_, margin);
  return true;
}

std::string KinkMargin::remedy() const {
  std::string text = "fewer are at least " + std::to_string(needed_) + " (2 * ep.beta) from a kink of the loss; lower ep.beta";
  if (margins_.empty()) return text;
  // The margin three quarters of the drawn samples reach, halved, rounded down to
  // two digits: margins crowd near one value when a unit's field hardly depends on
  // the input, so rounding up could leave almost none usable.
  std::vector<double> margins = margins_;
  const auto quartile = margins.begin() + static_cast<std::ptrdiff_t>(margins.size() / 4);
  std::nth_element(margins.begin(), quartile, margins.end());
  const double beta = *quartile / 2;
  if (!(beta > 0)) return text + " (a quarter of the drawn samples sit on a kink)";
  const double unit = std::pow(10.0, std::floor(std::log10(beta)) - 1);
  char suggested[32];
  std::snprintf(suggested, sizeof suggested, "%.2g", std::floor(beta / unit) * unit);
  return text + " to " + suggested + " or below (half the distance from a kink that 3 in 4 drawn samples keep)";
}

void KinkMargin::report(int redrawn, nlohmann::json& report) const {
  report["samples_redrawn_near_a_kink"] = redrawn;
  report["smallest_field_margin"] = smallest_;
}

}  // namespace eqprop
