// one_hot(idx, n): a 1 at each index, 0 elsewhere, along a new last axis of length n. It depends on
// the indices only, so its VJP is zero.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "exprgrad/tensors/count_operand.hpp"
#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/index_operand.hpp"
#include "exprgrad/tensors/shape.hpp"

namespace exprgrad::tensors {

template <class Idx, class N>
struct OneHot {
    using children = meta::type_list<Idx, N>;
    static constexpr const char* name = "one_hot";

    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const std::int64_t n = detail::count_operand<N>(ctx, name, "the depth n");
        if (n < 1) throw shape_error(name, "the depth n must be at least 1, got " + std::to_string(n));
        const std::size_t depth = static_cast<std::size_t>(n);
        const dims ishape = ctx.template in<Idx>().shape;
        if (ishape.rank >= dims::max_rank) {
            throw shape_error(name, "indices of shape " + ishape.str() + " leave no room for the new axis");
        }
        dims out = ishape;
        out.push(depth);
        T* y = ctx.template out<OneHot>(out);
        std::fill(y, y + out.size(), T(0));
        const auto index = detail::read_indices<Idx>(ctx, name, depth, -1, true);
        for (std::size_t i = 0; i < ishape.size(); ++i) y[i * depth + index(i)] = T(1);
    }
    // never called: the node needs no gradient
    template <class Ctx>
    static void backward(Ctx&) {}
};

namespace detail {
template <class Idx, class N, class Wrt>
struct needs_grad<OneHot<Idx, N>, Wrt> : std::false_type {};
}  // namespace detail

/// one_hot(idx, n)[..., c] = 1 if idx[...] == c else 0; shape(out) = shape(idx) + (n,). idx is an
/// integer array argument or integer-valued; n is a number argument or a sym constant (10_c), at
/// least 1. An index outside [0, n) throws std::invalid_argument "exprgrad::one_hot: index v at
/// position p is out of range [0, n) for depth n" (there is no silent all-zero row: mask padding
/// with where instead). VJP zero. Example: `sum(one_hot(T, 5_c) * log_softmax(Z))` with T [B] and
/// Z [B, 5] is minus the summed cross-entropy.
template <TensorExpr Idx, detail::tensor_or_constant N>
constexpr OneHot<Idx, detail::as_operand_t<N>> one_hot(Idx, N) {
    return {};
}
/// Rejected: a raw number as an operand; write n as a constant (10_c) or pass it as an argument.
template <class Idx, class N>
requires detail::raw_among_tensors<Idx, N>
constexpr auto one_hot(Idx, N) {
    static_assert(detail::reject_raw<Idx, N>, EXPRGRAD_TENSOR_RAW_NUMBER_MESSAGE);
    return Input<0>{};
}

}  // namespace exprgrad::tensors
