// libFuzzer target: the strict number parser of the command-line programs (src/tools/strict_number.hpp).
// Input: byte 0 picks the parser (unsigned, signed, double, double with infinities); the rest is the text.
// Properties checked (a violation aborts): the parser returns or throws tools::usage_error, nothing else; its
// message is one line of bounded length naming the option; a parsed value re-printed (shortest round-trip
// form) re-parses to the same value, and lies inside the bounds it was parsed with.
// Build and run: tests/fuzz/run_fuzz.sh.
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>

#include "strict_number.hpp"

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

template <class T>
std::string reprinted(T x) {
    char buffer[64];
    const auto r = std::to_chars(buffer, buffer + sizeof buffer, x);
    require(r.ec == std::errc());
    return std::string(buffer, r.ptr);
}

// Runs f; a usage_error must carry one line that starts with the option's name. Returns true when f returned.
template <class F>
bool attempt(F&& f) {
    try {
        f();
        return true;
    } catch (const exprgrad::tools::usage_error& e) {
        const std::string_view m = e.what();
        require(m.rfind("--opt: ", 0) == 0);
        require(m.find('\n') == std::string_view::npos && m.find('\r') == std::string_view::npos);
        require(m.size() < 300);
        return false;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace tools = exprgrad::tools;
    if (size == 0) return 0;
    const int mode = data[0] % 4;
    const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
    if (mode == 0) {
        std::uint64_t v = 0;
        if (!attempt([&] { v = tools::parse_unsigned("--opt", text); })) return 0;
        require(tools::parse_unsigned("--opt", reprinted(v)) == v);
        // Tight bounds around the value accept it; bounds that exclude it refuse it.
        require(attempt([&] { require(tools::parse_unsigned("--opt", text, v, v) == v); }));
        if (v > 0) require(!attempt([&] { tools::parse_unsigned("--opt", text, 0, v - 1); }));
    } else if (mode == 1) {
        std::int64_t v = 0;
        if (!attempt([&] { v = tools::parse_signed("--opt", text); })) return 0;
        require(tools::parse_signed("--opt", reprinted(v)) == v);
        require(attempt([&] { require(tools::parse_signed("--opt", text, v, v) == v); }));
        if (v > std::numeric_limits<std::int64_t>::min())
            require(
                !attempt([&] { tools::parse_signed("--opt", text, std::numeric_limits<std::int64_t>::min(), v - 1); }));
    } else {
        const bool allow_inf = mode == 3;
        const double lo = allow_inf ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::lowest();
        const double hi = -lo;
        double v = 0;
        if (!attempt([&] { v = tools::parse_double("--opt", text, lo, hi, allow_inf); })) return 0;
        require(!std::isnan(v));
        require(allow_inf || std::isfinite(v));
        const double again = tools::parse_double("--opt", reprinted(v), lo, hi, allow_inf);
        require(std::memcmp(&again, &v, sizeof v) == 0);  // bit for bit, the sign of zero included
        require(attempt([&] { tools::parse_double("--opt", text, v, v, allow_inf); }));
    }
    return 0;
}
