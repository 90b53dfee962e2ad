// Entry point of the `exprgrad` command-line tool. Each subcommand lives in its own file and registers
// flags → settings → library call → printed lines; tools::run_main is the one error policy (exit 2 for
// usage errors, 1 for failures, one stderr line `exprgrad SUBCOMMAND: message`).
#include "attention_scale.hpp"
#include "cli_options.hpp"
#include "deer.hpp"
#include "subcommands.hpp"
#include "tok.hpp"

int main(int argc, char** argv) {
    CLI::App app{"exprgrad: compile-time symbolic differentiation, structured ops and their analyses", "exprgrad"};
    app.require_subcommand(1);
    exprgrad::cli::register_abc(app);
    exprgrad::cli::register_tok(app);
    exprgrad::cli::register_attention_scale(app);
    exprgrad::cli::register_deer(app);
    return exprgrad::tools::run_main(app, argc, argv);
}
