// A stack of pre-norm transformer blocks composed at run time: depth, width, heads, the attention mask and
// scale policy, and which blocks mix tokens with a DEER recurrence instead of attention are all run-time
// choices. Embeddings and heads stay with the model (an LM head, a classifier): see examples/tiny_lm and
// examples/self_pretraining.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "exprgrad/fields.hpp"
#include "exprgrad/nn/deer_mixer.hpp"
#include "exprgrad/nn/feed_forward.hpp"
#include "exprgrad/nn/layer.hpp"
#include "exprgrad/nn/residual.hpp"
#include "exprgrad/nn/self_attention.hpp"

namespace exprgrad::nn {

/// The shape of a transformer stack. Its fields are listed once, in the BOOST_HANA_ADAPT_STRUCT below;
/// to_string(options) prints them from that list.
struct transformer_options {
    std::size_t layers = 2;
    std::size_t width = 128;                 ///< d, the residual stream's width
    std::size_t heads = 4;                   ///< must divide width
    std::size_t mlp_hidden = 0;              ///< feed-forward hidden width; 0: 4·width
    ops::attention_options attention{};      ///< mask (causal or not) and scale policy of every attention
    std::vector<std::size_t> deer_layers{};  ///< blocks whose token mixer is a DEER recurrence
    std::size_t deer_state = 32;             ///< state width n of those recurrences
    ops::deer_options deer{};                ///< their solver options
};

/// The blocks, and handles on their attention layers (for key padding) and DEER mixers (for their reports).
template <class T>
struct transformer_stack {
    std::unique_ptr<sequential<T>> blocks;
    std::vector<deer_mixer<T>*> deer;
    std::vector<self_attention<T>*> attention;

    /// Key padding for every attention layer (see self_attention::set_key_lengths). DEER blocks are
    /// recurrences: padding at the end of a sequence does not affect its real positions.
    void set_key_lengths(const std::vector<std::size_t>& lengths) {
        for (auto* a : attention) a->set_key_lengths(lengths);
    }
};

/// Builds `layers` blocks x ← x + mixer(x); x ← x + feed_forward(x) on x [B, T, width], registering the
/// parameters as name.<i>.attn.* (or name.<i>.rnn.* for a DEER block) and name.<i>.mlp.*. Output
/// projections are scaled by 1/√(2·layers) at initialization (GPT-2's residual scaling). Throws
/// std::invalid_argument for zero sizes, heads not dividing width, or a deer layer index ≥ layers.
/// Example: `auto s = transformer<float>(params, "tf", {.layers = 2, .width = 64, .heads = 4,
///           .attention = {.causal = true}}, gen); const auto& y = s.blocks->forward(x);`
template <class T>
transformer_stack<T> transformer(parameter_set<T>& params, const std::string& name, const transformer_options& o,
                                 rng& gen) {
    if (o.layers == 0 || o.width == 0 || o.heads == 0 || o.width % o.heads != 0) {
        throw tensors::shape_error(
            "nn::transformer", "layers = " + std::to_string(o.layers) + ", width = " + std::to_string(o.width) +
                                   ", heads = " + std::to_string(o.heads) + " (all positive, heads dividing width)");
    }
    for (std::size_t l : o.deer_layers) {
        if (l >= o.layers) {
            throw tensors::shape_error("nn::transformer", "deer layer " + std::to_string(l) +
                                                              " is not below layers = " + std::to_string(o.layers));
        }
    }
    const double out_gain = 1.0 / std::sqrt(2.0 * static_cast<double>(o.layers));
    const std::size_t hidden = o.mlp_hidden ? o.mlp_hidden : 4 * o.width;
    transformer_stack<T> s;
    s.blocks = std::make_unique<sequential<T>>();
    for (std::size_t l = 0; l < o.layers; ++l) {
        const std::string p = name + "." + std::to_string(l);
        if (std::find(o.deer_layers.begin(), o.deer_layers.end(), l) != o.deer_layers.end()) {
            auto m = deer_mixer_layer<T>(params, p + ".rnn", o.width, o.deer_state, o.deer, gen, out_gain);
            s.deer.push_back(m.get());
            s.blocks->add(std::make_unique<residual<T>>(std::move(m)));
        } else {
            auto a = self_attention_layer<T>(params, p + ".attn", o.width, o.heads, o.attention, gen, out_gain);
            s.attention.push_back(a.get());
            s.blocks->add(std::make_unique<residual<T>>(std::move(a)));
        }
        s.blocks->add(
            std::make_unique<residual<T>>(feed_forward<T>(params, p + ".mlp", o.width, hidden, gen, out_gain)));
    }
    return s;
}

// Compiled once into libexprgrad in float and double (src/nn/transformer.cpp), with the layers it builds.
extern template transformer_stack<float> transformer<float>(parameter_set<float>&, const std::string&,
                                                            const transformer_options&, rng&);
extern template transformer_stack<double> transformer<double>(parameter_set<double>&, const std::string&,
                                                              const transformer_options&, rng&);

}  // namespace exprgrad::nn

// The one list of transformer_options' fields (what to_string prints). The attention and DEER options are
// adapted next to their structs (ops/attention_options.hpp, ops/deer_types.hpp) and print nested.
BOOST_HANA_ADAPT_STRUCT(exprgrad::nn::transformer_options, layers, width, heads, mlp_hidden, attention, deer_layers,
                        deer_state, deer);

namespace exprgrad::nn {

namespace detail {
// A field added to transformer_options but not to its adaptation would be missing from every printout: the
// structured binding stops compiling when the struct's field count changes, the assertion when the list's does.
static_assert(field_count_v<transformer_options> == 8, "transformer_options: update BOOST_HANA_ADAPT_STRUCT");
[[maybe_unused]] inline void transformer_options_field_guard(const transformer_options& o) {
    [[maybe_unused]] const auto& [f1, f2, f3, f4, f5, f6, f7, f8] = o;
}
}  // namespace detail

/// The options as `name=value` pairs in declaration order (exprgrad::fields_to_string), e.g.
/// "layers=2 width=128 heads=4 mlp_hidden=0 attention={causal=false normalize_qk=false scale=scale::inv_sqrt_d()
/// qk_eps=1e-06 threads=0} deer_layers=[] deer_state=32 deer={method=newton max_iter=0 atol=-1 rtol=-1
/// guard=false fallback=true scan={chunks=0 min_chunk=1024}}" (without the line breaks). For logs and run
/// reports; not parsed back.
inline std::string to_string(const transformer_options& o) { return fields_to_string(o); }

}  // namespace exprgrad::nn
