// Strict parsing of the numbers typed on a command line (issue #16: "Numbers on every command line are
// parsed strictly"). Part of exprgrad_tools, the non-installed library of the command-line programs.
//
// A value is accepted only when the WHOLE string is one number inside the caller's closed range [lo, hi]:
//   * no empty string, no leading or trailing blanks or junk ("5 ", " 5", "5x", "0x10" are refused);
//   * integers: decimal digits with an optional sign ('+' always, '-' only for signed targets, so "-0" is
//     refused for an unsigned one), or the exponent form of a whole number ("1e3", "2.5e1"), evaluated
//     exactly (no rounding through double); no wrap, no clamp: a value outside [lo, hi] is an error;
//   * doubles: std::from_chars' decimal forms ("1", "-2.5", ".5", "1e-3"); "nan" is always refused, "inf",
//     "+inf", "-inf" and "infinity" only when the caller allows infinities; a value that overflows a double
//     ("1e309") or underflows to zero/denormal range reported by from_chars is refused, never rounded to inf/0.
// Every refusal throws tools::usage_error whose message names the option, quotes the value (control bytes as
// \xHH, cut to 40 characters + "..." when longer) and states the range with readable bounds, e.g.
//   --seed: '-1' is negative; want a whole number in [0, 18446744073709551615]
//   --alpha: '1e309' is out of range; want a number in [-1.79769e+308, 1.79769e+308]
#pragma once

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>

namespace exprgrad::tools {

/// A bad command line: a value that is not a number in range, an unknown option or subcommand, a missing
/// argument. run_main (cli_options.hpp) maps it to exit status 2; every other std::exception means 1.
struct usage_error : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

/// `text` as one printable, quoted piece of an error line: '...' with control bytes written \xHH and only the
/// first 40 characters kept (then "..."). Example: shown("a\nb") == "'a\\x0ab'".
std::string shown(std::string_view text);

/// A number for an error message, as every message of the library shows one (exprgrad::format_number):
/// integers in decimal; doubles in the shortest form that reads back exactly (1.7976931348623157e+308, never
/// 309 digits; 0.9995, not 0.999500), "inf"/"-inf" for infinities. Example: readable(0.9995) == "0.9995".
std::string readable(double x);
std::string readable(std::uint64_t x);
std::string readable(std::int64_t x);

/// The unsigned integer `text` in [lo, hi]; throws usage_error naming `option` otherwise.
/// Example: parse_unsigned("--n", "1e3", 2, 1 << 20) == 1000; parse_unsigned("--n", "-1", 0, 9) throws.
std::uint64_t parse_unsigned(std::string_view option, std::string_view text, std::uint64_t lo = 0,
                             std::uint64_t hi = std::numeric_limits<std::uint64_t>::max());

/// The signed integer `text` in [lo, hi]; throws usage_error naming `option` otherwise.
std::int64_t parse_signed(std::string_view option, std::string_view text,
                          std::int64_t lo = std::numeric_limits<std::int64_t>::min(),
                          std::int64_t hi = std::numeric_limits<std::int64_t>::max());

/// The double `text` in [lo, hi] (finite unless `allow_inf`; NaN never); throws usage_error naming `option`
/// otherwise. Example: parse_double("--g", "0.5", 0, 10) == 0.5; parse_double("--g", "nan", 0, 10) throws.
double parse_double(std::string_view option, std::string_view text, double lo = std::numeric_limits<double>::lowest(),
                    double hi = std::numeric_limits<double>::max(), bool allow_inf = false);

}  // namespace exprgrad::tools
