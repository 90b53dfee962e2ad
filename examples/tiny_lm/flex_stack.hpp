// The transformer stack with flex attention (position = alibi and/or softcap > 0): its own translation unit,
// as each score modification instantiates the attention layer's compiled blocks once more.
#pragma once

#include <string>
#include <vector>

#include <exprgrad/nn/parameters.hpp>
#include <exprgrad/nn/transformer.hpp>
#include <exprgrad/random.hpp>

namespace tiny_lm {

/// nn::transformer's stack (same parameters, names, initialization order and residual gains) whose attention
/// layers run flex attention: ALiBi when `alibi`, C·tanh(z/C) soft-capping when `softcap` (at least one of the
/// two). `mods` are the modification's fixed parameters of H values each (the ALiBi slopes, then the cap), read
/// by every attention layer and seen by no optimizer. Throws std::invalid_argument when neither is asked for or
/// when the width is not a positive multiple of the heads.
exprgrad::nn::transformer_stack<float> flex_stack(bool alibi, bool softcap,
                                                  exprgrad::nn::parameter_set<float>& params,
                                                  const std::vector<exprgrad::nn::parameter<float>*>& mods,
                                                  const std::string& name,
                                                  const exprgrad::nn::transformer_options& o, exprgrad::rng& gen);

}  // namespace tiny_lm
