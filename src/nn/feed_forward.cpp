// nn::feed_forward's compiled block in float and double, compiled once into libexprgrad (the header declares
// it extern).
#include "exprgrad/nn/feed_forward.hpp"

namespace exprgrad::nn {
template class expr_layer<float, detail::feed_forward_expr, 5>;
template class expr_layer<double, detail::feed_forward_expr, 5>;
}  // namespace exprgrad::nn
