// Cross-entropy of logits against integer targets, the mean over the positions whose target is
// not ignore_index. Every position ignored gives 0 and zero gradients. A target outside [0, V)
// (other than ignore_index) throws naming the value and its position. NaN or inf logits propagate.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "exprgrad/kernels/softmax_rows.hpp"
#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/reduce.hpp"

namespace exprgrad::tensors {

template <long Ignore, class L, class Tg>
struct CrossEntropy {
    using children = meta::type_list<L, Tg>;
    static constexpr const char* name = "cross_entropy";

    template <class T>
    struct extra {
        std::vector<T> lse;  // per row log-sum-exp (reused)
        std::size_t count = 0;
    };

    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const cview<T>& logits = ctx.template in<L>();
        const cview<T>& tv = ctx.template in<Tg>();
        const std::int64_t* t = ctx.template ints<Tg>();
        if (logits.shape.rank < 1) throw shape_error(name, "logits must have at least one dimension");
        const std::size_t V = logits.shape.at(-1);
        const std::size_t rows = V ? logits.size() / V : 0;
        if (tv.shape.size() != rows || tv.shape.rank != logits.shape.rank - 1) {
            throw shape_error(name, "targets of shape " + tv.shape.str() + " do not match logits of shape " +
                                        logits.shape.str() + " (targets have the logits' shape without the last axis)");
        }
        auto& ex = ctx.template extra<CrossEntropy>();
        ex.lse.resize(rows);
        ex.count = 0;
        double total = 0;  // accumulated in double: a mean over many rows
        for (std::size_t r = 0; r < rows; ++r) {
            if (t[r] == Ignore) continue;
            if (t[r] < 0 || static_cast<std::size_t>(t[r]) >= V) {
                throw shape_error(name, "target " + std::to_string(t[r]) + " at position " + std::to_string(r) +
                                            " is out of range for " + std::to_string(V) + " classes");
            }
            const T* x = logits.data + r * V;
            ex.lse[r] = kernels::rows::logsumexp(x, V);  // NaN if the row has one
            total += static_cast<double>(ex.lse[r] - x[t[r]]);
            ++ex.count;
        }
        T* out = ctx.template out<CrossEntropy>(dims{});
        out[0] = ex.count ? static_cast<T>(total / static_cast<double>(ex.count)) : T(0);
    }

    template <class Ctx>
    static void backward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        if constexpr (Ctx::template needs<L>) {
            const cview<T>& logits = ctx.template in<L>();
            const std::int64_t* t = ctx.template ints<Tg>();
            const auto& ex = ctx.template extra<CrossEntropy>();
            const adjoint_view<T> g = ctx.template adj<CrossEntropy>();
            const T gv = g.uniform ? g.value : g.data[0];
            const std::size_t V = logits.shape.at(-1);
            const std::size_t rows = V ? logits.size() / V : 0;
            bool add = false;
            T* dx = ctx.template grad<L>(add);
            const T scale = ex.count ? gv / static_cast<T>(ex.count) : T(0);
            for (std::size_t r = 0; r < rows; ++r) {
                const T* x = logits.data + r * V;
                T* d = dx + r * V;
                if (t[r] == Ignore) {
                    if (!add) std::fill(d, d + V, T(0));
                    continue;
                }
                // scale · (softmax − onehot), the softmax as exp(x − lse) in SIMD
                kernels::rows::scaled_exp_into(x, ex.lse[r], scale, d, V, add);
                d[t[r]] -= scale;
            }
        }
    }
};

/// Mean cross-entropy of logits [..., V] against integer targets [...]: `cross_entropy(Z, Y)`,
/// or `cross_entropy<-1>(Z, Y)` to ignore targets equal to -1 (default ignore_index -100).
template <long Ignore = -100, TensorExpr L, TensorExpr Tg>
constexpr CrossEntropy<Ignore, L, Tg> cross_entropy(L, Tg) {
    return {};
}
/// Rejected: a raw number as the logits or the targets; pass it as an argument (tensor<I>).
template <long Ignore = -100, class L, class Tg>
requires detail::raw_among_tensors<L, Tg>
constexpr auto cross_entropy(L, Tg) {
    static_assert(detail::reject_raw<L, Tg>, EXPRGRAD_TENSOR_RAW_NUMBER_MESSAGE);
    return Input<0>{};
}

}  // namespace exprgrad::tensors
