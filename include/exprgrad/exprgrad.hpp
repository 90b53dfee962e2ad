// exprgrad: compile-time symbolic differentiation with SIMD evaluation. Umbrella header.
//
//   #include <exprgrad/exprgrad.hpp>
//   using namespace exprgrad;
//   constexpr auto x = var<0>;
//   constexpr auto y = var<1>;
//   constexpr auto f = exp(sin(x) * y) / (1_c + x * x);
//   double v = f(0.5, 2.0);
//   auto dfdx = d(f, x);
#pragma once

// First: a standard older than C++20 is refused with one `#error` line (require_cxx20.hpp, which
// every public header reaches before any C++20 construct), then the build configuration.
#include "exprgrad/require_cxx20.hpp"
#include "exprgrad/config.hpp"

// The compiled library and every consumer must agree on the instruction set and on
// XTENSOR_USE_XSIMD: both change the layout of xtensor and xsimd types (see exprgrad.pc).
#if EXPRGRAD_BUILT_FOR_AVX2 && !defined(__AVX2__)
#error \
    "exprgrad was configured for AVX2 + FMA: compile with the flags of `pkg-config --cflags exprgrad` (-march=x86-64-v3)"
#endif
#ifndef XTENSOR_USE_XSIMD
#error "exprgrad needs XTENSOR_USE_XSIMD defined before any xtensor header: use `pkg-config --cflags exprgrad`"
#endif

#include "exprgrad/check/gradcheck.hpp"
#include "exprgrad/check/laws.hpp"
#include "exprgrad/check/vjp_check.hpp"
#include "exprgrad/kernels/parallel.hpp"
#include "exprgrad/ops/attention.hpp"
#include "exprgrad/ops/attention_definition.hpp"
#include "exprgrad/ops/attention_lowering.hpp"  // softmax(s·Q·Kᵀ)·V compiles to the attention node
#include "exprgrad/ops/attention_node.hpp"
#include "exprgrad/ops/deer.hpp"
#include "exprgrad/ops/deer_node.hpp"
#include "exprgrad/ops/emo.hpp"
#include "exprgrad/ops/flex_attention.hpp"  // exprgrad::attn::score, ..., flex_attention_forward / _vjp
#include "exprgrad/ops/attention_mods.hpp"  // exprgrad::attn::causal, sliding_window<W>, alibi, softcap<C>, ...
#include "exprgrad/ops/flex_attention_node.hpp"
#include "exprgrad/ops/heads_attention_node.hpp"
#include "exprgrad/ops/emo_definition.hpp"
#include "exprgrad/ops/linear_recurrence_node.hpp"
#include "exprgrad/ops/scan.hpp"
#include "exprgrad/random.hpp"
#include "exprgrad/random_arrays.hpp"  // exprgrad::random::normal, uniform, integers, bernoulli
#include "exprgrad/simd/map.hpp"
#include "exprgrad/sym.hpp"
#include "exprgrad/tensors.hpp"

namespace exprgrad {

// The public names, gathered from the layers (functions of the DSL are also found by
// argument-dependent lookup, so `exp(x)` works without these).
using sym::abs;
using sym::arity_v;
using sym::c;
using sym::cos;
using sym::d;
using sym::erf;
using sym::evaluate;
using sym::evaluate_all;
using sym::exp;
using sym::expm1;
using sym::fc;
using sym::grad;
using sym::hessian;
using sym::log;
using sym::log1p;
using sym::max;
using sym::min;
using sym::node_count_v;
using sym::pow;
using sym::sigmoid;
using sym::sign;
using sym::sin;
using sym::softplus;
using sym::sqrt;
using sym::square;
using sym::step;
using sym::less;
using sym::tanh;
using sym::to_latex;
using sym::to_string;
using sym::value_and_grad;
using sym::var;
namespace constants = sym::constants;
using namespace sym::literals;

// the thread pool every kernel runs on
using kernels::max_threads;
using kernels::num_threads;
using kernels::parallel_for;
using kernels::set_num_threads;

using simd::map;
using simd::map_value_and_grad;

// tensor expressions (the argument types pick between these and the sym / simd functions above)
/// The I-th argument of a tensor program (an array of any rank, an integer array or a number).
template <int I>
inline constexpr tensors::Input<I> tensor{};
using check::gradcheck;
using simd::map_into;
using simd::map_value_and_grad_into;
using tensors::abs;
using tensors::all_axes;
using tensors::compile;
using tensors::concat;
using tensors::cos;
using tensors::cross_entropy;
using tensors::embedding;
using tensors::equal;
using tensors::erf;
using tensors::evaluate;  // beside sym::evaluate: a tensor expression picks this one
using tensors::evaluator;
using tensors::unlowered;  // compile a program as written, without the lowering pass (tensors/lowering.hpp)
using tensors::exp;
using tensors::expm1;
using tensors::greater;
using tensors::greater_equal;
using tensors::hvp;  // exact H·v (reverse over forward); check::hvp is the finite-difference checker
using tensors::iota;
using tensors::jvp;
using tensors::layer_norm;
using tensors::less;
using tensors::less_equal;
using tensors::log;
using tensors::log1p;
using tensors::log_softmax;
using tensors::logsumexp;
using tensors::map;
using tensors::matmul;
using tensors::max;
using tensors::mean;
using tensors::not_equal;
using tensors::one_hot;
using tensors::permute;
using tensors::prod;
using tensors::relu;
using tensors::reshape;
using tensors::rms_norm;
using tensors::sigmoid;
using tensors::sin;
using tensors::slice;
using tensors::softmax;
using tensors::softplus;
using tensors::sqrt;
using tensors::square;
using tensors::stop_gradient;
using tensors::sum;
using tensors::take_along_axis;
using tensors::tanh;
using tensors::transpose;
using tensors::value_and_grad;
using tensors::where;
using tensors::wrt;

// The structured ops (attention, EMO, scans, DEER and their tensor nodes), all public names of exprgrad::ops:
// exprgrad::attention_forward, exprgrad::emo_loss, exprgrad::scale::gradient_max(), ... The op table of sym is
// sym::op, a different namespace.
using namespace ops;

/// Version and build configuration of the compiled library, e.g. "exprgrad 0.1.0 (x86-64-v3, xsimd)".
const char* build_info() noexcept;

}  // namespace exprgrad
