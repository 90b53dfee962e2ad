// Cost of math::min_ab_plus_c: the (p, q) scan cut at p > best sum, the post's plain (p, q) scan, and the
// O(√n) brute force, at fixed n and over random n. Time per call and loop iterations per call (counter
// `iters`). BM_abc_quantiles times each of 1001 random 64-bit n on its own and reports the median, p90
// and maximum ns per call (the goal is a median under 50 µs). Results: docs/abc.md.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <exprgrad/math/min_ab_plus_c.hpp>
#include <string>
#include <vector>

namespace {

using exprgrad::math::abc_method;
using exprgrad::math::min_ab_plus_c_counted;

// splitmix64: the same random n on every run and machine.
std::vector<std::uint64_t> random_n(std::size_t count, std::uint64_t seed, std::uint64_t max) {
    std::vector<std::uint64_t> out(count);
    for (auto& n : out) {
        std::uint64_t z = (seed += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        n = max == ~std::uint64_t{0} ? z : z % (max + 1);  // the modulo bias is irrelevant for timing
    }
    return out;
}

constexpr std::array<abc_method, 3> methods = {abc_method::cut, abc_method::scan, abc_method::brute};
constexpr std::array<const char*, 3> method_names = {"cut", "scan", "brute"};

struct fixed_n {
    std::uint64_t n;
    const char* name;
};
// Near 10^6, 10^12 and 10^18 but not perfect squares (a square stops the cut after one step): values of
// the reference table of the notes (§4.4).
constexpr std::array<fixed_n, 4> fixed = {{
    {999983, "999983"},
    {999999999989ULL, "999999999989"},
    {1000000000000000003ULL, "1e18+3"},
    {~std::uint64_t{0}, "2^64-1"},
}};

// Args: method index, index into `fixed`.
void BM_abc_fixed(benchmark::State& state) {
    const abc_method method = methods[static_cast<std::size_t>(state.range(0))];
    const fixed_n f = fixed[static_cast<std::size_t>(state.range(1))];
    std::uint64_t iterations = 0;
    for (auto _ : state) {
        std::uint64_t n = f.n;
        benchmark::DoNotOptimize(n);  // keeps the call from being folded at compile time
        const auto run = min_ab_plus_c_counted(n, method);
        benchmark::DoNotOptimize(run.result);
        iterations = run.iterations;
    }
    state.counters["iters"] = static_cast<double>(iterations);
    state.SetLabel(std::string(method_names[static_cast<std::size_t>(state.range(0))]) + " n=" + f.name);
}

// Args: method index, 0 for random n in [0, 2^64 - 1] or 1 for random n in [0, 10^12].
void BM_abc_random(benchmark::State& state) {
    const abc_method method = methods[static_cast<std::size_t>(state.range(0))];
    const bool full = state.range(1) == 0;
    static const auto wide = random_n(4096, 1, ~std::uint64_t{0});
    static const auto narrow = random_n(4096, 2, 1000000000000ULL);
    const auto& ns = full ? wide : narrow;
    // Every benchmark iteration runs the whole list, so the means are over all 4096 n, not over a prefix.
    double total_iterations = 0, calls = 0;
    for (auto _ : state) {
        for (const std::uint64_t n : ns) {
            const auto run = min_ab_plus_c_counted(n, method);
            benchmark::DoNotOptimize(run.result);
            total_iterations += static_cast<double>(run.iterations);
        }
        calls += static_cast<double>(ns.size());
    }
    state.counters["iters"] = total_iterations / calls;
    // Seconds per call (time / calls), printed with an SI prefix (u = µs).
    state.counters["s_per_call"] = benchmark::Counter(calls, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
    state.SetLabel(std::string(method_names[static_cast<std::size_t>(state.range(0))]) +
                   (full ? " random n < 2^64" : " random n <= 1e12"));
}

// Arg: method index (cut or scan). One pass over 1001 random 64-bit n, each timed alone (as the best of
// a few repeats, to drop interrupts); reports quantiles of ns per call and the median iteration count.
void BM_abc_quantiles(benchmark::State& state) {
    const abc_method method = methods[static_cast<std::size_t>(state.range(0))];
    const auto ns = random_n(1001, 3, ~std::uint64_t{0});
    const int repeats = method == abc_method::cut ? 5 : 1;
    std::vector<double> nanoseconds(ns.size());
    std::vector<std::uint64_t> iterations(ns.size());
    for (auto _ : state) {
        for (std::size_t i = 0; i < ns.size(); ++i) {
            double best = 1e300;
            for (int r = 0; r < repeats; ++r) {
                const auto t0 = std::chrono::steady_clock::now();
                const auto run = min_ab_plus_c_counted(ns[i], method);
                benchmark::DoNotOptimize(run.result);
                const auto t1 = std::chrono::steady_clock::now();
                best = std::min(best, std::chrono::duration<double, std::nano>(t1 - t0).count());
                iterations[i] = run.iterations;
            }
            nanoseconds[i] = best;
        }
    }
    auto quantile = [](auto values, double q) {
        const auto k = static_cast<std::size_t>(q * static_cast<double>(values.size() - 1));
        std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(k), values.end());
        return static_cast<double>(values[k]);
    };
    state.counters["median_ns"] = quantile(nanoseconds, 0.5);
    state.counters["p90_ns"] = quantile(nanoseconds, 0.9);
    state.counters["max_ns"] = quantile(nanoseconds, 1.0);
    state.counters["median_iters"] = quantile(iterations, 0.5);
    state.counters["max_iters"] = quantile(iterations, 1.0);
    state.SetLabel(std::string(method_names[static_cast<std::size_t>(state.range(0))]) +
                   ", 1001 random n < 2^64, each timed alone");
}

}  // namespace

// cut and scan at every fixed n; brute force only up to 10^12 (about 2^32 divisions at 2^64).
BENCHMARK(BM_abc_fixed)->ArgsProduct({{0, 1}, {0, 1, 2, 3}})->Args({2, 0})->Args({2, 1});
BENCHMARK(BM_abc_random)->Args({0, 0})->Args({1, 0})->Args({0, 1})->Args({1, 1})->Args({2, 1});
BENCHMARK(BM_abc_quantiles)->Arg(0)->Arg(1)->Iterations(1)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
