// How messages show numbers and shapes: one form each, for every layer (error messages, option printouts,
// reports). A base utility below every layer, like fields.hpp: every layer may include it.
//
//   exprgrad::format_number(0.9999)                // "0.9999"
//   exprgrad::format_number(-1.0)                  // "-1"
//   exprgrad::format_shape(std::vector{3})         // "(3,)"
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <charconv>
#include <concepts>
#include <cstddef>
#include <string>
#include <type_traits>

namespace exprgrad {

/// A number as a message shows it: the shortest text that reads back to exactly the value passed
/// (std::to_chars without a format, independent of the locale). Integers in decimal; floating point as
/// 0.1, 0.9999, 0.99990001, -1, 3, 1e-08, 1e+300, 1.7976931348623157e+308, nan, -nan, inf, -inf. A float
/// prints as the shortest float (0.1f: "0.1", not the double 0.10000000149011612). Never throws except
/// std::bad_alloc. Chosen over %.9g because it never rounds: a message shows what was passed.
template <class T>
requires std::is_arithmetic_v<T> &&(!std::same_as<T, bool>)std::string format_number(T v) {
    char buf[64];  // the longest double is 24 characters, the longest 128-bit integer 40
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
}

/// A shape as a message shows it, in Python's tuple form: "(2, 3)", a single dimension "(3,)", rank 0 "()".
/// Shape: any sized range of integers indexable by std::size_t (xtensor shapes, std::vector, std::array,
/// tensors::dims through dims::str()). Example: `format_shape(x.shape())` → "(4, 8)".
template <class Shape>
std::string format_shape(const Shape& shape) {
    std::string s = "(";
    const std::size_t n = static_cast<std::size_t>(shape.size());
    for (std::size_t i = 0; i < n; ++i) {
        if (i) s += ", ";
        s += format_number(static_cast<std::size_t>(shape[i]));
    }
    return s + (n == 1 ? ",)" : ")");
}

}  // namespace exprgrad
