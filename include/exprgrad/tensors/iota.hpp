// iota<Axis>(like): the index along one axis at every position of like's shape, as the program's
// number type. Only like's shape is read (its values may even be integers), and the VJP is zero.
// Positions and masks are built from it: for scores S [T, T] (query i on axis 0, key j on axis 1),
// greater(iota<1>(S), iota<0>(S)) is 1 at the future keys j > i that a causal mask removes, and
// iota<1>(S) - iota<0>(S) is ALiBi's signed distance j - i.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <cstddef>
#include <type_traits>

#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/shape.hpp"

namespace exprgrad::tensors {

template <int Axis, class Like>
struct Iota {
    using children = meta::type_list<Like>;
    static constexpr const char* name = "iota";

    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const dims s = ctx.template in<Like>().shape;
        const int ax = normalize_axis(name, Axis, s.rank);
        std::size_t inner = 1;
        for (int i = ax + 1; i < s.rank; ++i) inner *= s[i];
        const std::size_t extent = s[ax], outer = extent * inner != 0 ? s.size() / (extent * inner) : 0;
        T* y = ctx.template out<Iota>(s);
        for (std::size_t o = 0; o < outer; ++o)
            for (std::size_t j = 0; j < extent; ++j)
                for (std::size_t i = 0; i < inner; ++i) y[(o * extent + j) * inner + i] = static_cast<T>(j);
    }
    // never called: the node needs no gradient
    template <class Ctx>
    static void backward(Ctx&) {}
};

namespace detail {
template <int Axis, class Like, class Wrt>
struct needs_grad<Iota<Axis, Like>, Wrt> : std::false_type {};
}  // namespace detail

/// iota<Axis>(like)[i_0, ..., i_{r-1}] = i_Axis, with the shape of like (any rank ≥ 1; Axis may count
/// from the end, -1 being the last; an axis out of range throws std::invalid_argument "exprgrad::iota:
/// axis A is out of range for a tensor of rank r"). Exact in float up to 2^24. No NaN: like's values
/// are not read. VJP zero. Example: for like of shape (2, 3), iota<1> = [[0, 1, 2], [0, 1, 2]] and
/// iota<0> = [[0, 0, 0], [1, 1, 1]].
template <int Axis, TensorExpr Like>
constexpr Iota<Axis, Like> iota(Like) {
    return {};
}
/// Rejected: a raw number has no shape to index; pass an array as an argument (tensor<I>).
template <int Axis, detail::raw_number Like>
constexpr auto iota(Like) {
    static_assert(detail::reject_raw<Like>, EXPRGRAD_TENSOR_RAW_NUMBER_MESSAGE);
    return Input<0>{};
}

}  // namespace exprgrad::tensors
