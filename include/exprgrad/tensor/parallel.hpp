// Transitional forwarder: the tensor layer's folder is now exprgrad/tensors/ and its namespace
// exprgrad::tensors (issue #15). Kept only while text/lattice_node.hpp and examples/tiny_lm, owned by other
// branches, still name the old path and `tex::`; delete this folder when they follow.
#pragma once

#include "exprgrad/tensors/parallel.hpp"

namespace exprgrad {
namespace tensors {}
namespace tex = tensors;
}  // namespace exprgrad
