// The peers of bench/bench_ad.cpp on the same functions, sizes and inputs (bench/ad_functions.hpp):
//   ADOL-C 2.7 (Debian libadolc-dev)            <fn>_adolc: the tape is recorded once, outside the timed
//                                               loop; the loop times gradient() (forward + reverse replay
//                                               of the tape), as ADBenchmark does. The tape buffers are
//                                               sized so the whole tape stays in memory, and the runs go
//                                               in increasing size (register_adolc_in_size_order).
//   Trilinos Sacado 13.2 (libtrilinos-sacado-dev)
//     reverse, Sacado::Rad::ADvar<double>       <fn>_sacado_rad: re-recorded every iteration (fresh
//                                               independent variables, the function, Gradcomp(), reading
//                                               the adjoints), as ADBenchmark does.
//     forward, Sacado::Fad::DFad<double>        <fn>_sacado_dfad: one pass carrying all N directions; the
//                                               seeded inputs are built once outside the loop. Its cost and
//                                               memory grow as N × primal (N² doubles for the inputs), so it
//                                               runs only where that stays small: N ≤ 4096, K ≤ 32.
// The functions are the generic loops of ad_functions.hpp over each tool's active type; log_sum_exp's
// shift by the maximum is a passive constant there (exact, and one operation per entry cheaper than
// differentiating through max). Every gradient is validated against the hand-written one before it is
// timed; a mismatch exits with status 1 and a message.
//
// Built only with -Dpeers=true. Run: build-peers/bench/peers/bench_ad_peers --benchmark_min_time=0.1
// (bench/run_peers.sh runs it beside bench_ad and prints the ratio tables of docs/benchmarks_ad.md).
#include <benchmark/benchmark.h>

#include <adolc/adolc.h>

#include <Sacado_No_Kokkos.hpp>
#include <Sacado_trad.hpp>

#include <algorithm>
#include <cstddef>
#include <vector>

#include "../ad_functions.hpp"

using namespace ad_bench;

namespace {

using rad_t = Sacado::Rad::ADvar<double>;
using dfad_t = Sacado::Fad::DFad<double>;

// One problem: the point, the hand-written gradient there, and a rough operation count (for ADOL-C's
// buffers).
struct problem {
    std::vector<double> x;
    std::vector<double> want;
    std::size_t ops;
};

// f(const T* x, std::size_t n) -> T for the tool's active type T.
template <class F>
void run_adolc(benchmark::State& st, const char* name, const problem& pb, F f) {
    constexpr short tag = 1;
    const std::size_t n = pb.x.size();
    const auto buffer = static_cast<unsigned>(std::min<std::size_t>(4 * pb.ops + 4096, 1u << 30));
    trace_on(tag, 0, buffer, buffer, buffer, buffer);
    {
        std::vector<adouble> ax(n);
        for (std::size_t i = 0; i < n; ++i) ax[i] <<= pb.x[i];
        adouble y = f(ax.data(), n);
        double out = 0;
        y >>= out;
    }
    trace_off();
    std::vector<double> g(n);
    gradient(tag, static_cast<int>(n), pb.x.data(), g.data());
    validate(name, g.data(), n, pb.want);
    for (auto _ : st) {
        gradient(tag, static_cast<int>(n), pb.x.data(), g.data());
        benchmark::DoNotOptimize(g.data());
        benchmark::ClobberMemory();
    }
    removeTape(tag, ADOLC_REMOVE_COMPLETELY);
}

template <class F>
void run_rad(benchmark::State& st, const char* name, const problem& pb, F f) {
    const std::size_t n = pb.x.size();
    std::vector<double> g(n);
    auto gradient_once = [&] {
        std::vector<rad_t> ax(pb.x.begin(), pb.x.end());
        rad_t y = f(ax.data(), n);
        rad_t::Gradcomp();
        for (std::size_t i = 0; i < n; ++i) g[i] = ax[i].adj();
    };
    gradient_once();
    validate(name, g.data(), n, pb.want);
    for (auto _ : st) {
        gradient_once();
        benchmark::DoNotOptimize(g.data());
        benchmark::ClobberMemory();
    }
}

template <class F>
void run_dfad(benchmark::State& st, const char* name, const problem& pb, F f) {
    const std::size_t n = pb.x.size();
    std::vector<dfad_t> ax;
    ax.reserve(n);
    for (std::size_t i = 0; i < n; ++i) ax.emplace_back(static_cast<int>(n), static_cast<int>(i), pb.x[i]);
    std::vector<double> g(n);
    auto gradient_once = [&] {
        dfad_t y = f(ax.data(), n);
        for (std::size_t i = 0; i < n; ++i) g[i] = y.dx(static_cast<int>(i));
    };
    gradient_once();
    validate(name, g.data(), n, pb.want);
    for (auto _ : st) {
        gradient_once();
        benchmark::DoNotOptimize(g.data());
        benchmark::ClobberMemory();
    }
}

// ---------------------------------------------------------------------------------------------
// sum, prod, log_sum_exp, normal_log_pdf

template <class Hand>
problem vector_problem(benchmark::State& st, Hand hand, input_range r, std::size_t ops_per_entry) {
    const auto n = static_cast<std::size_t>(st.range(0));
    const auto a = vector_input(n, r);
    return {std::vector<double>(a.begin(), a.end()), hand_gradient(hand, a.data(), n), ops_per_entry * n + 16};
}

const auto sum_f = [](const auto* p, std::size_t n) { return generic_sum(p, n); };
const auto prod_f = [](const auto* p, std::size_t n) { return generic_prod(p, n); };
const auto normal_f = [](const auto* p, std::size_t n) { return generic_normal(p, n); };
// lse's shift: the largest input of the benchmark's (fixed) vector
double lse_shift(std::size_t n) {
    const auto a = vector_input(n, lse_inputs);
    return *std::max_element(a.begin(), a.end());
}
auto lse_f(std::size_t n) {
    return [m = lse_shift(n)](const auto* p, std::size_t k) { return generic_lse(p, k, m); };
}

#define PEER_VECTOR_BENCH(fn, f, ops)                                                           \
    void fn##_adolc(benchmark::State& st) {                                                     \
        run_adolc(st, #fn " (ADOL-C)", vector_problem(st, hand_##fn, fn##_inputs, ops), f);     \
    }                                                                                           \
    void fn##_sacado_rad(benchmark::State& st) {                                                \
        run_rad(st, #fn " (Sacado Rad)", vector_problem(st, hand_##fn, fn##_inputs, ops), f);   \
    }                                                                                           \
    void fn##_sacado_dfad(benchmark::State& st) {                                               \
        run_dfad(st, #fn " (Sacado DFad)", vector_problem(st, hand_##fn, fn##_inputs, ops), f); \
    }                                                                                           \
    BENCHMARK(fn##_sacado_rad)->ArgsProduct({vector_sizes});                                    \
    BENCHMARK(fn##_sacado_dfad)->ArgsProduct({dfad_vector_sizes()});

// DFad's inputs hold N² doubles: 16384 would take 2 GiB.
std::vector<long> dfad_vector_sizes() {
    std::vector<long> s;
    for (long n : vector_sizes)
        if (n <= 4096) s.push_back(n);
    return s;
}

PEER_VECTOR_BENCH(sum, sum_f, 2)
PEER_VECTOR_BENCH(prod, prod_f, 2)
PEER_VECTOR_BENCH(lse, lse_f(static_cast<std::size_t>(st.range(0))), 4)
PEER_VECTOR_BENCH(normal, normal_f, 6)

// ---------------------------------------------------------------------------------------------
// matrix_product: the inputs are A then B (row-major), N = 2K²

problem mm_problem(benchmark::State& st) {
    const auto k = static_cast<std::size_t>(st.range(0));
    const matrix_inputs in(k);
    problem pb;
    pb.x.assign(in.a.begin(), in.a.end());
    pb.x.insert(pb.x.end(), in.b.begin(), in.b.end());
    std::vector<double> da(k * k), db(k * k);
    mm_hand_grads(in.a.data(), in.b.data(), da.data(), db.data(), k);
    pb.want = da;
    pb.want.insert(pb.want.end(), db.begin(), db.end());
    pb.ops = 2 * k * k * k + 2 * k * k + 16;
    return pb;
}
auto mm_f(benchmark::State& st) {
    const auto k = static_cast<std::size_t>(st.range(0));
    return [k](const auto* p, std::size_t) { return generic_mm(p, p + k * k, k); };
}
void mm_adolc(benchmark::State& st) { run_adolc(st, "matrix_product (ADOL-C)", mm_problem(st), mm_f(st)); }
void mm_sacado_rad(benchmark::State& st) { run_rad(st, "matrix_product (Sacado Rad)", mm_problem(st), mm_f(st)); }
void mm_sacado_dfad(benchmark::State& st) { run_dfad(st, "matrix_product (Sacado DFad)", mm_problem(st), mm_f(st)); }
BENCHMARK(mm_sacado_rad)->ArgsProduct({matrix_sizes})->Unit(benchmark::kMicrosecond);
// K = 64 would carry 8192 directions through 2.6e5 operations (and 512 MiB of seeded inputs).
BENCHMARK(mm_sacado_dfad)->Arg(8)->Arg(32)->Unit(benchmark::kMicrosecond);

// ---------------------------------------------------------------------------------------------
// regression: the inputs are w, b, s (N = p + 2)

struct regression_problem {
    regression_data d;
    problem pb;
    explicit regression_problem(std::size_t p) : d(p) {
        std::vector<double> mu_buf(rows), r(rows);
        pb.x = regression_point(d);
        pb.want.resize(p + 2);
        regression_hand(d, mu_buf, r, pb.want);
        pb.ops = rows * (2 * p + 8) + 4 * p + 16;
    }
    auto f() const {
        return [this](const auto* v, std::size_t) { return generic_regression(d, v); };
    }
};
void regression_adolc(benchmark::State& st) {
    const regression_problem rp(static_cast<std::size_t>(st.range(0)));
    run_adolc(st, "regression (ADOL-C)", rp.pb, rp.f());
}
void regression_sacado_rad(benchmark::State& st) {
    const regression_problem rp(static_cast<std::size_t>(st.range(0)));
    run_rad(st, "regression (Sacado Rad)", rp.pb, rp.f());
}
void regression_sacado_dfad(benchmark::State& st) {
    const regression_problem rp(static_cast<std::size_t>(st.range(0)));
    run_dfad(st, "regression (Sacado DFad)", rp.pb, rp.f());
}
BENCHMARK(regression_sacado_rad)->ArgsProduct({regression_sizes});
BENCHMARK(regression_sacado_dfad)->ArgsProduct({regression_sizes});

// ---------------------------------------------------------------------------------------------
// stochastic_volatility: the inputs are h_std, h (unused: overwritten), φ, σ, μ (N = 2T + 3)

struct sv_problem {
    sv_data d;
    problem pb;
    explicit sv_problem(std::size_t t) : d(t) {
        std::vector<double> h(t);
        pb.x = d.x;
        pb.want.resize(2 * t + 3);
        sv_hand(d, h, pb.want);
        pb.ops = 20 * t + 32;
    }
    auto f() const {
        return [this](const auto* v, std::size_t) { return generic_sv(d, v); };
    }
};
void sv_adolc(benchmark::State& st) {
    const sv_problem sp(static_cast<std::size_t>(st.range(0)));
    run_adolc(st, "stochastic_volatility (ADOL-C)", sp.pb, sp.f());
}
void sv_sacado_rad(benchmark::State& st) {
    const sv_problem sp(static_cast<std::size_t>(st.range(0)));
    run_rad(st, "stochastic_volatility (Sacado Rad)", sp.pb, sp.f());
}
void sv_sacado_dfad(benchmark::State& st) {
    const sv_problem sp(static_cast<std::size_t>(st.range(0)));
    run_dfad(st, "stochastic_volatility (Sacado DFad)", sp.pb, sp.f());
}
BENCHMARK(sv_sacado_rad)->ArgsProduct({sv_steps});
// N = 2T + 3 directions: as for the vector functions, only up to N ≈ 4096
BENCHMARK(sv_sacado_dfad)->Arg(2)->Arg(8)->Arg(128)->Arg(2048);

// ---------------------------------------------------------------------------------------------
// ADOL-C's runs, in increasing number of active inputs. A tape records as its number of live variables
// the size of ADOL-C's global location store, which only grows: after a tape of 16384 inputs, every
// gradient() of a 16-input tape allocates and walks a 32768-entry buffer (≈ 0.1–0.3 ms instead of 2.5 µs;
// see docs/benchmarks_ad.md). Running the small tapes first charges each
// run only for its own size.
void register_adolc_in_size_order() {
    struct run {
        long inputs;
        const char* name;
        void (*fn)(benchmark::State&);
        long arg;
    };
    std::vector<run> runs;
    for (long n : vector_sizes) {
        runs.push_back({n, "sum_adolc", sum_adolc, n});
        runs.push_back({n, "prod_adolc", prod_adolc, n});
        runs.push_back({n, "lse_adolc", lse_adolc, n});
        runs.push_back({n, "normal_adolc", normal_adolc, n});
    }
    for (long k : matrix_sizes) runs.push_back({2 * k * k, "mm_adolc", mm_adolc, k});
    for (long p : regression_sizes) runs.push_back({p + 2, "regression_adolc", regression_adolc, p});
    for (long t : sv_steps) runs.push_back({2 * t + 3, "sv_adolc", sv_adolc, t});
    std::stable_sort(runs.begin(), runs.end(), [](const run& a, const run& b) { return a.inputs < b.inputs; });
    for (const run& r : runs) benchmark::RegisterBenchmark(r.name, r.fn)->Arg(r.arg);
}

}  // namespace

int main(int argc, char** argv) {
    register_adolc_in_size_order();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
