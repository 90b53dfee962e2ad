// Multi-head self-attention as a run-time layer: pre-norm, one fused QKV projection, the blocked
// attention kernels of ops/attention.hpp with a scale policy chosen at run time, an output projection.
// With a score or mask modification (flex attention, ops/flex_attention.hpp) the layer runs the fused flex
// kernels and learns the modification's per-head parameters (ALiBi slopes, a bias per head, ...).
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>
#include <xtensor/xtensor.hpp>

#include "exprgrad/nn/init.hpp"
#include "exprgrad/nn/layer.hpp"
#include "exprgrad/nn/parameters.hpp"
#include "exprgrad/ops/attention.hpp"
#include "exprgrad/ops/flex_attention.hpp"
#include "exprgrad/random.hpp"
#include "exprgrad/tensors/matmul.hpp"
#include "exprgrad/tensors/norm.hpp"

namespace exprgrad::nn {

namespace detail {
// [B,T,D] -> [B,T,3D]: rms_norm(x, g)·Wqkv; [B,T,D] -> [B,T,D]: o·Wo.
using qkv_projection =
    decltype(tensors::matmul(tensors::rms_norm(tensors::Input<0>{}, tensors::Input<1>{}), tensors::Input<2>{}));
using out_projection = decltype(tensors::matmul(tensors::Input<0>{}, tensors::Input<1>{}));
}  // namespace detail

/// f(x) = attention(split(rms_norm(x, g)·Wqkv))·Wo for x [B, T, D]: H heads of width D/H, the options'
/// mask and scale policy. Padded batches: set_key_lengths before forward (opts.key_lengths itself must
/// be empty at construction, as the lengths change with every batch).
/// Parameters: g [D], Wqkv [D, 3D] (columns q | k | v, head h at h·D/H within each), Wo [D, D].
/// Not reentrant; the returned arrays stay valid until the next call. Wrap it in nn::residual for
/// a pre-norm transformer sublayer.
///
/// Mod and Mask: flex attention's score and mask modifications (scalar DSL expressions of attn::score,
/// attn::batch, attn::head, attn::q_idx, attn::k_idx and attn::param<I>; docs/flex_attention.md). The defaults
/// (a bare score, no mask) run ops::attention. Each attn::param<I> the score modification reads is a parameter
/// of H values passed to the constructor (mod_params, in order of I), learned with the rest: backward adds
/// its gradient, flex_attention_vjp's dparams[I]. Example: `self_attention<float, decltype(alibi),
/// decltype(causal)>(g, wqkv, wo, 4, opts, {&slopes})`.
template <class T, class Mod = std::remove_cvref_t<decltype(ops::attn::score)>,
          class Mask = std::remove_cvref_t<decltype(sym::c<1>)>>
class self_attention : public layer<T> {
    static constexpr bool plain = ops::detail::flex::identity_mod_v<Mod> && ops::detail::flex::mask_always_visible<Mask>();
    static constexpr std::size_t mod_param_count = ops::detail::flex::param_count_v<Mod>;

  public:
    self_attention(parameter<T>& norm, parameter<T>& w_qkv, parameter<T>& w_out, std::size_t heads,
                   ops::attention_options opts, std::vector<parameter<T>*> mod_params = {})
        : in_({&norm, &w_qkv}), out_({&w_out}), heads_(heads), opts_(std::move(opts)),
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

    const xt::xarray<T>& forward(const xt::xarray<T>& x) override {
        if (x.dimension() != 3 || x.shape(2) != width_) {
            throw tensors::shape_error("nn::self_attention", "input must be [B, T, " + std::to_string(width_) + "]");
        }
        const xt::xarray<T>& qkv = in_.forward(x);
        const std::size_t B = x.shape(0), Tn = x.shape(1), H = heads_, dh = width_ / H;
        const std::array<std::size_t, 4> hs{B, H, Tn, dh};
        for (auto* a : {&q_, &k_, &v_}) resize(*a, hs);
        for (std::size_t b = 0; b < B; ++b)
            for (std::size_t t = 0; t < Tn; ++t) {
                const T* row = qkv.data() + (b * Tn + t) * 3 * width_;
                for (std::size_t h = 0; h < H; ++h) {
                    const std::size_t o = ((b * H + h) * Tn + t) * dh;
                    for (std::size_t i = 0; i < dh; ++i) {
                        q_.data()[o + i] = row[h * dh + i];
                        k_.data()[o + i] = row[width_ + h * dh + i];
                        v_.data()[o + i] = row[2 * width_ + h * dh + i];
                    }
                }
            }
        if constexpr (plain) {
            ops::attention_forward_into(q_, k_, v_, opts_, o_, lse_, ws_);
        } else {
            load_mod_params();
            o_ = ops::flex_attention_forward(q_, k_, v_, Mod{}, Mask{}, mod_values_, opts_).out;
        }
        merged_.resize({B, Tn, width_});
        merge(o_, merged_.data(), width_, 0);
        return out_.forward(merged_);
    }

    const xt::xarray<T>& backward(const xt::xarray<T>& dy) override {
        const xt::xarray<T>& dmerged = out_.backward(dy);
        const std::size_t B = q_.shape(0), H = heads_, Tn = q_.shape(2), dh = width_ / H;
        resize(do_, {B, H, Tn, dh});
        for (std::size_t b = 0; b < B; ++b)
            for (std::size_t t = 0; t < Tn; ++t)
                for (std::size_t h = 0; h < H; ++h)
                    for (std::size_t i = 0; i < dh; ++i)
                        do_.data()[((b * H + h) * Tn + t) * dh + i] =
                            dmerged.data()[(b * Tn + t) * width_ + h * dh + i];
        if constexpr (plain) {
            ops::attention_vjp_into(q_, k_, v_, o_, lse_, do_, opts_, g_, ws_);
        } else {
            load_mod_params();  // the values of the forward pass (an optimizer step comes after backward)
            auto fg = ops::flex_attention_vjp(q_, k_, v_, do_, Mod{}, Mask{}, mod_values_, opts_);
            g_.dq = std::move(fg.dq);
            g_.dk = std::move(fg.dk);
            g_.dv = std::move(fg.dv);
            for (std::size_t i = 0; i < mod_param_count; ++i) {
                parameter<T>& p = *mod_params_[i];
                p.accumulate_grad(xt::xarray<T>(fg.dparams[i]));
            }
        }
        dqkv_.resize({B, Tn, 3 * width_});
        merge(g_.dq, dqkv_.data(), 3 * width_, 0);
        merge(g_.dk, dqkv_.data(), 3 * width_, width_);
        merge(g_.dv, dqkv_.data(), 3 * width_, 2 * width_);
        return in_.backward(dqkv_);
    }

    void set_recompute(bool on) override {
        in_.set_recompute(on);
        out_.set_recompute(on);
    }

    const ops::attention_options& options() const { return opts_; }

    /// Key padding for the following forward and backward calls: keys t ≥ lengths[b] of sequence b are
    /// masked for every query (one entry per sequence, each ≤ T; empty: no padding). The outputs at
    /// padded positions are still computed (from the real keys) and should be ignored by the loss.
    /// Example: `attn.set_key_lengths({5, 3});` for a batch of two sequences padded to T ≥ 5.
    void set_key_lengths(std::vector<std::size_t> lengths) { opts_.key_lengths = std::move(lengths); }

  private:
    void load_mod_params() {
        mod_values_.resize(mod_param_count);
        for (std::size_t i = 0; i < mod_param_count; ++i) {
            const auto& v = mod_params_[i]->value;
            mod_values_[i].resize({v.size()});
            std::copy(v.begin(), v.end(), mod_values_[i].begin());
        }
    }
    static void resize(xt::xtensor<T, 4>& a, const std::array<std::size_t, 4>& s) {
        if (!std::equal(s.begin(), s.end(), a.shape().begin())) a.resize(s);
    }
    // Writes heads [B,H,T,dh] into columns [offset, offset + D) of rows of width `stride`.
    void merge(const xt::xtensor<T, 4>& a, T* dst, std::size_t stride, std::size_t offset) const {
        const std::size_t B = a.shape(0), H = a.shape(1), Tn = a.shape(2), dh = a.shape(3);
        for (std::size_t b = 0; b < B; ++b)
            for (std::size_t h = 0; h < H; ++h)
                for (std::size_t t = 0; t < Tn; ++t) {
                    const T* s = a.data() + ((b * H + h) * Tn + t) * dh;
                    T* d = dst + (b * Tn + t) * stride + offset + h * dh;
                    for (std::size_t i = 0; i < dh; ++i) d[i] = s[i];
                }
    }

    expr_layer<T, detail::qkv_projection, 2> in_;
    expr_layer<T, detail::out_projection, 1> out_;
    std::size_t heads_, width_ = 0;
    ops::attention_options opts_;
    xt::xtensor<T, 4> q_, k_, v_, o_, do_;
    xt::xtensor<T, 3> lse_;
    xt::xarray<T> merged_, dqkv_;
    ops::attention_grads<T> g_;
    ops::attention_workspace<T> ws_;
    std::vector<parameter<T>*> mod_params_;
    std::vector<xt::xtensor<T, 1>> mod_values_;
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

}  // namespace exprgrad::nn
