// Forward mode as a rewrite of types: tangent_t<E, Base, W...> is the tensor expression of the directional
// derivative of E, dE = Σ_k ∂E/∂x_{W_k} · v_k, where the tangent v_k of argument W_k is the placeholder
// tensor<Base + k>. Each node has its rule below, derived at compile time from the node's type:
//   input          tensor<W_k> → tensor<Base + k>; any other argument → zero
//   map(f, a...)   Σ_i map(∂f/∂var<i>, a...) · da_i, the partials from the scalar layer (d), one fused map
//   matmul(a, b)   matmul(da, b) + matmul(a, db)
//   sum, mean      the same reduction of da
//   max            the mean of da over the maximal elements (ties split evenly, as the VJP splits them)
//   logsumexp      Σ softmax(a) · da along the axis
//   softmax        y · (da − Σ y · da), log_softmax da − Σ softmax(a) · da (sums along the axis, spread back)
//   rms_norm, layer_norm   the tangent of their definition in primitives (sum, map, spread)
//   cross_entropy  Σ (softmax(L) · w − q) · dL, q the target distribution of the counted rows / their count
//   permute, transpose, reshape, slice, take_along_axis, embedding   the same op on the tangent
//   concat, where  the same op on the tangents, zeros for an operand without one
//   comparisons, one_hot, iota, constants, stop_gradient   zero
// A zero tangent is the type zero_tangent and never becomes a node, so the rewrite only keeps what depends
// on the differentiated arguments. The result reads the primal nodes by type, so a program computing it
// computes each primal node once (the same common-subexpression rule as reverse mode), and it is an ordinary
// tensor expression: reverse mode over it gives Hessian-vector products (tensors/hvp.hpp).
// A node without a rule (prod, the structured ops of ops/) stops compilation with one sentence.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <cstddef>
#include <type_traits>
#include <utility>

#include "exprgrad/sym/derivative.hpp"
#include "exprgrad/tensors/compare.hpp"
#include "exprgrad/tensors/count_operand.hpp"
#include "exprgrad/tensors/cross_entropy.hpp"
#include "exprgrad/tensors/embedding.hpp"
#include "exprgrad/tensors/iota.hpp"
#include "exprgrad/tensors/layout.hpp"
#include "exprgrad/tensors/map.hpp"
#include "exprgrad/tensors/matmul.hpp"
#include "exprgrad/tensors/norm.hpp"
#include "exprgrad/tensors/one_hot.hpp"
#include "exprgrad/tensors/permute.hpp"
#include "exprgrad/tensors/reduce.hpp"
#include "exprgrad/tensors/reshape.hpp"
#include "exprgrad/tensors/slice.hpp"
#include "exprgrad/tensors/softmax.hpp"
#include "exprgrad/tensors/stop_gradient.hpp"
#include "exprgrad/tensors/take_along_axis.hpp"
#include "exprgrad/tensors/tangent_nodes.hpp"
#include "exprgrad/tensors/where.hpp"

namespace exprgrad::tensors {

/// The tangent of an expression that does not depend on the differentiated arguments.
struct zero_tangent {};

namespace detail {

/// Where the tangents of wrt<W...> live: tensor<Base + k> for W_k.
template <int Base, int... W>
struct tangent_ctx {
    template <int I>
    static constexpr int slot() {
        int k = 0, found = -1;
        ((found = (found < 0 && W == I) ? k : found, ++k), ...);
        return found;
    }
};

template <class T>
inline constexpr bool is_zero_v = std::is_same_v<T, zero_tangent>;

template <class...>
inline constexpr bool no_tangent_rule = false;

// Sums of tangents, dropping zeros.
constexpr zero_tangent tadd() { return {}; }
template <class A>
constexpr A tadd(A a) {
    return a;
}
template <class A, class B, class... Rest>
constexpr auto tadd(A a, B b, Rest... rest) {
    if constexpr (is_zero_v<A>) {
        return tadd(b, rest...);
    } else if constexpr (is_zero_v<B>) {
        return tadd(a, rest...);
    } else {
        return tadd(a + b, rest...);
    }
}

// ---- the rules: tangent_of(ctx, node) returns the tangent expression (or zero_tangent)

/// No rule: refused with one sentence.
template <class C, class N>
constexpr auto tangent_of(C, N) {
    static_assert(no_tangent_rule<N>,
                  "exprgrad: jvp/hvp: this node has no forward-mode rule (supported: maps, matmul, sum, mean, max, "
                  "logsumexp, softmax, log_softmax, rms_norm, layer_norm, cross_entropy and the layout primitives)");
    return zero_tangent{};
}

template <int Base, int... W, int I>
constexpr auto tangent_of(tangent_ctx<Base, W...> c, Input<I>) {
    (void)c;
    constexpr int k = tangent_ctx<Base, W...>::template slot<I>();
    if constexpr (k < 0) {
        return zero_tangent{};
    } else {
        return Input<Base + k>{};
    }
}

template <class C, class K>
constexpr zero_tangent tangent_of(C, ConstantNode<K>) {
    return {};
}
template <class C, class A>
constexpr zero_tangent tangent_of(C, StopGradient<A>) {
    return {};
}
template <class C, class Rel, class A, class B>
constexpr zero_tangent tangent_of(C, Compare<Rel, A, B>) {
    return {};
}
template <class C, class Idx, class N>
constexpr zero_tangent tangent_of(C, OneHot<Idx, N>) {
    return {};
}
template <class C, int Axis, class Like>
constexpr zero_tangent tangent_of(C, Iota<Axis, Like>) {
    return {};
}

// map: one term per argument with a tangent; the terms fuse into one map as they are added.
template <std::size_t K, class C, class F, class... As>
constexpr auto map_term(C c, F, As... as) {
    using A = typename nth_type<K, meta::type_list<As...>>::type;
    using dA = decltype(tangent_of(c, A{}));
    if constexpr (is_zero_v<dA>) {
        return zero_tangent{};
    } else {
        return map(sym::d(F{}, sym::var<static_cast<int>(K)>) * sym::var<static_cast<int>(sizeof...(As))>, as...,
                   dA{});
    }
}
template <class C, class F, class... As, std::size_t... K>
constexpr auto map_tangent(C c, std::index_sequence<K...>) {
    return tadd(map_term<K>(c, F{}, As{}...)...);
}
template <class C, class F, class... As>
constexpr auto tangent_of(C c, Map<F, As...>) {
    return map_tangent<C, F, As...>(c, std::index_sequence_for<As...>{});
}

template <class C, class A, class B>
constexpr auto tangent_of(C c, Matmul<A, B>) {
    using dA = decltype(tangent_of(c, A{}));
    using dB = decltype(tangent_of(c, B{}));
    auto left = [] {
        if constexpr (is_zero_v<dA>) return zero_tangent{};
        else return matmul(dA{}, B{});
    }();
    auto right = [] {
        if constexpr (is_zero_v<dB>) return zero_tangent{};
        else return matmul(A{}, dB{});
    }();
    return tadd(left, right);
}

template <class C, reduction R, int Axis, class A>
constexpr auto tangent_of(C c, Reduce<R, Axis, A>) {
    using dA = decltype(tangent_of(c, A{}));
    using self = Reduce<R, Axis, A>;
    if constexpr (is_zero_v<dA>) {
        return zero_tangent{};
    } else if constexpr (R == reduction::sum || R == reduction::mean) {
        return Reduce<R, Axis, dA>{};
    } else if constexpr (R == reduction::max) {
        using hit = Compare<cmp::equal, A, Spread<Axis, self, A>>;
        return Reduce<reduction::sum, Axis, Where<hit, dA, ConstantNode<sym::Const<0>>>>{} /
               Reduce<reduction::sum, Axis, hit>{};
    } else if constexpr (R == reduction::logsumexp) {
        return Reduce<reduction::sum, Axis, decltype(map(sym::exp(sym::var<0> - sym::var<1>) * sym::var<2>, A{},
                                                         Spread<Axis, self, A>{}, dA{}))>{};
    } else {
        static_assert(no_tangent_rule<dA>, "exprgrad: jvp/hvp: prod has no forward-mode rule yet");
        return zero_tangent{};
    }
}

template <class C, bool Log, int Axis, class A>
constexpr auto tangent_of(C c, Softmax<Log, Axis, A>) {
    using dA = decltype(tangent_of(c, A{}));
    if constexpr (is_zero_v<dA>) {
        return zero_tangent{};
    } else {
        using y = Softmax<false, Axis, A>;
        using mean_da = Spread<Axis, Reduce<reduction::sum, Axis, decltype(y{} * dA{})>, A>;
        if constexpr (Log) {
            return dA{} - mean_da{};
        } else {
            return y{} * (dA{} - mean_da{});
        }
    }
}

// The norms' definitions in primitives (over the last axis; the rsqrt as one map).
template <class Eps, class X, class W>
constexpr auto rms_norm_definition() {
    using ms = Reduce<reduction::mean, -1, decltype(square(X{}))>;
    using inv = decltype(map(sym::c<1> / sym::sqrt(sym::var<0> + Eps{}), ms{}));
    return X{} * Spread<-1, inv, X>{} * W{};
}
template <class Eps, class X, class W, class B>
constexpr auto layer_norm_definition() {
    using centred = decltype(X{} - Spread<-1, Reduce<reduction::mean, -1, X>, X>{});
    using var = Reduce<reduction::mean, -1, decltype(square(centred{}))>;
    using inv = decltype(map(sym::c<1> / sym::sqrt(sym::var<0> + Eps{}), var{}));
    return centred{} * Spread<-1, inv, X>{} * W{} + B{};
}
template <class C, class Eps, class X, class W>
constexpr auto tangent_of(C c, RmsNorm<Eps, X, W>) {
    return tangent_of(c, rms_norm_definition<Eps, X, W>());
}
template <class C, class Eps, class X, class W, class B>
constexpr auto tangent_of(C c, LayerNorm<Eps, X, W, B>) {
    return tangent_of(c, layer_norm_definition<Eps, X, W, B>());
}

template <class C, long Ignore, class L, class Tg>
constexpr auto tangent_of(C c, CrossEntropy<Ignore, L, Tg>) {
    using dL = decltype(tangent_of(c, L{}));
    if constexpr (is_zero_v<dL>) {
        return zero_tangent{};
    } else {
        using q = CrossEntropyTargets<Ignore, L, Tg>;
        using w = Spread<-1, Reduce<reduction::sum, -1, q>, L>;
        return tensors::sum((Softmax<false, -1, L>{} * w{} - q{}) * dL{});
    }
}

// Linear layout ops: the same op on the tangent.
template <class C, class A, int... Axes>
constexpr auto tangent_of(C c, Permute<A, Axes...>) {
    using dA = decltype(tangent_of(c, A{}));
    if constexpr (is_zero_v<dA>) return zero_tangent{};
    else return Permute<dA, Axes...>{};
}
template <class C, class A>
constexpr auto tangent_of(C c, Transpose<A>) {
    using dA = decltype(tangent_of(c, A{}));
    if constexpr (is_zero_v<dA>) return zero_tangent{};
    else return Transpose<dA>{};
}
template <class C, class A, long... D>
constexpr auto tangent_of(C c, Reshape<A, D...>) {
    using dA = decltype(tangent_of(c, A{}));
    if constexpr (is_zero_v<dA>) return zero_tangent{};
    else return Reshape<dA, D...>{};
}
template <class C, class A, class... Ds>
constexpr auto tangent_of(C c, ReshapeTo<A, Ds...>) {
    using dA = decltype(tangent_of(c, A{}));
    if constexpr (is_zero_v<dA>) return zero_tangent{};
    else return ReshapeTo<dA, Ds...>{};
}
template <class C, int Axis, class A, class Begin, class End>
constexpr auto tangent_of(C c, Slice<Axis, A, Begin, End>) {
    using dA = decltype(tangent_of(c, A{}));
    if constexpr (is_zero_v<dA>) return zero_tangent{};
    else return Slice<Axis, dA, Begin, End>{};
}
template <class C, int Axis, class X, class Idx>
constexpr auto tangent_of(C c, TakeAlongAxis<Axis, X, Idx>) {
    using dX = decltype(tangent_of(c, X{}));
    if constexpr (is_zero_v<dX>) return zero_tangent{};
    else return TakeAlongAxis<Axis, dX, Idx>{};
}
template <class C, class Table, class Idx>
constexpr auto tangent_of(C c, Embedding<Table, Idx>) {
    using dT = decltype(tangent_of(c, Table{}));
    if constexpr (is_zero_v<dT>) return zero_tangent{};
    else return Embedding<dT, Idx>{};
}

template <class C, int Axis, class R, class Like>
constexpr auto tangent_of(C c, Spread<Axis, R, Like>) {
    using dR = decltype(tangent_of(c, R{}));
    if constexpr (is_zero_v<dR>) return zero_tangent{};
    else return Spread<Axis, dR, Like>{};
}
template <class C, class A>
constexpr zero_tangent tangent_of(C, ZerosLike<A>) {
    return {};
}
template <class C, long Ignore, class L, class Tg>
constexpr zero_tangent tangent_of(C, CrossEntropyTargets<Ignore, L, Tg>) {
    return {};
}

// Two-operand selections: an operand without a tangent contributes zeros of its shape.
template <class dA, class A>
using tangent_or_zeros = std::conditional_t<is_zero_v<dA>, ZerosLike<A>, dA>;
template <class C, int Axis, class A, class B>
constexpr auto tangent_of(C c, Concat<Axis, A, B>) {
    using dA = decltype(tangent_of(c, A{}));
    using dB = decltype(tangent_of(c, B{}));
    if constexpr (is_zero_v<dA> && is_zero_v<dB>) return zero_tangent{};
    else return Concat<Axis, tangent_or_zeros<dA, A>, tangent_or_zeros<dB, B>>{};
}
template <class C, class Cond, class A, class B>
constexpr auto tangent_of(C c, Where<Cond, A, B>) {
    using dA = decltype(tangent_of(c, A{}));
    using dB = decltype(tangent_of(c, B{}));
    if constexpr (is_zero_v<dA> && is_zero_v<dB>) return zero_tangent{};
    else return Where<Cond, tangent_or_zeros<dA, A>, tangent_or_zeros<dB, B>>{};
}

}  // namespace detail

/// The tangent expression of E for the differentiated arguments W... whose tangents are the placeholders
/// tensor<Base>, tensor<Base + 1>, ... (zero_tangent when E does not depend on them). See the top of this
/// header for the rules. Example: `tangent_t<decltype(sum(X * X)), 1, 0>` is `sum(2·X·tensor<1>)`.
template <class E, int Base, int... W>
using tangent_t = decltype(detail::tangent_of(detail::tangent_ctx<Base, W...>{}, std::remove_cvref_t<E>{}));

}  // namespace exprgrad::tensors
