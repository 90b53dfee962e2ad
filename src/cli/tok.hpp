// Registration of `exprgrad tok` (the unigram tokenizer's command line); see docs/tokenizer.md.
#pragma once

#include <CLI/CLI.hpp>

namespace exprgrad::cli {

/// `exprgrad tok train|encode|sample|decode|score`: streams stdin to stdout, one line in, one line out
/// (sample: --count lines out per line in).
void register_tok(CLI::App& app);

}  // namespace exprgrad::cli
