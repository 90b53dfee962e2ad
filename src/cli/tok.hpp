// Registration of `exprgrad tok` (the unigram tokenizer's command line); see docs/tokenizer.md.
#pragma once

#include <CLI/CLI.hpp>

namespace exprgrad::cli {

/// `exprgrad tok train|encode|sample|decode|score`: streams stdin to stdout, one line in, one line out
/// (sample: --count lines out per line in). Standard input that is a directory or closed, and FILES or --vocab that
/// are directories or missing, are refused with exit status 1; bad option values with exit status 2.
void register_tok(CLI::App& app);

}  // namespace exprgrad::cli
