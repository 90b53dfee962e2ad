// `exprgrad attention-scale`: the scale analysis of kexue.fm post 9812 (ops/attention_scale.hpp for α* and the
// policies, src/tools/scale_analysis.hpp for the Monte Carlo).
#pragma once

#include <CLI/CLI.hpp>

namespace exprgrad::cli {

/// `exprgrad attention-scale --n N --d D --scores normal|cosine [--stderr E] [--samples S] [--seed X]
/// [--alphas A...] [--csv PATH] [--plot PATH]`: prints `alpha_star: X`, the multipliers of the scale policies,
/// the limit of the exact objective as α → ∞, and E[α(1 − Σp²)] by Monte Carlo over a grid of α (optionally as
/// CSV and as an SVG plot), with what the analysis of the post establishes about it. Bounds (exit 2 beyond):
/// 2 ≤ n ≤ 2^32, 1 ≤ d ≤ 2^20 (cosine: d ≥ 2), 0 ≤ α ≤ 10^4, 2 ≤ S ≤ 10^9 with S·n·(|grid| + 1) ≤ 2·10^9 and
/// n ≤ 2^22 when S is given. Draws stop once every standard error is ≤ E (default 0.01) or after 3·10^7 score
/// evaluations (no Monte Carlo when two draws cost more), so a default run takes well under a second for any n.
void register_attention_scale(CLI::App& app);

}  // namespace exprgrad::cli
