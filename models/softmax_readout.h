// The softmax read-out of the cross-entropy cost (Laborieux et al. 2021, §3):
// logits = s_top W_out + b_out from the top state layer, outside the energy, with
// the loss l = -log softmax(logits)_y. It enters EP in three places, shared by the
// dense and the convolutional Hopfield networks: the nudge -beta dl/ds_top on the
// top layer, the read-out's own gradient, and the metrics.
//
// Shapes: top (max_batch, width) the top state layer, weights (width, classes)
// row-major, bias (classes), target (batch, classes) one-hot. The parameters are
// passed per call (the model owns them).
#pragma once

#include "kernels/backend.h"
#include "kernels/device_buffer.h"

namespace eqprop {

class SoftmaxReadout {
 public:
  SoftmaxReadout(Backend& backend, int width, int classes, int max_batch);

  // feedback (rows, width) = -beta (softmax(logits) - y) W_out^T for rows
  // [begin, begin + rows): the nudge's force, acting through rho(s_top).
  //   top, target: whole arrays (row 0 first); feedback: row `begin` first.
  void nudge(const float* top, const float* weights, const float* bias, const float* target, float beta, int begin,
             int rows, float* feedback);

  // The read-out's EP gradient over rows [0, batch) (DESIGN.md §1):
  //   g = c (beta_a dl/dtheta(s_a) - beta_b dl/dtheta(s_b)),
  // dl/dW_out = s_top^T (softmax - y), dl/db_out = softmax - y; c is 1 / ((beta_a -
  // beta_b) batch). weight_gradient (width, classes), bias_gradient (classes).
  void gradient(const float* top_a, float beta_a, const float* top_b, float beta_b, const float* weights,
                const float* bias, const float* target, float c, int batch, float* weight_gradient,
                float* bias_gradient);

  // Per-sample loss and correctness (1/0) of rows [0, batch); loss, correct (batch).
  void metrics(const float* top, const float* weights, const float* bias, const float* target, int batch, float* loss,
               float* correct);

 private:
  // residual_ rows [begin, begin + rows) = s_top W_out (the logits without the bias:
  // the ops add it).
  void logits(const float* top, const float* weights, int begin, int rows);
  // residual_ rows = softmax(logits + b_out) - target.
  void residual(const float* top, const float* weights, const float* bias, const float* target, int begin, int rows);

  Backend& backend_;
  int width_, classes_, max_batch_;
  DeviceBuffer<float> residual_;  // (2, max_batch, classes): the two states' residuals for the gradient
};

}  // namespace eqprop
