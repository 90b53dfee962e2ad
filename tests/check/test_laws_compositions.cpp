// The derivative laws on compositions of the table's ops (the chain rule through each of them).
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
}  // namespace

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
