// Misuse: a raw run-time number (int, double) inside an expression is rejected with one sentence.
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

#include "exprgrad/sym/expr.hpp"
#include "exprgrad/sym/ops.hpp"
#include "exprgrad/sym/simplify.hpp"

namespace exprgrad::sym {

// ---------------------------------------------------------------------------------------------
// Misuse: raw run-time numbers inside an expression.

/// Satisfied by built-in numbers (int, double, ...), which may not appear inside an expression.
template <class T>
concept RawNumber = std::is_arithmetic_v<std::remove_cvref_t<T>>;

// The overloads below exist only to reject a raw number with one sentence. Each one's return type is
// deduced and it returns a valid expression after its static_assert, so that the sentence is the
// first error the compiler reports (a `void` result would first be reported as "incomplete type" or
// as a missing operator in the enclosing expression).
#define EXPRGRAD_RAW_NUMBER_MESSAGE                                                                          \
    "exprgrad: a raw number cannot appear in an expression; write it as a constant (1_c, c<1, 2>, fc<0.5>) " \
    "or pass it as an argument"

#define EXPRGRAD_REJECT_RAW(op)                                                       \
    /** Rejected: a raw number as an operand; write 1_c or pass it as an argument. */ \
    template <Expression A, RawNumber B>                                              \
    constexpr auto operator op(A, B) {                                                \
        static_assert(detail::dependent_false<B>, EXPRGRAD_RAW_NUMBER_MESSAGE);       \
        return A{};                                                                   \
    }                                                                                 \
    /** Rejected: a raw number as an operand; write 1_c or pass it as an argument. */ \
    template <RawNumber B, Expression A>                                              \
    constexpr auto operator op(B, A) {                                                \
        static_assert(detail::dependent_false<B>, EXPRGRAD_RAW_NUMBER_MESSAGE);       \
        return A{};                                                                   \
    }
EXPRGRAD_REJECT_RAW(+)
EXPRGRAD_REJECT_RAW(-)
EXPRGRAD_REJECT_RAW(*)
EXPRGRAD_REJECT_RAW(/)
#undef EXPRGRAD_REJECT_RAW

/// Rejected: min with a raw number; write it as a constant (1_c) or pass it as an argument.
template <Expression A, RawNumber B>
constexpr auto min(A, B) {
    static_assert(detail::dependent_false<B>, EXPRGRAD_RAW_NUMBER_MESSAGE);
    return A{};
}
/// Rejected: min with a raw number; write it as a constant (1_c) or pass it as an argument.
template <RawNumber B, Expression A>
constexpr auto min(B, A) {
    static_assert(detail::dependent_false<B>, EXPRGRAD_RAW_NUMBER_MESSAGE);
    return A{};
}
/// Rejected: max with a raw number; write it as a constant (1_c) or pass it as an argument.
template <Expression A, RawNumber B>
constexpr auto max(A, B) {
    static_assert(detail::dependent_false<B>, EXPRGRAD_RAW_NUMBER_MESSAGE);
    return A{};
}
/// Rejected: max with a raw number; write it as a constant (1_c) or pass it as an argument.
template <RawNumber B, Expression A>
constexpr auto max(B, A) {
    static_assert(detail::dependent_false<B>, EXPRGRAD_RAW_NUMBER_MESSAGE);
    return A{};
}
/// Rejected: a raw number as the base of pow; write it as a constant (2_c) or pass it as an argument.
template <RawNumber B, Expression A>
constexpr auto pow(B, A) {
    static_assert(detail::dependent_false<B>, EXPRGRAD_RAW_NUMBER_MESSAGE);
    return A{};
}
/// Rejected: a raw exponent; write it as a constant (2_c, c<1, 2>) or pass it as an argument.
template <Expression A, RawNumber B>
constexpr auto pow(A, B) {
    static_assert(detail::dependent_false<B>,
                  "exprgrad: a raw number cannot appear in an expression; write the exponent as a constant "
                  "(2_c, c<1, 2>) or pass it as an argument");
    return A{};
}
#undef EXPRGRAD_RAW_NUMBER_MESSAGE

}  // namespace exprgrad::sym
