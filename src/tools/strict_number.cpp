// Strict number parsing for the command-line programs (contract in strict_number.hpp).
#include "strict_number.hpp"

#include "exprgrad/format.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <string>
#include <system_error>

namespace exprgrad::tools {

std::string shown(std::string_view text) {
    constexpr std::size_t keep = 40;
    static constexpr char hex[] = "0123456789abcdef";
    std::string out = "'";
    for (std::size_t i = 0; i < text.size() && i < keep; ++i) {
        const auto byte = static_cast<unsigned char>(text[i]);
        if (byte < 0x20 || byte == 0x7F) {
            out += "\\x";
            out += hex[byte >> 4];
            out += hex[byte & 0xF];
        } else {
            out += text[i];
        }
    }
    out += '\'';
    if (text.size() > keep) out += "... (" + std::to_string(text.size()) + " characters)";
    return out;
}

std::string readable(double x) { return format_number(x); }
std::string readable(std::uint64_t x) { return format_number(x); }
std::string readable(std::int64_t x) { return format_number(x); }

namespace {

[[noreturn]] void refuse(std::string_view option, std::string_view text, std::string_view why,
                         const std::string& want) {
    throw usage_error(std::string(option) + ": " + shown(text) + " " + std::string(why) + "; want " + want);
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

/// A whole number read exactly: its sign and magnitude, or why it is not one.
struct whole {
    bool negative = false;
    std::uint64_t magnitude = 0;
    const char* error = nullptr;  // "is empty", "is not a whole number", "is out of range"
};

// Digits (no sign) to a magnitude, or "out of range" past 2^64 − 1.
whole accumulate(std::string_view digits, whole w) {
    for (const char c : digits) {
        const auto d = static_cast<std::uint64_t>(c - '0');
        if (w.magnitude > (~std::uint64_t{0} - d) / 10) {
            w.error = "is out of range";
            return w;
        }
        w.magnitude = w.magnitude * 10 + d;
    }
    return w;
}

whole read_whole(std::string_view text) {
    whole w;
    if (text.empty()) return w.error = "is empty", w;
    if (text[0] == '+' || text[0] == '-') {
        w.negative = text[0] == '-';
        text.remove_prefix(1);
    }
    std::size_t i = 0;
    while (i < text.size() && is_digit(text[i])) ++i;
    const std::string_view int_part = text.substr(0, i);
    if (i == text.size()) {
        if (int_part.empty()) return w.error = "is not a whole number", w;
        return accumulate(int_part, w);
    }
    // The exponent form of a whole number, evaluated exactly: digits[.digits](e|E)[sign]digits.
    std::string_view frac_part;
    if (text[i] == '.') {
        const std::size_t start = ++i;
        while (i < text.size() && is_digit(text[i])) ++i;
        frac_part = text.substr(start, i - start);
    }
    if (int_part.empty() && frac_part.empty()) return w.error = "is not a whole number", w;
    if (i == text.size() || (text[i] != 'e' && text[i] != 'E')) return w.error = "is not a whole number", w;
    ++i;
    bool exp_negative = false;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) exp_negative = text[i++] == '-';
    const std::size_t exp_start = i;
    long long exponent = 0;
    for (; i < text.size() && is_digit(text[i]); ++i)
        if (exponent < 1'000'000) exponent = exponent * 10 + (text[i] - '0');  // beyond: decided below anyway
    if (i == exp_start || i != text.size()) return w.error = "is not a whole number", w;
    if (exp_negative) exponent = -exponent;

    const std::string mantissa = std::string(int_part) + std::string(frac_part);
    const auto first_nonzero = mantissa.find_first_not_of('0');
    if (first_nonzero == std::string::npos) return w;  // zero, whatever the exponent
    // The decimal point sits after int_part.size() + exponent digits of the mantissa.
    const long long point = static_cast<long long>(int_part.size()) + exponent;
    const auto last_nonzero = static_cast<long long>(mantissa.find_last_not_of('0'));
    if (last_nonzero >= point) return w.error = "is not a whole number", w;  // a nonzero digit after the point
    if (point - static_cast<long long>(first_nonzero) > 20) return w.error = "is out of range", w;
    std::string digits = mantissa.substr(first_nonzero);
    digits.resize(static_cast<std::size_t>(point - static_cast<long long>(first_nonzero)), '0');
    return accumulate(digits, w);
}

}  // namespace

std::uint64_t parse_unsigned(std::string_view option, std::string_view text, std::uint64_t lo, std::uint64_t hi) {
    const std::string want = "a whole number in [" + readable(lo) + ", " + readable(hi) + "]";
    const whole w = read_whole(text);
    if (w.error != nullptr && w.error != std::string_view("is out of range")) refuse(option, text, w.error, want);
    if (w.negative && (w.error != nullptr || w.magnitude != 0)) refuse(option, text, "is negative", want);
    if (w.negative) refuse(option, text, "has a minus sign", want);
    if (w.error != nullptr || w.magnitude < lo || w.magnitude > hi) refuse(option, text, "is out of range", want);
    return w.magnitude;
}

std::int64_t parse_signed(std::string_view option, std::string_view text, std::int64_t lo, std::int64_t hi) {
    const std::string want = "a whole number in [" + readable(lo) + ", " + readable(hi) + "]";
    const whole w = read_whole(text);
    if (w.error != nullptr && w.error != std::string_view("is out of range")) refuse(option, text, w.error, want);
    constexpr std::uint64_t max_positive = std::numeric_limits<std::int64_t>::max();
    if (w.error != nullptr || w.magnitude > max_positive + (w.negative ? 1 : 0))
        refuse(option, text, "is out of range", want);
    const std::int64_t v = w.negative ? static_cast<std::int64_t>(0 - w.magnitude)  // two's complement, no UB
                                      : static_cast<std::int64_t>(w.magnitude);
    if (v < lo || v > hi) refuse(option, text, "is out of range", want);
    return v;
}

double parse_double(std::string_view option, std::string_view text, double lo, double hi, bool allow_inf) {
    const std::string want =
        std::string(allow_inf ? "a number" : "a finite number") + " in [" + readable(lo) + ", " + readable(hi) + "]";
    if (text.empty()) refuse(option, text, "is empty", want);
    std::string_view body = text;
    if (body[0] == '+') {
        body.remove_prefix(1);
        if (body.empty() || body[0] == '-' || body[0] == '+') refuse(option, text, "is not a number", want);
    }
    double x = 0;
    const auto [end, ec] = std::from_chars(body.data(), body.data() + body.size(), x, std::chars_format::general);
    if (ec == std::errc::result_out_of_range) refuse(option, text, "is out of the range of a double", want);
    if (ec != std::errc() || end != body.data() + body.size()) refuse(option, text, "is not a number", want);
    if (std::isnan(x)) refuse(option, text, "is not a number (NaN)", want);
    if (std::isinf(x) && !allow_inf) refuse(option, text, "is not finite", want);
    if (!(x >= lo && x <= hi)) refuse(option, text, "is out of range", want);
    return x;
}

}  // namespace exprgrad::tools
