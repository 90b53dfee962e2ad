// Multi-head self-attention as a run-time layer: pre-norm, one fused QKV projection, the attention node of
// ops/attention_node.hpp with a scale policy chosen at run time, an output projection, all compiled blocks
// recorded into a tensors::record. With a score or mask modification (flex attention) the layer runs the flex
// attention node and learns the modification's per-head parameters (ALiBi slopes, a bias per head, ...).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <xtensor/xarray.hpp>
#include <xtensor/xtensor.hpp>

#include "exprgrad/nn/init.hpp"
#include "exprgrad/nn/layer.hpp"
#include "exprgrad/nn/parameters.hpp"
#include "exprgrad/ops/attention_node.hpp"
#include "exprgrad/ops/flex_attention_node.hpp"
#include "exprgrad/ops/heads_attention_node.hpp"
#include "exprgrad/random.hpp"
#include "exprgrad/tensors/map.hpp"
#include "exprgrad/tensors/matmul.hpp"
#include "exprgrad/tensors/norm.hpp"
#include "exprgrad/tensors/permute.hpp"
#include "exprgrad/tensors/record.hpp"
#include "exprgrad/tensors/reshape.hpp"
#include "exprgrad/tensors/slice.hpp"

namespace exprgrad::nn {

namespace detail {
// [B,T,D] -> [B,T,3D]: rms_norm(x, g)·Wqkv; [B,T,D] -> [B,T,D]: o·Wo, and x + o·Wo (the residual sublayer).
using qkv_projection =
    decltype(tensors::matmul(tensors::rms_norm(tensors::Input<0>{}, tensors::Input<1>{}), tensors::Input<2>{}));
using out_projection = decltype(tensors::matmul(tensors::Input<0>{}, tensors::Input<1>{}));
using out_projection_residual = decltype(tensors::matmul(tensors::Input<0>{}, tensors::Input<1>{}) + tensors::Input<2>{});

// The heads of qkv [B,T,3D] (tensor<0>; tensor<1> = 3H, tensor<2> = H, tensor<3> = 2H): [B,3H,T,dh], then q, k, v
// [B,H,T,dh] as slices of it; tensor<4> the key lengths [B]; the attention's [B,H,T,dh] merged back to [B,T,D].
inline constexpr auto qkv_heads =
    tensors::permute<0, 2, 1, 3>(tensors::reshape(tensors::Input<0>{}, sym::c<0>, sym::c<0>, tensors::Input<1>{}, sym::c<-1>));
inline constexpr auto q_heads = tensors::slice<1>(qkv_heads, sym::c<0>, tensors::Input<2>{});
inline constexpr auto k_heads = tensors::slice<1>(qkv_heads, tensors::Input<2>{}, tensors::Input<3>{});
inline constexpr auto v_heads = tensors::slice<1>(qkv_heads, tensors::Input<3>{}, tensors::Input<1>{});
template <class O>
constexpr auto merge_heads(O o) {
    return tensors::reshape(tensors::permute<0, 2, 1, 3>(o), sym::c<0>, sym::c<0>, sym::c<-1>);
}

// The attention of the heads: qkv [B,T,3D] (tensor<0>), 3H, H, 2H (tensor<1..3>), the key lengths [B]
// (tensor<4>), the modification's parameters (tensor<5 + i>, [H] each) -> [B,T,D]. One compiled node whose
// options (mask, cosine, scale policy) are chosen at run time (ops::runtime_config): without a modification the
// heads-attention node, which reads the heads inside qkv (3H and 2H unused); with one, flex attention on the
// heads split by reshape/permute/slice and merged back.
template <class T, class Mod, class Mask, bool Plain, std::size_t NP>
struct attention_core {
    static auto node() {
        if constexpr (Plain) {  // reads the heads inside qkv and writes them merged: no layout copies
            return ops::heads_attention_node<ops::runtime_config>(tensors::Input<0>{}, tensors::Input<2>{},
                                                                  tensors::Input<4>{});
        } else {
            return [&]<int... I>(std::integer_sequence<int, I...>) {
                return ops::flex_attention_node<ops::runtime_config>(Mod{}, Mask{}, q_heads, k_heads, v_heads,
                                                                     tensors::Input<4>{}, tensors::Input<5 + I>{}...);
            }(std::make_integer_sequence<int, static_cast<int>(NP)>{});
        }
    }
    using node_type = decltype(node());
    template <int... I>
    static auto make_block(std::integer_sequence<int, I...>) {
        if constexpr (Plain)
            return tensors::compile<T>(node_type{}, tensors::wrt<0, (5 + I)...>);
        else
            return tensors::compile<T>(merge_heads(node_type{}), tensors::wrt<0, (5 + I)...>);
    }
    decltype(make_block(std::make_integer_sequence<int, static_cast<int>(NP)>{})) blk;

    tensors::handle call(tensors::record<T>& rec, tensors::handle qkv, std::size_t H,
                         const xt::xarray<std::int64_t>& lengths, const ops::attention_options& o,
                         const std::array<tensors::handle, NP>& mods) {
        blk.template extra<node_type>().runtime_options = o;
        return [&]<std::size_t... I>(std::index_sequence<I...>) {
            return rec.call(blk, qkv, 3 * H, H, 2 * H, lengths, mods[I]...);
        }(std::make_index_sequence<NP>{});
    }
};
}  // namespace detail

/// f(x) = attention(split(rms_norm(x, g)·Wqkv))·Wo for x [B, T, D]: H heads of width D/H, the options'
/// mask and scale policy. Padded batches: set_key_lengths before forward (opts.key_lengths itself must
/// be empty at construction, as the lengths change with every batch).
/// Parameters: g [D], Wqkv [D, 3D] (columns q | k | v, head h at h·D/H within each), Wo [D, D].
/// Three compiled blocks recorded per call (layer::record_into): the QKV projection; the attention of the heads
/// (ops/heads_attention_node.hpp, reading them inside the projection's output and writing them merged; with a
/// modification, flex_attention_node on the heads split by reshape/permute/slice, then merged); the output
/// projection (with the residual added in it under nn::residual). The options (mask, normalize_qk, scale policy,
/// qk_eps, threads) are read at run time by the one compiled node (ops::runtime_config). Not reentrant. Wrap it in
/// nn::residual for a pre-norm transformer sublayer.
///
/// Mod and Mask: flex attention's score and mask modifications (scalar DSL expressions of attn::score,
/// attn::batch, attn::head, attn::q_idx, attn::k_idx and attn::param<I>; docs/flex_attention.md). The defaults
/// (a bare score, no mask) run the attention node. Each attn::param<I> the score modification reads is a
/// parameter of H values passed to the constructor (mod_params, in order of I), a leaf of the record like the
/// others: backward adds its gradient. Example: `self_attention<float, decltype(alibi),
/// decltype(causal)>(g, wqkv, wo, 4, opts, {&slopes})`.
template <class T, class Mod = std::remove_cvref_t<decltype(ops::attn::score)>,
          class Mask = std::remove_cvref_t<decltype(sym::c<1>)>>
class self_attention : public layer<T> {
    static constexpr bool plain = ops::detail::flex::identity_mod_v<Mod> && ops::detail::flex::mask_always_visible<Mask>();
    static constexpr std::size_t mod_param_count = ops::detail::flex::param_count_v<Mod>;

  public:
    self_attention(parameter<T>& norm, parameter<T>& w_qkv, parameter<T>& w_out, std::size_t heads,
                   ops::attention_options opts, std::vector<parameter<T>*> mod_params = {})
        : norm_(&norm), w_qkv_(&w_qkv), w_out_(&w_out), heads_(heads), opts_(std::move(opts)),
          mod_params_(std::move(mod_params)) {
        const std::size_t d = norm.value.size();
        if (heads == 0 || d == 0 || d % heads != 0) {
            throw tensors::shape_error(
                "nn::self_attention",
                "width " + std::to_string(d) + " is not a positive multiple of heads = " + std::to_string(heads));
        }
        if (w_qkv.value.dimension() != 2 || w_qkv.value.shape(0) != d || w_qkv.value.shape(1) != 3 * d) {
            throw tensors::shape_error("nn::self_attention",
                                       "Wqkv must be [" + std::to_string(d) + ", " + std::to_string(3 * d) + "]");
        }
        if (!opts_.key_lengths.empty()) {
            throw tensors::shape_error("nn::self_attention", "key_lengths is not supported here");
        }
        if (mod_params_.size() != mod_param_count) {
            throw tensors::shape_error("nn::self_attention", "the score modification reads " +
                                                                 std::to_string(mod_param_count) + " parameters, got " +
                                                                 std::to_string(mod_params_.size()));
        }
        for (const parameter<T>* p : mod_params_) {
            if (p == nullptr || p->value.size() != heads) {
                throw tensors::shape_error("nn::self_attention", "each modification parameter needs heads = " +
                                                                     std::to_string(heads) + " values" +
                                                                     (p ? ", got " + std::to_string(p->value.size()) : ""));
            }
        }
        width_ = d;
    }

    tensors::handle record_into(tensors::record<T>& rec, tensors::handle x) override {
        return out_of(rec, attend(rec, x), x, false);
    }
    tensors::handle record_residual_into(tensors::record<T>& rec, tensors::handle x) override {
        return out_of(rec, attend(rec, x), x, true);
    }

    const ops::attention_options& options() const { return opts_; }

    /// Key padding for the following forward and backward calls: keys t ≥ lengths[b] of sequence b are
    /// masked for every query (one entry per sequence, each ≤ T; empty: no padding). The outputs at
    /// padded positions are still computed (from the real keys) and should be ignored by the loss.
    /// Example: `attn.set_key_lengths({5, 3});` for a batch of two sequences padded to T ≥ 5.
    void set_key_lengths(std::vector<std::size_t> lengths) { opts_.key_lengths = std::move(lengths); }

  private:
    // The QKV projection and the attention: [B, T, D] merged heads.
    tensors::handle attend(tensors::record<T>& rec, tensors::handle x) {
        const xt::xarray<T>& xv = rec.value(x);
        if (xv.dimension() != 3 || xv.shape(2) != width_) {
            throw tensors::shape_error("nn::self_attention", "input must be [B, T, " + std::to_string(width_) + "]");
        }
        typename layer<T>::recompute_scope scope(rec, *this);
        const std::size_t B = xv.shape(0), Tn = xv.shape(1);
        if (!opts_.key_lengths.empty() && opts_.key_lengths.size() != B) {
            throw tensors::shape_error("nn::self_attention", "key_lengths has " +
                                                                 std::to_string(opts_.key_lengths.size()) +
                                                                 " entries for a batch of " + std::to_string(B));
        }
        // The node's key lengths: the padding, or every key (the same computation as no padding).
        lengths_.resize({B});
        for (std::size_t b = 0; b < B; ++b) {
            const std::size_t n = opts_.key_lengths.empty() ? Tn : opts_.key_lengths[b];
            lengths_(b) = static_cast<std::int64_t>(n);
        }
        std::array<tensors::handle, mod_param_count> mods{};
        for (std::size_t i = 0; i < mod_param_count; ++i) mods[i] = leaf(rec, *mod_params_[i]);
        const tensors::handle qkv = rec.call(in_, x, leaf(rec, *norm_), leaf(rec, *w_qkv_));
        // The attention keeps what its backward needs (q, k, v, out, log-sum-exp) in recompute mode too, as the
        // layer always did: a released node would forget its run-time options.
        const bool was = rec.set_recompute(false);
        try {
            const tensors::handle o = core_.call(rec, qkv, heads_, lengths_, opts_, mods);
            rec.set_recompute(was);
            return o;
        } catch (...) {
            rec.set_recompute(was);
            throw;
        }
    }
    tensors::handle out_of(tensors::record<T>& rec, tensors::handle o, tensors::handle x, bool residual) {
        typename layer<T>::recompute_scope scope(rec, *this);
        return residual ? rec.call(out_residual_, o, leaf(rec, *w_out_), x) : rec.call(out_, o, leaf(rec, *w_out_));
    }

    parameter<T>*norm_, *w_qkv_, *w_out_;
    std::size_t heads_, width_ = 0;
    ops::attention_options opts_;
    std::vector<parameter<T>*> mod_params_;
    tensors::block<T, detail::qkv_projection, 0, 1, 2> in_;
    tensors::block<T, detail::out_projection, 0, 1> out_;
    tensors::block<T, detail::out_projection_residual, 0, 1, 2> out_residual_;
    detail::attention_core<T, Mod, Mask, plain, mod_param_count> core_;
    xt::xarray<std::int64_t> lengths_;
};

namespace detail {
// name.norm (ones), name.qkv (Xavier-uniform), name.out (Xavier-uniform times out_gain), registered in params.
template <class T>
std::array<parameter<T>*, 3> attention_parameters(parameter_set<T>& params, const std::string& name, std::size_t d,
                                                  rng& gen, double out_gain) {
    auto& g = params.add(name + ".norm", xt::ones<T>({d}));
    auto& wqkv = params.add(name + ".qkv", xt::xarray<T>::from_shape({d, 3 * d}));
    auto& wo = params.add(name + ".out", xt::xarray<T>::from_shape({d, d}));
    init::xavier_uniform(wqkv.value, gen);
    init::xavier_uniform(wo.value, gen, out_gain);
    return {&g, &wqkv, &wo};
}
}  // namespace detail

/// A self-attention sublayer of width d with `heads` heads, registered in `params` as name.norm (ones),
/// name.qkv (Xavier-uniform) and name.out (Xavier-uniform scaled by out_gain, e.g. 1/√(2·layers) for
/// deep residual stacks). Example: `auto a = self_attention_layer<float>(params, "l0.attn", 64, 4,
/// {.causal = true, .scale = scale::gradient_max()}, gen);`
template <class T>
std::unique_ptr<self_attention<T>> self_attention_layer(parameter_set<T>& params, const std::string& name,
                                                        std::size_t d, std::size_t heads, ops::attention_options opts,
                                                        rng& gen, double out_gain = 1.0) {
    auto [g, wqkv, wo] = detail::attention_parameters(params, name, d, gen, out_gain);
    return std::make_unique<self_attention<T>>(*g, *wqkv, *wo, heads, std::move(opts));
}

/// A self-attention sublayer with flex attention's modifications (see self_attention): as the factory above,
/// and one parameter name.mod<I> of `heads` values per attn::param<I> the score modification reads, set from
/// mod_init[I] (for ALiBi, the slopes 2^(−8(h+1)/H) of the paper, then learned). Example:
///   auto alibi = attn::score - attn::param<0> * (attn::q_idx - attn::k_idx);
///   auto causal = attn::q_idx - attn::k_idx + 1_c;
///   auto a = self_attention_layer<float>(params, "l0.attn", 64, 4, alibi, causal, {}, {slopes}, gen);
template <class T, class Mod, class Mask>
std::unique_ptr<self_attention<T, Mod, Mask>> self_attention_layer(parameter_set<T>& params, const std::string& name,
                                                                   std::size_t d, std::size_t heads, Mod, Mask,
                                                                   ops::attention_options opts,
                                                                   const std::vector<xt::xtensor<T, 1>>& mod_init,
                                                                   rng& gen, double out_gain = 1.0) {
    auto [g, wqkv, wo] = detail::attention_parameters(params, name, d, gen, out_gain);
    std::vector<parameter<T>*> mods;
    for (std::size_t i = 0; i < mod_init.size(); ++i) {
        mods.push_back(&params.add(name + ".mod" + std::to_string(i), xt::xarray<T>(mod_init[i])));
    }
    return std::make_unique<self_attention<T, Mod, Mask>>(*g, *wqkv, *wo, heads, std::move(opts), std::move(mods));
}

// The layer without modifications is compiled once into libexprgrad, in float and double
// (src/nn/self_attention_float.cpp, _double.cpp): a model's translation unit does not compile the attention
// kernels again (examples/first_composed_model.cpp: 61 -> 13 s). Modified layers instantiate from this header.
extern template class self_attention<float>;
extern template class self_attention<double>;

}  // namespace exprgrad::nn
