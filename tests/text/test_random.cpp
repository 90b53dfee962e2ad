// exprgrad::rng as the tokenizer's samplers use it (text/random.hpp forwards to exprgrad/random.hpp): reference
// outputs of splitmix64 seeding and xoshiro256**, the 53-bit conversion, saved state.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <exprgrad/text/random.hpp>

using exprgrad::rng;

TEST_CASE("seeding: the first state word is splitmix64's first output") {
    // splitmix64 started at 0: the first output is 0xe220a8397b1dcdaf (Vigna's reference splitmix64.c).
    CHECK(rng(0).state()[0] == 0xe220a8397b1dcdafULL);
}

TEST_CASE("xoshiro256** from the state {1, 2, 3, 4}") {
    // By hand: rotl(2·5, 7)·9 = 1280·9 = 11520; after one step s[1] = 0, so the second output is 0.
    rng g;
    g.set_state({1, 2, 3, 4});
    CHECK(g.next_u64() == 11520);
    CHECK(g.next_u64() == 0);
}

TEST_CASE("uniform() is a multiple of 2^-53 in [0, 1) and the state round-trips") {
    rng g(123);
    const auto saved = g.state();
    double first[100];
    for (double& u : first) {
        u = g.uniform();
        CHECK(u >= 0.0);
        CHECK(u < 1.0);
        CHECK(u * 0x1.0p53 == std::floor(u * 0x1.0p53));
    }
    g.set_state(saved);
    for (const double u : first) CHECK(g.uniform() == u);
    CHECK(rng(123).state() == saved);
    CHECK(rng(1).state() != rng(2).state());
}

TEST_CASE("uniform() mean and variance over 10^6 draws") {
    rng g(99);
    const int n = 1000000;
    double sum = 0, sum2 = 0;
    for (int i = 0; i < n; ++i) {
        const double u = g.uniform();
        sum += u;
        sum2 += u * u;
    }
    const double mean = sum / n, var = sum2 / n - mean * mean;
    // σ(mean) = sqrt(1/12 / n) ≈ 2.9e-4: 6σ bounds.
    CHECK(std::abs(mean - 0.5) < 6 * 2.9e-4);
    CHECK(std::abs(var - 1.0 / 12) < 1e-3);
}
