// nn::deer_mixer<float>, compiled once into libexprgrad (the header declares it extern): the DEER node and its
// solver would otherwise be compiled again by every model's translation unit.
#include "exprgrad/nn/deer_mixer.hpp"

namespace exprgrad::nn {
template class deer_mixer<float>;
}  // namespace exprgrad::nn
