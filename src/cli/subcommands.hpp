// Registration of the `exprgrad` tool's subcommands; each lives in its own source file.
#pragma once

#include <CLI/CLI.hpp>

namespace exprgrad::cli {

/// `exprgrad abc N...`: the exact minimum of a + b + c with N = ab + c (math::min_ab_plus_c).
void register_abc(CLI::App& app);

}  // namespace exprgrad::cli
