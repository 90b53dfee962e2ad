// Embedding lookup: rows of a table [V, H] gathered by integer indices of any shape; the VJP
// scatters (adds) the adjoint rows back into the table. An index outside [0, V) throws naming the
// index and its position.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "exprgrad/tensors/graph.hpp"

namespace exprgrad::tensors {

template <class Table, class Idx>
struct Embedding {
    using children = meta::type_list<Table, Idx>;
    static constexpr const char* name = "embedding";

    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const cview<T>& table = ctx.template in<Table>();
        const dims ishape = ctx.template in<Idx>().shape;
        const std::int64_t* idx = ctx.template ints<Idx>();
        if (table.shape.rank != 2) throw shape_error(name, "the table must be [V, H], got " + table.shape.str());
        const std::size_t V = table.shape[0], H = table.shape[1], n = ishape.size();
        dims out = ishape;
        out.push(H);
        T* y = ctx.template out<Embedding>(out);
        for (std::size_t i = 0; i < n; ++i) {
            if (idx[i] < 0 || static_cast<std::size_t>(idx[i]) >= V) {
                throw shape_error(name, "index " + std::to_string(idx[i]) + " at position " + std::to_string(i) +
                                            " is out of range for a table of " + std::to_string(V) + " rows");
            }
            std::copy(table.data + static_cast<std::size_t>(idx[i]) * H,
                      table.data + static_cast<std::size_t>(idx[i] + 1) * H, y + i * H);
        }
    }

    template <class Ctx>
    static void backward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        if constexpr (Ctx::template needs<Table>) {
            const cview<T>& table = ctx.template in<Table>();
            const std::int64_t* idx = ctx.template ints<Idx>();
            const std::size_t H = table.shape[1], n = ctx.template in<Idx>().shape.size();
            const T* g = ctx.template adj_data<Embedding>();
            bool add = false;
            T* dt = ctx.template grad<Table>(add);
            if (!add) std::fill(dt, dt + table.size(), T(0));
            for (std::size_t i = 0; i < n; ++i) {
                T* row = dt + static_cast<std::size_t>(idx[i]) * H;
                for (std::size_t j = 0; j < H; ++j) row[j] += g[i * H + j];
            }
        }
    }
};

/// Rows of `table` [V, H] gathered by integer `indices` [...]: the result is [..., H].
template <TensorExpr Table, TensorExpr Idx>
constexpr Embedding<Table, Idx> embedding(Table, Idx) {
    return {};
}
/// Rejected: a raw number as the table or the indices; pass it as an argument (tensor<I>).
template <class Table, class Idx>
requires detail::raw_among_tensors<Table, Idx>
constexpr auto embedding(Table, Idx) {
    static_assert(detail::reject_raw<Table, Idx>, EXPRGRAD_TENSOR_RAW_NUMBER_MESSAGE);
    return Input<0>{};
}

}  // namespace exprgrad::tensors
