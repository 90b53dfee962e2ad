// Scaled dot-product attention as a node of a tensor program. Everything that changes what the node
// computes (mask, cosine normalization, scale policy, whether keys are padded) is part of its type, as DESIGN
// principle 2 asks; the run-time values (key lengths, a learnable log s) are operands of the node.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "exprgrad/ops/attention.hpp"
#include "exprgrad/ops/detail/gradient_target.hpp"
#include "exprgrad/sym/expr.hpp"
#include "exprgrad/tensors/graph.hpp"

namespace exprgrad::ops {

/// Scale policies as types, for the attention node.
namespace scale_type {
struct inv_sqrt_d {
    static scale_policy policy() { return scale::inv_sqrt_d(); }
};
/// α*(n)/√d (α*_cos(n, d) under normalize_qk); N = scale_n::half_length for the post's single n = T_k/2.
template <scale_n N = scale_n::per_row>
struct gradient_max_n {
    static scale_policy policy() { return scale::gradient_max(N); }
};
using gradient_max = gradient_max_n<>;
template <std::intmax_t NRef = 512, scale_n N = scale_n::per_row>
struct entropy_invariant {
    static scale_policy policy() { return scale::entropy_invariant(static_cast<double>(NRef), N); }
};
/// A fixed multiplier S, a sym constant (c<1, 8>, fc<0.125>).
template <class S>
struct fixed {
    static scale_policy policy() { return scale::fixed(S::value); }
};
/// A learnable multiplier s = exp(θ): the node takes θ = log s as an extra operand (one value, e.g. a rank-0
/// tensor) after the others, and its VJP gives ∂L/∂θ = Σ_i s ∂L/∂s_i.
struct learned {
    static scale_policy policy() { return scale::fixed(1.0); }  // replaced by exp(θ) at run time
};
}  // namespace scale_type

/// The attention node's configuration: attention_config<causal, cosine, scale_type::..., padded>.
/// Padded: the node takes the key lengths [B] (an integer array, each in [0, T_k]) as an extra operand after
/// q, k, v; keys j ≥ length of batch entry b are masked, as attention_options::key_lengths.
template <bool Causal = false, bool NormalizeQK = false, class Scale = scale_type::inv_sqrt_d, bool Padded = false>
struct attention_config {
    static constexpr bool padded = Padded;
    static constexpr bool learned_scale = std::is_same_v<Scale, scale_type::learned>;
    static attention_options options() {
        attention_options o;
        o.causal = Causal;
        o.normalize_qk = NormalizeQK;
        o.scale = Scale::policy();
        return o;
    }
};

/// A configuration chosen at run time, one compiled node for every mask, cosine and scale policy: the node
/// reads its options from its state, `block.extra<Node>().runtime_options` (set before each forward, as
/// nn::self_attention does; release() forgets them), and takes the key lengths [B] as an operand after q, k, v.
struct runtime_config {
    static constexpr bool padded = true;
    static constexpr bool learned_scale = false;
};

namespace detail {
template <class Config>
attention_options config_options(const attention_options& runtime) {
    if constexpr (std::is_same_v<Config, runtime_config>) {
        return runtime;
    } else {
        return Config::options();
    }
}
// The key lengths [B] of a padded node (its operand Lengths) into o.key_lengths; a negative one throws naming op.
template <class Lengths, class Ctx>
void read_key_lengths(Ctx& ctx, const char* op, attention_options& o) {
    const tensors::dims shape = ctx.template in<Lengths>().shape;
    const std::int64_t* len = ctx.template ints<Lengths>();
    o.key_lengths.resize(shape.size());
    for (std::size_t b = 0; b < shape.size(); ++b) {
        if (len[b] < 0)
            throw tensors::shape_error(op, "key length " + std::to_string(len[b]) + " of batch entry " +
                                               std::to_string(b) + " is negative");
        o.key_lengths[b] = static_cast<std::size_t>(len[b]);  // the kernel checks B and ≤ T_k
    }
}
template <std::size_t I, class... Ts>
struct nth_or_void : std::type_identity<void> {};
template <std::size_t I, class... Ts>
requires(I < sizeof...(Ts)) struct nth_or_void<I, Ts...> : std::tuple_element<I, std::tuple<Ts...>> {
};
}  // namespace detail

/// out = attention(q, k, v) for q [B,H,Tq,d], k [B,H,Tk,d], v [B,H,Tk,dv]; the VJP gives dq, dk, dv and, with
/// scale_type::learned, ∂L/∂log s. Extra: the key lengths (Config::padded), then log s (learned), in that order.
template <class Config, class Q, class K, class V, class... Extra>
struct Attention {
    static_assert(sizeof...(Extra) == std::size_t{Config::padded} + std::size_t{Config::learned_scale},
                  "attention_node: pass the key lengths (a padded config) and then log s (scale_type::learned) after "
                  "q, k, v, and nothing else");
    using children = tensors::meta::type_list<Q, K, V, Extra...>;
    using Lengths = typename detail::nth_or_void<0, Extra...>::type;                          // when padded
    using LogScale = typename detail::nth_or_void<(Config::padded ? 1 : 0), Extra...>::type;  // when learned
    static constexpr const char* name = "attention";
    template <class T>
    struct extra {
        std::vector<T> lse;                 // [B, H, T_q], the forward's, for the backward
        std::vector<T> dq, dk, dv;          // a gradient the program's buffer cannot take (added, or not needed)
        attention_workspace<T> ws;
        attention_options opts;
        attention_options runtime_options;  // runtime_config only
    };

    // The program's buffer of an operand, as the kernels' view: no copy.
    template <class T>
    static attention_view<T, 4> view4(const tensors::cview<T>& c, const char* what) {
        if (c.shape.rank != 4) {
            throw tensors::shape_error(name, std::string(what) + " must be [B, H, T, d], got " + c.shape.str());
        }
        return {c.data, {c.shape[0], c.shape[1], c.shape[2], c.shape[3]}};
    }

    // The options of this call: the configuration, plus the run-time key lengths and log s.
    template <class Ctx>
    static void set_options(Ctx& ctx, attention_options& o) {
        o = detail::config_options<Config>(ctx.template extra<Attention>().runtime_options);
        if constexpr (Config::padded) detail::read_key_lengths<Lengths>(ctx, name, o);
        if constexpr (Config::learned_scale) {
            const auto& ls = ctx.template in<LogScale>();
            if (ls.size() != 1)
                throw tensors::shape_error(name, "log s must be one value, got shape " + ls.shape.str());
            o.scale = scale::fixed(std::exp(static_cast<double>(ls.data[0])));
        }
    }

    // The kernels read the program's buffers of q, k, v and write out into the node's own buffer.
    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        auto& ex = ctx.template extra<Attention>();
        const auto q = view4(ctx.template in<Q>(), "q"), k = view4(ctx.template in<K>(), "k"),
                   v = view4(ctx.template in<V>(), "v");
        set_options(ctx, ex.opts);
        detail::attention::check_inputs("attention_forward", q, k, v, ex.opts);  // before sizing out from them
        const std::size_t B = q.dims[0], H = q.dims[1], Tq = q.dims[2];
        ex.lse.resize(B * H * Tq);
        T* y = ctx.template out<Attention>(tensors::dims::of(std::array<std::size_t, 4>{B, H, Tq, v.dims[3]}));
        attention_forward_into(q, k, v, ex.opts, y, ex.lse.data(), ex.ws);
    }

    // The kernels read the program's buffers of q, k, v, out and the adjoint, and write dq, dk, dv straight into
    // the operands' adjoint buffers when this node is their first contribution (else into scratch, then added).
    template <class Ctx>
    static void backward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        auto& ex = ctx.template extra<Attention>();
        const auto q = view4(ctx.template in<Q>(), "q"), k = view4(ctx.template in<K>(), "k"),
                   v = view4(ctx.template in<V>(), "v");
        const tensors::cview<T>& y = ctx.template in<Attention>();
        const attention_view<T, 4> out{y.data, {y.shape[0], y.shape[1], y.shape[2], y.shape[3]}};
        const attention_view<T, 4> dout{ctx.template adj_data<Attention>(), out.dims};
        const attention_view<T, 3> lse{ex.lse.data(), {out.dims[0], out.dims[1], out.dims[2]}};
        // Each gradient into the child's adjoint buffer if this is its first contribution, else scratch then added.
        const auto tq = detail::place_gradient<Q>(ctx, ex.dq, q.size());
        const auto tk = detail::place_gradient<K>(ctx, ex.dk, k.size());
        const auto tv = detail::place_gradient<V>(ctx, ex.dv, v.size());
        // q, k, v are the buffers of this node's forward, unchanged since.
        const attention_scale_grads s = attention_vjp_into(q, k, v, out, lse, dout, ex.opts, tq.kernel, tk.kernel,
                                                           tv.kernel, ex.ws, attention_reuse::forward);
        tq.finish(q.size());
        tk.finish(k.size());
        tv.finish(v.size());
        if constexpr (Config::learned_scale) {
            if constexpr (Ctx::template needs<LogScale>) {
                bool add_ls = false;
                T* dst = ctx.template grad<LogScale>(add_ls);
                const T dlog = static_cast<T>(s.dlog_scale);
                dst[0] = add_ls ? dst[0] + dlog : dlog;
            }
        }
    }
};

/// The attention node: `attention_node<attention_config<true>>(Q, K, V)` (causal, 1/√d). With a padded
/// configuration pass the key lengths next, `attention_node<attention_config<true, false, scale_type::inv_sqrt_d,
/// true>>(Q, K, V, Len)`; with scale_type::learned pass log s last, `attention_node<attention_config<false, false,
/// scale_type::learned>>(Q, K, V, LogS)` (s = exp(LogS), trained through its gradient).
template <class Config = attention_config<>, tensors::TensorExpr Q, tensors::TensorExpr K, tensors::TensorExpr V,
          tensors::TensorExpr... Extra>
constexpr Attention<Config, Q, K, V, Extra...> attention_node(Q, K, V, Extra...) {
    return {};
}

}  // namespace exprgrad::ops
