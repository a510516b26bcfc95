// A model kind's side of the gradient check (engine/gradcheck.h): an exact loss
// gradient computed by code that shares nothing with the engine (the models'
// *_reference files, double precision), which the engine's EP estimate on the same
// parameters and samples is compared with.
#pragma once

#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/dense_hopfield_reference.h"  // reference::Gradient
#include "models/energy_model.h"             // ParameterSet

namespace eqprop {

// Double-precision host copies of a parameter-shaped set (parameters or a
// gradient), tensor by tensor, in the layout every reference uses.
reference::Gradient host_tensors(const ParameterSet& set);

class GradcheckReference {
 public:
  virtual ~GradcheckReference() = default;
  // Whether EP at a finite beta may be compared with the derivative on this sample:
  // only where the loss is smooth over the nudge. Unusable samples are drawn again.
  virtual bool usable(const std::vector<double>& sample, int label) = 0;
  // What to change when fewer than 1 in 100 samples are usable.
  virtual std::string remedy() const = 0;
  // Adds to `report` the comparison of the engine's EP gradient of the samples
  // with the exact one ("tensors": [{"tensor", "cosine", "relative_error"}...],
  // "overall"), and the kind's own fields; `redrawn` samples were not usable.
  virtual void compare(const reference::Gradient& engine, const std::vector<std::vector<double>>& xs,
                       const std::vector<int>& labels, int redrawn, nlohmann::json& report) = 0;
};

// Gives `network` (a reference's Network) the weights and biases of `parameters`.
template <class Network>
void assign_parameters(Network& network, const reference::Gradient& parameters) {
  network.weights = parameters.weights;
  network.biases = parameters.biases;
}

// Per tensor and overall, the cosine and relative error of `engine` against `exact`:
// reference::Gradient and conv_reference::Network alike, through their own
// cosine_similarity and relative_error (found by argument-dependent lookup).
template <class Gradient>
void add_gradient_comparison(nlohmann::json& report, const Gradient& engine, const Gradient& exact) {
  nlohmann::json tensors = nlohmann::json::array();
  for (int l = 0; l < static_cast<int>(engine.weights.size()); ++l)
    tensors.push_back({{"tensor", l},
                       {"cosine", cosine_similarity(engine, exact, l)},
                       {"relative_error", relative_error(engine, exact, l)}});
  report["tensors"] = tensors;
  report["overall"] = {{"cosine", cosine_similarity(engine, exact, -1)},
                       {"relative_error", relative_error(engine, exact, -1)}};
}

// Samples of a model whose loss has kinks (a unit's field crossing 0 or 1, a
// max-pooling window changing its maximum): there it has no gradient, and a nudge
// of size beta crosses the kink when the sample is within about beta of it, so
// samples nearer than 2 * beta are refused. margin: the distance to the nearest
// kink at the free fixed point.
class KinkMargin {
 public:
  explicit KinkMargin(double beta) : needed_(2.0 * beta) {}
  bool usable(double margin);
  // Names a beta at which about 3 in 4 of the samples drawn so far would have been
  // usable: half the margin that many of them keep.
  std::string remedy() const;
  // "samples_redrawn_near_a_kink" and "smallest_field_margin".
  void report(int redrawn, nlohmann::json& report) const;

 private:
  double needed_;
  double smallest_ = 1e300;
  std::vector<double> margins_;  // of every sample drawn, usable or not
};

// The kink margin of clipped units, clip(a, 0, bound) (the hard sigmoid at bound 1):
// how near the nearest of their inputs `a` (layer by layer) is to 0 or the bound.
double hard_sigmoid_kink_margin(const std::vector<std::vector<double>>& inputs, double bound = 1.0);

// The check of a model whose loss has kinks: a sample is usable where it keeps
// KinkMargin's distance from every kink, and the report says how many were
// redrawn and what the exact gradient is (`reference`). The model gives the
// margin of a sample and the comparison with its exact gradient.
class KinkedGradcheck : public GradcheckReference {
 public:
  KinkedGradcheck(double beta, std::string reference) : kinks_(beta), reference_(std::move(reference)) {}
  bool usable(const std::vector<double>& sample, int) final { return kinks_.usable(kink_margin(sample)); }
  std::string remedy() const final { return kinks_.remedy(); }
  void compare(const reference::Gradient& engine, const std::vector<std::vector<double>>& xs,
               const std::vector<int>& labels, int redrawn, nlohmann::json& report) final {
    add_exact_comparison(engine, xs, labels, report);
    kinks_.report(redrawn, report);
    report["reference"] = reference_;
  }

 protected:
  // The distance of `sample` from the nearest kink, at its free fixed point.
  virtual double kink_margin(const std::vector<double>& sample) = 0;
  // add_gradient_comparison of the engine's gradient with the exact one.
  virtual void add_exact_comparison(const reference::Gradient& engine, const std::vector<std::vector<double>>& xs,
                                    const std::vector<int>& labels, nlohmann::json& report) = 0;

 private:
  KinkMargin kinks_;
  const std::string reference_;
};

// KinkedGradcheck over a reference network (a *_reference Network holding the
// checked parameters): `margin(network, sample)` is a sample's kink margin and
// `exact(network, xs, labels)` the exact gradient, a reference::Gradient or, for
// a reference whose gradient is a Network, one compared with the engine's
// gradient assigned to a copy of `network`.
template <class Network, class Margin, class Exact>
class ReferenceGradcheck final : public KinkedGradcheck {
 public:
  ReferenceGradcheck(double beta, std::string reference, Network network, Margin margin, Exact exact)
      : KinkedGradcheck(beta, std::move(reference)),
        network_(std::move(network)),
        margin_(std::move(margin)),
        exact_(std::move(exact)) {}

 private:
  double kink_margin(const std::vector<double>& sample) override { return margin_(network_, sample); }
  void add_exact_comparison(const reference::Gradient& engine, const std::vector<std::vector<double>>& xs,
                            const std::vector<int>& labels, nlohmann::json& report) override {
    const auto exact = exact_(network_, xs, labels);
    if constexpr (std::is_same_v<std::decay_t<decltype(exact)>, reference::Gradient>) {
      add_gradient_comparison(report, engine, exact);
    } else {
      Network engine_network = network_;
      assign_parameters(engine_network, engine);
      add_gradient_comparison(report, engine_network, exact);
    }
  }

  Network network_;
  Margin margin_;
  Exact exact_;
};

// The ReferenceGradcheck of `network`, given the checked parameters here.
template <class Network, class Margin, class Exact>
std::unique_ptr<GradcheckReference> reference_gradcheck(double beta, std::string reference, Network network,
                                                        const reference::Gradient& parameters, Margin margin,
                                                        Exact exact) {
  assign_parameters(network, parameters);
  return std::make_unique<ReferenceGradcheck<Network, Margin, Exact>>(beta, std::move(reference), std::move(network),
                                                                      std::move(margin), std::move(exact));
}

}  // namespace eqprop
