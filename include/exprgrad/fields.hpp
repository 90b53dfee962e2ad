// The fields of an option struct, defined once: a struct adapted with BOOST_HANA_ADAPT_STRUCT (or defined
// with BOOST_HANA_DEFINE_STRUCT) is walked field by field in declaration order, so printing (and, later,
// manifests, command-line options and resume checks) come from that one list of names instead of one
// hand-written list per use. A base utility: every layer may include it.
//
//   struct opts { int n = 2; double lr = 0.1; };
//   BOOST_HANA_ADAPT_STRUCT(opts, n, lr);          // at global namespace scope, after the struct
//   exprgrad::fields_to_string(opts{})              // "n=2 lr=0.1"
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <concepts>
#include <cstddef>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/hana/accessors.hpp>
#include <boost/hana/adapt_struct.hpp>
#include <boost/hana/concept/struct.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/length.hpp>
#include <boost/hana/pair.hpp>
#include <boost/hana/string.hpp>

#include "exprgrad/format.hpp"

namespace exprgrad {

/// True for a struct adapted with BOOST_HANA_ADAPT_STRUCT or defined with BOOST_HANA_DEFINE_STRUCT.
template <class S>
concept hana_struct = boost::hana::Struct<std::remove_cvref_t<S>>::value;

/// The number of adapted fields of S: a static_assert on it catches a field added to the struct but not to
/// its adaptation (that field would be missing from every printout).
template <hana_struct S>
inline constexpr std::size_t field_count_v =
    decltype(boost::hana::length(boost::hana::accessors<std::remove_cvref_t<S>>()))::value;

/// Calls f(name, field) for every adapted field of s in declaration order; name is a `const char*`, field a
/// reference (const if s is). Example: `for_each_field(o, [](const char* n, const auto& v) { ... });`
template <hana_struct S, class F>
void for_each_field(S& s, F&& f) {
    namespace hana = boost::hana;
    hana::for_each(hana::accessors<std::remove_const_t<S>>(),
                   [&](auto pair) { f(hana::to<char const*>(hana::first(pair)), hana::second(pair)(s)); });
}

namespace detail::fields {
template <class T>
struct is_vector : std::false_type {};
template <class T, class A>
struct is_vector<std::vector<T, A>> : std::true_type {};
template <class T>
concept streamable_string = std::is_convertible_v<const T&, std::string_view>;
// A type that names itself: a member to_string() (scale_policy) or one found by ADL (deer_method).
template <class T>
concept member_named = requires(const T& v) {
    { v.to_string() } -> std::convertible_to<std::string>;
};
template <class T>
concept adl_named = requires(const T& v) {
    { to_string(v) } -> std::convertible_to<std::string>;
};

template <class T>
void append(std::string& out, const T& v);

template <hana_struct S>
void append_struct(std::string& out, const S& s, const char* open, const char* sep, const char* close) {
    out += open;
    bool first = true;
    for_each_field(s, [&](const char* name, const auto& v) {
        if (!first) out += sep;
        first = false;
        out += name;
        out += '=';
        append(out, v);
    });
    out += close;
}

template <class T>
void append(std::string& out, const T& v) {
    if constexpr (std::is_same_v<T, bool>) {
        out += v ? "true" : "false";
    } else if constexpr (hana_struct<T>) {
        append_struct(out, v, "{", " ", "}");
    } else if constexpr (member_named<T>) {
        out += v.to_string();
    } else if constexpr (!std::is_arithmetic_v<T> && adl_named<T>) {
        out += std::string(to_string(v));
    } else if constexpr (std::is_enum_v<T>) {
        append(out, static_cast<std::underlying_type_t<T>>(v));  // Hana has no enumerator names
    } else if constexpr (std::is_arithmetic_v<T>) {
        out += format_number(v);  // the messages' form: shortest that reads back exactly
    } else if constexpr (streamable_string<T>) {
        out += std::string_view(v);
    } else if constexpr (is_vector<T>::value) {
        out += '[';
        for (std::size_t i = 0; i < v.size(); ++i) {
            if (i) out += ',';
            append(out, v[i]);
        }
        out += ']';
    } else {
        out += "{not adapted}";  // a nested struct without a Hana adaptation: its fields cannot be named
    }
}
}  // namespace detail::fields

/// The fields of s as `name=value` pairs separated by one space, in declaration order. Values: bools as
/// true/false, numbers as messages show them (exprgrad::format_number: 0.1, 1e-08, inf, nan), adapted nested
/// structs as {name=value ...}, a value with a member `to_string()` or an ADL `to_string(v)` (an enum with
/// names) through it, other enums as their underlying integer, strings as they are, vectors as [a,b]; any
/// other nested struct prints as `{not adapted}`. Never throws except std::bad_alloc.
/// Example: `fields_to_string(nn::transformer_options{})` starts with "layers=2 width=128 heads=4".
template <hana_struct S>
std::string fields_to_string(const S& s) {
    std::string out;
    ::exprgrad::detail::fields::append_struct(out, s, "", " ", "");
    return out;
}

}  // namespace exprgrad
