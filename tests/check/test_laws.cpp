// The derivative laws on every op of the table (picked up from sym::all_ops, so a new op is
// checked with no edit here), on compositions, and a demonstration that the checker catches a
// wrong derivative.
#include <doctest/doctest.h>

#include "exprgrad/check/laws.hpp"
#include "exprgrad/sym.hpp"

using namespace exprgrad::sym;
using namespace exprgrad::sym::literals;
using exprgrad::check::check_derivative_laws;
using exprgrad::check::law_options;

namespace {
constexpr auto x = var<0>;
constexpr auto y = var<1>;
constexpr auto z = var<2>;

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

TEST_CASE("compositions obey the derivative laws (the chain rule)") {
    auto run = [](auto f, law_options o) {
        const auto r = check_derivative_laws(f, o);
        INFO(r.message());
        CHECK(r.ok);
    };
    run(exp(sin(x) * y) / (1_c + x * x), {});
    run(log(1_c + exp(x * y)) / (1_c + x * x), {});
    run(tanh(x) * sigmoid(y) + sqrt(x * x + y * y), {});
    // normal log-density in (x, mu, sigma)
    run(-c<1, 2> * square((x - y) / z) - log(z) - c<1, 2> * log(2_c * constants::pi),
        {.domain = {{-2, 2}, {-2, 2}, {0.3, 3}}});
    run(pow(x, y) * erf(z) - softplus(x * z), {.domain = {{0.2, 3}, {-2, 2}, {-2, 2}}});
    run(max(sin(x), cos(y)) * abs(x - y) + min(x, z), {.points = 60});
    run(pow(sqrt(x) + log1p(y * y), c<-3, 2>), {.domain = {{0.2, 3}, {-2, 2}}});
}

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
