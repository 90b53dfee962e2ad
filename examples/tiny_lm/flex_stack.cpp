// The transformer stack with flex attention (flex_stack.hpp): the choice of variant. The variants are compiled
// in their own translation units (flex_transformer.hpp).
#include "flex_stack.hpp"

#include <stdexcept>

#include "flex_transformer.hpp"

namespace tiny_lm {

using namespace exprgrad;

exprgrad::nn::transformer_stack<float> flex_stack(bool alibi, bool softcap, nn::parameter_set<float>& params,
                                                  const std::vector<nn::parameter<float>*>& mods,
                                                  const std::string& name, const nn::transformer_options& o, rng& gen) {
    if (alibi) {
        return softcap ? flex::alibi_softcap_stack(params, mods, name, o, gen)
                       : flex::alibi_stack(params, mods, name, o, gen);
    }
    if (softcap) return flex::softcap_stack(params, mods, name, o, gen);
    throw std::invalid_argument("tiny_lm: flex_stack without a modification (alibi or softcap)");
}

}  // namespace tiny_lm
