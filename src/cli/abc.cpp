// `exprgrad abc N...`: the exact minimum of a + b + c with N = ab + c, one line per number.
#include <cstdint>
#include <exprgrad/math/min_ab_plus_c.hpp>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "cli_options.hpp"
#include "input_check.hpp"
#include "subcommands.hpp"

namespace exprgrad::cli {

namespace {

/// The value of a decimal number in [0, 2^64 − 1] (digits with an optional sign, leading zeros allowed: +5 and
/// -0 are numbers in range), or the reason it is not one. Surrounding blanks (space, tab, CR) are ignored so
/// that lines of CRLF files still parse.
struct parsed {
    std::uint64_t value = 0;
    const char* error = nullptr;
};

parsed parse_u64(std::string_view text) {
    constexpr std::string_view blanks = " \t\r";
    const auto first = text.find_first_not_of(blanks);
    if (first == std::string_view::npos) return {0, "empty"};
    text = text.substr(first, text.find_last_not_of(blanks) - first + 1);
    const bool minus = text[0] == '-';
    if (minus || text[0] == '+') text.remove_prefix(1);
    if (text.empty()) return {0, "not a decimal integer"};
    std::uint64_t v = 0;
    bool too_large = false;
    for (const char ch : text) {
        if (ch < '0' || ch > '9') return {0, "not a decimal integer"};
        const auto digit = static_cast<std::uint64_t>(ch - '0');
        if (too_large || v > (~std::uint64_t{0} - digit) / 10) {
            too_large = true;  // keep reading: a later non-digit makes it "not a decimal integer"
            continue;
        }
        v = v * 10 + digit;
    }
    if (minus && (too_large || v != 0)) return {0, "negative"};
    if (too_large) return {0, "greater than 2^64 - 1 = 18446744073709551615"};
    return {v, nullptr};
}

/// Prints the line for one input, or its error; returns false on error.
bool answer(std::string_view text) {
    const parsed p = parse_u64(text);
    if (p.error != nullptr) {
        std::cerr << "exprgrad abc: invalid number " << tools::shown(text) << ": " << p.error << '\n';
        return false;
    }
    const auto r = math::min_ab_plus_c(p.value);
    std::cout << p.value << '\t' << r.sum() << '\t' << r.a << '\t' << r.b << '\t' << r.c << '\n';
    return true;
}

struct abc_settings {
    std::vector<std::string> numbers;  // as typed: each is parsed and answered on its own
};

}  // namespace

void register_abc(CLI::App& app) {
    auto s = std::make_shared<abc_settings>();
    CLI::App* sub = app.add_subcommand("abc", "Exact minimum of a + b + c over non-negative integers with N = a*b + c");
    sub->footer(
        "Prints one line per N: N<TAB>S<TAB>a<TAB>b<TAB>c, where S = a + b + c is the minimum and, among the\n"
        "optimal triples, a is the smallest. With no N, reads one N per line from stdin (blank lines skipped).\n"
        "An N that is not a decimal integer in [0, 18446744073709551615] gets a one-line error on stderr;\n"
        "the other N are still printed, and the exit status is 1.\n"
        "Example: exprgrad abc 130 prints 130<TAB>23<TAB>10<TAB>13<TAB>0.");
    // Strings, not integers, so that one bad value is reported by name and does not stop the others.
    sub->add_option("N", s->numbers, "Numbers in [0, 2^64 - 1]");
    // Without this, CLI11 rejects an argument such as `-x` as an unknown option and prints nothing else.
    // It lands in remaining() instead, out of order with N, so its error line comes first; stdout keeps
    // the order of the arguments since every valid number is in N.
    sub->allow_extras();
    sub->callback([s, sub] {
        bool ok = true;
        bool any_argument = !s->numbers.empty();
        for (const std::string& extra : sub->remaining()) {
            if (extra == "--") continue;
            any_argument = true;
            ok = answer(extra) && ok;
        }
        if (!any_argument) {
            tools::check_stdin();
            for (std::string line; std::getline(std::cin, line);) {
                // Blank lines (a file's trailing newline, separators) carry no number: skip them.
                if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
                ok = answer(line) && ok;
            }
            tools::check_read(std::cin, "standard input");
        } else {
            for (const std::string& n : s->numbers) ok = answer(n) && ok;
        }
        std::cout.flush();
        if (!std::cout) throw std::runtime_error("cannot write to stdout");
        if (!ok) throw CLI::RuntimeError(1);  // each bad number has its own line
    });
}

}  // namespace exprgrad::cli
