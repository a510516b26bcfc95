// The list of single-source elementwise operations every backend runs. Adding an
// op means writing its struct (an EQ_HD operator()(index)) and naming it here: the
// Backend interface, the CPU loop and the CUDA kernel are generated from this list.
#pragma once

#include "kernels/adc_read.h"
#include "kernels/adjoint_step.h"
#include "kernels/axpby.h"
#include "kernels/column_sum.h"
#include "kernels/dac_write.h"
#include "kernels/fill_random.h"
#include "kernels/im2col.h"
#include "kernels/ising_layer_update.h"
#include "kernels/ising_readout.h"
#include "kernels/layer_step.h"
#include "kernels/max_pool.h"
#include "kernels/metric_slot_copy.h"
#include "kernels/metropolis_sweep.h"
#include "kernels/oscillator_ising.h"
#include "kernels/oscillator_row_energy.h"
#include "kernels/oscillator_step.h"
#include "kernels/plane_layout.h"
#include "kernels/predictive_coding.h"
#include "kernels/random_spins.h"
#include "kernels/range_calibration.h"
#include "kernels/replica_sum.h"
#include "kernels/row_energy.h"
#include "kernels/row_max_change.h"
#include "kernels/row_metrics.h"
#include "kernels/sgd_dac_write.h"
#include "kernels/sgd_momentum.h"
#include "kernels/simulated_bifurcation.h"
#include "kernels/softmax_residual.h"
#include "kernels/transpose.h"

#define EQPROP_ELEMENTWISE_OPS(X) \
  X(LayerStepOp)                  \
  X(SoftmaxResidualOp)            \
  X(ColumnSumOp)                  \
  X(AxpbyOp)                      \
  X(SgdMomentumOp)                \
  X(RowMetricsOp)                 \
  X(FillRandomOp)                 \
  X(RowEnergyOp)                  \
  X(RowMaxChangeOp)               \
  X(SbInitOp)                     \
  X(SbStepOp)                     \
  X(OimInitOp)                    \
  X(OimStepOp)                    \
  X(OscillatorTrigOp)             \
  X(OscillatorStepOp)             \
  X(OscillatorRowEnergyOp)        \
  X(RandomSpinsOp)                \
  X(MetropolisSweepOp)            \
  X(DacWriteOp)                   \
  X(SgdDacWriteOp)                \
  X(SgdRangeOp)                   \
  X(AdcReadOp)                    \
  X(MinMaxReduceOp)               \
  X(PlaneRelayoutOp)              \
  X(Im2colOp)                     \
  X(Col2imOp)                     \
  X(MaxPoolOp)                    \
  X(MaxUnpoolOp)                  \
  X(MaxPoolSelectOp)              \
  X(AvgPoolOp)                    \
  X(AvgUnpoolOp)                  \
  X(IsingLayerUpdateOp)           \
  X(IsingLocalFieldOp)            \
  X(IsingReadoutOp)               \
  X(ReplicaSumOp)                 \
  X(TransposeOp)                  \
  X(AdjointStepOp)                \
  X(PredictionOp)                 \
  X(PredictionErrorOp)            \
  X(PredictiveCodingStepOp)       \
  X(PredictionEnergyOp)           \
  X(MetricSlotCopyOp)
