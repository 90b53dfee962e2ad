// Checks language_model::train_batch's data parallelism (model.hpp): split over 2 or 3 threads, the loss and
// every parameter's gradient are those of the whole batch on one copy (to float rounding), added to what the
// gradients held; twice the same split gives the same bits; a shard without a counted target falls back to
// the whole batch. Exit 0 when every check passes; each failure is printed.
#include "model.hpp"

#include <cmath>
#include <cstdio>
#include <exception>
#include <string>

#include <exprgrad/kernels/parallel.hpp>

namespace {

using exprgrad::rng;

int failures = 0;

void check(bool ok, const std::string& what) {
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
    failures += !ok;
}

tiny_lm::model_config small(const std::string& position) {
    tiny_lm::model_config c;
    c.vocab = 23;
    c.context = 8;
    c.width = 16;
    c.layers = 2;
    c.heads = 2;
    c.position = position;
    return c;
}

struct batch {
    xt::xarray<std::int32_t> tokens, targets;
};

// B rows of random pieces; targets the next pieces, with `ignored` of them set to −100 (not counted).
batch random_batch(std::size_t B, std::size_t T, std::size_t V, std::uint64_t seed, std::size_t ignored) {
    rng g(seed);
    batch b{xt::xarray<std::int32_t>::from_shape({B, T}), xt::xarray<std::int32_t>::from_shape({B, T})};
    for (auto& t : b.tokens) t = static_cast<std::int32_t>(g.below(V));
    for (auto& t : b.targets) t = static_cast<std::int32_t>(g.below(V));
    for (std::size_t i = 0; i < ignored; ++i) b.targets.data()[g.below(B * T)] = -100;
    return b;
}

// A model with the parameters of `seed`, its gradients set to `prefill`, after one train_batch.
struct trained {
    double loss;
    std::vector<xt::xarray<float>> grads;
    std::size_t shards;
};

trained train(const tiny_lm::model_config& c, const batch& b, std::size_t threads, bool data_parallel,
              float prefill) {
    exprgrad::kernels::set_num_threads(threads);
    rng init(7);
    tiny_lm::language_model m(c, init);
    m.set_data_parallel(data_parallel);
    for (auto& p : m.params()) p.grad.fill(prefill);
    trained t{m.train_batch(b.tokens, b.targets), {}, 0};
    t.shards = m.last_shards();
    for (auto& p : m.params()) t.grads.push_back(p.grad);
    return t;
}

// Largest |a − b| / (|b| + scale), scale the largest |b| of the parameter (gradients near 0 compared in absolute terms).
double worst(const trained& a, const trained& b) {
    double w = std::abs(a.loss - b.loss) / std::abs(b.loss);
    for (std::size_t i = 0; i < a.grads.size(); ++i) {
        double scale = 0.0;
        for (const float g : b.grads[i]) scale = std::max(scale, static_cast<double>(std::abs(g)));
        for (std::size_t j = 0; j < a.grads[i].size(); ++j) {
            const double d = std::abs(static_cast<double>(a.grads[i].data()[j]) - b.grads[i].data()[j]);
            w = std::max(w, d / (std::abs(static_cast<double>(b.grads[i].data()[j])) + scale + 1e-30));
        }
    }
    return w;
}

bool same_bits(const trained& a, const trained& b) {
    if (a.loss != b.loss) return false;
    for (std::size_t i = 0; i < a.grads.size(); ++i)
        if (a.grads[i] != b.grads[i]) return false;
    return true;
}

}  // namespace

int main() {
    for (const std::string position : {"learned", "none", "alibi"}) {
        const tiny_lm::model_config c = small(position);
        const batch b = random_batch(5, 8, c.vocab, 11, 6);
        // The reference: the whole batch at once, on one thread.
        const trained one = train(c, b, 1, false, 0.25f);
        for (const std::size_t threads : {2, 3}) {
            const trained split = train(c, b, threads, true, 0.25f);
            const double w = worst(split, one);
            char worst_text[32];
            std::snprintf(worst_text, sizeof worst_text, "%.2g", w);
            check(split.shards == threads && one.shards == 1,
                  position + ": split into " + std::to_string(split.shards) + " shards");
            check(w < 1e-6, position + ": " + std::to_string(threads) + " shards match the whole batch (worst " +
                                worst_text + ")");
            check(same_bits(split, train(c, b, threads, true, 0.25f)),
                  position + ": " + std::to_string(threads) + " shards give the same bits twice");
            check(!same_bits(split, train(c, b, threads, true, 0.0f)),
                  position + ": the gradients are added to what they held");
        }
    }
    {
        // Wide enough (~140k gradient elements) that the gradients' sum is split over the threads mid-parameter.
        tiny_lm::model_config c = small("learned");
        c.width = 64;
        c.vocab = 300;
        const batch b = random_batch(4, 8, c.vocab, 13, 3);
        const trained one = train(c, b, 1, false, -0.5f), split = train(c, b, 2, true, -0.5f);
        const double w = worst(split, one);
        check(split.shards == 2 && w < 1e-6, "width 64, vocab 300: 2 shards match the whole batch (worst " +
                                                 std::to_string(w * 1e7) + "e-7)");
    }
    {
        // An out-of-range piece in the second half: the whole batch reports it, with the same message either way.
        const tiny_lm::model_config c = small("learned");
        batch b = random_batch(4, 8, c.vocab, 14, 0);
        b.tokens(3, 5) = static_cast<std::int32_t>(c.vocab);
        auto message = [&](bool data_parallel) {
            exprgrad::kernels::set_num_threads(2);
            rng init(7);
            tiny_lm::language_model m(c, init);
            m.set_data_parallel(data_parallel);
            try {
                m.train_batch(b.tokens, b.targets);
            } catch (const std::exception& e) {
                return std::string(e.what());
            }
            return std::string("no error");
        };
        const std::string split = message(true), whole = message(false);
        check(split == whole && split != "no error", "an out-of-range piece: the whole batch's error (" + split + ")");
    }
    // A shard of only ignored targets (row 0 when split in two): the whole batch is trained at once, so the
    // result is that of data_parallel = false on the same threads, bit for bit.
    const tiny_lm::model_config c = small("learned");
    batch b = random_batch(4, 8, c.vocab, 12, 0);
    for (std::size_t t = 0; t < 16; ++t) b.targets.data()[t] = -100;
    const trained fallback = train(c, b, 2, true, 0.0f);
    check(fallback.shards == 1 && same_bits(fallback, train(c, b, 2, false, 0.0f)),
          "a shard without a counted target: the whole batch at once");
    check(std::isfinite(train(c, b, 2, true, 0.0f).loss), "  ... and its loss is finite");
    return failures == 0 ? 0 : 1;
}
