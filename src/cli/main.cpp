// Entry point of the `exprgrad` command-line tool.
#include <exception>
#include <iostream>

#include "attention_scale.hpp"
#include "deer.hpp"
#include "subcommands.hpp"
#include "tok.hpp"

int main(int argc, char** argv) {
    CLI::App app{"exprgrad: compile-time symbolic differentiation, structured ops and their analyses"};
    app.require_subcommand(1);
    exprgrad::cli::register_abc(app);
    exprgrad::cli::register_tok(app);
    exprgrad::cli::register_attention_scale(app);
    exprgrad::cli::register_deer(app);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    } catch (const std::exception& e) {
        std::cerr << "exprgrad: " << e.what() << '\n';
        return 1;
    }
    return 0;
}
