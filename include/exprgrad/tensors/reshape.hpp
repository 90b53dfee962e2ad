// reshape: the same elements (row-major order) under another shape. The sizes are in the type,
// reshape<-1, 64>(X), or known only at run time, reshape(X, B, T, H, D) with number arguments or
// sym constants; in both, -1 infers one size and 0 keeps the input's size at that position. The
// VJP reshapes the adjoint back. Inside a program it is a view of its operand (no copy) and its VJP hands
// the adjoint on without a copy when it is the operand's only one; as a program's output it takes over its
// operand's buffer (an argument is copied).
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "exprgrad/tensors/count_operand.hpp"
#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/shape.hpp"
#include "exprgrad/tensors/strided_walk.hpp"

namespace exprgrad::tensors {

namespace detail {
/// The shape that `want` (n sizes: positive, -1 inferred at most once, 0 = in's size there) gives
/// to a tensor of shape in; throws naming reshape and the shapes when the sizes do not fit.
inline dims reshape_target(const dims& in, const std::int64_t* want, std::size_t n) {
    constexpr const char* name = "reshape";
    if (n > static_cast<std::size_t>(dims::max_rank)) throw shape_error(name, "tensors have at most 6 dimensions");
    dims out;
    long infer = -1;
    std::size_t known = 1;
    for (std::size_t i = 0; i < n; ++i) {
        std::size_t v = 0;
        if (want[i] < -1) {
            throw shape_error(name,
                              "sizes must be positive, -1 (inferred) or 0 (kept), got " + std::to_string(want[i]));
        } else if (want[i] == -1) {
            if (infer >= 0) throw shape_error(name, "at most one dimension may be -1");
            infer = static_cast<long>(i);
            v = 1;
        } else if (want[i] == 0) {
            if (static_cast<int>(i) >= in.rank)
                throw shape_error(name, "0 copies an input axis, but " + in.str() + " has too few");
            v = in[static_cast<int>(i)];
        } else {
            v = static_cast<std::size_t>(want[i]);
        }
        out.push(v);
        if (want[i] != -1) known *= v;
    }
    if (infer >= 0) {
        if (known == 0 || in.size() % known != 0) throw shape_error(name, "cannot infer -1 reshaping " + in.str());
        out[static_cast<int>(infer)] = in.size() / known;
    }
    if (out.size() != in.size()) throw shape_error(name, "cannot reshape " + in.str() + " into " + out.str());
    return out;
}

/// What both reshape nodes run forward (Self's value: a view of A's; as the program's output, which is a buffer
/// of the program's own, A's buffer taken over, or a copy of an argument) and backward (A's adjoint: Self's
/// moved to A when it is A's only contribution, else copied or added).
template <class Self, class A, class Ctx>
void reshape_forward(Ctx& ctx, const dims& out) {
    using T = typename Ctx::value_type;
    const cview<T>& a = ctx.template in<A>();
    require_values("reshape", "reshaped", a.data, a.shape);
    if constexpr (Ctx::template pos<Self> == Ctx::template pos<typename Ctx::expr>) {
        if (!ctx.template take_buffer<Self, A>(out)) std::copy(a.data, a.data + a.size(), ctx.template out<Self>(out));
    } else {
        ctx.template alias<Self>(a.data, out);
    }
}
template <class Self, class A, class Ctx>
void reshape_backward(Ctx& ctx) {
    using T = typename Ctx::value_type;
    const std::size_t n = ctx.template in<A>().size();
    if (ctx.template move_adjoint<Self, A>()) return;
    const adjoint_view<T> g = ctx.template adj<Self>();
    bool add = false;
    T* da = ctx.template grad<A>(add);
    if (!add && !g.uniform) {  // the common case: the adjoint as it is
        std::copy(g.data, g.data + n, da);
        return;
    }
    for (std::size_t i = 0; i < n; ++i) {
        const T v = g.uniform ? g.value : g.data[i];
        da[i] = add ? da[i] + v : v;
    }
}
}  // namespace detail

/// reshape with the sizes D in the type.
template <class A, long... D>
struct Reshape {
    using children = meta::type_list<A>;
    static constexpr const char* name = "reshape";

    static dims target(const dims& in) {
        constexpr std::array<std::int64_t, sizeof...(D)> want{D...};
        return detail::reshape_target(in, want.data(), want.size());
    }
    template <class Ctx>
    static void forward(Ctx& ctx) {
        detail::reshape_forward<Reshape, A>(ctx, target(ctx.template in<A>().shape));
    }
    template <class Ctx>
    static void backward(Ctx& ctx) {
        detail::reshape_backward<Reshape, A>(ctx);
    }
};

/// reshape with the sizes read at run time from the one-element operands Ds.
template <class A, class... Ds>
struct ReshapeTo {
    static_assert(sizeof...(Ds) <= dims::max_rank, "exprgrad: reshape: tensors have at most 6 dimensions");
    using children = meta::type_list<A, Ds...>;
    static constexpr const char* name = "reshape";

    template <class Ctx>
    static dims target(const Ctx& ctx) {
        const std::array<std::int64_t, sizeof...(Ds)> want{detail::count_operand<Ds>(ctx, name, "a size")...};
        return detail::reshape_target(ctx.template in<A>().shape, want.data(), want.size());
    }
    template <class Ctx>
    static void forward(Ctx& ctx) {
        detail::reshape_forward<ReshapeTo, A>(ctx, target(ctx));
    }
    template <class Ctx>
    static void backward(Ctx& ctx) {
        if constexpr (Ctx::template needs<A>) detail::reshape_backward<ReshapeTo, A>(ctx);
    }
};

/// reshape<D...>(x): x's elements in row-major order under the shape D (each size positive, -1 for
/// the one inferred from x's size, 0 for x's size at that position); out.size() must equal
/// x.size(), otherwise std::invalid_argument "exprgrad::reshape: cannot reshape (..) into (..)".
/// Values are viewed, not copied (a program's output reshaping an argument copies it; NaN included). VJP: the
/// adjoint reshaped back to x's shape.
/// Example: `reshape<-1, 64>(X)` turns [B, T, 64] into [B·T, 64].
template <long... D, TensorExpr A>
constexpr Reshape<A, D...> reshape(A) {
    return {};
}
/// reshape(x, d_0, ..., d_{r-1}): the same with the sizes known at run time, each a number argument
/// (tensor<I>, passed as 4 or 4.0) or a sym constant (64_c; -1 inferred: -1_c, or an argument
/// holding -1), at most 6. A size that is not an integer, is below -1, or is a second -1 throws
/// std::invalid_argument naming reshape. Example: heads split off the model axis,
/// `reshape(X, 0_c, 0_c, tensor<1>, -1_c)` turns [B, T, H·D] into [B, T, H, D] for H passed at run time.
template <TensorExpr A, detail::tensor_or_constant... Ds>
requires(sizeof...(Ds) >= 1) constexpr ReshapeTo<A, detail::as_operand_t<Ds>...> reshape(A, Ds...) { return {}; }
/// Rejected: a raw number as a size; write it as a constant (4_c, -1_c) or pass it as an argument.
template <class A, class... Ds>
requires(sizeof...(Ds) >= 1 && detail::raw_among_tensors<A, Ds...>) constexpr auto reshape(A, Ds...) {
    static_assert(detail::reject_raw<A, Ds...>, EXPRGRAD_TENSOR_RAW_NUMBER_MESSAGE);
    return Input<0>{};
}

}  // namespace exprgrad::tensors
