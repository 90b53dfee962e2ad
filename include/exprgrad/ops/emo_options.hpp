// The options of the EMO loss (ops/emo.hpp; docs/emo.md): which objective, the ignored target and the
// weight cap of mode1_capped.
#pragma once

namespace exprgrad::ops {

/// How EMO combines with cross-entropy (see the top of ops/emo.hpp).
enum class emo_objective { ce, emo, mode1, mode1_capped, mode2 };

/// Options of emo_loss. Checked on every call (std::invalid_argument naming the option and its value):
/// objective one of the five enumerators; cap ≥ 0 or +inf (NaN, which would silently mean no cap, and
/// negative values, which would flip the EMO term's sign, are refused), checked whatever the objective.
struct emo_options {
    emo_objective objective = emo_objective::mode1;
    long ignore_index = -100;
    double cap = 3.0;  ///< the weight cap of mode1_capped: ≥ 0 or +inf (+inf: mode1)
};

}  // namespace exprgrad::ops
