// `exprgrad abc N...`: the exact minimum of a + b + c with N = ab + c, one line per number.
#include <cstdint>
#include <exprgrad/math/min_ab_plus_c.hpp>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "subcommands.hpp"

namespace exprgrad::cli {

namespace {

/// The value of a decimal number in [0, 2^64 − 1], or the reason it is not one. Surrounding blanks
/// (space, tab, CR) are ignored so that lines from files with CRLF endings still parse.
struct parsed {
    std::uint64_t value = 0;
    const char* error = nullptr;
};

parsed parse_u64(std::string_view text) {
    constexpr std::string_view blanks = " \t\r";
    const auto first = text.find_first_not_of(blanks);
    if (first == std::string_view::npos) return {0, "empty"};
    text = text.substr(first, text.find_last_not_of(blanks) - first + 1);
    if (text[0] == '-') return {0, "negative"};
    std::uint64_t v = 0;
    for (const char ch : text) {
        if (ch < '0' || ch > '9') return {0, "not a decimal integer"};
        const auto digit = static_cast<std::uint64_t>(ch - '0');
        if (v > (~std::uint64_t{0} - digit) / 10) return {0, "greater than 2^64 - 1 = 18446744073709551615"};
        v = v * 10 + digit;
    }
    return {v, nullptr};
}

/// The value as printable text on one line: control bytes become \xHH.
std::string quoted(std::string_view text) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out = "'";
    for (const char ch : text) {
        const auto byte = static_cast<unsigned char>(ch);
        if (byte < 0x20 || byte == 0x7F) {
            out += "\\x";
            out += hex[byte >> 4];
            out += hex[byte & 0xF];
        } else {
            out += ch;
        }
    }
    return out + "'";
}

/// Prints the line for one input, or its error; returns false on error.
bool answer(std::string_view text) {
    const parsed p = parse_u64(text);
    if (p.error != nullptr) {
        std::cerr << "exprgrad abc: invalid number " << quoted(text) << ": " << p.error << '\n';
        return false;
    }
    const auto r = math::min_ab_plus_c(p.value);
    std::cout << p.value << '\t' << r.sum() << '\t' << r.a << '\t' << r.b << '\t' << r.c << '\n';
    return true;
}

}  // namespace

void register_abc(CLI::App& app) {
    auto numbers = std::make_shared<std::vector<std::string>>();
    CLI::App* sub = app.add_subcommand(
        "abc",
        "Exact minimum of a + b + c over non-negative integers with N = a*b + c.\n"
        "Prints one line per N: N<TAB>S<TAB>a<TAB>b<TAB>c, where S = a + b + c is the minimum and, among\n"
        "optimal triples, a is the smallest. Reads one N per line from stdin when no N is given.\n"
        "An N that is not a decimal integer in [0, 18446744073709551615] gets an error on stderr; the\n"
        "others are still printed, and the exit status is 1.");
    // Strings, not integers, so that one bad value is reported by name and does not stop the others.
    sub->add_option("N", *numbers, "Numbers in [0, 2^64 - 1]; read from stdin, one per line, when absent");
    sub->callback([numbers] {
        bool ok = true;
        if (numbers->empty()) {
            for (std::string line; std::getline(std::cin, line);) ok = answer(line) && ok;
        } else {
            for (const std::string& n : *numbers) ok = answer(n) && ok;
        }
        std::cout.flush();
        if (!std::cout) {
            std::cerr << "exprgrad abc: cannot write to stdout\n";
            ok = false;
        }
        if (!ok) throw CLI::RuntimeError(1);
    });
}

}  // namespace exprgrad::cli
