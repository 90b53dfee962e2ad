// tiny_lm's stack with the alibi + softcap attention (flex_transformer.hpp): its own translation unit.
#include "flex_transformer.hpp"

namespace tiny_lm::flex {

nn::transformer_stack<float> alibi_softcap_stack(nn::parameter_set<float>& params,
                                                 const std::vector<nn::parameter<float>*>& mods,
                                                 const std::string& name, const nn::transformer_options& o, rng& gen) {
    return flex_transformer<alibi_softcap_attention>(params, mods, name, o, gen);
}

}  // namespace tiny_lm::flex
