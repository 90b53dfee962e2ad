// `exprgrad attention-scale`: the scale analysis of kexue.fm post 9812 (ops/attention_scale.hpp).
#pragma once

#include <CLI/CLI.hpp>

namespace exprgrad::cli {

/// `exprgrad attention-scale --n N --d D --scores normal|cosine [--samples S] [--seed X] [--alphas A...]
/// [--csv PATH] [--plot PATH]`: prints `alpha_star: X`, the multipliers of the scale policies, the limit of
/// the exact objective as α → ∞, and E[α(1 − Σp²)] by Monte Carlo over a grid of α (optionally as CSV and as
/// an SVG plot), with what the research notes establish about it.
void register_attention_scale(CLI::App& app);

}  // namespace exprgrad::cli
