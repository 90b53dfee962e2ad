// CLI11 glue shared by the command-line programs (the `exprgrad` tool, examples/tiny_lm): every numeric
// option is registered through add_number / add_numbers, so it is parsed by strict_number.hpp, and every
// program ends through run_main, the one error policy:
//
//   * a usage error (a bad option value, an unknown option or subcommand, a missing argument): one line
//     `PROGRAM SUBCOMMAND: message (see PROGRAM SUBCOMMAND --help)` on stderr, exit status 2;
//   * any other failure (a std::exception from the library, I/O): one line `PROGRAM SUBCOMMAND: message`,
//     exit status 1;
//   * `--help`: the help on stdout, exit status 0;
//   * CLI::RuntimeError(code) thrown by a subcommand that printed its own diagnostics: exit status `code`.
// Lines are at most 400 characters (longer messages are cut, control bytes written \xHH).
//
// Example:
//   CLI::App app{"tiny_lm: ...", "tiny_lm"};
//   std::uint64_t steps = 1000;
//   tools::add_number(app, "--steps", steps, "Training steps", 1, 100'000'000);
//   return tools::run_main(app, argc, argv, [&] { train(steps); });
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "strict_number.hpp"

namespace exprgrad::tools {

namespace detail {
std::string default_text(double x);
std::string default_text(std::uint64_t x);
std::string default_text(std::int64_t x);

template <class T>
T parse_as(const std::string& option, const std::string& text, T lo, T hi, bool allow_inf) {
    if constexpr (std::is_floating_point_v<T>) {
        return static_cast<T>(parse_double(option, text, static_cast<double>(lo), static_cast<double>(hi), allow_inf));
    } else if constexpr (std::is_unsigned_v<T>) {
        return static_cast<T>(parse_unsigned(option, text, lo, hi));
    } else {
        return static_cast<T>(parse_signed(option, text, lo, hi));
    }
}

template <class T>
std::string shown_default(T x) {
    if constexpr (std::is_floating_point_v<T>)
        return default_text(static_cast<double>(x));
    else if constexpr (std::is_unsigned_v<T>)
        return default_text(static_cast<std::uint64_t>(x));
    else
        return default_text(static_cast<std::int64_t>(x));
}
}  // namespace detail

/// Registers the numeric option `name` (e.g. "--seed" or "--output,-o") of `app`, stored in `target`. The text
/// given on the command line is parsed strictly (strict_number.hpp) into [lo, hi]; a bad value throws
/// usage_error naming the option. The current value of `target` is shown in --help as the default.
/// T: an arithmetic type (unsigned, signed or floating); `allow_inf` admits ±inf for floating T when inside
/// [lo, hi]. Returns the CLI11 option (for ->required() and the like; a required option shows no default
/// with ->required()->default_str("")).
template <class T>
CLI::Option* add_number(CLI::App& app, const std::string& name, T& target, const std::string& description, T lo, T hi,
                        bool allow_inf = false) {
    static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>, "add_number: T must be a number type");
    const std::string shown_name = name.substr(0, name.find(','));
    CLI::Option* opt = app.add_option_function<std::string>(
        name,
        [&target, shown_name, lo, hi, allow_inf](const std::string& text) {
            target = detail::parse_as<T>(shown_name, text, lo, hi, allow_inf);
        },
        description);
    opt->type_name(std::is_floating_point_v<T> ? "FLOAT" : "INT");
    opt->default_str(detail::shown_default(target));
    return opt;
}

/// The same for an option taking one or more numbers (e.g. `--alphas 0.5 1 2`), each in [lo, hi].
template <class T>
CLI::Option* add_numbers(CLI::App& app, const std::string& name, std::vector<T>& target, const std::string& description,
                         T lo, T hi, bool allow_inf = false) {
    static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>, "add_numbers: T must be a number type");
    const std::string shown_name = name.substr(0, name.find(','));
    CLI::Option* opt = app.add_option_function<std::vector<std::string>>(
        name,
        [&target, shown_name, lo, hi, allow_inf](const std::vector<std::string>& texts) {
            target.clear();
            for (const auto& text : texts) target.push_back(detail::parse_as<T>(shown_name, text, lo, hi, allow_inf));
        },
        description);
    opt->type_name(std::is_floating_point_v<T> ? "FLOAT" : "INT");
    return opt;
}

/// A CLI11 check refusing an empty value (e.g. `--csv ''`), which would otherwise read as "not given" and
/// silently write nothing: a usage error (exit 2) "--csv: an empty path ...". Example:
/// `app.add_option("--out", out, "...")->check(tools::non_empty_path());`.
inline CLI::Validator non_empty_path() {
    return CLI::Validator(
        [](std::string& value) {
            return value.empty() ? std::string("an empty path; give a file name or leave the option out")
                                 : std::string();
        },
        "PATH", "non_empty_path");
}

/// Registers the on/off flag `name` (e.g. "--guard" or "--quiet,-q"): given once, without a value. A value
/// (`--guard=2`, `--guard=false`) or the flag given twice is a usage error naming it, as for any option
/// given a bad value (CLI11 alone accepted all three). Example: `tools::add_switch(*sub, "--guard", s.guard, "...")`.
inline CLI::Option* add_switch(CLI::App& app, const std::string& name, bool& target, const std::string& description) {
    return app.add_flag(name, target, description)
        ->disable_flag_override()
        ->multi_option_policy(CLI::MultiOptionPolicy::Throw);
}

/// `message` as one stderr line: newlines and other control bytes written \xHH, cut to `limit` characters.
std::string one_line(const std::string& message, std::size_t limit = 400);

/// Parses the command line and runs the selected subcommands' callbacks, then `body` (if any), under the
/// error policy described at the top of this header. The program's name is app.get_name(), or the last
/// component of argv[0] when the app has none. Returns the process exit status.
int run_main(CLI::App& app, int argc, const char* const* argv, const std::function<void()>& body = {});

}  // namespace exprgrad::tools
