// The one place that decides how single-source math is compiled: as
// __host__ __device__ functions under nvcc, as plain inline functions under a
// host compiler. Every per-element formula in kernels/ is marked EQ_HD, so the CPU
// backend (and therefore CI, which has no GPU) runs exactly the math the GPU runs.
#pragma once

// expf, logf, sqrtf, cosf in the global namespace, as CUDA device code names them.
#include <math.h>

#if defined(__CUDACC__)
#define EQ_HD __host__ __device__ __forceinline__
#else
#define EQ_HD inline
#endif
