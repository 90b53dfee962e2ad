// Self-pretraining (SPT) versus training from scratch on synthetic ListOps, after Amos, Berant & Gupta,
// "Never Train from Scratch" (ICLR 2024). Notes and results: docs/self_pretraining.md.
//
// Task: ListOps expressions such as "[MAX 2 9 [MIN 4 7 ] 0 ]" (value 9), 10 classes; the grammar and the
// sampler are at the top of listops.hpp. Default: nesting depth <= 2, lengths 5..64 tokens.
//
// Model: token + learned position embeddings, a bidirectional pre-norm transformer (nn::transformer, no
// causal mask), then a head. Classification: rms_norm, mean pooling over the real (non-pad) positions, a
// linear layer to 10 logits. Sequences in a batch are padded to its longest with <pad>; batches are
// built from examples of similar length, so padding is rare. Attention masks the pad keys
// (transformer_stack::set_key_lengths); pooling and the masked loss ignore the pads too.
//
// Two arms, the same total number of epochs E over the same training set, from the same initialization:
//   scratch:  E epochs of classification.
//   SPT:      P epochs of masked prediction on the training inputs only (each real token replaced by
//             <mask> with probability 0.1, drawn afresh every time a sequence is loaded; cross-entropy only
//             at the masked positions; head: rms_norm + linear to the vocabulary), then E − P epochs of
//             classification from the pretrained embeddings and blocks with a fresh classifier head
//             (the same initial head as the scratch arm) and a fresh optimizer.
// Each classification phase keeps the parameters of its best validation epoch; the table reports test
// accuracy with those (and at the last epoch) over several seeds (initialization, batch order, masks).
//
//   build/examples/self_pretraining                 (the recorded configuration, both arms, 5 seeds in turn)
//   python3 bench/self_pretraining.py build/examples/self_pretraining   (the same runs, one process per arm
//       and seed with --arm: the experiment recorded in docs/self_pretraining.md and its TSV)
//   build/examples/self_pretraining --train 300 --val 100 --test 100 --min-len 8 --max-len 48
//       --epochs 6 --pretrain-epochs 3 --seeds 1 --check-loss-decreases     (the suite's small run)
//
// With --check-loss-decreases the program exits with status 1 unless every phase's mean training loss in
// its last epoch is below that of its first epoch.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <numeric>
#include <string>
#include <unordered_set>
#include <vector>

#include <xtensor/xarray.hpp>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <exprgrad/exprgrad.hpp>
#include <exprgrad/nn/init.hpp>
#include <exprgrad/nn/optimizer.hpp>
#include <exprgrad/nn/schedule.hpp>
#include <exprgrad/nn/transformer.hpp>
#include <exprgrad/tensors/record.hpp>

#include "cli_options.hpp"
#include "listops.hpp"
#include "model.hpp"

using namespace exprgrad;
using spt::batch;
using spt::model;

namespace {

// The defaults are the recorded experiment's (docs/self_pretraining.md): depth-2 expressions of 5..64 tokens
// and 10000 training examples, where training from scratch clearly learns. (The first setting, depth 8,
// 16..256 tokens and 2000 examples, left both arms near 0.26.)
struct config {
    std::size_t train = 10000, val = 1000, test = 2000;
    listops::options data{.min_len = 5, .max_len = 64, .max_depth = 2, .max_args = 5, .p_list = 0.3};
    std::uint64_t data_seed = 2024;
    std::size_t width = 64, layers = 2, heads = 4, mlp_hidden = 128;
    std::size_t epochs = 15, pretrain_epochs = 0, batch = 32, eval_batch = 128;  // pretrain 0: epochs / 2
    double lr = 1e-3, pretrain_lr = 1e-3, weight_decay = 0.01, mask_prob = 0.1, warmup = 0.05, clip = 1.0;
    std::size_t seeds = 5;
    std::uint64_t seed = 1;
    std::string arm = "both";  // "scratch", "spt" or "both"
    bool verbose = true;
};

spt::model_shape shape_of(const config& c) {
    return {
        .width = c.width, .layers = c.layers, .heads = c.heads, .mlp_hidden = c.mlp_hidden, .max_len = c.data.max_len};
}

// ---- batches ------------------------------------------------------------------------------------------

void fill_batch(const std::vector<listops::example>& data, const std::size_t* idx, std::size_t n, batch& b) {
    std::size_t T = 0;
    for (std::size_t i = 0; i < n; ++i) T = std::max(T, data[idx[i]].tokens.size());
    b.tokens = xt::xarray<long>::from_shape({n, T});
    b.mask = xt::xarray<float>::from_shape({n, T, std::size_t{1}});
    b.labels = xt::xarray<long>::from_shape({n});
    b.lengths.resize(n);
    b.positions = xt::xarray<long>::from_shape({T});
    for (std::size_t t = 0; t < T; ++t) b.positions(t) = static_cast<long>(t);
    for (std::size_t i = 0; i < n; ++i) {
        const auto& e = data[idx[i]];
        for (std::size_t t = 0; t < T; ++t) {
            const bool real = t < e.tokens.size();
            b.tokens(i, t) = real ? long{e.tokens[t]} : long{listops::pad_id};
            b.mask(i, t, 0) = real ? 1.0f : 0.0f;
        }
        b.labels(i) = e.label;
        b.lengths[i] = e.tokens.size();
    }
}

// Replaces each real token by <mask> with probability p; targets hold the original there, -1 elsewhere.
void apply_mask(batch& b, double p, rng& g) {
    b.targets = xt::xarray<long>::from_shape(b.tokens.shape());
    for (std::size_t i = 0; i < b.tokens.size(); ++i) {
        const long t = b.tokens.data()[i];
        const bool hit = t != listops::pad_id && g.uniform() < p;
        b.targets.data()[i] = hit ? t : -1;
        if (hit) b.tokens.data()[i] = listops::mask_id;
    }
}

void shuffle(std::vector<std::size_t>& v, rng& g) {
    for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[g.below(i)]);
}

// One epoch's batches: a random permutation, sorted by length within pools of 8 batches (so a batch holds
// sequences of similar length and pads little), then the batches in random order.
std::vector<std::vector<std::size_t>> epoch_batches(const std::vector<listops::example>& data, std::size_t B, rng& g) {
    std::vector<std::size_t> order(data.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    shuffle(order, g);
    const std::size_t pool = 8 * B;
    for (std::size_t s = 0; s < order.size(); s += pool) {
        const auto end = order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), s + pool));
        std::stable_sort(order.begin() + static_cast<std::ptrdiff_t>(s), end,
                         [&](std::size_t a, std::size_t c) { return data[a].tokens.size() < data[c].tokens.size(); });
    }
    std::vector<std::vector<std::size_t>> out;
    for (std::size_t s = 0; s < order.size(); s += B)
        out.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(s),
                         order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), s + B)));
    std::vector<std::size_t> perm(out.size());
    std::iota(perm.begin(), perm.end(), std::size_t{0});
    shuffle(perm, g);
    std::vector<std::vector<std::size_t>> shuffled;
    for (std::size_t p : perm) shuffled.push_back(std::move(out[p]));
    return shuffled;
}

// ---- training -----------------------------------------------------------------------------------------
// The fraction of `data` classified correctly. With `by_op`, also per root operator (MAX, MIN, MED, SM):
// (*by_op)[k] correct and (*by_op)[4 + k] total.
double accuracy(model& m, const std::vector<listops::example>& data, std::size_t eval_batch,
                std::array<std::size_t, 8>* by_op = nullptr) {
    std::vector<std::size_t> order(data.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t c) { return data[a].tokens.size() < data[c].tokens.size(); });
    std::size_t correct = 0;
    batch b;
    for (std::size_t s = 0; s < order.size(); s += eval_batch) {
        const std::size_t n = std::min(eval_batch, order.size() - s);
        fill_batch(data, order.data() + s, n, b);
        const float* logits = m.classify(b);
        for (std::size_t i = 0; i < n; ++i) {
            const float* row = logits + i * listops::num_classes;
            const long pred = std::max_element(row, row + listops::num_classes) - row;
            correct += pred == b.labels(i) ? 1 : 0;
            if (by_op) {
                const std::size_t op = data[order[s + i]].tokens[0] - listops::op_max;
                (*by_op)[op] += pred == b.labels(i) ? 1 : 0;
                (*by_op)[4 + op] += 1;
            }
        }
    }
    return static_cast<double>(correct) / static_cast<double>(data.size());
}

struct phase_result {
    std::vector<double> epoch_loss;  // mean training loss per epoch
    double best_val = -1, test_best = 0, test_last = 0, seconds = 0;
    std::array<std::size_t, 8> test_by_op{};  // at the best validation epoch, see accuracy()
};

void step(model& m, nn::adamw<float>& opt, nn::cosine_warmup& sched, double clip) {
    nn::clip_grad_norm(m.params, clip);
    opt.set_lr(sched.lr());
    opt.step(m.params);
    sched.step();
}

nn::cosine_warmup make_schedule(double lr, std::size_t steps, double warmup) {
    return nn::cosine_warmup({.base_lr = lr,
                              .warmup_steps = static_cast<std::uint64_t>(warmup * static_cast<double>(steps)),
                              .total_steps = std::max<std::uint64_t>(1, steps)});
}

std::size_t batches_per_epoch(std::size_t n, std::size_t B) { return (n + B - 1) / B; }

// Masked prediction on the training inputs (their labels are never read).
phase_result pretrain(model& m, const config& c, const std::vector<listops::example>& train, rng& g) {
    phase_result r;
    const auto t0 = std::chrono::steady_clock::now();
    nn::adamw<float> opt({.lr = c.pretrain_lr, .weight_decay = c.weight_decay});
    auto sched = make_schedule(c.pretrain_lr, c.pretrain_epochs * batches_per_epoch(train.size(), c.batch), c.warmup);
    if (c.verbose) {  // the loss of a predictor that ignores the context, for reference
        std::vector<double> freq(listops::vocab_size);
        double n = 0;
        for (const auto& e : train)
            for (auto t : e.tokens) freq[t] += 1, n += 1;
        double h = 0;
        for (double f : freq)
            if (f > 0) h -= f / n * std::log(f / n);
        std::printf("  (token unigram entropy of the training inputs: %.4f)\n", h);
    }
    batch b;
    for (std::size_t ep = 0; ep < c.pretrain_epochs; ++ep) {
        double loss_sum = 0, masked_total = 0;
        for (const auto& idx : epoch_batches(train, c.batch, g)) {
            fill_batch(train, idx.data(), idx.size(), b);
            apply_mask(b, c.mask_prob, g);
            const double loss = m.train_mlm(b);
            step(m, opt, sched, c.clip);
            const double masked =
                static_cast<double>(std::count_if(b.targets.begin(), b.targets.end(), [](long t) { return t >= 0; }));
            loss_sum += static_cast<double>(loss) * masked;  // per masked token
            masked_total += masked;
        }
        r.epoch_loss.push_back(masked_total > 0 ? loss_sum / masked_total : 0.0);
        if (c.verbose) std::printf("  pretrain epoch %2zu  masked-token loss %.4f\n", ep + 1, r.epoch_loss.back());
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
}

// Classification for `epochs` epochs; keeps the parameters of the best validation epoch for the test.
phase_result finetune(model& m, const config& c, std::size_t epochs, const std::vector<listops::example>& train,
                      const std::vector<listops::example>& val, const std::vector<listops::example>& test, rng& g) {
    phase_result r;
    const auto t0 = std::chrono::steady_clock::now();
    nn::adamw<float> opt({.lr = c.lr, .weight_decay = c.weight_decay});
    auto sched = make_schedule(c.lr, epochs * batches_per_epoch(train.size(), c.batch), c.warmup);
    std::vector<xt::xarray<float>> best;
    batch b;
    for (std::size_t ep = 0; ep < epochs; ++ep) {
        double loss_sum = 0;
        std::size_t seen = 0;
        for (const auto& idx : epoch_batches(train, c.batch, g)) {
            fill_batch(train, idx.data(), idx.size(), b);
            const double loss = m.train_cls(b);
            step(m, opt, sched, c.clip);
            loss_sum += static_cast<double>(loss) * static_cast<double>(idx.size());
            seen += idx.size();
        }
        r.epoch_loss.push_back(loss_sum / static_cast<double>(seen));
        const double va = accuracy(m, val, c.eval_batch);
        if (va > r.best_val) {
            r.best_val = va;
            best.clear();
            for (const auto& p : m.params) best.push_back(p.value);
        }
        if (c.verbose) std::printf("  classify epoch %2zu  loss %.4f  val acc %.3f\n", ep + 1, r.epoch_loss.back(), va);
    }
    r.test_last = accuracy(m, test, c.eval_batch);
    std::size_t i = 0;
    for (auto& p : m.params) p.value = best[i++];
    r.test_best = accuracy(m, test, c.eval_batch, &r.test_by_op);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
}

struct arm_stats {
    std::vector<double> best, last, seconds;
};

double avg(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / v.size(); }
double sd(const std::vector<double>& v) {  // sample standard deviation (n − 1)
    if (v.size() < 2) return 0;
    const double mu = avg(v);
    double s = 0;
    for (double x : v) s += (x - mu) * (x - mu);
    return std::sqrt(s / static_cast<double>(v.size() - 1));
}

// "  test acc by root operator: MAX 0.812 (510) ..." (accuracy and count of the test expressions per root).
void print_by_op(const phase_result& r) {
    static const char* const names[] = {"MAX", "MIN", "MED", "SM"};
    std::printf("  test acc by root operator:");
    for (std::size_t k = 0; k < 4; ++k)
        std::printf(
            " %s %.3f (%zu)", names[k],
            r.test_by_op[4 + k] ? static_cast<double>(r.test_by_op[k]) / static_cast<double>(r.test_by_op[4 + k]) : 0.0,
            r.test_by_op[4 + k]);
    std::printf("\n");
}

bool decreased(const phase_result& r, const char* what) {
    const bool ok = r.epoch_loss.size() >= 2 && r.epoch_loss.back() < r.epoch_loss.front();
    std::printf("check: %s loss %.4f -> %.4f %s\n", what, r.epoch_loss.front(), r.epoch_loss.back(),
                ok ? "decreased" : "DID NOT DECREASE");
    return ok;
}

// The experiment: the data, both arms for every seed, the table. Returns the exit status.
int run(const config& c, bool check) {
    // One data set for all runs: the seeds vary the initialization, the batch order and the masks.
    rng data_gen(c.data_seed);
    std::unordered_set<std::string> seen;
    const auto train = listops::generate(data_gen, c.data, c.train, seen);
    const auto val = listops::generate(data_gen, c.data, c.val, seen);
    const auto test = listops::generate(data_gen, c.data, c.test, seen);
    {
        std::vector<std::size_t> lens, counts(listops::num_classes);
        for (const auto& e : train) lens.push_back(e.tokens.size()), ++counts[static_cast<std::size_t>(e.label)];
        std::sort(lens.begin(), lens.end());
        std::size_t test_major = 0;
        std::vector<std::size_t> tc(listops::num_classes);
        for (const auto& e : test) ++tc[static_cast<std::size_t>(e.label)];
        for (std::size_t k = 0; k < listops::num_classes; ++k)
            if (tc[k] > tc[test_major]) test_major = k;
        std::printf(
            "ListOps: %zu train / %zu val / %zu test, lengths %zu..%zu (train median %zu, mean %.1f), "
            "majority class of test %.3f\n",
            train.size(), val.size(), test.size(), c.data.min_len, c.data.max_len, lens[lens.size() / 2],
            std::accumulate(lens.begin(), lens.end(), 0.0) / static_cast<double>(lens.size()),
            static_cast<double>(tc[test_major]) / static_cast<double>(test.size()));
        std::printf("example: %s  ->  %d\n", listops::to_text(train[0].tokens).c_str(), train[0].label);
        std::printf(
            "model: %zu layers, width %zu, %zu heads, feed-forward %zu; %zu epochs per arm (SPT: %zu + %zu), "
            "batch %zu, lr %g (pretrain %g), mask prob %g, threads %zu\n\n",
            c.layers, c.width, c.heads, c.mlp_hidden, c.epochs, c.pretrain_epochs, c.epochs - c.pretrain_epochs,
            c.batch, c.lr, c.pretrain_lr, c.mask_prob, num_threads());
    }

    arm_stats scratch, spt;
    bool ok = true;
    for (std::size_t s = 0; s < c.seeds; ++s) {
        const std::uint64_t seed = c.seed + s;
        if (c.arm != "spt") {
            if (c.verbose) std::printf("seed %llu, scratch\n", static_cast<unsigned long long>(seed));
            model m(shape_of(c), seed);
            rng g(seed * 1000 + 7);
            const auto r = finetune(m, c, c.epochs, train, val, test, g);
            scratch.best.push_back(r.test_best);
            scratch.last.push_back(r.test_last);
            scratch.seconds.push_back(r.seconds);
            std::printf("seed %llu scratch: test acc %.4f (best val %.4f), last epoch %.4f, %.1f s\n",
                        static_cast<unsigned long long>(seed), r.test_best, r.best_val, r.test_last, r.seconds);
            if (c.verbose) print_by_op(r);
            if (check) ok = decreased(r, "scratch classification") && ok;
        }
        if (c.arm != "scratch") {
            if (c.verbose) std::printf("seed %llu, SPT\n", static_cast<unsigned long long>(seed));
            model m(shape_of(c), seed);  // the same initialization as the scratch arm
            rng g(seed * 1000 + 7);
            const auto p = pretrain(m, c, train, g);
            // the classifier head starts where the scratch arm's did (pretraining decayed it slightly)
            model fresh(shape_of(c), seed);
            m.cls_g->value = fresh.cls_g->value;
            m.cls_w->value = fresh.cls_w->value;
            m.cls_b->value = fresh.cls_b->value;
            const auto r = finetune(m, c, c.epochs - c.pretrain_epochs, train, val, test, g);
            spt.best.push_back(r.test_best);
            spt.last.push_back(r.test_last);
            spt.seconds.push_back(p.seconds + r.seconds);
            std::printf("seed %llu SPT: test acc %.4f (best val %.4f), last epoch %.4f, %.1f s (pretrain %.1f s)\n",
                        static_cast<unsigned long long>(seed), r.test_best, r.best_val, r.test_last,
                        p.seconds + r.seconds, p.seconds);
            if (c.verbose) print_by_op(r);
            if (check) {
                ok = decreased(p, "SPT masked prediction") && ok;
                ok = decreased(r, "SPT classification") && ok;
            }
        }
    }

    auto per_seed = [](const std::vector<double>& v) {
        std::string s;
        char buf[32];
        for (std::size_t i = 0; i < v.size(); ++i) {
            std::snprintf(buf, sizeof buf, "%s%.3f", i ? ", " : "", v[i]);
            s += buf;
        }
        return s;
    };
    std::printf("\n| arm | seeds | test acc mean ± std | per seed | last-epoch test acc | time (s) |\n");
    std::printf("|---|---|---|---|---|---|\n");
    for (const auto& [name, a] : {std::pair<const char*, const arm_stats&>{"from scratch", scratch},
                                  std::pair<const char*, const arm_stats&>{"SPT + fine-tune", spt}}) {
        if (a.best.empty()) continue;  // the arm was not run (--arm)
        std::printf("| %s | %zu | %.3f ± %.3f | %s | %.3f ± %.3f | %.1f |\n", name, a.best.size(), avg(a.best),
                    sd(a.best), per_seed(a.best).c_str(), avg(a.last), sd(a.last),
                    std::accumulate(a.seconds.begin(), a.seconds.end(), 0.0));
    }
    if (check && !ok) return 1;
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    config c;
    bool check = false, quiet = false;
    std::size_t threads = 0;
    CLI::App app{"Self-pretraining versus training from scratch on synthetic ListOps", "self_pretraining"};
    // Every number is parsed strictly into a documented range (src/tools/cli_options.hpp).
    constexpr std::size_t many = 10'000'000;
    tools::add_number(app, "--train", c.train, "training expressions", std::size_t{1}, many);
    tools::add_number(app, "--val", c.val, "validation expressions (picks each run's best epoch)", std::size_t{1},
                      many);
    tools::add_number(app, "--test", c.test, "test expressions", std::size_t{1}, many);
    tools::add_number(app, "--min-len", c.data.min_len, "shortest expression, in tokens", std::size_t{3},
                      std::size_t{1'000'000});
    tools::add_number(app, "--max-len", c.data.max_len, "longest expression, in tokens", std::size_t{3},
                      std::size_t{1'000'000});
    tools::add_number(app, "--max-depth", c.data.max_depth, "deepest nesting of lists", 1, 64);
    tools::add_number(app, "--max-args", c.data.max_args, "most arguments of a list", 2, 16);
    tools::add_number(app, "--p-list", c.data.p_list, "probability that an argument is a list", 0.0, 1.0);
    tools::add_number(app, "--data-seed", c.data_seed, "seed of the data set (the same for every run)",
                      std::uint64_t{0}, ~std::uint64_t{0});
    tools::add_number(app, "--width", c.width, "model width", std::size_t{1}, std::size_t{65536});
    tools::add_number(app, "--layers", c.layers, "transformer blocks", std::size_t{1}, std::size_t{256});
    tools::add_number(app, "--heads", c.heads, "attention heads (divides --width)", std::size_t{1}, std::size_t{4096});
    tools::add_number(app, "--mlp-hidden", c.mlp_hidden, "feed-forward hidden width", std::size_t{1},
                      std::size_t{1 << 20});
    tools::add_number(app, "--epochs", c.epochs, "total epochs of each arm", std::size_t{2}, std::size_t{100'000});
    tools::add_number(app, "--pretrain-epochs", c.pretrain_epochs,
                      "of those, masked-prediction epochs in the SPT arm (0: half)", std::size_t{0},
                      std::size_t{100'000});
    tools::add_number(app, "--batch", c.batch, "sequences per step", std::size_t{1}, std::size_t{1 << 20});
    tools::add_number(app, "--lr", c.lr, "peak learning rate of classification", 0.0, 10.0);
    tools::add_number(app, "--pretrain-lr", c.pretrain_lr, "peak learning rate of masked prediction", 0.0, 10.0);
    tools::add_number(app, "--weight-decay", c.weight_decay, "AdamW weight decay", 0.0, 10.0);
    tools::add_number(app, "--mask-prob", c.mask_prob, "masking probability of pretraining", 0.0, 1.0);
    tools::add_number(app, "--seeds", c.seeds, "runs per arm (seeds seed, seed+1, ...)", std::size_t{1},
                      std::size_t{10'000});
    tools::add_number(app, "--seed", c.seed, "first seed", std::uint64_t{0}, ~std::uint64_t{0} - 10'000);
    tools::add_number(app, "--threads", threads, "threads (0: EXPRGRAD_NUM_THREADS or the hardware)", std::size_t{0},
                      std::size_t{1024});
    app.add_option("--arm", c.arm, "which arms to run: scratch, spt or both (the same seeds either way)")
        ->check(CLI::IsMember({"scratch", "spt", "both"}));
    app.add_flag("--check-loss-decreases", check, "exit 1 unless every phase's training loss decreased");
    app.add_flag("--quiet", quiet, "no per-epoch lines");
    return tools::run_main(app, argc, argv, [&] {
        c.verbose = !quiet;
        if (c.pretrain_epochs == 0) c.pretrain_epochs = c.epochs / 2;
        if (c.pretrain_epochs >= c.epochs)
            throw tools::usage_error("--pretrain-epochs: " + std::to_string(c.pretrain_epochs) +
                                     " must be less than --epochs " + std::to_string(c.epochs));
        if (c.data.min_len > c.data.max_len)
            throw tools::usage_error("--min-len: " + std::to_string(c.data.min_len) + " exceeds --max-len " +
                                     std::to_string(c.data.max_len));
        if (c.width % c.heads != 0)
            throw tools::usage_error("--heads: " + std::to_string(c.heads) + " does not divide --width " +
                                     std::to_string(c.width));
        if (threads) set_num_threads(threads);
        std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress lines appear as they come, also in a log file
#ifdef __GLIBC__
        // Batch shapes change from step to step, so the layers' buffers are reallocated often; glibc would
        // map and unmap each large one afresh (a page fault per page, about 30% of the run time).
        mallopt(M_MMAP_THRESHOLD, 256 << 20);
        mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
        if (run(c, check) != 0) throw std::runtime_error("a training loss did not decrease");
    });
}
