#include "kernels/dnnl_matmul.h"

#ifdef EQPROP_HAVE_DNNL

#include <dnnl.hpp>

#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <tuple>

#include "kernels/dnnl_isa.h"

namespace eqprop {
namespace {

using dnnl::memory;
using Dims = memory::dims;

// Everything a primitive is made for: the shapes, transposes, strides, the scalars
// (alpha and beta are attributes of a oneDNN 2.6 primitive; EP calls a GEMM shape
// with one or two of each) and whether A is constant (its staging layout).
using PlanKey = std::tuple<int, int, int, int, int, int, int, int, std::uint32_t, std::uint32_t, bool>;

std::uint32_t bits_of(float x) {
  std::uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits;
}

// op(X) (rows, cols) of a row-major X with leading dimension ld, as oneDNN strides.
memory::desc user_desc(int rows, int cols, Transpose transpose, int ld) {
  const Dims strides = transpose == Transpose::yes ? Dims{1, ld} : Dims{ld, 1};
  return memory::desc(Dims{rows, cols}, memory::data_type::f32, strides);
}

struct Plan {
  memory::desc a_user, b_user, c_user;
  memory a_bf16, b_bf16;
  dnnl::reorder a_convert, b_convert;
  dnnl::matmul product;
  // What a_bf16 holds (constant-A plans): the address and version it was converted
  // from; null: nothing yet.
  const float* converted_a = nullptr;
  std::uint64_t converted_a_version = 0;
};

class DnnlBf16Gemm final : public Bf16Gemm {
 public:
  bool gemm(Transpose transpose_a, Transpose transpose_b, int m, int n, int k, float alpha, const float* a, int lda,
            std::uint64_t a_version, const float* b, int ldb, float beta, float* c, int ldc) override {
    thread_local Cache cache;
    Plan* plan = cache.plan(transpose_a, transpose_b, m, n, k, lda, ldb, ldc, alpha, beta, a_version != 0);
    if (!plan) return false;
    memory b_user(plan->b_user, cache.engine, const_cast<float*>(b));
    memory c_user(plan->c_user, cache.engine, c);
    if (a_version == 0 || plan->converted_a != a || plan->converted_a_version != a_version) {
      memory a_user(plan->a_user, cache.engine, const_cast<float*>(a));
      plan->a_convert.execute(cache.stream, a_user, plan->a_bf16);
      plan->converted_a = a_version == 0 ? nullptr : a;
      plan->converted_a_version = a_version;
    }
    plan->b_convert.execute(cache.stream, b_user, plan->b_bf16);
    plan->product.execute(cache.stream,
                          {{DNNL_ARG_SRC, plan->a_bf16}, {DNNL_ARG_WEIGHTS, plan->b_bf16}, {DNNL_ARG_DST, c_user}});
    cache.stream.wait();
    return true;
  }

 private:
  struct Cache {
    dnnl::engine engine{dnnl::engine::kind::cpu, 0};
    dnnl::stream stream{engine};
    std::map<PlanKey, std::optional<Plan>> plans;  // nullopt: oneDNN has no primitive for it

    Plan* plan(Transpose ta, Transpose tb, int m, int n, int k, int lda, int ldb, int ldc, float alpha, float beta,
               bool constant_a) {
      const PlanKey key{static_cast<int>(ta), static_cast<int>(tb), m, n, k, lda, ldb, ldc, bits_of(alpha),
                        bits_of(beta), constant_a};
      const auto found = plans.find(key);
      if (found != plans.end()) return found->second ? &*found->second : nullptr;
      std::optional<Plan> made;
      try {
        made = build(ta, tb, m, n, k, lda, ldb, ldc, alpha, beta, constant_a);
      } catch (const dnnl::error&) {
        made.reset();
      }
      auto& slot = plans[key] = std::move(made);
      return slot ? &*slot : nullptr;
    }

    Plan build(Transpose ta, Transpose tb, int m, int n, int k, int lda, int ldb, int ldc, float alpha, float beta,
               bool constant_a) const {
      using tag = memory::format_tag;
      const auto bf16 = memory::data_type::bf16;
      Plan plan;
      plan.a_user = user_desc(m, k, ta, lda);
      plan.b_user = user_desc(k, n, tb, ldb);
      plan.c_user = memory::desc(Dims{m, n}, memory::data_type::f32, Dims{ldc, 1});
      // Each operand in its own orientation, a constant A untransposed (see the header).
      const bool stage_a_transposed = ta == Transpose::yes && !constant_a;
      const memory::desc a_bf16(Dims{m, k}, bf16, stage_a_transposed ? tag::ba : tag::ab),
          b_bf16(Dims{k, n}, bf16, tb == Transpose::yes ? tag::ba : tag::ab);
      plan.a_bf16 = memory(a_bf16, engine);
      plan.b_bf16 = memory(b_bf16, engine);
      plan.a_convert = dnnl::reorder(dnnl::reorder::primitive_desc(engine, plan.a_user, engine, a_bf16));
      plan.b_convert = dnnl::reorder(dnnl::reorder::primitive_desc(engine, plan.b_user, engine, b_bf16));
      dnnl::primitive_attr attributes;
      if (alpha != 1.0f) attributes.set_output_scales(0, {alpha});
      if (beta != 0.0f) {
        dnnl::post_ops sum;
        sum.append_sum(beta);
        attributes.set_post_ops(sum);
      }
      const dnnl::matmul::desc desc(a_bf16, b_bf16, plan.c_user);
      plan.product = dnnl::matmul(dnnl::matmul::primitive_desc(desc, attributes, engine));
      return plan;
    }
  };
};

}  // namespace

std::unique_ptr<Bf16Gemm> make_dnnl_bf16_gemm() {
  // Without bf16 instructions oneDNN has no bf16 matmul (AVX2) or one that emulates
  // them, slower than the fp32 GEMM on rounded operands that the backend runs instead.
  if (!dnnl_has_bf16_instructions()) return nullptr;
  return std::make_unique<DnnlBf16Gemm>();
}

}  // namespace eqprop

#else

namespace eqprop {

std::unique_ptr<Bf16Gemm> make_dnnl_bf16_gemm() { return nullptr; }

}  // namespace eqprop

#endif
