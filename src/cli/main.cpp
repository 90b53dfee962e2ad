// Entry point of the `exprgrad` command-line tool.
#include <exception>
#include <iostream>
#include <string>

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
    } catch (const CLI::RuntimeError& e) {
        return e.get_exit_code();  // a subcommand that already printed its errors asks for this exit code
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) return app.exit(e);  // --help
        // Name the subcommand the bad argument belongs to, e.g. "exprgrad attention-scale: ...".
        std::string where = "exprgrad";
        for (const CLI::App* sub : app.get_subcommands()) where += " " + sub->get_name();
        std::cerr << where << ": " << e.what() << " (see " << where << " --help)\n";
        return e.get_exit_code();
    } catch (const std::exception& e) {
        std::cerr << "exprgrad: " << e.what() << '\n';
        return 1;
    }
    return 0;
}
