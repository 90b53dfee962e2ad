// Scaled dot-product attention as a node of a tensor program. Everything that changes what the node
// computes (mask, cosine normalization, scale policy) is part of its type, as DESIGN principle 2 asks;
// key padding, a run-time number, is not offered here (use the eager kernels with key_lengths).
#pragma once

#include <algorithm>
#include <cstddef>

#include <xtensor/xtensor.hpp>

#include "exprgrad/ops/attention.hpp"
#include "exprgrad/sym/expr.hpp"
#include "exprgrad/tensor/graph.hpp"

namespace exprgrad {

/// Scale policies as types, for the attention node.
namespace scale_type {
struct inv_sqrt_d {
    static scale_policy policy() { return scale::inv_sqrt_d(); }
};
struct gradient_max {
    static scale_policy policy() { return scale::gradient_max(); }
};
template <std::intmax_t NRef = 512>
struct entropy_invariant {
    static scale_policy policy() { return scale::entropy_invariant(static_cast<double>(NRef)); }
};
/// A fixed multiplier S, a sym constant (c<1, 8>, fc<0.125>).
template <class S>
struct fixed {
    static scale_policy policy() { return scale::fixed(S::value); }
};
}  // namespace scale_type

/// The attention node's configuration: attention_config<causal, cosine, scale_type::...>.
template <bool Causal = false, bool NormalizeQK = false, class Scale = scale_type::inv_sqrt_d>
struct attention_config {
    static attention_options options() {
        attention_options o;
        o.causal = Causal;
        o.normalize_qk = NormalizeQK;
        o.scale = Scale::policy();
        return o;
    }
};

namespace tex {

/// out = attention(q, k, v) for q [B,H,Tq,d], k [B,H,Tk,d], v [B,H,Tk,dv]; the VJP gives dq, dk, dv.
template <class Config, class Q, class K, class V>
struct Attention {
    using children = meta::type_list<Q, K, V>;
    static constexpr const char* name = "attention";
    template <class T>
    struct extra {
        xt::xtensor<T, 4> q, k, v, out, dout;
        xt::xtensor<T, 3> lse;
        attention_grads<T> grads;
        attention_workspace<T> ws;
    };

    template <class T>
    static void copy_in(const cview<T>& c, xt::xtensor<T, 4>& dst, const char* what) {
        if (c.shape.rank != 4) {
            throw shape_error(name, std::string(what) + " must be [B, H, T, d], got " + c.shape.str());
        }
        const std::array<std::size_t, 4> s{c.shape[0], c.shape[1], c.shape[2], c.shape[3]};
        if (!std::equal(s.begin(), s.end(), dst.shape().begin())) dst.resize(s);
        std::copy(c.data, c.data + c.size(), dst.data());
    }

    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        auto& ex = ctx.template extra<Attention>();
        copy_in(ctx.template in<Q>(), ex.q, "q");
        copy_in(ctx.template in<K>(), ex.k, "k");
        copy_in(ctx.template in<V>(), ex.v, "v");
        attention_forward_into(ex.q, ex.k, ex.v, Config::options(), ex.out, ex.lse, ex.ws);
        T* y = ctx.template out<Attention>(dims::of(ex.out.shape()));
        std::copy(ex.out.begin(), ex.out.end(), y);
    }

    template <class Ctx>
    static void backward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        auto& ex = ctx.template extra<Attention>();
        const T* g = ctx.template adj_data<Attention>();
        if (!std::equal(ex.out.shape().begin(), ex.out.shape().end(), ex.dout.shape().begin()))
            ex.dout.resize(ex.out.shape());
        std::copy(g, g + ex.out.size(), ex.dout.data());
        attention_vjp_into(ex.q, ex.k, ex.v, ex.out, ex.lse, ex.dout, Config::options(), ex.grads, ex.ws);
        auto give = [&](auto child, const xt::xtensor<T, 4>& d) {
            using C = typename decltype(child)::type;
            if constexpr (Ctx::template needs<C>) {
                bool add = false;
                T* dst = ctx.template grad<C>(add);
                for (std::size_t i = 0; i < d.size(); ++i) dst[i] = add ? dst[i] + d.data()[i] : d.data()[i];
            }
        };
        give(std::type_identity<Q>{}, ex.grads.dq);
        give(std::type_identity<K>{}, ex.grads.dk);
        give(std::type_identity<V>{}, ex.grads.dv);
    }
};

/// The attention node: `attention_node<attention_config<true>>(Q, K, V)` (causal, 1/√d).
template <class Config = attention_config<>, TensorExpr Q, TensorExpr K, TensorExpr V>
constexpr Attention<Config, Q, K, V> attention_node(Q, K, V) {
    return {};
}

}  // namespace tex
}  // namespace exprgrad
