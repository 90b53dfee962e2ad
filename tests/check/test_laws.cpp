// The derivative laws on every op of the table (picked up from sym::all_ops, so a new op is
// checked with no edit here) and a demonstration that the checker catches a wrong derivative.
// Compositions: test_laws_compositions.cpp (split for the compile-time budget).
#include <doctest/doctest.h>

#include "exprgrad/check/laws.hpp"
#include "exprgrad/sym.hpp"

using namespace exprgrad::sym;
using namespace exprgrad::sym::literals;
using exprgrad::check::check_derivative_laws;
using exprgrad::check::law_options;

namespace {

template <class Op>
auto op_applied() {
    if constexpr (Op::arity == 1)
        return Node<Op, Var<0>>{};
    else
        return Node<Op, Var<0>, Var<1>>{};
}

template <class... Ops>
void check_all(meta::type_list<Ops...>) {
    auto one = [](auto op) {
        using Op = decltype(op);
        const auto r = check_derivative_laws(op_applied<Op>(), exprgrad::check::op_domain_options<Op>());
        INFO(r.message());
        CHECK(r.ok);
        CHECK(r.points_checked >= 30);
    };
    (one(Ops{}), ...);
}
}  // namespace

TEST_CASE("every op of the table obeys the derivative laws") { check_all(all_ops{}); }

namespace {
// An op whose partial is off by a factor 2: the law check must fail on it.
struct BadSin : op::Sin {
    template <class A>
    static constexpr auto partials(A a) {
        return std::tuple{2_c * cos(a)};
    }
};
}  // namespace

TEST_CASE("the checker catches a wrong derivative") {
    const auto r = check_derivative_laws(Node<BadSin, Var<0>>{}, {});
    CHECK_FALSE(r.ok);
    CHECK(r.failures.size() > 0);
}
