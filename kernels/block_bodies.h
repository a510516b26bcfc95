// The list of fused block bodies every backend runs (kernels/execution_context.h):
// adding one means writing its struct (shared_bytes() and a templated
// operator()(Context&)) and naming it here; Backend::run_blocks, the CPU loop over
// blocks and the CUDA kernel shell are generated from this list.
#pragma once

#include "kernels/fused_sb_block.h"

#define EQPROP_BLOCK_BODIES(X) X(FusedSbBlock)
