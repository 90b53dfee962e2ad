// Integer operands of the layout primitives (slice bounds, one_hot's depth, reshape's sizes): a
// number passed as an argument (tensor<I> bound to 3, or to a one-element integer array), any
// one-element tensor expression, or a sym constant written in place (2_c), which becomes a
// ConstantNode. The value is read at run time and must be an integer. where's operands use
// ConstantNode too (a constant fill value).
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>

#include "exprgrad/sym/expr.hpp"
#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/shape.hpp"

namespace exprgrad::tensors {

/// A sym constant K as a rank-0 tensor node (no children, no gradient): the form 2_c takes among
/// the integer operands of slice, one_hot and reshape, and fc<-1e9> as where's fill value.
template <class K>
struct ConstantNode {
    using children = meta::type_list<>;
    static constexpr const char* name = "constant";
    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        ctx.template out<ConstantNode>(dims{})[0] = static_cast<T>(K::value);
    }
    template <class Ctx>
    static void backward(Ctx&) {}
};

namespace detail {

template <class X>
concept tensor_or_constant = TensorExpr<X> || sym::Constant<X>;

template <class X, bool = TensorExpr<X>>
struct as_operand {
    using type = X;
};
template <class X>
struct as_operand<X, false> {
    using type = ConstantNode<X>;
};
/// X itself for a tensor expression, ConstantNode<X> for a sym constant.
template <class X>
using as_operand_t = typename as_operand<std::remove_cvref_t<X>>::type;

/// The integer held by the one-element operand N; throws std::invalid_argument "exprgrad::<op>:
/// <what> must be ..." naming the shape or the value when it has several elements, is not an
/// integer, or is NaN.
template <class N, class Ctx>
std::int64_t count_operand(const Ctx& ctx, const char* op, const char* what) {
    using T = typename Ctx::value_type;
    const cview<T>& v = ctx.template in<N>();
    if (v.shape.size() != 1) {
        throw shape_error(op, std::string(what) + " must be a single number, got shape " + v.shape.str());
    }
    if (v.data == nullptr) {
        if constexpr (is_input<N>::value) return ctx.template ints<N>()[0];
        throw shape_error(op, std::string(what) + " has no value");
    }
    const T x = v.data[0];
    if (!(std::abs(x) <= T(1) / T(2) * T(1ull << 53)) || x != std::floor(x)) {
        throw shape_error(op, std::string(what) + " must be an integer, got " + std::to_string(x));
    }
    return static_cast<std::int64_t>(x);
}

}  // namespace detail
}  // namespace exprgrad::tensors
