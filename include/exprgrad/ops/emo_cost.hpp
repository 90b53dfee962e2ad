// The transport cost of the EMO loss (ops/emo.hpp, docs/emo.md "Another transport cost") as a sym function of the
// cosine between the normalized embeddings of a class and of the target; 1 − cos by default.
#pragma once

#include <type_traits>

#include "exprgrad/sym/arithmetic.hpp"
#include "exprgrad/sym/expr.hpp"

namespace exprgrad::ops {

/// The default transport cost as a sym function of the cosine x = ⟨ê_k, ê_t⟩ (var<0>): c(x) = 1 − x. Another cost
/// is a template argument of emo_loss (hard targets), e.g. `emo_loss<decltype(sym::square(1_c - sym::var<0>))>(…)`.
using emo_default_cost = std::remove_cvref_t<decltype(sym::c<1> - sym::var<0>)>;

}  // namespace exprgrad::ops
