// Deterministic inputs for the attention tests (ops/test_attention.cpp, ops/test_flex_attention*.cpp): a small
// generator uniform in [-1, 1), rank-4 arrays drawn from it, and a conversion between number types.
#pragma once

#include <cstddef>
#include <cstdint>

#include <xtensor/xtensor.hpp>

namespace attention_test {

struct lcg {
    std::uint64_t s;
    explicit lcg(std::uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ULL + 1) {}
    double next() {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        return static_cast<double>(s >> 11) * 0x1.0p-52 - 1.0;
    }
};

template <class T>
xt::xtensor<T, 4> random4(std::size_t a, std::size_t b, std::size_t c, std::size_t d, std::uint64_t seed,
                          double amp = 1.0) {
    auto x = xt::xtensor<T, 4>::from_shape({a, b, c, d});
    lcg g(seed);
    for (auto& e : x) e = static_cast<T>(amp * g.next());
    return x;
}

template <class T, class U, std::size_t N>
xt::xtensor<T, N> to_type(const xt::xtensor<U, N>& x) {
    auto y = xt::xtensor<T, N>::from_shape(x.shape());
    for (std::size_t i = 0; i < x.size(); ++i) y.data()[i] = static_cast<T>(x.data()[i]);
    return y;
}

}  // namespace attention_test
