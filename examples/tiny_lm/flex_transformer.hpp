// Internal to tiny_lm's flex stack (flex_stack.cpp): the three attention variants and the stack template. Each
// variant is instantiated in its own translation unit (flex_stack_alibi.cpp, flex_stack_softcap.cpp,
// flex_stack_alibi_softcap.cpp): each compiles the attention layer's blocks once more (~15 s), together 45-55 s.
#pragma once

#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <exprgrad/exprgrad.hpp>
#include <exprgrad/nn/init.hpp>
#include <exprgrad/nn/transformer.hpp>
#include <exprgrad/ops/attention_mods.hpp>

namespace tiny_lm::flex {

using namespace exprgrad;

// ALiBi (position = alibi): the score minus the head's slope times the query-key distance, under the
// options' causal mask.
using alibi_attention = nn::self_attention<float, std::remove_cvref_t<decltype(ops::attn::alibi)>>;
// Soft-capping (softcap = C > 0): C·tanh(z/C) of the score z (ALiBi's z with position = alibi). C comes from the
// command line, so it is a fixed parameter of H equal values (attn::softcap<C> takes a compile-time C).
constexpr auto capped = ops::attn::param<0> * sym::tanh(ops::attn::score / ops::attn::param<0>);
constexpr auto alibi_capped = ops::attn::param<1> * sym::tanh(ops::attn::alibi / ops::attn::param<1>);
using softcap_attention = nn::self_attention<float, std::remove_cvref_t<decltype(capped)>>;
using alibi_softcap_attention = nn::self_attention<float, std::remove_cvref_t<decltype(alibi_capped)>>;

// nn::transformer's stack with flex attention (Attention: alibi_attention and the softcap ones): the same
// parameters, names, initialization order and residual gains, each attention layer reading the fixed `mods` (the
// score modification's parameters of H values each, in `fixed`, which no optimizer sees).
template <class Attention>
nn::transformer_stack<float> flex_transformer(nn::parameter_set<float>& params,
                                              const std::vector<nn::parameter<float>*>& mods, const std::string& name,
                                              const nn::transformer_options& o, rng& gen) {
    if (o.layers == 0 || o.width == 0 || o.heads == 0 || o.width % o.heads != 0)
        throw std::invalid_argument("tiny_lm: width must be a positive multiple of heads");
    const double out_gain = 1.0 / std::sqrt(2.0 * static_cast<double>(o.layers));
    const std::size_t hidden = o.mlp_hidden ? o.mlp_hidden : 4 * o.width;
    nn::transformer_stack<float> s;
    s.blocks = std::make_unique<nn::sequential<float>>();
    for (std::size_t l = 0; l < o.layers; ++l) {
        const std::string p = name + "." + std::to_string(l);
        if (std::find(o.deer_layers.begin(), o.deer_layers.end(), l) != o.deer_layers.end()) {
            auto m = nn::deer_mixer_layer<float>(params, p + ".rnn", o.width, o.deer_state, o.deer, gen, out_gain);
            s.deer.push_back(m.get());
            s.blocks->add(std::make_unique<nn::residual<float>>(std::move(m)));
        } else {
            auto& g = params.add(p + ".attn.norm", xt::ones<float>({o.width}));
            auto& wqkv = params.add(p + ".attn.qkv", xt::xarray<float>::from_shape({o.width, 3 * o.width}));
            auto& wo = params.add(p + ".attn.out", xt::xarray<float>::from_shape({o.width, o.width}));
            nn::init::xavier_uniform(wqkv.value, gen);
            nn::init::xavier_uniform(wo.value, gen, out_gain);
            s.blocks->add(std::make_unique<nn::residual<float>>(
                std::make_unique<Attention>(g, wqkv, wo, o.heads, o.attention, mods)));
        }
        s.blocks->add(std::make_unique<nn::residual<float>>(
            nn::feed_forward<float>(params, p + ".mlp", o.width, hidden, gen, out_gain)));
    }
    return s;
}

/// The stack with each variant (defined in flex_stack_<variant>.cpp).
nn::transformer_stack<float> alibi_stack(nn::parameter_set<float>& params,
                                         const std::vector<nn::parameter<float>*>& mods, const std::string& name,
                                         const nn::transformer_options& o, rng& gen);
nn::transformer_stack<float> softcap_stack(nn::parameter_set<float>& params,
                                           const std::vector<nn::parameter<float>*>& mods, const std::string& name,
                                           const nn::transformer_options& o, rng& gen);
nn::transformer_stack<float> alibi_softcap_stack(nn::parameter_set<float>& params,
                                                 const std::vector<nn::parameter<float>*>& mods,
                                                 const std::string& name, const nn::transformer_options& o, rng& gen);

}  // namespace tiny_lm::flex
