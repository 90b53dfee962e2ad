// A whole pre-norm transformer block as one tensor expression, differentiated with respect to its input and
// all twelve parameter arrays by one compiled program (issue 17, "compile cost": the translation unit's compile time
// and memory are the measurement; docs/attention.md records them). The attention inside is written with
// ops::attention_definition, so the program runs the attention node (the lowering).
//   y = x + attn(LN₁(x))·W_o,   out = y + relu(LN₂(y)·W₁ + c₁)·W₂ + c₂,   loss = sum(out · R)
// heads split off the model axis at run time: [B, T, C] → [B, H, T, C/H].
// Run: build/bench/bench_transformer_block --benchmark_min_time=0.5
// Compile cost: /usr/bin/time -v ninja -C build -j 1 bench/bench_transformer_block.p/bench_transformer_block.cpp.o
#include <benchmark/benchmark.h>

#include <cstddef>
#include <type_traits>

#include <xtensor/xtensor.hpp>

#include <exprgrad/exprgrad.hpp>

using namespace exprgrad;

namespace {

constexpr std::size_t B = 2, T = 128, C = 128, H = 4, F = 4 * C;

// arguments: 0 x [B, T, C]; 1..3 W_q, W_k, W_v [C, C]; 4 W_o [C, C]; 5, 6 LN₁ gain and bias [C];
// 7, 8 LN₂ gain and bias [C]; 9 W₁ [C, F]; 10 c₁ [F]; 11 W₂ [F, C]; 12 c₂ [C]; 13 R [B, T, C]; 14 H (a number)
constexpr auto X = tensor<0>;
constexpr auto heads = [](auto z) { return permute<0, 2, 1, 3>(reshape(z, 0_c, 0_c, tensor<14>, -1_c)); };
constexpr auto merge = [](auto z) { return reshape(permute<0, 2, 1, 3>(z), 0_c, 0_c, -1_c); };
constexpr auto h1 = layer_norm(X, tensor<5>, tensor<6>);
constexpr auto att = ops::attention_definition<ops::attention_config<true>>(
    heads(matmul(h1, tensor<1>)), heads(matmul(h1, tensor<2>)), heads(matmul(h1, tensor<3>)));
constexpr auto y = X + matmul(merge(att), tensor<4>);
constexpr auto ff = matmul(relu(matmul(layer_norm(y, tensor<7>, tensor<8>), tensor<9>) + tensor<10>), tensor<11>);
constexpr auto out = y + ff + tensor<12>;
constexpr auto loss = sum(out * tensor<13>);

// the attention inside was lowered: the compiled program holds an attention node
template <class N>
struct is_attention : std::false_type {};
template <class... A>
struct is_attention<ops::Attention<A...>> : std::true_type {};
template <class L>
struct holds_attention;
template <class... Ns>
struct holds_attention<sym::meta::type_list<Ns...>> : std::bool_constant<(is_attention<Ns>::value || ...)> {};
static_assert(holds_attention<tensors::tensor_nodes_t<decltype(loss)>>::value);

void BM_transformer_block(benchmark::State& st) {
    rng gen(3);
    auto n = [&](std::initializer_list<std::size_t> shape, double sd) {
        xt::xarray<float> a = random::normal<float>(gen, shape, 0.0, sd);
        return a;
    };
    const auto x = n({B, T, C}, 1), wq = n({C, C}, 0.1), wk = n({C, C}, 0.1), wv = n({C, C}, 0.1), wo = n({C, C}, 0.1),
               g1 = n({C}, 1), b1 = n({C}, 0.1), g2 = n({C}, 1), b2 = n({C}, 0.1), w1 = n({C, F}, 0.1),
               c1 = n({F}, 0.1), w2 = n({F, C}, 0.05), c2 = n({C}, 0.1), r = n({B, T, C}, 1);
    auto prog = value_and_grad(loss, wrt<0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12>);
    for (auto _ : st) {
        const auto [value, grads] = prog(x, wq, wk, wv, wo, g1, b1, g2, b2, w1, c1, w2, c2, r, H);
        benchmark::DoNotOptimize(value);
        benchmark::DoNotOptimize(std::get<1>(grads).data());
    }
}

}  // namespace

BENCHMARK(BM_transformer_block)->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
