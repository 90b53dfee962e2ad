// The tensor layer: tensor expressions, compile-time reverse mode and the core kernels.
#pragma once

#include "exprgrad/tensor/cross_entropy.hpp"
#include "exprgrad/tensor/elementwise.hpp"
#include "exprgrad/tensor/embedding.hpp"
#include "exprgrad/tensor/graph.hpp"
#include "exprgrad/tensor/layout.hpp"
#include "exprgrad/tensor/map.hpp"
#include "exprgrad/tensor/matmul.hpp"
#include "exprgrad/tensor/norm.hpp"
#include "exprgrad/tensor/parallel.hpp"
#include "exprgrad/tensor/reduce.hpp"
#include "exprgrad/tensor/shape.hpp"
#include "exprgrad/tensor/softmax.hpp"
#include "exprgrad/tensor/value_and_grad.hpp"
