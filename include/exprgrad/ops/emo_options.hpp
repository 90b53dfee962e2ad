// The options of the EMO loss (ops/emo.hpp; docs/emo.md): which objective, the ignored target and the
// weight cap of mode1_capped.
#pragma once

#include <string>

#include "exprgrad/fields.hpp"
#include "exprgrad/format.hpp"

namespace exprgrad::ops {

/// How EMO combines with cross-entropy (see the top of ops/emo.hpp).
enum class emo_objective { ce, emo, mode1, mode1_capped, mode2 };

/// The enumerator's name: "ce", "emo", "mode1", "mode1_capped", "mode2"; a value outside the enum (which
/// emo_loss refuses) as "emo_objective(7)". Never throws except std::bad_alloc.
inline std::string to_string(emo_objective o) {
    switch (o) {
        case emo_objective::ce:
            return "ce";
        case emo_objective::emo:
            return "emo";
        case emo_objective::mode1:
            return "mode1";
        case emo_objective::mode1_capped:
            return "mode1_capped";
        case emo_objective::mode2:
            return "mode2";
    }
    return "emo_objective(" + format_number(static_cast<int>(o)) + ")";
}

/// Options of emo_loss, every field a setting listed in the BOOST_HANA_ADAPT_STRUCT below. Checked on every call
/// (std::invalid_argument naming the option and its value): objective one of the five enumerators; cap ≥ 0 or +inf
/// (NaN, which would silently mean no cap, and negative values, which would flip the EMO term's sign, are refused),
/// checked whatever the objective.
struct emo_options {
    emo_objective objective = emo_objective::mode1;
    long ignore_index = -100;
    double cap = 3.0;  ///< the weight cap of mode1_capped: ≥ 0 or +inf (+inf: mode1)
};

}  // namespace exprgrad::ops

// The one list of emo_options' fields (what to_string prints).
BOOST_HANA_ADAPT_STRUCT(exprgrad::ops::emo_options, objective, ignore_index, cap);

namespace exprgrad::ops {

namespace detail {
// A field added to emo_options but not to the list above: the binding or the assertion stops the build.
static_assert(field_count_v<emo_options> == 3, "emo_options: update BOOST_HANA_ADAPT_STRUCT");
[[maybe_unused]] inline void emo_options_field_guard(const emo_options& o) {
    [[maybe_unused]] const auto& [f1, f2, f3] = o;
}
}  // namespace detail

/// The options as `name=value` pairs in declaration order (exprgrad::fields_to_string), the objective by
/// name. The defaults print "objective=mode1 ignore_index=-100 cap=3". For logs and run reports; not parsed
/// back. Never throws except std::bad_alloc.
inline std::string to_string(const emo_options& o) { return fields_to_string(o); }

}  // namespace exprgrad::ops
