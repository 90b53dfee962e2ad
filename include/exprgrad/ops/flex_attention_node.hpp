// Flex attention as a node of a tensor program: the score and mask modifications are part of the node's type
// (DESIGN principle 2), the learnable parameters are operands of the graph with gradients.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "exprgrad/ops/attention_node.hpp"
#include "exprgrad/ops/attention_view.hpp"
#include "exprgrad/ops/detail/gradient_target.hpp"
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
        std::vector<T> lse;                 // [B, H_q, T_q], the forward's, for the backward
        std::vector<T> dq, dk, dv;          // a gradient the program's buffer cannot take (added, or not needed)
        std::vector<T> dparams;             // [np][H_q]
        std::vector<attention_view<T, 1>> params;
        detail::flex::workspace<T> ws;
        attention_options opts;
        attention_options runtime_options;  // runtime_config only
    };

    // The program's buffers of the parameters, as views (no copy; the kernels check their sizes).
    template <class Ctx, class T = typename Ctx::value_type>
    static void view_params(Ctx& ctx, std::vector<attention_view<T, 1>>& dst) {
        dst.clear();
        [&]<std::size_t... Is>(std::index_sequence<Is...>) {
            (([&] {
                 const auto& c = ctx.template in<std::tuple_element_t<first_param + Is, std::tuple<Extra...>>>();
                 dst.push_back({c.data, {c.size()}});
             }()),
             ...);
        }
        (std::make_index_sequence<np>{});
    }

    // The kernels read the program's buffers of q, k, v and the parameters and write out into the node's buffer.
    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        using M = detail::flex::modification<T, Mod, Mask>;
        detail::flex::check_modifications<Mod, Mask>();
        auto& ex = ctx.template extra<FlexAttention>();
        using A = Attention<attention_config<>, Q, K, V>;  // its view4 only
        const auto q = A::view4(ctx.template in<Q>(), "q"), k = A::view4(ctx.template in<K>(), "k"),
                   v = A::view4(ctx.template in<V>(), "v");
        ex.opts = detail::config_options<Config>(ex.runtime_options);
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
        view_params(ctx, ex.params);
        // before sizing out from them
        detail::flex::check_inputs("flex_attention_forward", q, k, v, ex.opts, ex.params.size(), M::np,
                                   detail::flex::param_sizes(ex.params));
        const std::size_t B = q.dims[0], H = q.dims[1], Tq = q.dims[2];
        ex.lse.resize(B * H * Tq);
        T* y = ctx.template out<FlexAttention>(tensors::dims::of(std::array<std::size_t, 4>{B, H, Tq, v.dims[3]}));
        detail::flex::forward_into<M>(q, k, v, ex.params, ex.opts, y, ex.lse.data(), ex.ws);
    }

    // The kernels read the program's buffers of q, k, v, the parameters, out and the adjoint, and write dq, dk, dv
    // straight into the operands' adjoint buffers when this node is their first contribution (else into scratch,
    // then added), as the attention node does.
    template <class Ctx>
    static void backward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        using M = detail::flex::modification<T, Mod, Mask>;
        auto& ex = ctx.template extra<FlexAttention>();
        using A = Attention<attention_config<>, Q, K, V>;
        const auto q = A::view4(ctx.template in<Q>(), "q"), k = A::view4(ctx.template in<K>(), "k"),
                   v = A::view4(ctx.template in<V>(), "v");
        view_params(ctx, ex.params);
        const tensors::cview<T>& y = ctx.template in<FlexAttention>();
        const attention_view<T, 4> out{y.data, {y.shape[0], y.shape[1], y.shape[2], y.shape[3]}};
        const attention_view<T, 4> dout{ctx.template adj_data<FlexAttention>(), out.dims};
        const attention_view<T, 3> lse{ex.lse.data(), {out.dims[0], out.dims[1], out.dims[2]}};
        // Each gradient into the child's adjoint buffer if this is its first contribution, else scratch then added.
        const auto tq = detail::place_gradient<Q>(ctx, ex.dq, q.size());
        const auto tk = detail::place_gradient<K>(ctx, ex.dk, k.size());
        const auto tv = detail::place_gradient<V>(ctx, ex.dv, v.size());
        const std::size_t Hq = q.dims[1];
        ex.dparams.resize(np * Hq);
        // q, k, v and the parameters are the buffers of this node's forward, unchanged since.
        detail::flex::vjp_into<M>(q, k, v, out, lse, dout, ex.params, ex.opts, tq.kernel, tk.kernel, tv.kernel,
                                  ex.dparams.data(), ex.ws);
        tq.finish(q.size());
        tk.finish(k.size());
        tv.finish(v.size());
        auto give = [&](auto child, const T* d, std::size_t n) {
            using C = typename decltype(child)::type;
            if constexpr (Ctx::template needs<C>) {
                bool add_p = false;
                T* dst = ctx.template grad<C>(add_p);
                for (std::size_t i = 0; i < n; ++i) dst[i] = add_p ? dst[i] + d[i] : d[i];
            }
        };
        [&]<std::size_t... Is>(std::index_sequence<Is...>) {
            (give(std::type_identity<std::tuple_element_t<first_param + Is, std::tuple<Extra...>>>{},
                  ex.dparams.data() + Is * Hq, Hq),
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
