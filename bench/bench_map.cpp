// map_value_and_grad against hand-written gradients, over 1,000,000-element float arrays:
//   (a) exprgrad::map_value_and_grad, (b) a scalar loop with the hand-derived gradient,
//   (c) an xsimd loop with the hand-derived gradient (the target: (a) within 1.1x of (c)).
// Run: build/bench/bench_map --benchmark_min_time=0.5
#include <benchmark/benchmark.h>

#include <array>
#include <cmath>
#include <cstddef>

#include <xsimd/xsimd.hpp>
#include <xtensor/xtensor.hpp>

#include <exprgrad/exprgrad.hpp>

using namespace exprgrad;
using exprgrad::simd::map_value_and_grad_into;

namespace {
constexpr std::size_t N = 1'000'000;
constexpr auto x = var<0>;
constexpr auto y = var<1>;
constexpr auto z = var<2>;

// The three functions of the issue, in the DSL.
constexpr auto f1 = log(1_c + exp(x * y)) / (1_c + x * x);
constexpr auto f2 = tanh(x) * sigmoid(y) + sqrt(x * x + y * y);
constexpr auto f3 = -c<1, 2> * square((x - y) / z) - log(z) - c<1, 2> * log(2_c * constants::pi);

struct data {
    xt::xtensor<float, 1> a, b, s;
    data() {
        a = xt::xtensor<float, 1>::from_shape({N});
        b = xt::xtensor<float, 1>::from_shape({N});
        s = xt::xtensor<float, 1>::from_shape({N});
        for (std::size_t i = 0; i < N; ++i) {
            a(i) = -2.0f + 4.0f * static_cast<float>(i % 1000) / 1000.0f;
            b(i) = -1.0f + 2.0f * static_cast<float>((i * 7) % 1000) / 1000.0f;
            s(i) = 0.5f + static_cast<float>((i * 13) % 1000) / 1000.0f;
        }
    }
};
const data& inputs() {
    static const data d;
    return d;
}

// Output arrays, allocated once per benchmark for every variant, so that the loops are timed and
// not the page faults of fresh allocations.
struct outputs {
    xt::xtensor<float, 1> va = xt::xtensor<float, 1>::from_shape({N}), g0a = xt::xtensor<float, 1>::from_shape({N}),
                          g1a = xt::xtensor<float, 1>::from_shape({N}), g2a = xt::xtensor<float, 1>::from_shape({N});
    float* v = va.data();
    float* g0 = g0a.data();
    float* g1 = g1a.data();
    float* g2 = g2a.data();
};

void report(benchmark::State& st) {
    st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()) * static_cast<std::int64_t>(N));
}

// ---- (a) exprgrad
void exprgrad_f1(benchmark::State& st) {
    const auto& in = inputs();
    xt::xtensor<float, 1> v;
    std::array<xt::xtensor<float, 1>, 2> g;
    for (auto _ : st) {
        map_value_and_grad_into(f1, v, g, in.a, in.b);
        benchmark::DoNotOptimize(v.data());
    }
    report(st);
}
void exprgrad_f2(benchmark::State& st) {
    const auto& in = inputs();
    xt::xtensor<float, 1> v;
    std::array<xt::xtensor<float, 1>, 2> g;
    for (auto _ : st) {
        map_value_and_grad_into(f2, v, g, in.a, in.b);
        benchmark::DoNotOptimize(v.data());
    }
    report(st);
}
void exprgrad_f3(benchmark::State& st) {
    const auto& in = inputs();
    xt::xtensor<float, 1> v;
    std::array<xt::xtensor<float, 1>, 3> g;
    for (auto _ : st) {
        map_value_and_grad_into(f3, v, g, in.a, in.b, in.s);
        benchmark::DoNotOptimize(v.data());
    }
    report(st);
}

// ---- hand-derived gradients, written once as generic bodies for float and batch.
template <class T>
inline void hand_f1(T a, T b, T& v, T& ga, T& gb) {
    using std::exp;
    using std::log;
    const T one(1.0f);
    const T e = exp(a * b);
    const T den = one + a * a;
    const T inv = one / den;
    const T num = log(one + e);
    const T sig = e / (one + e);
    v = num * inv;
    ga = b * sig * inv - 2.0f * a * num * inv * inv;
    gb = a * sig * inv;
}
template <class T>
inline void hand_f2(T a, T b, T& v, T& ga, T& gb) {
    using std::exp;
    using std::sqrt;
    using std::tanh;
    const T one(1.0f);
    const T t = tanh(a);
    const T s = one / (one + exp(-b));
    const T r = sqrt(a * a + b * b);
    v = t * s + r;
    ga = (one - t * t) * s + a / r;
    gb = t * s * (one - s) + b / r;
}
template <class T>
inline void hand_f3(T a, T m, T s, T& v, T& ga, T& gm, T& gs) {
    using std::log;
    const T one(1.0f);
    const T inv = one / s;
    const T u = (a - m) * inv;
    v = T(-0.5f) * u * u - log(s) - T(0.91893853320467274f);
    ga = -u * inv;
    gm = u * inv;
    gs = (u * u - one) * inv;
}

// The same gradient with the quotient rounded as written, (a - m) / s, as exprgrad evaluates it
// (the version above multiplies by 1/s, one division fewer and a differently rounded u).
template <class T>
inline void hand_f3_exact_quotient(T a, T m, T s, T& v, T& ga, T& gm, T& gs) {
    using std::log;
    const T one(1.0f);
    const T inv = one / s;
    const T u = (a - m) / s;
    v = T(-0.5f) * u * u - log(s) - T(0.91893853320467274f);
    ga = -u * inv;
    gm = u * inv;
    gs = (u * u - one) * inv;
}

// ---- (b) scalar loops
void scalar_f1(benchmark::State& st) {
    const auto& in = inputs();
    outputs o;
    for (auto _ : st) {
        for (std::size_t i = 0; i < N; ++i) hand_f1(in.a(i), in.b(i), o.v[i], o.g0[i], o.g1[i]);
        benchmark::DoNotOptimize(o.v);
    }
    report(st);
}
void scalar_f2(benchmark::State& st) {
    const auto& in = inputs();
    outputs o;
    for (auto _ : st) {
        for (std::size_t i = 0; i < N; ++i) hand_f2(in.a(i), in.b(i), o.v[i], o.g0[i], o.g1[i]);
        benchmark::DoNotOptimize(o.v);
    }
    report(st);
}
void scalar_f3(benchmark::State& st) {
    const auto& in = inputs();
    outputs o;
    for (auto _ : st) {
        for (std::size_t i = 0; i < N; ++i) hand_f3(in.a(i), in.b(i), in.s(i), o.v[i], o.g0[i], o.g1[i], o.g2[i]);
        benchmark::DoNotOptimize(o.v);
    }
    report(st);
}

// ---- (c) xsimd loops (N is a multiple of the batch size; outputs allocated per call like (a))
using B = xsimd::batch<float>;
void xsimd_f1(benchmark::State& st) {
    const auto& in = inputs();
    outputs o;
    for (auto _ : st) {
        for (std::size_t i = 0; i < N; i += B::size) {
            B v, ga, gb;
            hand_f1(B::load_unaligned(&in.a(i)), B::load_unaligned(&in.b(i)), v, ga, gb);
            v.store_unaligned(&o.v[i]);
            ga.store_unaligned(&o.g0[i]);
            gb.store_unaligned(&o.g1[i]);
        }
        benchmark::DoNotOptimize(o.v);
    }
    report(st);
}
void xsimd_f2(benchmark::State& st) {
    const auto& in = inputs();
    outputs o;
    for (auto _ : st) {
        for (std::size_t i = 0; i < N; i += B::size) {
            B v, ga, gb;
            hand_f2(B::load_unaligned(&in.a(i)), B::load_unaligned(&in.b(i)), v, ga, gb);
            v.store_unaligned(&o.v[i]);
            ga.store_unaligned(&o.g0[i]);
            gb.store_unaligned(&o.g1[i]);
        }
        benchmark::DoNotOptimize(o.v);
    }
    report(st);
}
void xsimd_f3(benchmark::State& st) {
    const auto& in = inputs();
    outputs o;
    for (auto _ : st) {
        for (std::size_t i = 0; i < N; i += B::size) {
            B v, ga, gm, gs;
            hand_f3(B::load_unaligned(&in.a(i)), B::load_unaligned(&in.b(i)), B::load_unaligned(&in.s(i)), v, ga, gm,
                    gs);
            v.store_unaligned(&o.v[i]);
            ga.store_unaligned(&o.g0[i]);
            gm.store_unaligned(&o.g1[i]);
            gs.store_unaligned(&o.g2[i]);
        }
        benchmark::DoNotOptimize(o.v);
    }
    report(st);
}
void xsimd_f3_exact_quotient(benchmark::State& st) {
    const auto& in = inputs();
    outputs o;
    for (auto _ : st) {
        for (std::size_t i = 0; i < N; i += B::size) {
            B v, ga, gm, gs;
            hand_f3_exact_quotient(B::load_unaligned(&in.a(i)), B::load_unaligned(&in.b(i)),
                                   B::load_unaligned(&in.s(i)), v, ga, gm, gs);
            v.store_unaligned(&o.v[i]);
            ga.store_unaligned(&o.g0[i]);
            gm.store_unaligned(&o.g1[i]);
            gs.store_unaligned(&o.g2[i]);
        }
        benchmark::DoNotOptimize(o.v);
    }
    report(st);
}
}  // namespace

BENCHMARK(exprgrad_f1)->Unit(benchmark::kMillisecond);
BENCHMARK(scalar_f1)->Unit(benchmark::kMillisecond);
BENCHMARK(xsimd_f1)->Unit(benchmark::kMillisecond);
BENCHMARK(exprgrad_f2)->Unit(benchmark::kMillisecond);
BENCHMARK(scalar_f2)->Unit(benchmark::kMillisecond);
BENCHMARK(xsimd_f2)->Unit(benchmark::kMillisecond);
BENCHMARK(exprgrad_f3)->Unit(benchmark::kMillisecond);
BENCHMARK(scalar_f3)->Unit(benchmark::kMillisecond);
BENCHMARK(xsimd_f3)->Unit(benchmark::kMillisecond);
BENCHMARK(xsimd_f3_exact_quotient)->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
