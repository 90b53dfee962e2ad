// Unit tests of the strict number parser of the command-line programs (src/tools/strict_number.hpp).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "strict_number.hpp"

namespace tools = exprgrad::tools;

namespace {
// The message of the usage_error that `f` throws ("" when it does not throw).
template <class F>
std::string refusal(F&& f) {
    try {
        f();
    } catch (const tools::usage_error& e) {
        return e.what();
    }
    return "";
}
}  // namespace

TEST_CASE("unsigned: whole strings of digits in range") {
    CHECK(tools::parse_unsigned("--n", "0") == 0);
    CHECK(tools::parse_unsigned("--n", "007") == 7);
    CHECK(tools::parse_unsigned("--n", "+5") == 5);
    CHECK(tools::parse_unsigned("--n", "18446744073709551615") == std::numeric_limits<std::uint64_t>::max());
    CHECK(tools::parse_unsigned("--n", "1e3") == 1000);
    CHECK(tools::parse_unsigned("--n", "2.5e1") == 25);
    CHECK(tools::parse_unsigned("--n", "1.8446744073709551615e19") == std::numeric_limits<std::uint64_t>::max());
    CHECK(tools::parse_unsigned("--n", "9007199254740993e0") == 9007199254740993ULL);  // not rounded via double
    CHECK(tools::parse_unsigned("--n", "0e999999999") == 0);
    CHECK(tools::parse_unsigned("--n", "5000e-3") == 5);
}

TEST_CASE("unsigned: refusals name the option, the value and the range") {
    const std::string m = refusal([] { tools::parse_unsigned("--seed", "-1"); });
    CHECK(m == "--seed: '-1' is negative; want a whole number in [0, 18446744073709551615]");
    CHECK(refusal([] { tools::parse_unsigned("--seed", "-0"); }).find("minus sign") != std::string::npos);
    for (const char* bad : {"",     " 5",    "5 ",  "0x10", "5x",    "abc", "+",   "-",   "1.5", "1e", "e3",
                            "1e-1", "1.5e0", "++5", "+-5",  "1e3.0", "\t5", "5\n", "inf", "nan", "１"}) {
        CAPTURE(bad);
        const std::string msg = refusal([&] { tools::parse_unsigned("--n", bad, 0, 10); });
        CHECK(msg.rfind("--n: '", 0) == 0);
        CHECK(msg.find("[0, 10]") != std::string::npos);
    }
    for (const char* big :
         {"18446744073709551616", "99999999999999999999999", "1e20", "1.8446744073709551616e19", "1e999999999999"}) {
        CAPTURE(big);
        CHECK(refusal([&] { tools::parse_unsigned("--n", big); }).find("is out of range") != std::string::npos);
    }
    CHECK(refusal([] { tools::parse_unsigned("--n", "1", 2, 8); }) ==
          "--n: '1' is out of range; want a whole number in [2, 8]");
    CHECK(refusal([] { tools::parse_unsigned("--n", "9", 2, 8); }).find("out of range") != std::string::npos);
    CHECK(refusal([] { tools::parse_unsigned("--n", ""); }).find("'' is empty") != std::string::npos);
}

TEST_CASE("signed: both ends of the 64-bit range, no wrap") {
    CHECK(tools::parse_signed("--k", "-9223372036854775808") == std::numeric_limits<std::int64_t>::min());
    CHECK(tools::parse_signed("--k", "9223372036854775807") == std::numeric_limits<std::int64_t>::max());
    CHECK(tools::parse_signed("--k", "-0") == 0);
    CHECK(tools::parse_signed("--k", "-1e2") == -100);
    CHECK(refusal([] { tools::parse_signed("--k", "9223372036854775808"); }).find("out of range") != std::string::npos);
    CHECK(refusal([] { tools::parse_signed("--k", "-9223372036854775809"); }).find("out of range") !=
          std::string::npos);
    CHECK(refusal([] { tools::parse_signed("--k", "-3", -2, 2); }) ==
          "--k: '-3' is out of range; want a whole number in [-2, 2]");
}

TEST_CASE("double: finite, in range, whole string") {
    CHECK(tools::parse_double("--g", "0.5") == 0.5);
    CHECK(tools::parse_double("--g", "+0.5") == 0.5);
    CHECK(tools::parse_double("--g", "-2.5e-3") == -2.5e-3);
    CHECK(tools::parse_double("--g", ".5") == 0.5);
    CHECK(tools::parse_double("--g", "1.7976931348623157e308") == std::numeric_limits<double>::max());
    CHECK(std::isinf(tools::parse_double("--cap", "inf", 0, std::numeric_limits<double>::infinity(), true)));
    CHECK(std::isinf(tools::parse_double("--cap", "+infinity", 0, std::numeric_limits<double>::infinity(), true)));
    for (const char* bad : {"",     " 1",  "1 ",   "0x10", "1e309", "-1e309", "nan", "NaN", "-nan", "inf",
                            "-inf", "1,5", "1..5", "e5",   "+-1",   "++1",    "+",   "-",   "1e",   "0.5\r"}) {
        CAPTURE(bad);
        const std::string msg = refusal([&] { tools::parse_double("--alpha", bad); });
        CHECK(msg.rfind("--alpha: '", 0) == 0);
        // Readable bounds: never a 309-digit number, the shortest exact form (exprgrad::format_number).
        CHECK(msg.find("1.7976931348623157e+308") != std::string::npos);
        CHECK(msg.size() < 200);
    }
    CHECK(refusal([] { tools::parse_double("--alpha", "-1", 0, 1); }) ==
          "--alpha: '-1' is out of range; want a finite number in [0, 1]");
    CHECK(refusal([] {
              tools::parse_double("--alpha", "-inf", 0, std::numeric_limits<double>::infinity(), true);
          }).find("out of range") != std::string::npos);
    CHECK(refusal([] { tools::parse_double("--alpha", "nan", 0, 1, true); }).find("NaN") != std::string::npos);
}

TEST_CASE("a very long or unprintable value is shortened on one line") {
    const std::string long_value(10000, '7');
    const std::string msg = refusal([&] { tools::parse_unsigned("--n", long_value); });
    CHECK(msg.size() < 200);
    CHECK(msg.find("...") != std::string::npos);
    CHECK(msg.find("10000 characters") != std::string::npos);
    const std::string ctl = refusal([] { tools::parse_double("--g", std::string("1\n2\0", 4)); });
    CHECK(ctl.find('\n') == std::string::npos);
    CHECK(ctl.find("'1\\x0a2\\x00'") != std::string::npos);
    CHECK(tools::readable(0.9995) == "0.9995");
    CHECK(tools::readable(std::numeric_limits<double>::infinity()) == "inf");
}
