// The tensor layer: tensor expressions, compile-time reverse mode and the tensor op table.
#pragma once

#include "exprgrad/kernels/parallel.hpp"  // the thread pool every node runs on

#include "exprgrad/tensors/cross_entropy.hpp"
#include "exprgrad/tensors/elementwise.hpp"
#include "exprgrad/tensors/embedding.hpp"
#include "exprgrad/tensors/evaluate.hpp"
#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/layout.hpp"
#include "exprgrad/tensors/map.hpp"
#include "exprgrad/tensors/matmul.hpp"
#include "exprgrad/tensors/node.hpp"
#include "exprgrad/tensors/norm.hpp"
#include "exprgrad/tensors/reduce.hpp"
#include "exprgrad/tensors/shape.hpp"
#include "exprgrad/tensors/softmax.hpp"
#include "exprgrad/tensors/value_and_grad.hpp"
