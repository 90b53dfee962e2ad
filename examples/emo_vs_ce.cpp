// EMO versus cross-entropy on a small byte-level language model (issue 5's example).
//
// The same model — three previous bytes embedded, one tanh hidden layer, a 256-way output head —
// is trained from the same initialization twice: with plain cross-entropy, and with EMO mode 1
// (½(CE + w·EMO), w = sg(CE/EMO)) whose cost embedding is the model's own output head, detached
// (the "adaptive" variant). Both report held-out perplexity and bits per byte, and how well text
// sampled from each model matches held-out text: KL(held-out ‖ sample) of byte unigram and bigram
// frequencies (add-one smoothed).
//
//   build/examples/emo_vs_ce                       (the run recorded in docs/emo.md)
//   build/examples/emo_vs_ce --steps 50 --sample 2000   (the suite's small run)
#include <CLI/CLI.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>

#include <exprgrad/exprgrad.hpp>
#include <exprgrad/nn/init.hpp>
#include <exprgrad/nn/optimizer.hpp>

#include "cli_options.hpp"

using namespace exprgrad;

namespace {
constexpr std::size_t ctx = 3, V = 256;

// The corpus: the Debian fortunes files (installed by setup.sh), or a built-in paragraph if absent.
std::string load_corpus(std::size_t max_bytes) {
    std::string text;
    // the English collections, in a fixed order (the Chinese ones are in a separate package)
    for (const char* name :
         {"fortunes",      "literature", "science", "wisdom",     "people",      "politics", "work",
          "computers",     "education",  "food",    "humorists",  "law",         "love",     "men-women",
          "miscellaneous", "news",       "pets",    "platitudes", "songs-poems", "sports"}) {
        std::ifstream in(std::string("/usr/share/games/fortunes/") + name, std::ios::binary);
        if (!in) continue;
        std::stringstream ss;
        ss << in.rdbuf();
        text += ss.str();
        if (text.size() >= max_bytes) break;
    }
    if (text.size() < 10000) {
        std::fprintf(stderr, "emo_vs_ce: fortunes not found, using a small built-in text\n");
        std::string para =
            "The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with a single "
            "step. Knowledge is power, and power corrupts; study hard and be evil. ";
        while (text.size() < 60000) text += para;
    }
    if (text.size() > max_bytes) text.resize(max_bytes);
    return text;
}

struct model {
    xt::xarray<float> emb, w1, b1, w2, b2;
    model(std::size_t hidden, std::size_t dim, std::uint64_t seed) {
        rng g(seed);
        emb = xt::xarray<float>::from_shape({V, dim});
        w1 = xt::xarray<float>::from_shape({ctx * dim, hidden});
        b1 = xt::zeros<float>({hidden});
        w2 = xt::xarray<float>::from_shape({hidden, V});
        b2 = xt::zeros<float>({V});
        nn::init::normal(emb, g, 0.0, 0.3);
        nn::init::xavier_uniform(w1, g, 5.0 / 3.0);
        nn::init::xavier_uniform(w2, g);
    }
};

// The logits of a batch: idx [B, ctx] -> [B, 256]. tensor<0> idx, <1> emb, <2> w1, <3> b1, <4> w2, <5> b2.
constexpr auto Idx = tensor<0>;
constexpr auto Emb = tensor<1>;
constexpr auto W1 = tensor<2>;
constexpr auto B1 = tensor<3>;
constexpr auto W2 = tensor<4>;
constexpr auto B2 = tensor<5>;
constexpr auto Y = tensor<6>;
constexpr auto Ecost = tensor<7>;
constexpr auto logits = matmul(tanh(matmul(reshape<0, -1>(embedding(Emb, Idx)), W1) + B1), W2) + B2;

void batch_at(const std::string& text, std::size_t start, std::size_t n, xt::xarray<long>& idx, xt::xarray<long>& y) {
    idx = xt::xarray<long>::from_shape({n, ctx});
    y = xt::xarray<long>::from_shape({n});
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t p = start + i;
        for (std::size_t k = 0; k < ctx; ++k) idx(i, k) = static_cast<unsigned char>(text[p + k]);
        y(i) = static_cast<unsigned char>(text[p + ctx]);
    }
}

struct report {
    double ppl = 0, bpb = 0, kl1 = 0, kl2 = 0, seconds = 0;
};

void adam_step(nn::adam<float>& opt, nn::parameter_set<float>& ps, const auto& grads) {
    ps[0].grad = std::get<0>(grads);
    ps[1].grad = std::get<1>(grads);
    ps[2].grad = std::get<2>(grads);
    ps[3].grad = std::get<3>(grads);
    ps[4].grad = std::get<4>(grads);
    opt.step(ps);
}

double kl(const std::vector<double>& p, const std::vector<double>& q) {
    double s = 0;
    for (std::size_t i = 0; i < p.size(); ++i)
        if (p[i] > 0) s += p[i] * std::log(p[i] / q[i]);
    return s;
}

// Byte unigram and bigram distributions, add-one smoothed.
std::pair<std::vector<double>, std::vector<double>> frequencies(const std::string& s) {
    std::vector<double> u(V, 1.0), b(V * V, 1.0);
    for (std::size_t i = 0; i < s.size(); ++i) {
        u[static_cast<unsigned char>(s[i])] += 1;
        if (i + 1 < s.size()) b[static_cast<unsigned char>(s[i]) * V + static_cast<unsigned char>(s[i + 1])] += 1;
    }
    double su = 0, sb = 0;
    for (double v : u) su += v;
    for (double v : b) sb += v;
    for (double& v : u) v /= su;
    for (double& v : b) v /= sb;
    return {u, b};
}

report train(bool use_emo, const std::string& train_text, const std::string& held, std::size_t steps, std::size_t batch,
             std::size_t sample_len, std::uint64_t seed) {
    model init(128, 24, seed);
    nn::parameter_set<float> ps;
    auto& emb = ps.add("emb", init.emb).value;
    auto& w1 = ps.add("w1", init.w1).value;
    auto& b1 = ps.add("b1", init.b1).value;
    auto& w2 = ps.add("w2", init.w2).value;
    auto& b2 = ps.add("b2", init.b2).value;
    nn::adam<float> opt({.lr = 3e-3});
    auto ce_prog = value_and_grad(cross_entropy(logits, Y), wrt<1, 2, 3, 4, 5>);
    auto emo_prog = value_and_grad(ops::emo_loss<emo_objective::mode1>(logits, Y, Ecost), wrt<1, 2, 3, 4, 5>);
    rng g(seed + 1);
    xt::xarray<long> idx, y;
    xt::xarray<float> ecost;
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t s = 0; s < steps; ++s) {
        batch_at(train_text, g.below(train_text.size() - batch - ctx - 1), batch, idx, y);
        if (use_emo) {
            ecost = xt::transpose(w2);  // the head's rows, detached: no gradient flows into them
            auto [l, grads] = emo_prog(idx, emb, w1, b1, w2, b2, y, ecost);
            adam_step(opt, ps, grads);
        } else {
            auto [l, grads] = ce_prog(idx, emb, w1, b1, w2, b2, y);
            adam_step(opt, ps, grads);
        }
    }
    report r;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // held-out cross-entropy per byte
    double total = 0;
    std::size_t count = 0;
    for (std::size_t start = 0; start + 512 + ctx < held.size(); start += 512) {
        batch_at(held, start, 512, idx, y);
        total += static_cast<double>(ce_prog(idx, emb, w1, b1, w2, b2, y).first) * 512;
        count += 512;
    }
    r.ppl = std::exp(total / static_cast<double>(count));
    r.bpb = total / static_cast<double>(count) / std::log(2.0);
    // sample text byte by byte (temperature 1) from the held-out text's first context
    auto logit_prog = tensors::compile<float>(logits, wrt<1>);
    std::string sample = held.substr(0, ctx);
    xt::xarray<long> one = xt::xarray<long>::from_shape({1, ctx});
    for (std::size_t i = 0; i < sample_len; ++i) {
        for (std::size_t k = 0; k < ctx; ++k) one(0, k) = static_cast<unsigned char>(sample[sample.size() - ctx + k]);
        const auto& z = logit_prog.forward(one, emb, w1, b1, w2, b2);
        double mx = -INFINITY;
        for (std::size_t k = 0; k < V; ++k) mx = std::max(mx, static_cast<double>(z.data[k]));
        std::vector<double> p(V);
        double sum = 0;
        for (std::size_t k = 0; k < V; ++k) sum += p[k] = std::exp(z.data[k] - mx);
        double u = g.uniform() * sum;
        std::size_t pick = V - 1;
        for (std::size_t k = 0; k < V; ++k) {
            if (u < p[k]) {
                pick = k;
                break;
            }
            u -= p[k];
        }
        sample += static_cast<char>(pick);
    }
    const auto [hu, hb] = frequencies(held);
    const auto [su, sb] = frequencies(sample);
    r.kl1 = kl(hu, su);
    r.kl2 = kl(hb, sb);
    return r;
}

void run(std::size_t steps, std::size_t batch, std::size_t sample_len, std::size_t corpus, std::uint64_t seed) {
    set_num_threads(1);  // deterministic and comparable timings
    const std::string text = load_corpus(corpus);
    const std::size_t cut = text.size() * 9 / 10;
    const std::string train_text = text.substr(0, cut), held = text.substr(cut);
    const report ce = train(false, train_text, held, steps, batch, sample_len, seed);
    const report emo = train(true, train_text, held, steps, batch, sample_len, seed);
    std::printf("corpus %zu bytes (%zu held out), %zu steps of %zu positions, seed %llu\n\n", text.size(), held.size(),
                steps, batch, static_cast<unsigned long long>(seed));
    std::printf("| objective | held-out perplexity | bits per byte | KL unigram | KL bigram | train seconds |\n");
    std::printf("|---|---|---|---|---|---|\n");
    std::printf("| CE | %.3f | %.4f | %.5f | %.4f | %.1f |\n", ce.ppl, ce.bpb, ce.kl1, ce.kl2, ce.seconds);
    std::printf("| CE + EMO (mode 1) | %.3f | %.4f | %.5f | %.4f | %.1f |\n", emo.ppl, emo.bpb, emo.kl1, emo.kl2,
                emo.seconds);
    if (!(std::isfinite(ce.ppl) && std::isfinite(emo.ppl) && ce.ppl < 256 && emo.ppl < 256))
        throw std::runtime_error("training failed: held-out perplexity " + exprgrad::format_number(ce.ppl) + " (CE), " +
                                 exprgrad::format_number(emo.ppl) + " (EMO), want both below 256");
}
}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"EMO vs cross-entropy on a byte-level language model", "emo_vs_ce"};
    std::size_t steps = 3000, batch = 256, sample_len = 30000, corpus = 2'000'000;
    std::uint64_t seed = 1;
    // Every number is parsed strictly into a documented range (src/tools/cli_options.hpp).
    tools::add_number(app, "--steps", steps, "training steps per arm", std::size_t{1}, std::size_t{10'000'000});
    tools::add_number(app, "--batch", batch, "positions per step", std::size_t{1}, std::size_t{1 << 24});
    tools::add_number(app, "--sample", sample_len, "bytes sampled from each model", std::size_t{1},
                      std::size_t{1 << 30});
    tools::add_number(app, "--corpus", corpus, "bytes of fortunes text to use (10% held out)", std::size_t{1000},
                      std::size_t{1} << 34);
    tools::add_number(app, "--seed", seed, "seed of the initialization, the batches and the sampler",
                      std::uint64_t{0}, ~std::uint64_t{0});
    return tools::run_main(app, argc, argv, [&] { run(steps, batch, sample_len, corpus, seed); });
}
