// The scalar symbolic layer: expressions, op table, simplifying constructors, derivatives,
// common-subexpression evaluation and printing.
#pragma once

#include "exprgrad/sym/build.hpp"
#include "exprgrad/sym/derivative.hpp"
#include "exprgrad/sym/evaluate.hpp"
#include "exprgrad/sym/expr.hpp"
#include "exprgrad/sym/ops.hpp"
#include "exprgrad/sym/print.hpp"
