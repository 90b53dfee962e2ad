// tiny_lm — the flagship example: a small causal language model trained end to end with exprgrad.
//
// 1. Trains the unigram tokenizer (text/trainer.hpp) on the Debian fortunes (installed by setup.sh).
// 2. Trains a causal transformer built from exprgrad blocks: embeddings, attention with a selectable scale
//    policy (ops/attention_scale.hpp), feed-forward, RMSNorm, output head; --deer-layers swaps the
//    attention of some blocks for a DEER-evaluated recurrence. Loss: cross-entropy, or CE + EMO (mode 1,
//    the cost embedding being the output head, detached) with --emo. Subword regularization: every
//    training line is segmented by the exact sampler at --alpha (negative: Viterbi).
// 3. Evaluates held-out bits per byte under the Viterbi segmentation against the tokenizer's own unigram
//    model on the same bytes; writes checkpoints (atomic, resumable with --resume), history.tsv,
//    loss.svg and report.md into --run-dir; shows generation with and without token healing.
//
//   build/examples/tiny_lm                                  (the default run, docs/tiny_lm.md)
//   build/examples/tiny_lm --steps 3000 --width 192        (longer)
//   build/examples/tiny_lm --deer-layers 1 --emo           (every capability at once)
// Deterministic for a seed and a thread count (--threads). Results and variants: docs/tiny_lm.md.
#include <CLI/CLI.hpp>

#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <exprgrad/nn/checkpoint.hpp>
#include <exprgrad/nn/optimizer.hpp>
#include <exprgrad/nn/schedule.hpp>
#include <exprgrad/tensor/parallel.hpp>
#include <exprgrad/text/token_healing.hpp>
#include <exprgrad/text/trainer.hpp>
#include <exprgrad/text/utf8.hpp>
#include <exprgrad/text/vocab_io.hpp>

#include "model.hpp"

using namespace exprgrad;
namespace fs = std::filesystem;

namespace {

constexpr std::int32_t eos = 2;  // the native format's reserved <eos>; it separates lines

struct settings {
    std::size_t vocab_size = 1024, steps = 3000, batch = 16, eval_every = 200, ckpt_every = 400;
    std::size_t eval_bytes = 60000, max_corpus = 1600000, gen_pieces = 24, stop_after = 0;
    double lr = 3e-3, alpha = 1.0, temperature = 0.7;
    std::uint64_t seed = 1;
    std::size_t threads = 2;
    std::string run_dir = "tiny_lm_run", corpus_dir = "/usr/share/games/fortunes";
    bool resume = false;
    std::vector<std::string> prompts{"The best way to predict the fut", "A journey of a thousand mi",
                                     "Never put off until tomorrow what you can do tod"};
};

// Fortunes are separated by lines holding "%"; every 20th fortune is held out.
void load_corpus(const settings& s, std::vector<std::string>& train, std::vector<std::string>& held_out) {
    std::size_t bytes = 0, fortune = 0;
    for (const char* name :
         {"fortunes",      "literature", "science", "wisdom",     "people",      "politics", "work",
          "computers",     "education",  "food",    "humorists",  "law",         "love",     "men-women",
          "miscellaneous", "news",       "pets",    "platitudes", "songs-poems", "sports"}) {
        std::ifstream in(s.corpus_dir + "/" + name, std::ios::binary);
        std::string line;
        while (in && bytes < s.max_corpus && std::getline(in, line)) {
            if (line == "%") {
                ++fortune;
                continue;
            }
            while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
            if (line.empty()) continue;
            bytes += line.size() + 1;
            (fortune % 20 == 0 ? held_out : train).push_back(line);
        }
    }
    if (train.size() < 100 || held_out.size() < 10) {
        throw std::runtime_error("tiny_lm: no corpus under " + s.corpus_dir +
                                 " (install the Debian package 'fortunes', or pass --corpus-dir)");
    }
}

std::string fmt_time(double sec) {
    char b[32];
    const long t = static_cast<long>(sec + 0.5);
    std::snprintf(b, sizeof b, "%ld:%02ld", t / 60, t % 60);
    return b;
}

// Held-out evaluation: the Viterbi segmentation of held-out lines as one stream [eos] l1 [eos] l2 ...,
// cut into windows of T; bits per byte count each line's bytes plus one for its newline (the eos).
struct held_out_set {
    std::vector<std::int32_t> stream;
    std::size_t bytes = 0;
    double unigram_nats = 0;  // −Σ score of the same pieces: the tokenizer's own unigram model
};

held_out_set make_held_out(const text::UnigramModel& tok, const std::vector<std::string>& lines, std::size_t limit) {
    held_out_set h;
    h.stream.push_back(eos);
    for (const auto& l : lines) {
        if (h.bytes >= limit) break;
        for (text::piece_id id : tok.encode(l)) {
            h.stream.push_back(id);
            h.unigram_nats -= tok.vocabulary()[id].score;
        }
        h.stream.push_back(eos);
        h.bytes += l.size() + 1;
    }
    return h;
}

// Windows of T pieces starting every T/2: the first window scores all its targets, the others only their
// second half, so every scored piece sees at least T/2 pieces of context (a strided evaluation).
// max_windows > 0 evaluates a prefix only (the quick evaluations during training).
double evaluate(tiny_lm::language_model& m, const held_out_set& h, std::size_t T, std::size_t batch,
                std::size_t max_windows = 0) {
    const std::size_t stride = std::max<std::size_t>(1, T / 2), n = h.stream.size() - 1;  // n targets
    std::size_t windows = n <= T ? 1 : 1 + (n - T + stride - 1) / stride;
    if (max_windows) windows = std::min(windows, max_windows);
    double nats = 0;
    for (std::size_t w0 = 0; w0 < windows; w0 += batch) {
        const std::size_t nb = std::min(batch, windows - w0);
        xt::xarray<std::int32_t> tokens = xt::xarray<std::int32_t>::from_shape({nb, T});
        xt::xarray<std::int32_t> targets = xt::xarray<std::int32_t>::from_shape({nb, T});
        for (std::size_t b = 0; b < nb; ++b) {
            const std::size_t w = w0 + b, first = w * stride;
            for (std::size_t t = 0; t < T; ++t) {
                const std::size_t i = first + t;
                const bool in = i < n;
                const bool scored = in && (w == 0 || t >= T - stride);
                tokens(b, t) = in ? h.stream[i] : eos;
                targets(b, t) = scored ? h.stream[i + 1] : -100;
            }
        }
        nats += m.eval_batch(tokens, targets).first;
    }
    return nats;
}

// Training batches: B windows of T + 1 pieces from consecutive lines starting at a random line, each
// line segmented afresh by the exact sampler (subword regularization) or by Viterbi (alpha < 0).
void make_batch(const text::UnigramModel& tok, const std::vector<std::string>& lines, std::size_t B, std::size_t T,
                double alpha, rng& data, rng& sampler, xt::xarray<std::int32_t>& tokens,
                xt::xarray<std::int32_t>& targets, std::size_t& bytes) {
    tokens.resize({B, T});
    targets.resize({B, T});
    std::vector<std::int32_t> s;
    for (std::size_t b = 0; b < B; ++b) {
        // A crop of the stream [eos] line line ... starting anywhere in the first line, so that position 0
        // is as often mid-line as in the held-out windows.
        s.assign(1, eos);
        std::size_t offset = 0;
        bool drawn = false;
        for (std::size_t r = data.below(lines.size()); s.size() < offset + T + 1; r = (r + 1) % lines.size()) {
            for (text::piece_id id : tok.sample(lines[r], alpha, sampler)) s.push_back(id);
            s.push_back(eos);
            bytes += lines[r].size() + 1;
            if (!drawn) {
                offset = data.below(s.size() - 1);
                drawn = true;
            }
        }
        for (std::size_t t = 0; t < T; ++t) {
            tokens(b, t) = s[offset + t];
            targets(b, t) = s[offset + t + 1];
        }
    }
}

struct record {
    std::size_t step;
    double train_loss, held_out_loss;  // nats per piece; held_out_loss NaN where not evaluated
};

std::string history_tsv(const std::vector<record>& h) {
    std::ostringstream o;
    o.precision(17);
    o << "step\ttrain_loss\theld_out_loss\n";
    for (const auto& r : h) o << r.step << '\t' << r.train_loss << '\t' << r.held_out_loss << '\n';
    return o.str();
}

std::vector<record> read_history(const fs::path& p, std::size_t up_to) {
    std::vector<record> h;
    std::ifstream in(p);
    std::string line;
    std::size_t no = 0;
    while (std::getline(in, line)) {
        if (++no == 1) continue;
        std::istringstream f(line);
        record r{};
        std::string a, b, c;
        if (!(f >> a >> b >> c)) throw std::runtime_error(p.string() + ":" + std::to_string(no) + ": malformed record");
        r.step = std::stoul(a);
        r.train_loss = std::stod(b);
        r.held_out_loss = c == "nan" ? NAN : std::stod(c);
        if (r.step <= up_to) h.push_back(r);
    }
    return h;
}

// A line chart: training loss (moving average), held-out loss (points), the unigram baseline (dashed).
std::string loss_svg(const std::vector<record>& h, double unigram_per_piece) {
    const double W = 720, H = 400, L = 72, R = 20, Tp = 30, Bm = 45;
    double ymax = unigram_per_piece * 1.25, ymin = 1e9;
    std::size_t xmax = 1;
    for (const auto& r : h) {
        xmax = std::max(xmax, r.step);
        ymin = std::min(ymin, r.train_loss);
        if (!std::isnan(r.held_out_loss)) ymin = std::min(ymin, r.held_out_loss);
    }
    ymin = std::max(0.0, std::floor(std::min(ymin, unigram_per_piece) - 0.5));
    auto X = [&](double s) { return L + (W - L - R) * s / static_cast<double>(xmax); };
    auto Y = [&](double v) { return Tp + (H - Tp - Bm) * (1 - (std::min(v, ymax) - ymin) / (ymax - ymin)); };
    std::ostringstream o;
    o.precision(5);
    o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H
      << "' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n";
    for (int k = 0; k <= 5; ++k) {
        const double v = ymin + (ymax - ymin) * k / 5.0, y = Y(v);
        o << "<line x1='" << L << "' x2='" << W - R << "' y1='" << y << "' y2='" << y << "' stroke='#ddd'/>"
          << "<text x='" << L - 6 << "' y='" << y + 4 << "' text-anchor='end'>" << std::round(v * 100) / 100
          << "</text>\n";
    }
    for (int k = 0; k <= 5; ++k) {
        const double s = static_cast<double>(xmax) * k / 5.0;
        o << "<text x='" << X(s) << "' y='" << H - Bm + 16 << "' text-anchor='middle'>" << std::lround(s)
          << "</text>\n";
    }
    o << "<text x='" << (W + L) / 2 << "' y='" << H - 8 << "' text-anchor='middle'>step</text>\n"
      << "<text x='14' y='" << H / 2 << "' transform='rotate(-90 14 " << H / 2
      << ")' text-anchor='middle'>nats per piece</text>\n";
    o << "<polyline fill='none' stroke='#1f77b4' stroke-width='1.5' points='";
    double ema = NAN;
    for (const auto& r : h) {
        ema = std::isnan(ema) ? r.train_loss : 0.9 * ema + 0.1 * r.train_loss;
        o << X(static_cast<double>(r.step)) << ',' << Y(ema) << ' ';
    }
    o << "'/>\n";
    for (const auto& r : h)
        if (!std::isnan(r.held_out_loss))
            o << "<circle cx='" << X(static_cast<double>(r.step)) << "' cy='" << Y(r.held_out_loss)
              << "' r='4' fill='#d62728'/>\n";
    o << "<line x1='" << L << "' x2='" << W - R << "' y1='" << Y(unigram_per_piece) << "' y2='" << Y(unigram_per_piece)
      << "' stroke='#555' stroke-dasharray='6 4'/>\n";
    o << "<text x='" << W - R - 4 << "' y='" << Tp - 10
      << "' text-anchor='end'><tspan fill='#1f77b4'>training loss (EMA)</tspan>  <tspan fill='#d62728'>held-out"
         " (Viterbi)</tspan>  <tspan fill='#555'>unigram tokenizer</tspan></text>\n</svg>\n";
    return o.str();
}

// For the console and the Markdown table: newlines and pipes escaped, bytes that do not form UTF-8 (a
// generation can stop inside a character) written as \xAB.
std::string show(const std::string& s) {
    std::string o;
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t len = text::utf8_sequence_length(s, i);
        if (len == 0) {
            char b[8];
            std::snprintf(b, sizeof b, "\\x%02X", static_cast<unsigned char>(s[i]));
            o += b;
            ++i;
        } else if (s[i] == '\n' || s[i] == '|') {
            o += s[i] == '\n' ? "\\n" : "\\|";
            ++i;
        } else {
            o.append(s, i, len);
            i += len;
        }
    }
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    settings s;
    tiny_lm::model_config mc;
    std::string deer_layers;
    CLI::App app{"tiny_lm: a small causal language model trained end to end with exprgrad"};
    app.add_option("--steps", s.steps, "Training steps")->capture_default_str();
    app.add_option("--batch", s.batch, "Sequences per step")->capture_default_str();
    app.add_option("--context", mc.context, "Pieces per sequence")->capture_default_str();
    app.add_option("--width", mc.width, "Residual width")->capture_default_str();
    app.add_option("--layers", mc.layers, "Transformer blocks")->capture_default_str();
    app.add_option("--heads", mc.heads, "Attention heads")->capture_default_str();
    app.add_option("--scale", mc.scale, "Attention scale: inv_sqrt_d, entropy_invariant, gradient_max")
        ->capture_default_str();
    app.add_option("--deer-layers", deer_layers, "Comma-separated blocks whose mixer is a DEER recurrence");
    app.add_option("--deer-state", mc.deer_state, "State width of the DEER recurrences")->capture_default_str();
    app.add_flag("--emo", mc.emo, "Train with CE + EMO (mode 1) instead of CE");
    app.add_option("--vocab-size", s.vocab_size, "Tokenizer size (>= 261)")->capture_default_str();
    app.add_option("--alpha", s.alpha, "Subword-regularization alpha (< 0: Viterbi)")->capture_default_str();
    app.add_option("--lr", s.lr, "Peak learning rate (AdamW, cosine with warmup)")->capture_default_str();
    app.add_option("--seed", s.seed, "Seed")->capture_default_str();
    app.add_option("--threads", s.threads, "Threads")->capture_default_str();
    app.add_option("--eval-every", s.eval_every, "Steps between held-out evaluations")->capture_default_str();
    app.add_option("--ckpt-every", s.ckpt_every, "Steps between checkpoints")->capture_default_str();
    app.add_option("--eval-bytes", s.eval_bytes, "Held-out bytes of the final evaluation")->capture_default_str();
    app.add_option("--max-corpus", s.max_corpus, "Corpus bytes to read")->capture_default_str();
    app.add_option("--run-dir", s.run_dir, "Directory for checkpoints, history, plot and report")
        ->capture_default_str();
    app.add_option("--corpus-dir", s.corpus_dir, "Directory of the fortunes files")->capture_default_str();
    app.add_flag("--resume", s.resume, "Continue from --run-dir/ckpt if it exists");
    app.add_option("--stop-after", s.stop_after, "Stop after this step (after its checkpoint), as if interrupted");
    app.add_option("--prompt", s.prompts, "Generation prompts");
    app.add_option("--gen-pieces", s.gen_pieces, "Pieces generated per prompt")->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    try {
        if (s.steps == 0 || s.batch == 0) throw std::invalid_argument("tiny_lm: --steps and --batch must be positive");
        for (std::size_t p = 0; p < deer_layers.size();) {
            const std::size_t q = std::min(deer_layers.find(',', p), deer_layers.size());
            mc.deer_layers.push_back(std::stoul(deer_layers.substr(p, q - p)));
            p = q + 1;
        }
        set_num_threads(s.threads);
        const auto t_start = std::chrono::steady_clock::now();
        auto since = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count(); };
        fs::create_directories(s.run_dir);
        const fs::path run(s.run_dir), ckpt = run / "ckpt", vocab_file = run / "tokenizer.txt";
        const bool resuming = s.resume && fs::exists(ckpt / "manifest.txt");

        std::vector<std::string> train, held;
        load_corpus(s, train, held);
        std::size_t train_bytes = 0;
        for (const auto& l : train) train_bytes += l.size() + 1;
        std::printf("corpus: %zu training lines (%zu bytes), %zu held-out lines\n", train.size(), train_bytes,
                    held.size());

        // 1. The tokenizer (reloaded when resuming, so the pieces cannot change under a checkpoint).
        const double t0 = since();
        text::UnigramModel tok = [&] {
            if (resuming) return text::load_model(vocab_file.string(), text::VocabFormat::native);
            text::TrainOptions to;
            to.vocab_size = s.vocab_size;
            auto m = text::train_unigram(train, to);
            text::save_native(vocab_file.string(), m.vocabulary(), m.options());
            return m;
        }();
        const double tok_seconds = since() - t0;
        const held_out_set eval_set = make_held_out(tok, held, s.eval_bytes);
        const held_out_set quick_set = make_held_out(tok, held, s.eval_bytes / 4);
        const std::size_t held_pieces = eval_set.stream.size() - 1;
        const double unigram_bpb = eval_set.unigram_nats / std::log(2.0) / static_cast<double>(eval_set.bytes);
        std::printf(
            "tokenizer: %zu pieces in %.1f s; held-out: %zu bytes, %zu pieces (%.2f bytes/piece), unigram "
            "model %.4f bits/byte\n",
            tok.size(), tok_seconds, eval_set.bytes, held_pieces,
            static_cast<double>(eval_set.bytes) / static_cast<double>(held_pieces), unigram_bpb);

        // 2. The model, optimizer, schedule and generators (all restored together on --resume).
        mc.vocab = tok.size();
        rng init_gen(s.seed), data(s.seed * 2 + 1), sampler(s.seed * 2 + 2);
        tiny_lm::language_model model(mc, init_gen);
        auto& params = model.params();
        nn::adamw<float> opt({.lr = s.lr, .weight_decay = 0.01});
        nn::cosine_warmup sched({.base_lr = s.lr,
                                 .warmup_steps = std::min<std::size_t>(100, s.steps / 10),
                                 .total_steps = s.steps,
                                 .min_lr = s.lr / 10});
        const nn::checkpoint_items items{
            .opt = &opt, .sched = &sched, .generators = {{"data", &data}, {"sampler", &sampler}}};
        std::vector<record> history;
        std::size_t start = 0;
        if (resuming) {
            nn::load_checkpoint(ckpt, params, items);
            start = sched.state().step;
            history = read_history(run / "history.tsv", start);
            std::printf("resumed from %s at step %zu\n", ckpt.c_str(), start);
        }
        std::printf("model: %zu parameters, %zu layers, width %zu, %zu heads, scale %s%s%s, loss %s\n", params.numel(),
                    mc.layers, mc.width, mc.heads, mc.scale.c_str(), mc.deer_layers.empty() ? "" : ", DEER in blocks ",
                    deer_layers.c_str(), mc.emo ? "CE + EMO (mode 1)" : "CE");

        // 3. Training.
        xt::xarray<std::int32_t> tokens, targets;
        const bool tty = isatty(2);
        const double t_train = since();
        std::size_t seen_pieces = 0, seen_bytes = 0, deer_iters = 0, deer_solves = 0, deer_fallbacks = 0;
        for (std::size_t step = start; step < s.steps; ++step) {
            make_batch(tok, train, s.batch, mc.context, s.alpha, data, sampler, tokens, targets, seen_bytes);
            params.zero_grad();
            const double loss = model.train_batch(tokens, targets);
            if (!std::isfinite(loss))
                throw std::runtime_error("tiny_lm: loss is " + std::to_string(loss) + " at step " +
                                         std::to_string(step + 1));
            nn::clip_grad_norm(params, 1.0);
            opt.set_lr(sched.lr());
            opt.step(params);
            sched.step();
            seen_pieces += s.batch * mc.context;
            for (auto* d : model.deer()) {
                deer_iters += d->last_report().iterations;
                deer_fallbacks += d->last_report().fallback;
                ++deer_solves;
            }
            const std::size_t done = step + 1;
            double held_loss = NAN;
            if (done % s.eval_every == 0 || done == s.steps) {
                held_loss =
                    evaluate(model, quick_set, mc.context, 16) / static_cast<double>(quick_set.stream.size() - 1);
            }
            history.push_back({done, loss, held_loss});
            const double el = since() - t_train;
            const double rate = static_cast<double>(seen_pieces) / std::max(el, 1e-9);
            const double eta = el / static_cast<double>(done - start) * static_cast<double>(s.steps - done);
            if (tty || !std::isnan(held_loss) || done == start + 1) {
                const int fill = static_cast<int>(30.0 * static_cast<double>(done) / static_cast<double>(s.steps));
                std::fprintf(stderr, "%s[%s%s] step %zu/%zu  loss %.3f  %.0f pieces/s  ETA %s", tty ? "\r" : "",
                             std::string(static_cast<std::size_t>(fill), '#').c_str(),
                             std::string(static_cast<std::size_t>(30 - fill), ' ').c_str(), done, s.steps, loss, rate,
                             fmt_time(eta).c_str());
                if (!std::isnan(held_loss)) std::fprintf(stderr, "  held-out %.3f", held_loss);
                if (!tty || !std::isnan(held_loss)) std::fprintf(stderr, "\n");
            }
            if (done % s.ckpt_every == 0 || done == s.steps || done == s.stop_after) {
                nn::save_checkpoint(ckpt, params, items);
                text::write_file_atomically((run / "history.tsv").string(), history_tsv(history));
            }
            if (done == s.stop_after) {
                std::printf("stopped after step %zu (--stop-after); continue with --resume\n", done);
                return 0;
            }
        }
        const double train_seconds = since() - t_train;

        // 4. Final evaluation.
        const double lm_nats = evaluate(model, eval_set, mc.context, 16);
        const double lm_bpb = lm_nats / std::log(2.0) / static_cast<double>(eval_set.bytes);
        const double reduction = 100.0 * (1.0 - lm_bpb / unigram_bpb);
        std::printf("held-out bits/byte: model %.4f, unigram tokenizer %.4f (%.1f%% lower)\n", lm_bpb, unigram_bpb,
                    reduction);

        // 5. Generation with and without token healing.
        rng gen_rng(s.seed + 99);
        auto next = [&](std::span<const text::piece_id> ctx) {
            std::vector<std::int32_t> c(1, eos);
            c.insert(c.end(), ctx.begin(), ctx.end());
            return model.next_log_probs(c);
        };
        auto continue_from = [&](std::vector<text::piece_id> ctx) {
            std::string out;
            for (std::size_t i = 0; i < s.gen_pieces; ++i) {
                std::vector<double> lp = next(ctx);
                double mx = -INFINITY;
                for (std::size_t v = 0; v < lp.size(); ++v) {
                    const bool control =
                        tok.vocabulary()[static_cast<text::piece_id>(v)].kind == text::PieceKind::control;
                    lp[v] = control && v != static_cast<std::size_t>(eos) ? -INFINITY : lp[v] / s.temperature;
                    mx = std::max(mx, lp[v]);
                }
                double z = 0;
                for (double& x : lp) z += (x = std::exp(x - mx));
                double u = gen_rng.uniform() * z;
                std::size_t pick = 0;
                while (pick + 1 < lp.size() && (u -= lp[pick]) >= 0) ++pick;
                if (static_cast<std::int32_t>(pick) == eos) break;
                ctx.push_back(static_cast<text::piece_id>(pick));
                out += tok.decode(std::vector<text::piece_id>{static_cast<text::piece_id>(pick)});
            }
            return out;
        };
        text::TokenHealer healer(tok);
        std::vector<std::array<std::string, 3>> samples;
        for (const auto& p : s.prompts) {
            const auto ids = tok.encode(p);
            const std::string plain = p + continue_from(std::vector<text::piece_id>(ids.begin(), ids.end()));
            const text::HealingResult healed = healer.heal_ids(ids, next, gen_rng);
            const std::string with = p + healed.emitted + continue_from(healed.context);
            std::printf("\nprompt: %s\n  without healing: %s\n  with healing:    %s\n", show(p).c_str(),
                        show(plain).c_str(), show(with).c_str());
            samples.push_back({p, plain, with});
        }

        // 6. Plot and report.
        const double unigram_per_piece = eval_set.unigram_nats / static_cast<double>(held_pieces);
        text::write_file_atomically((run / "loss.svg").string(), loss_svg(history, unigram_per_piece));
        std::ostringstream r;
        r.precision(4);
        r << std::fixed;
        r << "# tiny_lm report\n\n| setting | value |\n|---|---|\n"
          << "| corpus | " << train.size() << " training lines (" << train_bytes << " bytes), held-out "
          << eval_set.bytes << " bytes |\n"
          << "| tokenizer | unigram, " << tok.size() << " pieces, trained in " << tok_seconds << " s |\n"
          << "| model | " << params.numel() << " parameters: " << mc.layers << " blocks, width " << mc.width << ", "
          << mc.heads << " heads, context " << mc.context << ", scale " << mc.scale
          << (mc.deer_layers.empty() ? std::string() : ", DEER mixer in blocks " + deer_layers) << " |\n"
          << "| training | " << s.steps << " steps × " << s.batch << " sequences, " << (mc.emo ? "CE + EMO" : "CE")
          << ", subword α = " << s.alpha << ", AdamW lr " << s.lr << ", seed " << s.seed << ", " << s.threads
          << " threads |\n"
          << "| time | training " << train_seconds << " s (" << (start ? "resumed run" : "whole run") << "), total "
          << since() << " s |\n";
        if (deer_solves)
            r << "| DEER | " << static_cast<double>(deer_iters) / static_cast<double>(deer_solves)
              << " iterations per solve, " << deer_fallbacks << " sequential fallbacks |\n";
        r << "\n## Held-out bits per byte (Viterbi segmentation)\n\n| model | bits/byte |\n|---|---|\n"
          << "| unigram tokenizer | " << unigram_bpb << " |\n| tiny_lm | " << lm_bpb << " |\n| reduction | "
          << reduction << "% |\n\n![loss](loss.svg)\n\n## Generation (temperature " << s.temperature
          << ")\n\n| prompt | without token healing | with token healing |\n|---|---|---|\n";
        for (const auto& x : samples) r << "| " << show(x[0]) << " | " << show(x[1]) << " | " << show(x[2]) << " |\n";
        text::write_file_atomically((run / "report.md").string(), r.str());
        std::printf("\nwrote %s/report.md, loss.svg, history.tsv, ckpt/ (%.1f s in all)\n", s.run_dir.c_str(), since());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tiny_lm: %s\n", e.what());
        return 1;
    }
    return 0;
}
