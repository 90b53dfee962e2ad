// The tensor layer: tensor expressions, compile-time reverse mode and the tensor op table.
#pragma once

#include "exprgrad/kernels/parallel.hpp"  // the thread pool every node runs on

#include "exprgrad/tensors/compare.hpp"
#include "exprgrad/tensors/count_operand.hpp"
#include "exprgrad/tensors/cross_entropy.hpp"
#include "exprgrad/tensors/elementwise.hpp"
#include "exprgrad/tensors/embedding.hpp"
#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/index_operand.hpp"
#include "exprgrad/tensors/iota.hpp"
#include "exprgrad/tensors/layout.hpp"
#include "exprgrad/tensors/map.hpp"
#include "exprgrad/tensors/matmul.hpp"
#include "exprgrad/tensors/node.hpp"
#include "exprgrad/tensors/norm.hpp"
#include "exprgrad/tensors/one_hot.hpp"
#include "exprgrad/tensors/permute.hpp"
#include "exprgrad/tensors/reduce.hpp"
#include "exprgrad/tensors/shape.hpp"
#include "exprgrad/tensors/slice.hpp"
#include "exprgrad/tensors/softmax.hpp"
#include "exprgrad/tensors/stop_gradient.hpp"
#include "exprgrad/tensors/strided_walk.hpp"
#include "exprgrad/tensors/take_along_axis.hpp"
#include "exprgrad/tensors/value_and_grad.hpp"
#include "exprgrad/tensors/where.hpp"
