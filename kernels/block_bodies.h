// The list of fused block bodies every backend runs (kernels/execution_context.h):
// adding one means writing its struct (shared_bytes() and a templated
// operator()(Context&)) and naming it here; Backend::run_blocks, the CPU loop over
// blocks and the CUDA kernel shell are generated from this list.
#pragma once

#include "kernels/fused_ising_block.h"
#include "kernels/fused_oscillator_block.h"
#include "kernels/fused_relaxation_block.h"
#include "kernels/fused_sb_block.h"
#include "kernels/row_energy.h"
#include "kernels/row_max_change.h"

#define EQPROP_BLOCK_BODIES(X) \
  X(FusedSbBlock) X(FusedRelaxationBlock) X(FusedOscillatorBlock) X(FusedIsingBlock) X(RowEnergyBlock) \
      X(RowMaxChangeBlock)

// The per-system reductions with a block body (kernels/row_reduction.h), as
// (op, body) pairs: Backend::reduce_rows runs the op on the CPU and the body, one
// block per row, on the GPU.
#define EQPROP_ROW_REDUCTIONS(X) X(RowEnergyOp, RowEnergyBlock) X(RowMaxChangeOp, RowMaxChangeBlock)
