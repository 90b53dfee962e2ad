// An MLP's forward + backward pass, exprgrad against libtorch 1.13 (Debian libtorch-dev), float32, both on
// one thread (torch::set_num_threads(1), exprgrad::set_num_threads(1), OpenBLAS at one thread: libtorch's
// BLAS is the same OpenBLAS through libblas.so.3).
//
// The model: three layers of width w (input, hidden and output all w), tanh between them, MSE loss:
//   loss = mean((tanh(tanh(X W1 + b1) W2 + b2) W3 + b3 - Y)²),  X, Y: batch × w,  Wi: w × w,  bi: w,
// and the gradient with respect to the six parameters (not X). exprgrad writes it as one tensor
// expression compiled once by value_and_grad; libtorch runs it the way a libtorch user does: addmm (what
// nn::Linear calls), tanh, mse_loss, backward(), with the gradients reset to undefined after each step
// (set_to_none, no accumulation). Both start from the same weights and data; before any timing, every
// shape is checked: the same loss and the same six gradients (float32 tolerance), else exit 1.
// Work counted: 16·batch·w² flops per step (3 GEMMs forward, 3 for the weight gradients, 2 for the
// hidden-layer adjoints).
//
// Built only with -Dpeers=true. Run: build-peers/bench/peers/bench_mlp_torch --benchmark_min_time=0.1
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <xtensor/xarray.hpp>

#include <exprgrad/exprgrad.hpp>

namespace {

namespace eg = exprgrad;

const std::vector<long> batches{1, 16, 64, 256};
const std::vector<long> widths{64, 128, 256, 512, 1024};

struct mlp_data {
    xt::xarray<float> x, y;
    std::array<xt::xarray<float>, 6> params;  // W1, b1, W2, b2, W3, b3
};

xt::xarray<float> uniform(std::vector<std::size_t> shape, eg::rng& g, double scale) {
    xt::xarray<float> a = xt::xarray<float>::from_shape(shape);
    for (auto& v : a) v = static_cast<float>(scale * (2 * g.uniform() - 1));
    return a;
}

mlp_data make_data(std::size_t batch, std::size_t width) {
    eg::rng g(1234 + 7 * batch + width);
    mlp_data d;
    d.x = uniform({batch, width}, g, 1.0);
    d.y = uniform({batch, width}, g, 1.0);
    const double s = 1.0 / std::sqrt(static_cast<double>(width));  // the default init of nn::Linear
    for (std::size_t l = 0; l < 3; ++l) {
        d.params[2 * l] = uniform({width, width}, g, s);
        d.params[2 * l + 1] = uniform({width}, g, s);
    }
    return d;
}

// ---------------------------------------------------------------------------------------------
// exprgrad: one expression, compiled once

constexpr auto X = eg::tensor<0>;
constexpr auto W1 = eg::tensor<1>;
constexpr auto B1 = eg::tensor<2>;
constexpr auto W2 = eg::tensor<3>;
constexpr auto B2 = eg::tensor<4>;
constexpr auto W3 = eg::tensor<5>;
constexpr auto B3 = eg::tensor<6>;
constexpr auto Yt = eg::tensor<7>;
constexpr auto mlp_loss =
    eg::mean(eg::square(eg::matmul(eg::tanh(eg::matmul(eg::tanh(eg::matmul(X, W1) + B1), W2) + B2), W3) + B3 - Yt));

using eg_program = decltype(eg::value_and_grad(mlp_loss, eg::wrt<1, 2, 3, 4, 5, 6>));

auto eg_step(eg_program& prog, const mlp_data& d) {
    const auto& p = d.params;
    return prog(d.x, p[0], p[1], p[2], p[3], p[4], p[5], d.y);
}

// ---------------------------------------------------------------------------------------------
// libtorch

struct torch_mlp {
    torch::Tensor x, y;
    std::array<torch::Tensor, 6> params;

    explicit torch_mlp(const mlp_data& d) : x(to_torch(d.x)), y(to_torch(d.y)) {
        for (std::size_t i = 0; i < 6; ++i) params[i] = to_torch(d.params[i]).set_requires_grad(true);
    }
    static torch::Tensor to_torch(const xt::xarray<float>& a) {
        std::vector<int64_t> shape(a.shape().begin(), a.shape().end());
        return torch::from_blob(const_cast<float*>(a.data()), shape, torch::kFloat32).clone();
    }
    // One step: the loss, its backward pass; the gradients are then in params[i].grad().
    float step() {
        for (auto& p : params) p.mutable_grad().reset();
        auto h1 = torch::tanh(torch::addmm(params[1], x, params[0]));
        auto h2 = torch::tanh(torch::addmm(params[3], h1, params[2]));
        auto out = torch::addmm(params[5], h2, params[4]);
        auto loss = torch::mse_loss(out, y);
        loss.backward();
        return loss.item<float>();
    }
};

// ---------------------------------------------------------------------------------------------
// the check before timing

bool close(const float* got, const float* want, std::size_t n, const char* what, std::size_t batch, std::size_t width) {
    float scale = 0;
    for (std::size_t i = 0; i < n; ++i) scale = std::max(scale, std::abs(want[i]));
    for (std::size_t i = 0; i < n; ++i) {
        if (!(std::abs(got[i] - want[i]) <= 1e-3f * scale + 1e-7f)) {
            std::fprintf(stderr, "MLP batch %zu width %zu: %s entry %zu is %.9g with exprgrad, %.9g with libtorch\n",
                         batch, width, what, i, static_cast<double>(got[i]), static_cast<double>(want[i]));
            return false;
        }
    }
    return true;
}

void check_all_shapes() {
    static const char* names[6] = {"dW1", "db1", "dW2", "db2", "dW3", "db3"};
    for (long b : batches)
        for (long w : widths) {
            const auto batch = static_cast<std::size_t>(b), width = static_cast<std::size_t>(w);
            const mlp_data d = make_data(batch, width);
            eg_program prog;
            const auto [value, grads] = eg_step(prog, d);
            torch_mlp t(d);
            const float tv = t.step();
            if (!(std::abs(value - tv) <= 1e-4f * std::abs(tv))) {
                std::fprintf(stderr, "MLP batch %zu width %zu: loss %.9g with exprgrad, %.9g with libtorch\n", batch,
                             width, static_cast<double>(value), static_cast<double>(tv));
                std::exit(1);
            }
            bool ok = true;
            auto compare = [&](const xt::xarray<float>& g, std::size_t i) {
                const torch::Tensor tg = t.params[i].grad().contiguous();
                if (static_cast<std::size_t>(tg.numel()) != g.size()) {
                    std::fprintf(stderr, "MLP: %s has %zu entries with exprgrad, %lld with libtorch\n", names[i],
                                 g.size(), static_cast<long long>(tg.numel()));
                    std::exit(1);
                }
                ok = ok && close(g.data(), tg.data_ptr<float>(), g.size(), names[i], batch, width);
            };
            compare(std::get<0>(grads), 0);
            compare(std::get<1>(grads), 1);
            compare(std::get<2>(grads), 2);
            compare(std::get<3>(grads), 3);
            compare(std::get<4>(grads), 4);
            compare(std::get<5>(grads), 5);
            if (!ok) std::exit(1);
        }
    std::fprintf(stderr, "MLP: exprgrad and libtorch agree on the loss and the six gradients at every shape\n");
}

// ---------------------------------------------------------------------------------------------
// the benchmarks

void set_flops(benchmark::State& st) {
    const double flops =
        16.0 * static_cast<double>(st.range(0)) * static_cast<double>(st.range(1)) * static_cast<double>(st.range(1));
    st.counters["GFLOPs"] = benchmark::Counter(flops / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

void mlp_exprgrad(benchmark::State& st) {
    const mlp_data d = make_data(static_cast<std::size_t>(st.range(0)), static_cast<std::size_t>(st.range(1)));
    eg_program prog;
    eg_step(prog, d);  // the first call sizes the workspace
    for (auto _ : st) {
        auto r = eg_step(prog, d);
        benchmark::DoNotOptimize(r.first);
        benchmark::DoNotOptimize(std::get<0>(r.second).data());
    }
    set_flops(st);
}

void mlp_torch(benchmark::State& st) {
    const mlp_data d = make_data(static_cast<std::size_t>(st.range(0)), static_cast<std::size_t>(st.range(1)));
    torch_mlp t(d);
    t.step();
    for (auto _ : st) {
        benchmark::DoNotOptimize(t.step());
        benchmark::DoNotOptimize(t.params[0].grad().data_ptr());
    }
    set_flops(st);
}

void shapes(benchmark::internal::Benchmark* b) {
    b->ArgNames({"batch", "width"})->ArgsProduct({batches, widths})->Unit(benchmark::kMicrosecond);
}
BENCHMARK(mlp_exprgrad)->Apply(shapes);
BENCHMARK(mlp_torch)->Apply(shapes);

}  // namespace

int main(int argc, char** argv) {
    torch::set_num_threads(1);
    openblas_set_num_threads(1);
    exprgrad::set_num_threads(1);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    check_all_shapes();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
