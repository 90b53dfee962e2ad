// Multi-head attention over the heads of a fused QKV projection, as one node of a tensor program: the kernels read
// q, k and v where the projection wrote them and write the merged heads, with no copy in between. It computes what
// the attention node does on permute/slice of the same projection (nn::self_attention's former program), and its
// VJP writes the projection's gradient in place; the layout primitives moved every value four times per step.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "exprgrad/ops/attention.hpp"
#include "exprgrad/ops/attention_node.hpp"
#include "exprgrad/ops/detail/gradient_target.hpp"
#include "exprgrad/tensors/count_operand.hpp"
#include "exprgrad/tensors/graph.hpp"

namespace exprgrad::ops {

/// out [B, T, H·d] = the heads merged of attention(q, k, v) where qkv [B, T, 3·H·d] holds, per position, the H
/// heads of q, then of k, then of v (head h of q at columns [h·d, (h + 1)·d), of k at H·d + h·d, of v at 2·H·d + h·d).
/// Heads is an integer operand (H ≥ 1 dividing the last axis by 3·H); Extra: the key lengths [B] when
/// Config::padded (runtime_config always). Options as the attention node's (Config, or runtime_options for
/// runtime_config); NaN/Inf and overflow behaviour as attention_forward's. The VJP gives d qkv.
template <class Config, class QKV, class Heads, class... Extra>
struct HeadsAttention {
    static_assert(sizeof...(Extra) == std::size_t{Config::padded} && !Config::learned_scale,
                  "heads_attention_node: pass the key lengths after the head count for a padded configuration; a "
                  "learned scale is not supported here");
    using children = tensors::meta::type_list<QKV, Heads, Extra...>;
    using Lengths = typename detail::nth_or_void<0, Extra...>::type;
    static constexpr const char* name = "heads_attention";
    template <class T>
    struct extra {
        std::vector<T> lse;   // [B, H, T], the forward's, for the backward
        std::vector<T> dqkv;  // when the projection's adjoint already holds another contribution
        attention_workspace<T> ws;
        attention_options opts;
        attention_options runtime_options;  // runtime_config only
    };

    /// The sizes of a call and where the rows of q, k, v (inside qkv) and of the merged output start.
    struct layout {
        std::size_t B = 0, H = 0, T = 0, d = 0;
        std::size_t width() const { return H * d; }
        // q, k, v rows inside qkv; the merged output's rows
        attention_rows in() const { return {T * 3 * width(), d, 3 * width()}; }
        attention_rows out() const { return {T * width(), d, width()}; }
    };

    /// The layout of qkv [B, T, 3·H·d] with H from the Heads operand; throws std::invalid_argument naming
    /// heads_attention when qkv is not rank 3 or H < 1 does not split its last axis into 3·H parts.
    template <class Ctx, class T>
    static layout plan(const Ctx& ctx, const tensors::cview<T>& qkv) {
        const std::int64_t h = tensors::detail::count_operand<Heads>(ctx, name, "heads");
        if (qkv.shape.rank != 3)
            throw tensors::shape_error(name, "qkv must be [B, T, 3·H·d], got " + qkv.shape.str());
        if (h < 1 || qkv.shape[2] == 0 || qkv.shape[2] % (3 * static_cast<std::size_t>(h)) != 0)
            throw tensors::shape_error(name, "heads = " + std::to_string(h) + " must be at least 1 and divide the last "
                                                 "axis of qkv " + qkv.shape.str() + " into 3·heads equal parts");
        layout l;
        l.B = qkv.shape[0];
        l.T = qkv.shape[1];
        l.H = static_cast<std::size_t>(h);
        l.d = qkv.shape[2] / (3 * l.H);
        return l;
    }
    /// The strided view of q (which = 0), k (1) or v (2) inside qkv: offsets 0, H·d, 2·H·d.
    template <class T>
    static attention_view<T, 4> part(const T* qkv, const layout& l, std::size_t which) {
        return {qkv + which * l.width(), {l.B, l.H, l.T, l.d}, l.in()};
    }

    /// This call's options: the configuration's (or runtime_options), plus the key lengths when padded.
    template <class Ctx>
    static void set_options(Ctx& ctx, attention_options& o) {
        o = detail::config_options<Config>(ctx.template extra<HeadsAttention>().runtime_options);
        if constexpr (Config::padded) detail::read_key_lengths<Lengths>(ctx, name, o);
    }

    /// The kernels read q, k, v inside qkv and write the merged heads into the node's buffer; lse is kept.
    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        auto& ex = ctx.template extra<HeadsAttention>();
        const tensors::cview<T>& qkv = ctx.template in<QKV>();
        const layout l = plan(ctx, qkv);
        set_options(ctx, ex.opts);
        const auto q = part(qkv.data, l, 0), k = part(qkv.data, l, 1), v = part(qkv.data, l, 2);
        detail::attention::check_inputs(name, q, k, v, ex.opts);
        ex.lse.resize(l.B * l.H * l.T);
        T* y = ctx.template out<HeadsAttention>(tensors::dims::of(std::array<std::size_t, 3>{l.B, l.T, l.width()}));
        attention_forward_into(q, k, v, ex.opts, y, l.out(), ex.lse.data(), ex.ws);
    }

    /// d qkv: dq, dk, dv written through qkv's row strides, into the adjoint (first contribution) or scratch.
    template <class Ctx>
    static void backward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        if constexpr (Ctx::template needs<QKV>) {
            auto& ex = ctx.template extra<HeadsAttention>();
            const tensors::cview<T>& qkv = ctx.template in<QKV>();
            const layout l = plan(ctx, qkv);
            const auto q = part(qkv.data, l, 0), k = part(qkv.data, l, 1), v = part(qkv.data, l, 2);
            const tensors::cview<T>& y = ctx.template in<HeadsAttention>();
            const attention_view<T, 4> out{y.data, {l.B, l.H, l.T, l.d}, l.out()};
            const attention_view<T, 4> dout{ctx.template adj_data<HeadsAttention>(), out.dims, l.out()};
            const attention_view<T, 3> lse{ex.lse.data(), {l.B, l.H, l.T}};
            // Every entry of d qkv is some head's dq, dk or dv: written straight into the adjoint on a first
            // contribution, else into scratch and added.
            const auto t = detail::place_gradient<QKV>(ctx, ex.dqkv, qkv.size());
            const std::size_t w = l.width();
            // qkv is this node's forward input, unchanged since: the forward's packing is reused.
            attention_vjp_into(q, k, v, out, lse, dout, ex.opts, t.kernel, l.in(), t.kernel + w, l.in(),
                               t.kernel + 2 * w, l.in(), ex.ws, attention_reuse::forward);
            t.finish(qkv.size());
        }
    }
};

/// The heads-attention node: `heads_attention_node<attention_config<true>>(QKV, H)` for qkv [B, T, 3·H·d] (q, k,
/// v heads side by side, as a fused projection writes them) and H an integer operand, giving the merged heads
/// [B, T, H·d]; with a padded configuration (runtime_config among them) pass the key lengths [B] after H:
/// `heads_attention_node<runtime_config>(QKV, H, Len)`.
template <class Config = attention_config<>, tensors::TensorExpr QKV, tensors::TensorExpr Heads,
          tensors::TensorExpr... Extra>
constexpr HeadsAttention<Config, QKV, Heads, Extra...> heads_attention_node(QKV, Heads, Extra...) {
    return {};
}

}  // namespace exprgrad::ops
