// The one error policy of the command-line programs (contract in cli_options.hpp).
#include "cli_options.hpp"

#include <exception>
#include <iostream>
#include <sstream>
#include <string_view>

namespace exprgrad::tools {

namespace detail {
std::string default_text(double x) {
    std::ostringstream s;
    s << x;
    return s.str();
}
std::string default_text(std::uint64_t x) { return std::to_string(x); }
std::string default_text(std::int64_t x) { return std::to_string(x); }
}  // namespace detail

std::string one_line(const std::string& message, std::size_t limit) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (const char c : message) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte == '\n' || byte == '\t') {
            out += ' ';
        } else if (byte < 0x20 || byte == 0x7F) {
            out += "\\x";
            out += hex[byte >> 4];
            out += hex[byte & 0xF];
        } else {
            out += c;
        }
    }
    if (out.size() > limit) {
        // Cut on a UTF-8 boundary so the line stays valid text.
        std::size_t cut = limit - 3;
        while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
        out = out.substr(0, cut) + "...";
    }
    return out;
}

namespace {

// The deepest selected subcommand (the app itself when none was selected).
const CLI::App* deepest(const CLI::App& app) {
    const CLI::App* at = &app;
    for (;;) {
        const auto subs = at->get_subcommands();
        if (subs.empty()) return at;
        at = subs.front();
    }
}

std::string where(const CLI::App& app, const std::string& program) {
    std::string w = program;
    for (const CLI::App* at = &app;;) {
        const auto subs = at->get_subcommands();
        if (subs.empty()) return w;
        at = subs.front();
        w += " " + at->get_name();
    }
}

// When `at` expects a subcommand and none was selected: the first argument after the names of the subcommand
// chain that leads to `at` (an unknown subcommand, or an option `at` does not know), or "" when there is none.
std::string first_unknown(const CLI::App& at, int argc, const char* const* argv) {
    std::size_t level = 0;  // how many subcommand names of the chain precede `at`'s arguments
    for (const CLI::App* p = &at; p->get_parent() != nullptr; p = p->get_parent()) ++level;
    int i = 1;
    for (std::size_t seen = 0; i < argc && seen < level; ++i)
        if (argv[i][0] != '-') ++seen;  // the chain's names are its only words before `at`'s own
    return i < argc ? argv[i] : std::string();
}

std::string names_of(const CLI::App& at) {
    std::string names;
    for (const CLI::App* sub : at.get_subcommands([](const CLI::App*) { return true; }))
        names += (names.empty() ? "" : ", ") + sub->get_name();
    return names;
}

}  // namespace

int run_main(CLI::App& app, int argc, const char* const* argv, const std::function<void()>& body) {
    std::string program = app.get_name();
    if (program.empty() && argc > 0) {
        program = argv[0];
        program = program.substr(program.find_last_of('/') + 1);
    }
    auto usage = [&](const std::string& message) {
        const std::string w = where(app, program);
        std::cerr << one_line(w + ": " + message + " (see " + w + " --help)") << '\n';
        return 2;
    };
    try {
        app.parse(argc, argv);
        if (body) body();
    } catch (const CLI::RuntimeError& e) {
        return e.get_exit_code();  // the code already printed its diagnostics
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) return app.exit(e);  // --help
        const CLI::App* at = deepest(app);
        const bool wants_subcommand = at->get_require_subcommand_min() > 0 && at->get_subcommands().empty();
        if (wants_subcommand) {
            const std::string word = first_unknown(*at, argc, argv);
            if (!word.empty() && word[0] == '-') return usage("unknown option " + shown(word));
            if (!word.empty()) return usage("unknown subcommand " + shown(word) + " (one of: " + names_of(*at) + ")");
            return usage("missing subcommand (one of: " + names_of(*at) + ")");
        }
        // CLI11 says "guard was given a disallowed flag override" for --guard=2 (add_switch): name the option.
        const std::string what = e.what();
        if (const auto at_override = what.find(" was given a disallowed flag override");
            at_override != std::string::npos && at_override > 0)
            return usage("--" + what.substr(0, at_override) + ": a flag takes no value (give --" +
                         what.substr(0, at_override) + " alone)");
        return usage(what);
    } catch (const usage_error& e) {
        return usage(e.what());
    } catch (const std::exception& e) {
        std::cerr << one_line(where(app, program) + ": " + e.what()) << '\n';
        return 1;
    }
    return 0;
}

}  // namespace exprgrad::tools
