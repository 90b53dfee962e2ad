// A first model composed at run time: token embedding -> transformer block -> linear head, trained a
// few steps with AdamW to continue arithmetic sequences mod 16 (3 7 11 15 3 ...). The stride (1 to 3) is
// only seen by looking back, through attention: a model seeing the current token alone stays at ln 3 ≈ 1.1.
// Exits 1 unless the loss falls below 0.7 (so the suite catches broken training).
//
//   build/examples/first_composed_model
#include <cstdio>
#include <vector>

#include <exprgrad/exprgrad.hpp>
#include <exprgrad/nn/adam.hpp>
#include <exprgrad/nn/transformer.hpp>

using namespace exprgrad;
using shape = std::vector<std::size_t>;

int main() {
    const std::size_t batch = 16, len = 8, vocab = 16, width = 32;
    rng gen(7);
    nn::parameter_set<float> params;  // every trainable array, by name
    auto& table = params.add("embedding", random::normal<float>(gen, shape{vocab, width}, 0.0, 0.1));
    auto block = nn::transformer<float>(params, "block",
                                        {.layers = 1, .width = width, .heads = 2, .attention = {.causal = true}}, gen);
    auto& head = params.add("head", random::normal<float>(gen, shape{width, vocab}, 0.0, 0.1));

    // The two ends are compiled blocks; the block in the middle is an nn layer, which records its own blocks. A
    // record remembers the calls of a step, and one backward runs every VJP in reverse: no gradient by hand.
    constexpr auto Tok = tensor<0>;  // the embedding's arguments: tokens, table
    constexpr auto Table = tensor<1>;
    auto embed = compile<float>(embedding(Table, Tok), wrt<1>);
    constexpr auto H = tensor<0>;  // the head's arguments: the block's output, the head, the targets
    constexpr auto Head = tensor<1>;
    constexpr auto Next = tensor<2>;
    auto head_loss = compile<float>(cross_entropy(matmul(H, Head), Next), wrt<0, 1>);
    tensors::record<float> rec;

    nn::adamw<float> opt({.lr = 1e-2});
    double first = 0, last = 0;
    for (int step = 0; step < 40; ++step) {
        // A batch: start and stride at random, token t = (start + stride·t) mod 16; predict the next.
        const xt::xarray<std::int64_t> start = random::integers(gen, shape{batch, 1}, 0, vocab);
        const xt::xarray<std::int64_t> stride = random::integers(gen, shape{batch, 1}, 1, 4);
        const xt::xarray<std::int64_t> t = xt::arange<std::int64_t>(0, len);
        const xt::xarray<std::int64_t> tokens = (start + stride * t) % std::int64_t(vocab);
        const xt::xarray<std::int64_t> next = (start + stride * (t + 1)) % std::int64_t(vocab);

        params.zero_grad();  // parameters accumulate
        rec.clear();         // a new step
        auto h = rec.call(embed, tokens, nn::leaf(rec, table));
        h = block.blocks->record_into(rec, h);  // the layers' blocks, their parameters as leaves
        const auto l = rec.call(head_loss, h, nn::leaf(rec, head), next);
        rec.backward(l);  // every VJP in reverse: the gradients land in params
        opt.step(params);
        const double loss = rec.value(l)(0);

        if (step == 0) first = loss;
        last = loss;
        if (step % 10 == 0 || step == 39) std::printf("step %2d  loss %.3f\n", step, loss);
    }
    std::printf("loss %.3f -> %.3f (ln 16 = 2.773 is guessing, ln 3 = 1.099 ignores the context)\n", first, last);
    return last < 0.7 ? 0 : 1;
}
