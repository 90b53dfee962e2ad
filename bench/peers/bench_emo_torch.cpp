// The EMO loss (mode 1), forward + backward, exprgrad's kernel against a libtorch 1.13 composition of the
// same formula, in one run, at the shapes of bench/bench_emo.cpp: N = 256 positions, h = 512, V ∈ {8192,
// 32768}, float32, one thread everywhere (exprgrad's pool, OpenBLAS, libtorch's intra-op threads).
//
// The composition is the natural one: p = softmax(z), Ē = p·Ê (one N·V·h product), EMO = 1 − ⟨Ē, ê_t⟩
// (which equals Σ_k p_k (1 − ⟨ê_k, ê_t⟩)), w = sg(CE / (EMO + 1e-10)), L = mean ½(CE + w·EMO); autograd's
// backward adds the second product dp = dĒ·Êᵀ. exprgrad computes the costs with one product ê_t·Êᵀ and
// the gradient p_k (c_k − EMO) in O(N·V). Both are also timed for plain CE (for scale), and OpenBLAS sgemm
// on the one product's shape. GFLOP/s count 2·N·V·h flops (one product) for every row, so they compare.
// Built only with -Dpeers=true. Run: build-peers/bench/peers/bench_emo_torch --benchmark_min_time=0.5
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <torch/torch.h>

#include <vector>

#include <xtensor/xarray.hpp>

#include <exprgrad/exprgrad.hpp>

#include "../emo_inputs.hpp"

using namespace exprgrad;

namespace {
constexpr long N = long(bench::emo_positions), H = long(bench::emo_hidden);

void report(benchmark::State& st, long V) {
    st.counters["GFLOP/s"] =
        benchmark::Counter(2.0 * N * static_cast<double>(V) * H, benchmark::Counter::kIsIterationInvariantRate);
}

using inputs = bench::emo_inputs;

void one_thread() {
    set_num_threads(1);
    torch::set_num_threads(1);
}

void exprgrad_emo(benchmark::State& st, emo_objective o) {
    one_thread();
    const long V = st.range(0);
    inputs in(static_cast<std::size_t>(V));
    emo_result<float> r;
    for (auto _ : st) {
        emo_loss_into(r, in.logits, in.targets, in.e, {.objective = o});
        benchmark::DoNotOptimize(r.loss);
    }
    report(st, V);
}
void exprgrad_mode1(benchmark::State& st) { exprgrad_emo(st, emo_objective::mode1); }
void exprgrad_ce(benchmark::State& st) { exprgrad_emo(st, emo_objective::ce); }

void torch_loss(benchmark::State& st, bool emo) {
    one_thread();
    const long V = st.range(0);
    inputs in(static_cast<std::size_t>(V));
    auto z = torch::from_blob(in.logits.data(), {N, V}, torch::kFloat32).clone().set_requires_grad(true);
    auto e = torch::from_blob(in.e.data(), {V, H}, torch::kFloat32).clone();
    auto t = torch::from_blob(in.targets.data(), {N}, torch::kInt64).clone();
    // Ê is fixed (the cost embedding gets no gradient): normalized once, outside the timed loop, as
    // exprgrad's kernel normalizes its rows once per call (it is timed with that work included).
    auto eh = e / e.norm(2, 1, true).clamp_min(1e-12);
    for (auto _ : st) {
        auto ce = torch::nn::functional::cross_entropy(
            z, t, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
        torch::Tensor loss;
        if (emo) {
            auto p = torch::softmax(z, -1);
            auto emo_v = (1 - (torch::matmul(p, eh) * eh.index_select(0, t)).sum(-1)).clamp_min(0);
            auto w = (ce / (emo_v + 1e-10)).detach();
            loss = (0.5 * (ce + w * emo_v)).mean();
        } else {
            loss = ce.mean();
        }
        loss.backward();
        benchmark::DoNotOptimize(z.grad().data_ptr());
        z.mutable_grad().reset();
    }
    report(st, V);
}
void torch_mode1(benchmark::State& st) { torch_loss(st, true); }
void torch_ce(benchmark::State& st) { torch_loss(st, false); }

void sgemm_same_shape(benchmark::State& st) {
    one_thread();
    const long V = st.range(0);
    inputs in(static_cast<std::size_t>(V));
    std::vector<float> a(N * H, 0.5f), c(static_cast<std::size_t>(N * V));
    for (auto _ : st) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, static_cast<int>(V), H, 1.0f, a.data(), H, in.e.data(),
                    H, 0.0f, c.data(), static_cast<int>(V));
        benchmark::DoNotOptimize(c.data());
    }
    report(st, V);
}
}  // namespace

BENCHMARK(sgemm_same_shape)->Arg(8192)->Arg(32768)->Unit(benchmark::kMillisecond);
BENCHMARK(exprgrad_mode1)->Arg(8192)->Arg(32768)->Unit(benchmark::kMillisecond);
BENCHMARK(torch_mode1)->Arg(8192)->Arg(32768)->Unit(benchmark::kMillisecond);
BENCHMARK(exprgrad_ce)->Arg(8192)->Arg(32768)->Unit(benchmark::kMillisecond);
BENCHMARK(torch_ce)->Arg(8192)->Arg(32768)->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
