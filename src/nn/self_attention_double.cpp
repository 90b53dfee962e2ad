// nn::self_attention<double> without modifications, compiled once into libexprgrad (the header declares it
// extern): its attention node and projections are the heaviest instantiation of a model's translation unit.
#include "exprgrad/nn/self_attention.hpp"

namespace exprgrad::nn {
template class self_attention<double>;
}  // namespace exprgrad::nn
