#include "models/softmax_readout.h"

#include "kernels/column_sum.h"
#include "kernels/row_metrics.h"
#include "kernels/softmax_residual.h"

namespace eqprop {

SoftmaxReadout::SoftmaxReadout(Backend& backend, int width, int classes, int max_batch)
    : backend_(backend),
      width_(width),
      classes_(classes),
      max_batch_(max_batch),
      residual_(backend, 2 * std::size_t(max_batch) * classes) {}

void SoftmaxReadout::logits(const float* top, const float* weights, int begin, int rows) {
  // logits (rows, classes) = s_top (rows, width) W_out (width, classes)
  backend_.gemm(Transpose::no, Transpose::no, rows, classes_, width_, 1.0f, top + std::size_t(begin) * width_, width_,
                weights, classes_, 0.0f, residual_.data() + std::size_t(begin) * classes_, classes_);
}

void SoftmaxReadout::residual(const float* top, const float* weights, const float* bias, const float* target,
                              int begin, int rows) {
  logits(top, weights, begin, rows);
  float* residual = residual_.data() + std::size_t(begin) * classes_;
  backend_.run(SoftmaxResidualOp{residual, target + std::size_t(begin) * classes_, residual, classes_, bias}, rows);
}

void SoftmaxReadout::nudge(const float* top, const float* weights, const float* bias, const float* target, float beta,
                           int begin, int rows, float* feedback) {
  residual(top, weights, bias, target, begin, rows);
  backend_.gemm(Transpose::no, Transpose::yes, rows, width_, classes_, -beta,
                residual_.data() + std::size_t(begin) * classes_, classes_, weights, classes_, 0.0f, feedback, width_);
}

void SoftmaxReadout::gradient(const float* top_a, float beta_a, const float* top_b, float beta_b, const float* weights,
                              const float* bias, const float* target, float c, int batch, float* weight_gradient,
                              float* bias_gradient) {
  float* residual_a = residual_.data();
  float* residual_b = residual_.data() + std::size_t(max_batch_) * classes_;
  residual(top_b, weights, bias, target, 0, batch);
  backend_.copy_on_device(residual_b, residual_a, std::size_t(batch) * classes_ * sizeof(float));
  residual(top_a, weights, bias, target, 0, batch);
  backend_.gemm(Transpose::yes, Transpose::no, width_, classes_, batch, c * beta_a, top_a, width_, residual_a, classes_,
                0.0f, weight_gradient, classes_);
  if (beta_b != 0.0f)
    backend_.gemm(Transpose::yes, Transpose::no, width_, classes_, batch, -c * beta_b, top_b, width_, residual_b,
                  classes_, 1.0f, weight_gradient, classes_);
  backend_.run(ColumnSumOp{residual_a, residual_b, bias_gradient, c * beta_a, -c * beta_b, batch, classes_}, classes_);
}

void SoftmaxReadout::metrics(const float* top, const float* weights, const float* bias, const float* target, int batch,
                             float* loss, float* correct) {
  logits(top, weights, 0, batch);
  backend_.run(RowMetricsOp{residual_.data(), target, loss, correct, CostKind::cross_entropy, classes_, bias}, batch);
}

}  // namespace eqprop
