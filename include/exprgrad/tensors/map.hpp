// Building elementwise nodes: map(f, tensors...), the arithmetic operators and elementwise
// functions on tensor expressions. Chains of maps fuse as they are built: map(f, map(g, x)) is
// map(f∘g, x), one SIMD pass forward and one backward, whose VJP is the symbolic derivative of
// the composed scalar expression. Repeated arguments are merged, so map(x*y, a, a) reads a once.
#pragma once

#include <type_traits>

#include "exprgrad/sym/build.hpp"
#include "exprgrad/sym/expr.hpp"
#include "exprgrad/tensors/elementwise.hpp"
#include "exprgrad/tensors/graph.hpp"

namespace exprgrad::tensors {

namespace detail {

template <std::size_t I, class L>
struct nth_type;
template <std::size_t I, class H, class... Ts>
struct nth_type<I, meta::type_list<H, Ts...>> : nth_type<I - 1, meta::type_list<Ts...>> {};
template <class H, class... Ts>
struct nth_type<0, meta::type_list<H, Ts...>> {
    using type = H;
};

// Replaces var<i> in a sym expression by the i-th expression of R (no re-simplification needed:
// the pieces are already simplified).
template <class E, class R>
struct subst {
    using type = E;
};
template <int I, class R>
struct subst<sym::Var<I>, R> {
    using type = typename nth_type<static_cast<std::size_t>(I), R>::type;
};
template <class Op, class... Cs, class R>
struct subst<sym::Node<Op, Cs...>, R> {
    using type = sym::Node<Op, typename subst<Cs, R>::type...>;
};

template <class T>
struct is_map : std::false_type {};
template <class F, class... As>
struct is_map<Map<F, As...>> : std::true_type {
    using fn = F;
    using args = meta::type_list<As...>;
};

// Appends A to the argument list unless present; gives the var that stands for it.
template <class Args, class A, bool Present = meta::contains_v<A, Args>>
struct add_arg {
    using args = typename meta::push_back<Args, A>::type;
    using var = sym::Var<static_cast<int>(Args::size)>;
};
template <class Args, class A>
struct add_arg<Args, A, true> {
    using args = Args;
    using var = sym::Var<static_cast<int>(meta::index_of_v<A, Args>)>;
};

// fuse<Args, Repl, Operands...>: the merged argument list and the replacement of each operand's
// var (a plain operand becomes a var; a map operand becomes its function over its own arguments).
template <class Args, class Repl, class... Operands>
struct fuse;
template <class Args, class Repl>
struct fuse<Args, Repl> {
    using args = Args;
    using repl = Repl;
};
template <class Args, class Repl, class Inner>
struct fuse_inner;
template <class Args, class Repl>
struct fuse_inner<Args, Repl, meta::type_list<>> {
    using args = Args;
    using repl = Repl;
};
template <class Args, class Repl, class B, class... Bs>
struct fuse_inner<Args, Repl, meta::type_list<B, Bs...>> {
    using step = add_arg<Args, B>;
    using next = fuse_inner<typename step::args, typename meta::push_back<Repl, typename step::var>::type,
                            meta::type_list<Bs...>>;
    using args = typename next::args;
    using repl = typename next::repl;
};
template <class Args, class Repl, class O, class... Os>
struct fuse<Args, Repl, O, Os...> {
    template <class X, bool IsMap = is_map<X>::value>
    struct one {
        using step = add_arg<Args, X>;
        using args = typename step::args;
        using expr = typename step::var;
    };
    template <class X>
    struct one<X, true> {
        using inner = fuse_inner<Args, meta::type_list<>, typename is_map<X>::args>;
        using args = typename inner::args;
        using expr = typename subst<typename is_map<X>::fn, typename inner::repl>::type;
    };
    using here = one<O>;
    using rest = fuse<typename here::args, typename meta::push_back<Repl, typename here::expr>::type, Os...>;
    using args = typename rest::args;
    using repl = typename rest::repl;
};

template <class F, class Args>
struct make_map;
template <class F, class... As>
struct make_map<F, meta::type_list<As...>> {
    using type = Map<F, As...>;
};

}  // namespace detail

/// An elementwise node: f evaluated over the tensors (NumPy broadcasting), argument k binding
/// var<k>. Its VJP is d(f, var<k>) times the adjoint, in one fused pass. Maps among the arguments
/// are fused into it. Example: `map(log(1_c + exp(x)), X)` (x = var<0>).
template <sym::Expression F, TensorExpr... As>
constexpr auto map(F, As...) {
    static_assert(sizeof...(As) >= static_cast<std::size_t>(sym::arity_v<F>),
                  "exprgrad: map(f, tensors...) needs one tensor per variable of f");
    using fused = detail::fuse<meta::type_list<>, meta::type_list<>, std::remove_cvref_t<As>...>;
    using body = typename detail::subst<std::remove_cvref_t<F>, typename fused::repl>::type;
    return typename detail::make_map<body, typename fused::args>::type{};
}

/// Rejected: a raw number among the tensors of map; pass it as an argument (tensor<I>) or write
/// it into f as a constant.
template <sym::Expression F, class... As>
requires detail::raw_among_tensors<As...>
constexpr auto map(F, As...) {
    static_assert(detail::reject_raw<As...>, EXPRGRAD_TENSOR_RAW_NUMBER_MESSAGE);
    return Input<0>{};
}

namespace detail {
template <class T>
concept SymConstant = sym::Constant<T>;
}

#define EXPRGRAD_TENSOR_BINARY(op)                                                    \
    template <TensorExpr A, TensorExpr B>                                             \
    constexpr auto operator op(A a, B b) {                                            \
        return map(sym::var<0> op sym::var<1>, a, b);                                 \
    }                                                                                 \
    template <TensorExpr A, detail::SymConstant K>                                    \
    constexpr auto operator op(A a, K) {                                              \
        return map(sym::var<0> op K{}, a);                                            \
    }                                                                                 \
    template <detail::SymConstant K, TensorExpr A>                                    \
    constexpr auto operator op(K, A a) {                                              \
        return map(                                                                   \
            K {} op sym::var<0>, a);                                                  \
    }                                                                                 \
    /** Rejected: a raw number as an operand; write 2_c or pass it as an argument. */ \
    template <TensorExpr A, sym::RawNumber N>                                         \
    constexpr auto operator op(A a, N) {                                              \
        static_assert(detail::reject_raw<N>, EXPRGRAD_TENSOR_RAW_NUMBER_MESSAGE);     \
        return a;                                                                     \
    }                                                                                 \
    /** Rejected: a raw number as an operand; write 2_c or pass it as an argument. */ \
    template <sym::RawNumber N, TensorExpr A>                                         \
    constexpr auto operator op(N, A a) {                                              \
        static_assert(detail::reject_raw<N>, EXPRGRAD_TENSOR_RAW_NUMBER_MESSAGE);     \
        return a;                                                                     \
    }
EXPRGRAD_TENSOR_BINARY(+)
EXPRGRAD_TENSOR_BINARY(-)
EXPRGRAD_TENSOR_BINARY(*)
EXPRGRAD_TENSOR_BINARY(/)
#undef EXPRGRAD_TENSOR_BINARY

/// Elementwise negation.
template <TensorExpr A>
constexpr auto operator-(A a) {
    return map(-sym::var<0>, a);
}

#define EXPRGRAD_TENSOR_UNARY(fn, body) \
    template <TensorExpr A>             \
    constexpr auto fn(A a) {            \
        return map(body, a);            \
    }
/// Elementwise functions of a tensor, as maps: exp, log, log1p, expm1, sqrt, tanh, sigmoid,
/// softplus, sin, cos, abs, erf, square, relu (max(x, 0); relu'(0) = 1/2 by the tie convention).
EXPRGRAD_TENSOR_UNARY(exp, sym::exp(sym::var<0>))
EXPRGRAD_TENSOR_UNARY(log, sym::log(sym::var<0>))
EXPRGRAD_TENSOR_UNARY(log1p, sym::log1p(sym::var<0>))
EXPRGRAD_TENSOR_UNARY(expm1, sym::expm1(sym::var<0>))
EXPRGRAD_TENSOR_UNARY(sqrt, sym::sqrt(sym::var<0>))
EXPRGRAD_TENSOR_UNARY(tanh, sym::tanh(sym::var<0>))
EXPRGRAD_TENSOR_UNARY(sigmoid, sym::sigmoid(sym::var<0>))
EXPRGRAD_TENSOR_UNARY(softplus, sym::softplus(sym::var<0>))
EXPRGRAD_TENSOR_UNARY(sin, sym::sin(sym::var<0>))
EXPRGRAD_TENSOR_UNARY(cos, sym::cos(sym::var<0>))
EXPRGRAD_TENSOR_UNARY(abs, sym::abs(sym::var<0>))
EXPRGRAD_TENSOR_UNARY(erf, sym::erf(sym::var<0>))
EXPRGRAD_TENSOR_UNARY(square, sym::square(sym::var<0>))
EXPRGRAD_TENSOR_UNARY(relu, sym::max(sym::var<0>, sym::c<0>))
#undef EXPRGRAD_TENSOR_UNARY

}  // namespace exprgrad::tensors
