// Flex attention as a node of a tensor program: the score and mask modifications are part of the node's type
// (DESIGN principle 2), the learnable parameters are operands of the graph with gradients.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "exprgrad/ops/attention_node.hpp"
#include "exprgrad/ops/flex_attention.hpp"
#include "exprgrad/tensors/graph.hpp"

namespace exprgrad::ops {

/// out = flex_attention(q, k, v) with score_mod Mod and mask_mod Mask (types of attn:: expressions) and the
/// options of Config (an attention_config: causal, normalize_qk, scale, padded; scale_type::learned is not
/// supported here). Operands: q, k, v, then the key lengths when Config::padded, then one [H_q] array per
/// attn::param<I> the modification reads. The VJP gives dq, dk, dv and every parameter's gradient.
template <class Mod, class Mask, class Config, class Q, class K, class V, class... Extra>
struct FlexAttention {
    static constexpr std::size_t np = detail::flex::param_count_v<Mod>;
    static_assert(!Config::learned_scale,
                  "flex_attention_node: scale_type::learned is not supported (write a learnable factor into score_mod "
                  "as attn::param<I> * attn::score instead)");
    static_assert(sizeof...(Extra) == std::size_t{Config::padded} + np,
                  "flex_attention_node: pass q, k, v, then the key lengths (a padded config), then one [H_q] "
                  "operand per attn::param<I> the score modification reads, and nothing else");
    using children = tensors::meta::type_list<Q, K, V, Extra...>;
    using Lengths = typename detail::nth_or_void<0, Extra...>::type;  // when padded
    static constexpr std::size_t first_param = Config::padded ? 1 : 0;
    static constexpr const char* name = "flex_attention";
    template <class T>
    struct extra {
        xt::xtensor<T, 4> q, k, v, out, dout;
        xt::xtensor<T, 3> lse;
        std::vector<xt::xtensor<T, 1>> params;
        detail::flex::workspace<T> ws;
        attention_options opts;
    };

    template <class T, class C>
    static void copy_param(const C& c, xt::xtensor<T, 1>& dst) {
        if (dst.size() != c.size()) dst.resize({c.size()});
        std::copy(c.data, c.data + c.size(), dst.data());
    }

    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        using M = detail::flex::modification<T, Mod, Mask>;
        detail::flex::check_modifications<Mod, Mask>();
        auto& ex = ctx.template extra<FlexAttention>();
        using A = Attention<attention_config<>, Q, K, V>;  // its copy_in only
        A::copy_in(ctx.template in<Q>(), ex.q, "q");
        A::copy_in(ctx.template in<K>(), ex.k, "k");
        A::copy_in(ctx.template in<V>(), ex.v, "v");
        ex.opts = Config::options();
        if constexpr (Config::padded) {
            const tensors::dims shape = ctx.template in<Lengths>().shape;
            const std::int64_t* len = ctx.template ints<Lengths>();
            ex.opts.key_lengths.resize(shape.size());
            for (std::size_t b = 0; b < shape.size(); ++b) {
                if (len[b] < 0)
                    throw tensors::shape_error(name, "key length " + std::to_string(len[b]) + " of batch entry " +
                                                         std::to_string(b) + " is negative");
                ex.opts.key_lengths[b] = static_cast<std::size_t>(len[b]);
            }
        }
        ex.params.resize(np);
        [&]<std::size_t... Is>(std::index_sequence<Is...>) {
            (copy_param(ctx.template in<std::tuple_element_t<first_param + Is, std::tuple<Extra...>>>(), ex.params[Is]),
             ...);
        }
        (std::make_index_sequence<np>{});
        detail::flex::forward_into<M>(ex.q, ex.k, ex.v, ex.params, ex.opts, ex.out, ex.lse, ex.ws);
        T* y = ctx.template out<FlexAttention>(tensors::dims::of(ex.out.shape()));
        std::copy(ex.out.begin(), ex.out.end(), y);
    }

    template <class Ctx>
    static void backward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        using M = detail::flex::modification<T, Mod, Mask>;
        auto& ex = ctx.template extra<FlexAttention>();
        const T* g = ctx.template adj_data<FlexAttention>();
        if (!std::equal(ex.out.shape().begin(), ex.out.shape().end(), ex.dout.shape().begin()))
            ex.dout.resize(ex.out.shape());
        std::copy(g, g + ex.out.size(), ex.dout.data());
        // ex.q, ex.k, ex.v, ex.params are this node's copies from its forward, unchanged since.
        const auto grads = detail::flex::vjp<M>(ex.q, ex.k, ex.v, ex.out, ex.lse, ex.dout, ex.params, ex.opts, ex.ws);
        auto give = [&](auto child, const T* d, std::size_t n) {
            using C = typename decltype(child)::type;
            if constexpr (Ctx::template needs<C>) {
                bool add = false;
                T* dst = ctx.template grad<C>(add);
                for (std::size_t i = 0; i < n; ++i) dst[i] = add ? dst[i] + d[i] : d[i];
            }
        };
        give(std::type_identity<Q>{}, grads.dq.data(), grads.dq.size());
        give(std::type_identity<K>{}, grads.dk.data(), grads.dk.size());
        give(std::type_identity<V>{}, grads.dv.data(), grads.dv.size());
        [&]<std::size_t... Is>(std::index_sequence<Is...>) {
            (give(std::type_identity<std::tuple_element_t<first_param + Is, std::tuple<Extra...>>>{},
                  grads.dparams[Is].data(), grads.dparams[Is].size()),
             ...);
        }
        (std::make_index_sequence<np>{});
    }
};

/// The flex attention node: `flex_attention_node<Config>(score_mod, mask_mod, Q, K, V, Params...)`, e.g. ALiBi
/// with learnable slopes S ([H_q]) under a causal mask_mod:
///   auto y = flex_attention_node(attn::score - attn::param<0> * (attn::q_idx - attn::k_idx),
///                                attn::q_idx - attn::k_idx + 1_c, tensor<0>, tensor<1>, tensor<2>, tensor<3>);
///   auto prog = value_and_grad(sum(y * tensor<4>), wrt<0, 1, 2, 3>);   // the slopes' gradient too
/// Same computation, domain, NaN and error behaviour as flex_attention_forward / flex_attention_vjp (the fused
/// kernels always; no dispatch to ops::attention). With a padded Config pass the key lengths [B] (integers)
/// after V, before the parameters.
template <class Config = attention_config<>, class Mod, class Mask, tensors::TensorExpr Q, tensors::TensorExpr K,
          tensors::TensorExpr V, tensors::TensorExpr... Extra>
constexpr FlexAttention<Mod, Mask, Config, Q, K, V, Extra...> flex_attention_node(Mod, Mask, Q, K, V, Extra...) {
    detail::flex::check_modifications<Mod, Mask>();
    return {};
}

}  // namespace exprgrad::ops
