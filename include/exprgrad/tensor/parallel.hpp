// Transitional forwarder: the thread pool is now exprgrad/kernels/parallel.hpp, namespace exprgrad::kernels
// (issue #15). Kept only while examples/tiny_lm, owned by another branch, still names this path; delete this
// folder when it follows.
#pragma once

#include "exprgrad/kernels/parallel.hpp"

namespace exprgrad {
using kernels::max_threads;
using kernels::num_threads;
using kernels::parallel_for;
using kernels::set_num_threads;
}  // namespace exprgrad
