// Evaluation on double, float, xsimd batches and a user number type, and the proof that
// value_and_grad evaluates each distinct subexpression once (counted operations).
#include <doctest/doctest.h>

#include <cmath>
#include <tuple>

#include <xsimd/xsimd.hpp>

#include "exprgrad/sym.hpp"

using namespace exprgrad::sym;
using namespace exprgrad::sym::literals;

namespace counting {
// A number that counts every arithmetic operation and math function applied to it.
inline long ops = 0;
struct Counted {
    double v = 0;
    Counted() = default;
    Counted(double a) : v(a) {}  // NOLINT: implicit, like double
};
inline Counted operator+(Counted a, Counted b) { return ++ops, Counted(a.v + b.v); }
inline Counted operator-(Counted a, Counted b) { return ++ops, Counted(a.v - b.v); }
inline Counted operator*(Counted a, Counted b) { return ++ops, Counted(a.v * b.v); }
inline Counted operator/(Counted a, Counted b) { return ++ops, Counted(a.v / b.v); }
inline Counted operator-(Counted a) { return ++ops, Counted(-a.v); }
inline Counted exp(Counted a) { return ++ops, Counted(std::exp(a.v)); }
inline Counted log(Counted a) { return ++ops, Counted(std::log(a.v)); }
inline Counted sin(Counted a) { return ++ops, Counted(std::sin(a.v)); }
inline Counted cos(Counted a) { return ++ops, Counted(std::cos(a.v)); }
inline bool operator<(Counted a, Counted b) { return a.v < b.v; }
inline bool operator>(Counted a, Counted b) { return a.v > b.v; }
inline bool operator==(Counted a, Counted b) { return a.v == b.v; }
}  // namespace counting

namespace {
constexpr auto x = var<0>;
constexpr auto y = var<1>;

// Non-leaf node types: each costs exactly one counted operation for the ops used below.
template <class N>
constexpr int is_op_node = 0;
template <class Op, class... Cs>
constexpr int is_op_node<Node<Op, Cs...>> = 1;
template <class List>
struct op_nodes;
template <class... Ns>
struct op_nodes<meta::type_list<Ns...>> {
    static constexpr int value = (0 + ... + is_op_node<Ns>);
};
}  // namespace

TEST_CASE("the same body evaluates double, float and SIMD batches") {
    constexpr auto f = exp(sin(x) * y) / (1_c + x * x);
    const double a = 0.5, b = 2.0;
    const double expected = std::exp(std::sin(a) * b) / (1 + a * a);
    CHECK(f(a, b) == doctest::Approx(expected).epsilon(1e-15));
    CHECK(f(0.5f, 2.0f) == doctest::Approx(expected).epsilon(1e-6));
    static_assert(std::is_same_v<decltype(f(0.5f, 2.0f)), float>);
    static_assert(std::is_same_v<decltype(f(1, 2.0)), double>);  // plain numbers promote to double
    using BF = xsimd::batch<float>;
    using BD = xsimd::batch<double>;
    const BF rf = f(BF(0.5f), BF(2.0f));
    const BD rd = f(BD(0.5), BD(2.0));
    for (std::size_t i = 0; i < BF::size; ++i) CHECK(rf.get(i) == doctest::Approx(expected).epsilon(1e-6));
    for (std::size_t i = 0; i < BD::size; ++i) CHECK(rd.get(i) == doctest::Approx(expected).epsilon(1e-14));
}

TEST_CASE("value_and_grad returns the value and every partial") {
    constexpr auto f = exp(sin(x) * y) / (1_c + x * x);
    auto [v, g] = value_and_grad(f)(0.5, 2.0);
    static_assert(std::is_same_v<decltype(g), std::array<double, 2>>);
    CHECK(v == f(0.5, 2.0));
    CHECK(g[0] == doctest::Approx(d(f, x)(0.5, 2.0)).epsilon(1e-15));
    CHECK(g[1] == doctest::Approx(d(f, y)(0.5, 2.0)).epsilon(1e-15));
}

TEST_CASE("common subexpressions are evaluated once (counted operations)") {
    constexpr auto f = exp(sin(x) * y) / (1_c + x * x);
    using counting::Counted;
    auto count = [](auto&& fn) {
        counting::ops = 0;
        fn();
        return counting::ops;
    };
    const long primal = count([&] { (void)f(Counted(0.5), Counted(2.0)); });
    const long together = count([&] { (void)value_and_grad(f)(Counted(0.5), Counted(2.0)); });
    const long separate = count([&] {
        (void)f(Counted(0.5), Counted(2.0));
        (void)d(f, x)(Counted(0.5), Counted(2.0));
        (void)d(f, y)(Counted(0.5), Counted(2.0));
    });
    // The bound: one operation per distinct node of the value and its partials, no more.
    using all = node_list_t<decltype(f), decltype(d(f, x)), decltype(d(f, y))>;
    constexpr int distinct_ops = op_nodes<all>::value;
    constexpr int primal_ops = op_nodes<node_list_t<decltype(f)>>::value;
    MESSAGE("primal ops " << primal << ", value_and_grad ops " << together << ", separately " << separate);
    CHECK(primal == primal_ops);
    CHECK(together == distinct_ops);
    CHECK(together < separate);
    // Reverse-mode's cheap-gradient principle as a sanity bound for this function.
    CHECK(together <= 4 * primal);
}

TEST_CASE("mixed plain numbers evaluate in double; a zero-argument constant evaluates") {
    CHECK((x * y)(2, 0.25) == 0.5);
    CHECK(evaluate(c<1, 3>) == doctest::Approx(1.0 / 3.0).epsilon(1e-16));
}

TEST_CASE("evaluate_all shares one pass over several outputs") {
    const auto r = evaluate_all(std::tuple{x * y, x + y, sin(x * y)}, 2.0, 3.0);
    CHECK(r[0] == 6.0);
    CHECK(r[1] == 5.0);
    CHECK(r[2] == doctest::Approx(std::sin(6.0)));
    static_assert(node_count_v<decltype(x * y), decltype(sin(x * y))> == 4);  // x, y, x*y, sin(x*y)
}
