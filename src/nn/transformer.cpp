// nn::transformer in float and double, compiled once into libexprgrad (the header declares it extern); the
// layers it builds are compiled in their own files (self_attention_*.cpp, deer_mixer_*.cpp, feed_forward.cpp).
#include "exprgrad/nn/transformer.hpp"

namespace exprgrad::nn {
template transformer_stack<float> transformer<float>(parameter_set<float>&, const std::string&,
                                                     const transformer_options&, rng&);
template transformer_stack<double> transformer<double>(parameter_set<double>&, const std::string&,
                                                       const transformer_options&, rng&);
}  // namespace exprgrad::nn
