// What a kernel promises about its result across backends (CPU, CUDA), thread
// counts and launch shapes, stated as data next to its math (STYLE.md, habit 5).
// Every op struct of EQPROP_ELEMENTWISE_OPS (kernels/elementwise_ops.h) and every
// body of EQPROP_BLOCK_BODIES (kernels/block_bodies.h) declares
//   static constexpr Determinism determinism = Determinism::...;
// the backends refuse at compile time to run one that does not, and the CPU/CUDA
// parity tests derive their tolerance from it.
#pragma once

#include <type_traits>

namespace eqprop {

enum class Determinism {
  // The same bits on every backend: IEEE + - * / in a fixed order, polynomial
  // trig, Philox counters and uniforms (the CUDA backend is built -fmad=false).
  bit_exact,
  // Sums whose order the backend chooses (GEMMs, tree reductions): agree to about
  // terms * 2^-24 of the sum of |terms|.
  exact_up_to_reduction_order,
  // Through libm expf/logf/sinf/cosf, which may differ in the last bit between
  // backends: agree to a few ulp of the magnitudes involved.
  ulp_bounded,
  // A few-ulp difference (as ulp_bounded) can move a discrete outcome, an
  // accept/reject against a uniform or a rounding level, when the value falls that
  // close to its threshold: equal except in a rare fraction of elements.
  statistical,
};

// True if Op has a `static constexpr Determinism determinism` member.
template <class Op, class = void>
struct declares_determinism : std::false_type {};
template <class Op>
struct declares_determinism<Op, std::void_t<decltype(Op::determinism)>>
    : std::is_same<std::remove_cv_t<decltype(Op::determinism)>, Determinism> {};
template <class Op>
inline constexpr bool declares_determinism_v = declares_determinism<Op>::value;

}  // namespace eqprop

// A member declaration for the backends' X-macro expansions of the op lists: a
// backend that runs Op fails to compile unless Op declares its determinism.
#define EQPROP_REQUIRE_DETERMINISM(Op)                     \
  static_assert(::eqprop::declares_determinism_v<Op>,      \
                #Op " must declare `static constexpr Determinism determinism` (kernels/determinism.h)");
