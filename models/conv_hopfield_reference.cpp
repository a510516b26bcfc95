// Naive double-precision reference of the convolutional Hopfield network; see the
// header. Everything is per sample and by definition: the convolution as the sum
// over (c, kh, kw), the pooling window by window, the feedback through the pooling
// and the convolution as a scatter of each output's contribution back onto the
// inputs that produced it (the chain rule, written the other way round from the
// engine's gathers).
#include "models/conv_hopfield_reference.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "models/conv_hopfield.h"

namespace eqprop {
namespace conv_reference {
namespace {

struct Plane {
  int c, h, w;
};

// rho(v) = clip(v, 0, c), c = net.activation_max.
double rho(const Network& net, double v) { return v < 0.0 ? 0.0 : (v > net.activation_max ? net.activation_max : v); }

int conv_count(const Network& net) { return static_cast<int>(net.convs.size()); }

int output_size(int in, int kernel, int stride, int padding) { return (in + 2 * padding - kernel) / stride + 1; }

// The planes of layer j <= conv_count: 0 the input, k the state after conv k - 1.
Plane plane_of(const Network& net, int j) {
  Plane p{net.in_channels, net.in_h, net.in_w};
  for (int k = 0; k < j; ++k) {
    const Conv& c = net.convs[k];
    p = {c.channels, output_size(p.h, c.kernel, c.stride, c.padding), output_size(p.w, c.kernel, c.stride, c.padding)};
    if (net.pool != 0) p.h /= 2, p.w /= 2;
  }
  return p;
}

// Pre-pool output of conv k on `in` (layer k), bias included: (Co, OH, OW).
std::vector<double> conv_pre(const Network& net, int k, const std::vector<double>& in, Plane& out_plane) {
  const Conv& conv = net.convs[k];
  const Plane ip = plane_of(net, k);
  out_plane = {conv.channels, output_size(ip.h, conv.kernel, conv.stride, conv.padding),
               output_size(ip.w, conv.kernel, conv.stride, conv.padding)};
  const std::vector<double>& w = net.weights[k];
  std::vector<double> out(std::size_t(out_plane.c) * out_plane.h * out_plane.w);
  for (int co = 0; co < out_plane.c; ++co)
    for (int oh = 0; oh < out_plane.h; ++oh)
      for (int ow = 0; ow < out_plane.w; ++ow) {
        double sum = net.biases[k][co];
        for (int c = 0; c < ip.c; ++c)
          for (int kh = 0; kh < conv.kernel; ++kh)
            for (int kw = 0; kw < conv.kernel; ++kw) {
              const int ih = oh * conv.stride - conv.padding + kh, iw = ow * conv.stride - conv.padding + kw;
              if (ih < 0 || ih >= ip.h || iw < 0 || iw >= ip.w) continue;
              sum += w[((std::size_t(co) * ip.c + c) * conv.kernel + kh) * conv.kernel + kw] *
                     in[(std::size_t(c) * ip.h + ih) * ip.w + iw];
            }
        out[(std::size_t(co) * out_plane.h + oh) * out_plane.w + ow] = sum;
      }
  return out;
}

// Pooling of a pre-pool output; `source` gets, per pooled unit, the pre-pool index
// of the maximum (max pooling; first in window order on ties).
std::vector<double> pool(const Network& net, const std::vector<double>& pre, const Plane& p, std::vector<int>& source) {
  if (net.pool == 0) {
    source.resize(pre.size());
    for (std::size_t i = 0; i < pre.size(); ++i) source[i] = static_cast<int>(i);
    return pre;
  }
  const int h = p.h / 2, w = p.w / 2;
  std::vector<double> out(std::size_t(p.c) * h * w);
  source.assign(out.size(), -1);
  for (int c = 0; c < p.c; ++c)
    for (int oh = 0; oh < h; ++oh)
      for (int ow = 0; ow < w; ++ow) {
        const std::size_t o = (std::size_t(c) * h + oh) * w + ow;
        double best = -HUGE_VAL, sum = 0.0;
        for (int dh = 0; dh < 2; ++dh)
          for (int dw = 0; dw < 2; ++dw) {
            const int i = (c * p.h + 2 * oh + dh) * p.w + 2 * ow + dw;
            sum += pre[i];
            if (pre[i] > best) best = pre[i], source[o] = i;
          }
        out[o] = net.pool == 1 ? best : sum / 4.0;
      }
  return out;
}

// The layer j values of a sample: the input, or a state layer.
const std::vector<double>& layer(const std::vector<double>& x, const States& states, int j) {
  return j == 0 ? x : states[j - 1];
}

// The drive of state layer i from tensor i (bias included).
std::vector<double> drive(const Network& net, const std::vector<double>& x, const States& states, int i) {
  const std::vector<double>& below = layer(x, states, i);
  if (i < conv_count(net)) {
    Plane p{};
    std::vector<int> source;
    return pool(net, conv_pre(net, i, below, p), p, source);
  }
  const int fan_in = units(net, i), n = units(net, i + 1);
  std::vector<double> out(net.biases[i]);
  for (int a = 0; a < fan_in; ++a)
    for (int b = 0; b < n; ++b) out[b] += below[a] * net.weights[i][std::size_t(a) * n + b];
  return out;
}

// The feedback of tensor t (t >= 1) onto its input, layer t (state layer t - 1):
// d/d(layer t) of s_t . drive_t, scattered back through the pooling and the kernel.
std::vector<double> feedback(const Network& net, const std::vector<double>& x, const States& states, int t) {
  const std::vector<double>& below = layer(x, states, t);
  const std::vector<double>& above = states[t];
  std::vector<double> out(below.size(), 0.0);
  if (t >= conv_count(net)) {
    const int n = units(net, t + 1);
    for (std::size_t a = 0; a < below.size(); ++a)
      for (int b = 0; b < n; ++b) out[a] += net.weights[t][a * n + b] * above[b];
    return out;
  }
  Plane p{};
  std::vector<int> source;
  const std::vector<double> pre = conv_pre(net, t, below, p);
  pool(net, pre, p, source);
  // Gradient of above . pool(pre) with respect to pre.
  std::vector<double> g(pre.size(), 0.0);
  if (net.pool == 2) {
    const int h = p.h / 2, w = p.w / 2;
    for (int c = 0; c < p.c; ++c)
      for (int oh = 0; oh < h; ++oh)
        for (int ow = 0; ow < w; ++ow)
          for (int dh = 0; dh < 2; ++dh)
            for (int dw = 0; dw < 2; ++dw)
              g[(c * p.h + 2 * oh + dh) * p.w + 2 * ow + dw] += above[(std::size_t(c) * h + oh) * w + ow] / 4.0;
  } else {
    for (std::size_t o = 0; o < above.size(); ++o) g[source[o]] += above[o];
  }
  // Scatter each pre-pool output's weight back onto the inputs of its window.
  const Conv& conv = net.convs[t];
  const Plane ip = plane_of(net, t);
  for (int co = 0; co < p.c; ++co)
    for (int oh = 0; oh < p.h; ++oh)
      for (int ow = 0; ow < p.w; ++ow) {
        const double go = g[(std::size_t(co) * p.h + oh) * p.w + ow];
        for (int c = 0; c < ip.c; ++c)
          for (int kh = 0; kh < conv.kernel; ++kh)
            for (int kw = 0; kw < conv.kernel; ++kw) {
              const int ih = oh * conv.stride - conv.padding + kh, iw = ow * conv.stride - conv.padding + kw;
              if (ih < 0 || ih >= ip.h || iw < 0 || iw >= ip.w) continue;
              out[(std::size_t(c) * ip.h + ih) * ip.w + iw] +=
                  net.weights[t][((std::size_t(co) * ip.c + c) * conv.kernel + kh) * conv.kernel + kw] * go;
            }
      }
  return out;
}

int chain_tensor_count(const Network& net) { return conv_count(net) + static_cast<int>(net.dense.size()); }

// Skip s's stride, the smallest whose 1x1 windows land on plane `to` (as the engine's).
int skip_stride(const Network& net, int s) {
  const Plane in = plane_of(net, net.skips[s].from), out = plane_of(net, net.skips[s].to);
  return (in.h + out.h - 1) / out.h;
}

// Calls tap(k, in, out) for every product K_s[k] * layer_from[in] that lands on
// s_to[out]: each output position reads the input at (oh * stride, ow * stride).
template <class Tap>
void for_each_skip_tap(const Network& net, int s, Tap tap) {
  const Plane in = plane_of(net, net.skips[s].from), out = plane_of(net, net.skips[s].to);
  const int stride = skip_stride(net, s);
  for (int co = 0; co < out.c; ++co)
    for (int c = 0; c < in.c; ++c)
      for (int oh = 0; oh < out.h; ++oh)
        for (int ow = 0; ow < out.w; ++ow)
          tap(std::size_t(co) * in.c + c, (std::size_t(c) * in.h + oh * stride) * in.w + ow * stride,
              (std::size_t(co) * out.h + oh) * out.w + ow);
}

const std::vector<double>& skip_kernel(const Network& net, int s) { return net.weights[chain_tensor_count(net) + s]; }

// K_s * (layer from): (C_to, H_to, W_to).
std::vector<double> skip_drive(const Network& net, const std::vector<double>& x, const States& states, int s) {
  const std::vector<double>& below = layer(x, states, net.skips[s].from);
  const std::vector<double>& k = skip_kernel(net, s);
  std::vector<double> result(static_cast<std::size_t>(units(net, net.skips[s].to)), 0.0);
  for_each_skip_tap(net, s, [&](std::size_t w, std::size_t i, std::size_t o) { result[o] += k[w] * below[i]; });
  return result;
}

// d/d(layer from) of s_to . (K_s * layer from): each input's weighted sum of the
// outputs that read it.
std::vector<double> skip_feedback(const Network& net, const States& states, int s) {
  const std::vector<double>& above = states[net.skips[s].to - 1];
  const std::vector<double>& k = skip_kernel(net, s);
  std::vector<double> result(static_cast<std::size_t>(units(net, net.skips[s].from)), 0.0);
  for_each_skip_tap(net, s, [&](std::size_t w, std::size_t i, std::size_t o) { result[i] += k[w] * above[o]; });
  return result;
}

}  // namespace

int units(const Network& net, int j) {
  if (j <= conv_count(net)) {
    const Plane p = plane_of(net, j);
    return p.c * p.h * p.w;
  }
  return net.dense[j - conv_count(net) - 1];
}

int state_layer_count(const Network& net) {
  return conv_count(net) + static_cast<int>(net.dense.size()) - (net.cost == CostKind::cross_entropy ? 1 : 0);
}

double energy(const Network& net, const std::vector<double>& x, const States& states) {
  double e = 0.0;
  for (int i = 0; i < state_layer_count(net); ++i) {
    const std::vector<double> d = drive(net, x, states, i);
    for (std::size_t u = 0; u < d.size(); ++u) e += 0.5 * states[i][u] * states[i][u] - states[i][u] * d[u];
  }
  for (std::size_t s = 0; s < net.skips.size(); ++s) {
    const std::vector<double> d = skip_drive(net, x, states, static_cast<int>(s));
    const std::vector<double>& top = states[net.skips[s].to - 1];
    for (std::size_t u = 0; u < d.size(); ++u) e -= top[u] * d[u];
  }
  return e;
}

States fields(const Network& net, const std::vector<double>& x, const States& states) {
  const int n = state_layer_count(net);
  States h(n);
  for (int i = 0; i < n; ++i) {
    h[i] = drive(net, x, states, i);
    if (i + 1 < n) {
      const std::vector<double> f = feedback(net, x, states, i + 1);
      for (std::size_t u = 0; u < h[i].size(); ++u) h[i][u] += f[u];
    }
  }
  for (std::size_t s = 0; s < net.skips.size(); ++s) {
    const Skip& skip = net.skips[s];
    const std::vector<double> d = skip_drive(net, x, states, static_cast<int>(s));
    for (std::size_t u = 0; u < d.size(); ++u) h[skip.to - 1][u] += d[u];
    if (skip.from == 0) continue;
    const std::vector<double> f = skip_feedback(net, states, static_cast<int>(s));
    for (std::size_t u = 0; u < f.size(); ++u) h[skip.from - 1][u] += f[u];
  }
  return h;
}

std::vector<double> layer_drive(const Network& net, const std::vector<double>& x, const States& states, int i) {
  return drive(net, x, states, i);
}

std::vector<double> layer_feedback(const Network& net, const std::vector<double>& x, const States& states, int t) {
  return feedback(net, x, states, t);
}

double kink_margin(const Network& net, const std::vector<double>& x, const States& states) {
  double margin = HUGE_VAL;
  for (const auto& layer_fields : fields(net, x, states))
    for (double h : layer_fields) margin = std::min({margin, std::abs(h), std::abs(h - net.activation_max)});
  return std::min(margin, pooling_margin(net, x, states));
}

double pooling_margin(const Network& net, const std::vector<double>& x, const States& states) {
  double margin = HUGE_VAL;
  if (net.pool != 1) return margin;
  for (int k = 0; k < conv_count(net); ++k) {
    Plane p{};
    const std::vector<double> pre = conv_pre(net, k, layer(x, states, k), p);
    for (int c = 0; c < p.c; ++c)
      for (int oh = 0; oh < p.h / 2; ++oh)
        for (int ow = 0; ow < p.w / 2; ++ow) {
          std::vector<double> window;
          for (int dh = 0; dh < 2; ++dh)
            for (int dw = 0; dw < 2; ++dw) window.push_back(pre[(c * p.h + 2 * oh + dh) * p.w + 2 * ow + dw]);
          std::sort(window.begin(), window.end());
          margin = std::min(margin, window[3] - window[2]);
        }
  }
  return margin;
}

States free_fixed_point(const Network& net, const std::vector<double>& x) {
  const int n = state_layer_count(net);
  for (double damping : {1.0, 0.5, 0.25}) {
    States s(n);
    for (int i = 0; i < n; ++i) s[i].assign(units(net, i + 1), 0.0);
    for (int sweep = 0; sweep < 20000; ++sweep) {
      const States h = fields(net, x, s);
      double change = 0.0;
      for (int i = 0; i < n; ++i)
        for (std::size_t u = 0; u < s[i].size(); ++u) {
          const double target = rho(net, h[i][u]);
          change = std::max(change, std::abs(target - s[i][u]));
          s[i][u] += damping * (target - s[i][u]);
        }
      if (std::isnan(change)) break;
      if (change < 1e-13) return s;
    }
  }
  throw std::runtime_error("conv_reference::free_fixed_point: no convergence");
}

double cost(const Network& net, const States& states, int label) {
  const std::vector<double>& top = states.back();
  if (net.cost == CostKind::mse) {
    double c = 0.0;
    for (std::size_t k = 0; k < top.size(); ++k) {
      const double d = top[k] - (static_cast<int>(k) == label ? 1.0 : 0.0);
      c += 0.5 * d * d;
    }
    return c;
  }
  const int classes = net.dense.back(), readout = chain_tensor_count(net) - 1;
  const std::vector<double>& w = net.weights[readout];
  std::vector<double> logits(net.biases[readout]);
  for (std::size_t a = 0; a < top.size(); ++a)
    for (int k = 0; k < classes; ++k) logits[k] += top[a] * w[a * classes + k];
  const double largest = *std::max_element(logits.begin(), logits.end());
  double total = 0.0;
  for (double z : logits) total += std::exp(z - largest);
  return -(logits[label] - largest - std::log(total));
}

double batch_loss(const Network& net, const std::vector<std::vector<double>>& xs, const std::vector<int>& labels) {
  double sum = 0.0;
  for (std::size_t s = 0; s < xs.size(); ++s) sum += cost(net, free_fixed_point(net, xs[s]), labels[s]);
  return sum / static_cast<double>(xs.size());
}

Network energy_gradient(const Network& net, const std::vector<double>& x, const States& states) {
  Network g = net;
  for (auto& w : g.weights) std::fill(w.begin(), w.end(), 0.0);
  for (auto& b : g.biases) std::fill(b.begin(), b.end(), 0.0);
  for (int t = 0; t < state_layer_count(net); ++t) {
    const std::vector<double>& below = layer(x, states, t);
    const std::vector<double>& above = states[t];
    // dE/db = -sum of the layer's states over its positions (the bias is inside a
    // pooling whose windows tile the plane, so P(y + b) = P(y) + b).
    if (t >= conv_count(net)) {
      const int n = units(net, t + 1);
      for (std::size_t a = 0; a < below.size(); ++a)
        for (int b = 0; b < n; ++b) g.weights[t][a * n + b] = -below[a] * above[b];
      for (int b = 0; b < n; ++b) g.biases[t][b] = -above[b];
      continue;
    }
    const Plane sp = plane_of(net, t + 1);
    for (int c = 0; c < sp.c; ++c)
      for (int q = 0; q < sp.h * sp.w; ++q) g.biases[t][c] -= above[std::size_t(c) * sp.h * sp.w + q];
    // dE/dW[co, c, kh, kw] = -sum over pre-pool positions of dE/dpre times its input.
    Plane p{};
    std::vector<int> source;
    const std::vector<double> pre = conv_pre(net, t, below, p);
    pool(net, pre, p, source);
    std::vector<double> upstream(pre.size(), 0.0);
    for (std::size_t o = 0; o < above.size(); ++o) {
      if (net.pool == 2) {
        const int h = p.h / 2, w = p.w / 2, c = static_cast<int>(o) / (h * w), q = static_cast<int>(o) % (h * w);
        for (int dh = 0; dh < 2; ++dh)
          for (int dw = 0; dw < 2; ++dw) upstream[(c * p.h + 2 * (q / w) + dh) * p.w + 2 * (q % w) + dw] += above[o] / 4.0;
      } else {
        upstream[source[o]] += above[o];
      }
    }
    const Conv& conv = net.convs[t];
    const Plane ip = plane_of(net, t);
    for (int co = 0; co < p.c; ++co)
      for (int c = 0; c < ip.c; ++c)
        for (int kh = 0; kh < conv.kernel; ++kh)
          for (int kw = 0; kw < conv.kernel; ++kw) {
            double sum = 0.0;
            for (int oh = 0; oh < p.h; ++oh)
              for (int ow = 0; ow < p.w; ++ow) {
                const int ih = oh * conv.stride - conv.padding + kh, iw = ow * conv.stride - conv.padding + kw;
                if (ih < 0 || ih >= ip.h || iw < 0 || iw >= ip.w) continue;
                sum += upstream[(std::size_t(co) * p.h + oh) * p.w + ow] * below[(std::size_t(c) * ip.h + ih) * ip.w + iw];
              }
            g.weights[t][((std::size_t(co) * ip.c + c) * conv.kernel + kh) * conv.kernel + kw] = -sum;
          }
  }
  // dE/dK_s[co, c] = -sum over plane `to` of s_to[co] times the input it reads.
  for (std::size_t s = 0; s < net.skips.size(); ++s) {
    const std::vector<double>& below = layer(x, states, net.skips[s].from);
    const std::vector<double>& above = states[net.skips[s].to - 1];
    std::vector<double>& gk = g.weights[chain_tensor_count(net) + s];
    for_each_skip_tap(net, static_cast<int>(s),
                      [&](std::size_t w, std::size_t i, std::size_t o) { gk[w] -= above[o] * below[i]; });
  }
  return g;
}

Network finite_difference_gradient(const Network& net, const std::vector<std::vector<double>>& xs,
                                   const std::vector<int>& labels, double eps) {
  Network g = net, probe = net;
  for (int pass = 0; pass < 2; ++pass) {
    auto& tensors = pass == 0 ? probe.weights : probe.biases;
    auto& out = pass == 0 ? g.weights : g.biases;
    for (std::size_t t = 0; t < tensors.size(); ++t)
      for (std::size_t i = 0; i < tensors[t].size(); ++i) {
        const double original = tensors[t][i];
        tensors[t][i] = original + eps;
        const double up = batch_loss(probe, xs, labels);
        tensors[t][i] = original - eps;
        const double down = batch_loss(probe, xs, labels);
        tensors[t][i] = original;
        out[t][i] = (up - down) / (2.0 * eps);
      }
  }
  return g;
}

namespace {

// Sums over tensor pair t (or all): <a, b>, ||a||^2, ||b||^2, ||a - b||^2.
void sums(const Network& a, const Network& b, int t, double& dot, double& aa, double& bb, double& diff) {
  dot = aa = bb = diff = 0.0;
  for (std::size_t k = 0; k < a.weights.size(); ++k) {
    if (t >= 0 && static_cast<int>(k) != t) continue;
    for (int pass = 0; pass < 2; ++pass) {
      const std::vector<double>& u = pass == 0 ? a.weights[k] : a.biases[k];
      const std::vector<double>& v = pass == 0 ? b.weights[k] : b.biases[k];
      for (std::size_t i = 0; i < u.size(); ++i) {
        dot += u[i] * v[i], aa += u[i] * u[i], bb += v[i] * v[i];
        diff += (u[i] - v[i]) * (u[i] - v[i]);
      }
    }
  }
}

}  // namespace

double cosine_similarity(const Network& a, const Network& b, int t) {
  double dot, aa, bb, diff;
  sums(a, b, t, dot, aa, bb, diff);
  if (aa == 0.0 && bb == 0.0) return 1.0;
  if (aa == 0.0 || bb == 0.0) return 0.0;
  return dot / std::sqrt(aa * bb);
}

double relative_error(const Network& a, const Network& b, int t) {
  double dot, aa, bb, diff;
  sums(a, b, t, dot, aa, bb, diff);
  if (bb == 0.0) return aa == 0.0 ? 0.0 : HUGE_VAL;
  return std::sqrt(diff / bb);
}

Network network_of(const ConvHopfieldShape& shape) {
  Network net;
  net.in_channels = shape.input.channels;
  net.in_h = shape.input.height;
  net.in_w = shape.input.width;
  for (const ConvLayerSpec& c : shape.convs) net.convs.push_back({c.channels, c.kernel, c.stride, c.padding});
  net.pool = static_cast<int>(shape.pool);
  net.dense = shape.dense;
  net.cost = shape.cost;
  net.activation_max = shape.activation_max;
  for (const SkipSpec& skip : shape.skips) net.skips.push_back({skip.from, skip.to});
  return net;
}

}  // namespace conv_reference
}  // namespace eqprop
