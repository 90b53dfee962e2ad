// Elementwise comparisons of two tensors with NumPy broadcasting: less, less_equal, greater,
// greater_equal, equal, not_equal. The result is 1 where the relation holds and 0 elsewhere, in the
// program's number type; the VJP is zero (a step function has derivative 0 almost everywhere), so a
// comparison never carries a gradient to its operands.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <array>
#include <type_traits>

#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/shape.hpp"
#include "exprgrad/tensors/strided_walk.hpp"

namespace exprgrad::tensors {

namespace cmp {
// The relations, as IEEE comparisons: false with a NaN operand, except not_equal (true).
struct less {
    static constexpr const char* name = "less";
    template <class T>
    static bool test(T a, T b) {
        return a < b;
    }
};
struct less_equal {
    static constexpr const char* name = "less_equal";
    template <class T>
    static bool test(T a, T b) {
        return a <= b;
    }
};
struct greater {
    static constexpr const char* name = "greater";
    template <class T>
    static bool test(T a, T b) {
        return a > b;
    }
};
struct greater_equal {
    static constexpr const char* name = "greater_equal";
    template <class T>
    static bool test(T a, T b) {
        return a >= b;
    }
};
struct equal {
    static constexpr const char* name = "equal";
    template <class T>
    static bool test(T a, T b) {
        return a == b;
    }
};
struct not_equal {
    static constexpr const char* name = "not_equal";
    template <class T>
    static bool test(T a, T b) {
        return a != b;
    }
};
}  // namespace cmp

/// The node of a comparison Rel (one of the cmp:: relations) of A and B.
template <class Rel, class A, class B>
struct Compare {
    using children = meta::type_list<A, B>;
    static constexpr const char* name = Rel::name;

    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const cview<T>& a = ctx.template in<A>();
        const cview<T>& b = ctx.template in<B>();
        detail::require_values(name, "first", a.data, a.shape);
        detail::require_values(name, "second", b.data, b.shape);
        const dims out = broadcast(name, a.shape, b.shape);
        T* y = ctx.template out<Compare>(out);
        const std::array<detail::strides, 2> st{detail::broadcast_strides(a.shape, out),
                                                detail::broadcast_strides(b.shape, out)};
        detail::strided_walk(out, st, [&](std::size_t i, const std::array<std::size_t, 2>& o) {
            y[i] = Rel::test(a.data[o[0]], b.data[o[1]]) ? T(1) : T(0);
        });
    }
    // never called: the node needs no gradient
    template <class Ctx>
    static void backward(Ctx&) {}
};

namespace detail {
template <class Rel, class A, class B, class Wrt>
struct needs_grad<Compare<Rel, A, B>, Wrt> : std::false_type {};
}  // namespace detail

// One function per relation. Each: shape = broadcast(shape(a), shape(b)) (std::invalid_argument
// "exprgrad::<name>: shapes (..) and (..) do not broadcast" otherwise); value 1 or 0; NaN compares
// false (so every relation gives 0 at a NaN) except not_equal, which gives 1; VJP zero. Unlike the
// scalar sym::less, a tie gives exactly 0 or 1 (never 1/2).
#define EXPRGRAD_TENSOR_COMPARE(fn)                                                  \
    template <TensorExpr A, TensorExpr B>                                            \
    constexpr Compare<cmp::fn, A, B> fn(A, B) {                                      \
        return {};                                                                   \
    }                                                                                \
    /** Rejected: a raw number as an operand; pass it as an argument (tensor<I>). */ \
    template <class A, class B>                                                      \
    requires detail::raw_among_tensors<A, B>                                         \
    constexpr auto fn(A, B) {                                                        \
        static_assert(detail::reject_raw<A, B>, EXPRGRAD_TENSOR_RAW_NUMBER_MESSAGE); \
        return Input<0>{};                                                           \
    }
/// less(a, b) = [a < b]. Example: with a = [1, 2, 3], b = 2 (a number argument): [1, 0, 0].
EXPRGRAD_TENSOR_COMPARE(less)
/// less_equal(a, b) = [a <= b].
EXPRGRAD_TENSOR_COMPARE(less_equal)
/// greater(a, b) = [a > b].
EXPRGRAD_TENSOR_COMPARE(greater)
/// greater_equal(a, b) = [a >= b].
EXPRGRAD_TENSOR_COMPARE(greater_equal)
/// equal(a, b) = [a == b] (so 0 where either is NaN).
EXPRGRAD_TENSOR_COMPARE(equal)
/// not_equal(a, b) = [a != b] (so 1 where either is NaN).
EXPRGRAD_TENSOR_COMPARE(not_equal)
#undef EXPRGRAD_TENSOR_COMPARE

}  // namespace exprgrad::tensors
