// nn::feed_forward's layer in float and double, compiled once into libexprgrad (the header declares it
// extern).
#include "exprgrad/nn/feed_forward.hpp"

namespace exprgrad::nn {
template class detail::feed_forward_layer<float>;
template class detail::feed_forward_layer<double>;
}  // namespace exprgrad::nn
