// Type lists with near-linear set algorithms, used to gather the distinct node types of
// expressions for common-subexpression evaluation.
//
// Membership is a base-class test against a class that inherits one tag per element: the
// compiler answers it without instantiating anything per element, which keeps gathering N node
// types close to linear (boost::hana::set built by insertion is quadratic in instantiations).
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <cstddef>
#include <type_traits>

namespace exprgrad::sym::meta {

/// An ordered list of types, without duplicates when built by the algorithms below.
template <class... Ts>
struct type_list {
    static constexpr std::size_t size = sizeof...(Ts);
};

template <class T>
struct tag {};

template <class... Ts>
struct inherit_tags : tag<Ts>... {};

/// True when T is an element of List.
template <class T, class List>
struct contains;
template <class T, class... Ts>
struct contains<T, type_list<Ts...>> : std::is_base_of<tag<T>, inherit_tags<Ts...>> {};
template <class T, class List>
inline constexpr bool contains_v = contains<T, List>::value;

/// List with T appended at the end.
template <class List, class T>
struct push_back;
template <class... Ts, class T>
struct push_back<type_list<Ts...>, T> {
    using type = type_list<Ts..., T>;
};

// Each element contributes one overload at(tag<T>) returning its position; a lookup is one overload
// resolution over non-template functions. (Deducing I from a base indexed_tag<T, I> would be as
// fast, but GCC 12 crashes deducing through bases whose arguments hold floating-point template
// parameters such as fc<-0.56>.)
template <class T, std::size_t I>
struct indexed_tag {
    static std::integral_constant<std::size_t, I> at(tag<T>);
};

template <class Seq, class... Ts>
struct index_table;
template <std::size_t... Is, class... Ts>
struct index_table<std::index_sequence<Is...>, Ts...> : indexed_tag<Ts, Is>... {
    using indexed_tag<Ts, Is>::at...;
};

/// Position of T in List (List must contain T exactly once).
template <class T, class List>
struct index_of;
template <class T, class... Ts>
struct index_of<T, type_list<Ts...>> {
    using table = index_table<std::index_sequence_for<Ts...>, Ts...>;
    static constexpr std::size_t value = decltype(table::at(tag<T>{}))::value;
};
template <class T, class List>
inline constexpr std::size_t index_of_v = index_of<T, List>::value;

}  // namespace exprgrad::sym::meta
