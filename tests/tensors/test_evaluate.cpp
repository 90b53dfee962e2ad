// Evaluation without gradients: evaluate(expr, args...) and evaluator(expr) against naive reference
// values, the lifetime rule (workspace reference on a named program, owning array on a temporary), no
// VJP and no steady-state allocation, and the sym::evaluate name still picking the scalar layer.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <type_traits>

#include <xtensor/xarray.hpp>

#include "alloc_counter.hpp"
#include "exprgrad/exprgrad.hpp"
#include "random_arrays.hpp"

using namespace exprgrad;

namespace {
constexpr auto X = tensor<0>;
constexpr auto W = tensor<1>;
constexpr auto S = tensor<2>;

using test_util::random_array;

// tanh(x·w) + s by loops, the reference for the programs below.
xt::xarray<double> naive_tanh_matmul_plus(const xt::xarray<double>& x, const xt::xarray<double>& w, double s) {
    const std::size_t m = x.shape()[0], k = x.shape()[1], n = w.shape()[1];
    xt::xarray<double> y = xt::xarray<double>::from_shape({m, n});
    for (std::size_t i = 0; i < m; ++i) {
        for (std::size_t j = 0; j < n; ++j) {
            double acc = 0;
            for (std::size_t p = 0; p < k; ++p) acc += x(i, p) * w(p, j);
            y(i, j) = std::tanh(acc) + s;
        }
    }
    return y;
}

// Equal shapes and every element within 1e-12 (BLAS sums in another order than the loops above).
bool close(const xt::xarray<double>& a, const xt::xarray<double>& b) {
    if (a.shape() != b.shape()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (!(std::abs(a.flat(i) - b.flat(i)) <= 1e-12)) return false;
    return true;
}

// A node that doubles its input and whose VJP throws: a forward-only program must never call it.
int forward_calls = 0;
template <class A>
struct doubled_no_vjp {
    using children = tensors::meta::type_list<A>;
    static constexpr const char* name = "doubled_no_vjp";
    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const auto& a = ctx.template in<A>();
        T* y = ctx.template out<doubled_no_vjp>(a.shape);
        for (std::size_t i = 0; i < a.size(); ++i) y[i] = 2 * a.data[i];
        ++forward_calls;
    }
    template <class Ctx>
    static void backward(Ctx&) {
        throw std::logic_error("doubled_no_vjp: the VJP ran");
    }
};
template <tensors::TensorExpr A>
doubled_no_vjp<A> doubled(A) {
    return {};
}
}  // namespace

TEST_CASE("evaluate gives the value of a non-scalar expression, equal to a naive computation") {
    const auto x = random_array({4, 3}, 1);
    const auto w = random_array({3, 5}, 2);
    const xt::xarray<double> want = naive_tanh_matmul_plus(x, w, 0.25);
    const xt::xarray<double> got = evaluate(tanh(matmul(X, W)) + S, x, w, 0.25);
    CHECK(close(got, want));
    // a scalar loss: a rank-0 array, equal to value_and_grad's value
    const auto loss = mean(square(matmul(X, W)));
    const xt::xarray<double> l = evaluate(loss, x, w);
    CHECK(l.dimension() == 0);
    CHECK(l() == value_and_grad(loss, wrt<1>)(x, w).first);
}

TEST_CASE("a named evaluator returns its workspace, a temporary one an owning array") {
    const auto x = random_array({4, 3}, 3);
    const auto w = random_array({3, 5}, 4);
    const auto x2 = random_array({4, 3}, 5);
    auto prog = evaluator(tanh(matmul(X, W)) + S);
    static_assert(std::is_same_v<decltype(prog(x, w, 0.5)), const xt::xarray<double>&>);
    static_assert(std::is_same_v<decltype(evaluator(tanh(X))(x)), xt::xarray<double>>);
    static_assert(std::is_same_v<decltype(evaluate(tanh(X), x)), xt::xarray<double>>);

    const xt::xarray<double>& y1 = prog(x, w, 0.5);
    const xt::xarray<double> kept = y1;  // a copy survives the next call
    const xt::xarray<double>& y2 = prog(x2, w, 0.5);
    CHECK(&y1 == &y2);  // the same buffer, overwritten
    CHECK(close(y2, naive_tanh_matmul_plus(x2, w, 0.5)));
    CHECK(close(kept, naive_tanh_matmul_plus(x, w, 0.5)));
    CHECK_FALSE(close(kept, y2));

    // the temporary's result outlives the program
    const xt::xarray<double> t = evaluator(tanh(matmul(X, W)) + S)(x, w, 0.5);
    CHECK(t == kept);
}

TEST_CASE("the result is an xtensor expression") {
    const auto x = random_array({2, 3}, 6);
    auto prog = evaluator(exp(X));
    const xt::xarray<double> twice = prog(x) * 2.0 + 1.0;
    CHECK(twice(1, 2) == doctest::Approx(2 * std::exp(x(1, 2)) + 1));
    CHECK(xt::sum(prog(x))() == doctest::Approx(xt::sum(xt::exp(x))()));
    CHECK(evaluate(sum(X), x)() == doctest::Approx(xt::sum(x)()));
}

TEST_CASE("evaluation runs no VJP; value_and_grad on the same node does") {
    xt::xarray<double> x = {1.0, -2.0, 3.0};
    forward_calls = 0;
    auto prog = evaluator(sum(doubled(X)));
    CHECK(prog(x)() == 4.0);
    CHECK(evaluate(doubled(X) + X, x) == xt::xarray<double>{3.0, -6.0, 9.0});
    CHECK(forward_calls == 2);
    // the node's VJP does throw when a gradient is asked for: the check above can fail
    CHECK_THROWS_AS(value_and_grad(sum(doubled(X)), wrt<0>)(x), std::logic_error);
}

TEST_CASE("a named evaluator's steady-state call allocates nothing") {
    const auto x = random_array({16, 8}, 7);
    const auto w = random_array({8, 4}, 8);
    auto prog = evaluator(softmax(tanh(matmul(X, W))) * S);
    (void)prog(x, w, 2.0);
    const long before = exprgrad_test::allocation_count();
    const double v = prog(x, w, 2.0)(3, 1);
    const long after = exprgrad_test::allocation_count();
    if (exprgrad_test::alloc_counting_enabled()) {
        CHECK(after - before == 0);
        // the counter works: a fresh program allocates its workspace
        const long b2 = exprgrad_test::allocation_count();
        (void)evaluate(softmax(tanh(matmul(X, W))) * S, x, w, 2.0);
        CHECK(exprgrad_test::allocation_count() - b2 > 0);
    } else {
        MESSAGE("allocation counting is off under AddressSanitizer");
    }
    CHECK(std::isfinite(v));
}

TEST_CASE("float arguments give float arrays; a bare argument is copied") {
    xt::xarray<float> x = {{1.0f, 2.0f}, {3.0f, 4.0f}};
    auto y = evaluate(X * 2_c, x);
    static_assert(std::is_same_v<decltype(y), xt::xarray<float>>);
    CHECK(y == xt::xarray<float>{{2.0f, 4.0f}, {6.0f, 8.0f}});

    auto id = evaluator(X);
    const xt::xarray<float>& same = id(x);
    CHECK(same == x);
    CHECK(same.data() != x.data());  // a copy owned by the program, not the caller's array
    CHECK(evaluate(X, 2.5)() == 2.5);
    xt::xarray<std::int64_t> ints = {1, 2};
    CHECK_THROWS_WITH_AS(evaluate(X, ints), doctest::Contains("exprgrad::evaluate: the expression is argument 0"),
                         std::invalid_argument);
}

TEST_CASE("shape errors and NaN behave as in value_and_grad") {
    const auto x = random_array({4, 3}, 9);
    const auto w = random_array({4, 5}, 10);
    CHECK_THROWS_WITH_AS(evaluate(matmul(X, W), x, w), doctest::Contains("exprgrad::matmul"), std::invalid_argument);
    xt::xarray<double> n = {1.0, std::nan("")};
    const auto y = evaluate(exp(X), n);
    CHECK(y(0) == doctest::Approx(std::exp(1.0)));
    CHECK(std::isnan(y(1)));
}

TEST_CASE("evaluate still means sym::evaluate for scalar expressions") {
    constexpr auto x = var<0>;
    constexpr auto y = var<1>;
    CHECK(evaluate(x * y + 1_c, 3.0, 2.0) == 7.0);
    static_assert(std::is_same_v<decltype(evaluate(x * y, 3.0, 2.0)), double>);
}

TEST_CASE("docs/tensor.md: evaluation without gradients") {
    const xt::xarray<double> xv = {{1.0, 2.0}, {3.0, 4.0}};
    const xt::xarray<double> wv = {{0.5, 1.0}, {-0.25, 0.0}};
    // docs-begin docs/tensor.md
    xt::xarray<double> yv = evaluate(tanh(matmul(X, W)), xv, wv);  // owning, shape (2, 2)
    double m = evaluate(mean(square(X)), xv)();                    // a rank-0 array: () reads it
    auto predict = evaluator(sigmoid(matmul(X, W)));               // compiled once, no gradient buffers
    const auto& p = predict(xv, wv);                               // its workspace: valid until the next call
    xt::xarray<double> scaled = 2.0 * p - 1.0;                     // an xtensor expression like any other
    // docs-end
    // checked against values computed by hand
    CHECK(yv.shape() == std::vector<std::size_t>{2, 2});
    CHECK(yv(0, 1) == doctest::Approx(std::tanh(1.0)));
    CHECK(yv(0, 0) == doctest::Approx(std::tanh(0.0)));
    CHECK(yv(1, 0) == doctest::Approx(std::tanh(0.5)));
    CHECK(m == doctest::Approx(7.5));
    CHECK(scaled(1, 0) == doctest::Approx(2.0 / (1.0 + std::exp(-0.5)) - 1.0));
}
