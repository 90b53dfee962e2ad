// tiny_lm — the flagship example: a small causal language model trained end to end with exprgrad.
//
// 1. Trains the unigram tokenizer (text/trainer.hpp) on the Debian fortunes (installed by setup.sh).
// 2. Trains a causal transformer built from exprgrad blocks: embeddings, attention with a selectable scale
//    policy (ops/attention_scale.hpp), feed-forward, RMSNorm, output head; --deer-layers swaps the
//    attention of some blocks for a DEER-evaluated recurrence; --position learned|none|alibi chooses the
//    position information (learned embeddings, the causal mask alone, or ALiBi's fixed slopes); --softcap C
//    caps the attention logits at C (C·tanh(z/C)). Loss:
//    cross-entropy, or CE + EMO (mode 1, the cost embedding being the output head, detached) with --emo;
//    --emo-cost fixed holds the cost at the head the run started from. --init-from DIR fine-tunes: it starts
//    from another run's parameters and tokenizer with a fresh optimizer and schedule (docs/emo_finetune.md).
//    Subword regularization: every training line is segmented by the exact sampler at --alpha (negative:
//    Viterbi).
// 3. Evaluates held-out bits per byte under the Viterbi segmentation against the tokenizer's own unigram
//    model on the same bytes; writes checkpoints (atomic, resumable with --resume), history.tsv,
//    loss.svg and report.md into --run-dir; shows generation with and without token healing; with --samples N,
//    samples N streams at temperature 1 and prints their distribution score against the held-out text.
//
//   build/examples/tiny_lm                                  (the default run, docs/tiny_lm.md)
//   build/examples/tiny_lm --steps 3000 --width 192        (longer)
//   build/examples/tiny_lm --deer-layers 1 --emo           (every capability at once)
// Deterministic for a seed, a thread count (--threads) and --parallel. Results and variants: docs/tiny_lm.md.
//
// Data-parallel: `mpirun -np N build/examples/tiny_lm ...` trains on N processes (nn/distributed.hpp,
// docs/distributed.md). --batch is the global batch; rank r draws its contiguous share of it (every
// sequence from generators keyed by the seed and the sequence's global index, data.hpp make_sequences, so
// the global batch does not depend on N), the gradients are summed by a bucketed all-reduce that overlaps
// the backward pass, and every rank applies the same update. Rank 0 alone reads and writes the run
// directory and prints (its pieces/s counts the whole global batch); the tokenizer, the parameters and the
// optimizer state go from rank 0 to the others at start and after a resume; a checkpoint records the
// number of ranks, and a resume on another number continues from the same step (the data position is
// the step). Each rank uses --threads threads (1 when not given under mpirun; with more, a rank first sums
// its own model copies' gradients (--parallel data) and the all-reduce follows its backward pass). An error on any rank is
// printed by that rank and ends every rank (MPI_Abort). Without mpirun: one process, as before.
//
// Options come in three structs, each defined once and adapted with Boost.Hana, so that the command-line
// registration, the checkpoint's record, the resume check and the report's option row all iterate the
// same fields: tiny_lm::model_config (model.hpp) and run_options shape the parameters, the data and the
// tokenizer: they are recorded in the checkpoint, and --resume with any of them changed is refused,
// naming the option, its saved and its new value. session_options do not change the trained parameters:
// --threads included (the parameters are bit-identical for one thread count; a resume on another count
// continues correctly but matches neither count's uninterrupted run bit for bit), --eval-every (which
// steps get a held-out point in the history), --eval-contexts (extra evaluations after training),
// --ckpt-every, --stop-after, --run-dir, --prompt and --gen-pieces.
//
// Resume safety: the checkpoint also records the FNV-1a 64 checksums of tokenizer.txt (a resume with
// another tokenizer is refused naming the file) and of the corpus lines read (changed corpus files are
// refused naming --corpus-dir) and holds the history as of its step (files/history.tsv),
// so a crash between saving the checkpoint and rewriting history.tsv loses nothing: the resume rewrites
// history.tsv from the checkpoint. Stale temporaries of this run directory (ckpt.tmp-*, ckpt.old-*,
// <file>.tmp.*) are removed at start. Testing hook: EXPRGRAD_FAULT=tokenizer_written|ckpt_saved|
// ckpt_staged|ckpt_exchanged ends the process at that point (src/nn/file_io.hpp).
#include <CLI/CLI.hpp>

#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>
#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <optional>
#include <system_error>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <boost/hana/adapt_struct.hpp>

#include "cli_options.hpp"
#include "nn/file_io.hpp"
#include "svg_chart.hpp"

#include <exprgrad/fields.hpp>
#include <exprgrad/kernels/blas_core.hpp>
#include <exprgrad/nn/checkpoint.hpp>
#include <exprgrad/nn/distributed.hpp>
#include <exprgrad/nn/distributed_gradients.hpp>
#include <exprgrad/nn/optimizer.hpp>
#include <exprgrad/nn/schedule.hpp>
#include <exprgrad/kernels/parallel.hpp>
#include <exprgrad/text/token_healing.hpp>
#include <exprgrad/text/trainer.hpp>
#include <exprgrad/text/utf8.hpp>
#include <exprgrad/text/vocab_io.hpp>

#include "data.hpp"
#include "distribution_score.hpp"
#include "model.hpp"
#include "sampling.hpp"

using namespace exprgrad;
namespace fs = std::filesystem;

namespace tiny_lm_cli {

/// Options that shape the data, the tokenizer and the training (recorded in the checkpoint).
struct run_options {
    std::size_t vocab_size = 1024, steps = 3000, batch = 16;
    double lr = 3e-3, alpha = 1.0;
    std::uint64_t seed = 1;
    std::size_t max_corpus = 1600000;
    std::string corpus_dir = "/usr/share/games/fortunes";
    std::size_t eval_bytes = 60000;  ///< the held-out set of the final evaluation (and the history's points)
    /// Another run's directory: start from its checkpoint's parameters and its tokenizer (fine-tuning),
    /// with a fresh optimizer and schedule; "" = a random initialization and a tokenizer trained here.
    std::string init_from = "";
};

/// Options that do not change the trained parameters (see the top of this file for --threads).
struct session_options {
    std::size_t threads = 2, eval_every = 200, ckpt_every = 400, stop_after = 0, gen_pieces = 24;
    std::string run_dir = "tiny_lm_run";
    /// How --threads threads share a training step: data (each thread trains its own copy of the model on a
    /// contiguous share of the batch; the gradients are summed: language_model::train_batch) or ops (every
    /// operation of one step is split over the threads). CE + EMO always runs as ops.
    std::string parallel = "data";
    bool resume = false;
    std::vector<std::string> prompts{"The best way to predict the fut", "A journey of a thousand mi",
                                     "Never put off until tomorrow what you can do tod"};
    /// After training, the held-out set is evaluated again at each of these window lengths (length
    /// extrapolation: --position none or alibi can go past --context), one `eval_context:` line each.
    std::vector<std::size_t> eval_contexts{};
    /// After training: this many streams sampled at temperature 1 and their distribution score against
    /// the held-out text (distribution_score.hpp), one `distribution:` line, samples.txt; 0 = none.
    std::size_t samples = 0;
};

}  // namespace tiny_lm_cli

BOOST_HANA_ADAPT_STRUCT(tiny_lm::model_config, vocab, context, width, layers, heads, scale, position, softcap,
                        deer_layers, deer_state, emo, emo_cost);
BOOST_HANA_ADAPT_STRUCT(tiny_lm_cli::run_options, vocab_size, steps, batch, lr, alpha, seed, max_corpus, corpus_dir,
                        eval_bytes, init_from);
BOOST_HANA_ADAPT_STRUCT(tiny_lm_cli::session_options, threads, eval_every, ckpt_every, stop_after, gen_pieces, run_dir,
                        parallel, resume, prompts, eval_contexts, samples);

namespace {

using tiny_lm_cli::run_options;
using tiny_lm_cli::session_options;

using tiny_lm::eos;
using tiny_lm::load_corpus;
using tiny_lm::make_sequences;
constexpr double temperature = 0.7;

// Under mpirun only rank 0 prints (set once in train_and_report); errors are printed by whichever rank has them.
bool quiet = false;

__attribute__((format(printf, 1, 2))) void say(const char* fmt, ...) {
    if (quiet) return;
    va_list args;
    va_start(args, fmt);
    std::vfprintf(stdout, fmt, args);
    va_end(args);
}

// A field added to a struct but not to its BOOST_HANA_ADAPT_STRUCT would escape the record and the resume
// check: the structured bindings stop compiling when a struct's field count changes, and the assertions
// tie the adapted count to the same number.
static_assert(field_count_v<tiny_lm::model_config> == 12 && field_count_v<run_options> == 10 &&
              field_count_v<session_options> == 11);
[[maybe_unused]] void field_count_guard(const tiny_lm::model_config& m, const run_options& r,
                                        const session_options& s) {
    [[maybe_unused]] const auto& [m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12] = m;
    [[maybe_unused]] const auto& [r1, r2, r3, r4, r5, r6, r7, r8, r9, r10] = r;
    [[maybe_unused]] const auto& [s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11] = s;
}

// What the command line says about a field: its help, its bounds (integers: ilo..ihi; doubles: flo..fhi)
// and its flag when not "--" + the name with '-' for '_'. help == nullptr: not an option (derived).
struct option_spec {
    std::string_view name;
    const char* help;
    std::uint64_t ilo = 0, ihi = 0;
    double flo = 0, fhi = 0;
    const char* flag = nullptr;
};
constexpr std::uint64_t max_steps = 10'000'000;
constexpr option_spec option_specs[] = {
    {"vocab", nullptr},  // the tokenizer's size, recorded and checked with the model
    {"context", "Pieces per sequence", 1, 4096},
    {"width", "Residual width (a multiple of --heads)", 1, 8192},
    {"layers", "Transformer blocks", 1, 64},
    {"heads", "Attention heads", 1, 1024},
    {"scale", "Attention scale: inv_sqrt_d, entropy_invariant, gradient_max"},
    {"position", "Position information: learned (embeddings), none (the causal mask alone), alibi (fixed slopes)"},
    {"softcap", "Attention logit soft-cap C: scores become C*tanh(score/C); 0: none", 0, 0, 0, 1e6},
    {"deer_layers", "Comma-separated blocks whose mixer is a DEER recurrence", 0, 63},
    {"deer_state", "State width of the DEER recurrences", 1, 4096},
    {"emo", "Train with CE + EMO (mode 1) instead of CE"},
    {"emo_cost", "EMO's cost embedding: live (the output head as it trains, detached) or fixed (the head at the "
                 "start of the run, i.e. the initialization or --init-from's, held constant)"},
    {"vocab_size", "Tokenizer size", 261, 100'000},
    {"steps", "Training steps", 1, max_steps},
    {"batch", "Sequences per step", 1, 4096},
    {"lr", "Peak learning rate (AdamW, cosine with warmup)", 0, 0, 1e-9, 10},
    {"alpha", "Subword-regularization alpha (< 0: Viterbi)", 0, 0, -1e6, 1e6},
    {"seed", "Seed", 0, UINT64_MAX},
    {"max_corpus", "Corpus bytes to read", 1, 100'000'000'000},
    {"corpus_dir", "Directory of the fortunes files"},
    {"eval_bytes", "Held-out bytes of the final evaluation", 1, 1'000'000'000},
    {"init_from", "Fine-tune: start from the parameters and tokenizer of the run in this directory (its ckpt/), with "
                  "a fresh optimizer and schedule; its architecture and --vocab-size must be this run's"},
    {"threads", "Threads", 1, 1024},
    {"parallel", "How the threads share a training step: data (a copy of the model per thread, each on its share "
                 "of the batch) or ops (each operation split over the threads)"},
    {"eval_every", "Steps between held-out evaluations", 1, max_steps},
    {"ckpt_every", "Steps between checkpoints", 1, max_steps},
    {"stop_after", "Stop after this step (after its checkpoint), as if interrupted; 0: never", 0, max_steps},
    {"gen_pieces", "Pieces generated per prompt", 0, 100'000},
    {"run_dir", "Directory for checkpoints, history, plot and report"},
    {"resume", "Continue from --run-dir/ckpt (refused if there is none)"},
    {"prompts", "Generation prompts", 0, 0, 0, 0, "--prompt"},
    {"eval_contexts", "Comma-separated window lengths of a held-out evaluation after training", 2, 4096},
    {"samples", "After training: streams sampled at temperature 1 for the distribution score (samples.txt); 0: none",
     0, 1'000'000},
};

const option_spec& spec_of(std::string_view name) {
    for (const auto& s : option_specs)
        if (s.name == name) return s;
    throw std::logic_error("tiny_lm: no option_spec for the field " + std::string(name));
}

std::string flag_of(std::string_view name) {
    const option_spec& sp = spec_of(name);
    if (sp.flag != nullptr) return sp.flag;
    std::string f = "--" + std::string(name);
    std::replace(f.begin(), f.end(), '_', '-');
    return f;
}

// "1,3" -> {1, 3}, each element parsed strictly in [lo, hi] (an empty element is refused); "" -> {}.
std::vector<std::size_t> parse_list(const std::string& flag, const std::string& text, std::uint64_t lo,
                                    std::uint64_t hi) {
    std::vector<std::size_t> out;
    if (text.empty()) return out;
    for (std::size_t p = 0;;) {
        const std::size_t q = text.find(',', p);
        const std::string_view piece = std::string_view(text).substr(p, q == std::string::npos ? q : q - p);
        out.push_back(exprgrad::tools::parse_unsigned(flag, piece, lo, hi));
        if (q == std::string::npos) break;
        p = q + 1;
    }
    return out;
}

// Registers every field of `s` that is an option, by its type: numbers strictly (tools::add_number).
template <class S>
void add_options(CLI::App& app, S& s) {
    for_each_field(s, [&](const char* name, auto& field) {
        const option_spec& sp = spec_of(name);
        if (sp.help == nullptr) return;
        const std::string flag = flag_of(name);
        using F = std::remove_reference_t<decltype(field)>;
        if constexpr (std::is_same_v<F, bool>) {
            app.add_flag(flag, field, sp.help);
        } else if constexpr (std::is_floating_point_v<F>) {
            exprgrad::tools::add_number<F>(app, flag, field, sp.help, sp.flo, sp.fhi);
        } else if constexpr (std::is_integral_v<F>) {
            exprgrad::tools::add_number<F>(app, flag, field, sp.help, static_cast<F>(sp.ilo), static_cast<F>(sp.ihi));
        } else if constexpr (std::is_same_v<F, std::vector<std::size_t>>) {
            app.add_option_function<std::string>(
                flag,
                [&field, flag, lo = sp.ilo, hi = sp.ihi](const std::string& t) { field = parse_list(flag, t, lo, hi); },
                sp.help);
        } else if constexpr (std::is_same_v<F, std::string>) {
            app.add_option(flag, field, sp.help)->capture_default_str();
        } else {
            app.add_option(flag, field, sp.help);
        }
    });
}

// A field's value as recorded in the checkpoint and shown in messages: exact (numbers through
// exprgrad::format_number, the shortest form that reads back to the same bits).
template <class F>
std::string format_value(const F& v) {
    if constexpr (std::is_same_v<F, bool>) {
        return v ? "true" : "false";
    } else if constexpr (std::is_arithmetic_v<F>) {
        return exprgrad::format_number(v);
    } else if constexpr (std::is_same_v<F, std::string>) {
        return v;
    } else {
        std::string out;
        for (const auto& x : v) out += (out.empty() ? "" : ",") + format_value(x);
        return out;
    }
}

// The checkpoint's record of a struct: (prefix + name, value) for every field.
template <class S>
void record_options(const S& s, const std::string& prefix, std::vector<std::pair<std::string, std::string>>& out) {
    for_each_field(s,
                   [&](const char* name, const auto& field) { out.emplace_back(prefix + name, format_value(field)); });
}

// "--heads 4 --scale gradient_max ...": the options of a struct as one could type them.
template <class S>
std::string describe(const S& s) {
    std::string out;
    for_each_field(s, [&](const char* name, const auto& field) {
        if (spec_of(name).help == nullptr) return;
        out += (out.empty() ? "" : " ") + flag_of(name) + " " + exprgrad::tools::shown(format_value(field));
    });
    return out;
}

// Options added after checkpoints were first written: a checkpoint that does not record one was written
// before it existed, i.e. with its default (the behaviour before the option), which it is compared as.
bool added_later(std::string_view name) {
    return name == "emo_cost" || name == "init_from" || name == "softcap";
}

// Why a checkpoint's options are compared with this run's: --resume (every recorded option must be equal),
// or --init-from (the architecture: the model's fields except the loss, emo and emo_cost).
enum class compare_for { resume, init_from };

// --resume with an option that shapes the run changed is a usage error naming the option and both values;
// so is --init-from with another architecture. `derived_too`: also the fields that are not options (the
// vocabulary size, set from the tokenizer).
template <class S>
void check_same(const S& s, const std::string& prefix, const exprgrad::nn::checkpoint_info& info, bool derived_too,
                compare_for why = compare_for::resume) {
    const bool init = why == compare_for::init_from;
    std::map<std::string, std::string> defaults;
    S fresh{};
    for_each_field(fresh, [&](const char* name, const auto& field) { defaults[name] = format_value(field); });
    for_each_field(s, [&](const char* name, const auto& field) {
        const bool derived = spec_of(name).help == nullptr;
        if (derived != derived_too) return;
        if (init && (std::string_view(name) == "emo" || std::string_view(name) == "emo_cost")) return;
        const std::string shown_name = derived ? std::string(name) : flag_of(name);
        const std::string* saved = info.meta(prefix + name);
        const std::string now = format_value(field);
        if (saved == nullptr && added_later(name)) saved = &defaults[name];
        if (saved == nullptr)
            throw std::runtime_error(info.manifest.string() + ": records no " + shown_name +
                                     " (written by another version of tiny_lm?); " +
                                     (init ? "it cannot be checked for --init-from"
                                           : "start a fresh run without --resume"));
        if (*saved == now) return;
        if (init)
            throw exprgrad::tools::usage_error("--init-from: " + shown_name + " " + exprgrad::tools::shown(now) +
                                               " differs from the checkpoint's " + exprgrad::tools::shown(*saved) +
                                               " (" + info.manifest.string() + "); fine-tuning needs the " +
                                               "architecture and the tokenizer of the run it starts from");
        throw exprgrad::tools::usage_error("--resume: " + shown_name + " " + exprgrad::tools::shown(now) +
                                           " differs from the checkpoint's " + exprgrad::tools::shown(*saved) +
                                           " (" + info.manifest.string() + "); resume with the saved value, or " +
                                           "start a fresh run without --resume");
    });
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

held_out_set make_held_out(const text::unigram_model& tok, const std::vector<std::string>& lines, std::size_t limit) {
    held_out_set h;
    h.stream.push_back(eos);
    for (const auto& l : lines) {
        if (h.bytes >= limit) break;
        for (text::piece_id id : tok.encode(l)) {
            h.stream.push_back(id);
            h.unigram_nats -= tok.vocab()[id].score;
        }
        h.stream.push_back(eos);
        h.bytes += l.size() + 1;
    }
    return h;
}

// Windows of T pieces starting every T/2: the first window scores all its targets, the others only their
// second half, so every scored piece sees at least T/2 pieces of context (a strided evaluation).
// max_windows > 0 evaluates a prefix only (the quick evaluations during training).
// Under mpirun the batches of windows are dealt round-robin to the ranks, and the per-batch sums are
// added in batch order on every rank: the same bits as one process (adding the others' zeros is exact).
double evaluate(tiny_lm::language_model& m, const held_out_set& h, std::size_t T, std::size_t batch,
                nn::distributed& world, std::size_t max_windows = 0) {
    const std::size_t stride = std::max<std::size_t>(1, T / 2), n = h.stream.size() - 1;  // n targets
    std::size_t windows = n <= T ? 1 : 1 + (n - T + stride - 1) / stride;
    if (max_windows) windows = std::min(windows, max_windows);
    std::vector<double> per_batch((windows + batch - 1) / batch, 0.0);
    const auto ranks = static_cast<std::size_t>(world.size()), me = static_cast<std::size_t>(world.rank());
    for (std::size_t w0 = 0; w0 < windows; w0 += batch) {
        if ((w0 / batch) % ranks != me) continue;
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
        per_batch[w0 / batch] = m.eval_batch(tokens, targets).first;
    }
    world.sum(per_batch);
    double nats = 0;
    for (const double x : per_batch) nats += x;
    return nats;
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

// The history saved with the checkpoint (`shown` names it): exactly the records of steps 1..`steps`.
std::vector<record> parse_history(const std::string& text, const std::string& shown, std::size_t steps) {
    std::vector<record> h;
    std::istringstream in(text);
    std::string line;
    std::size_t no = 0;
    auto number = [&](const std::string& f, double& v) {
        const auto r = std::from_chars(f.data(), f.data() + f.size(), v);
        return r.ec == std::errc() && r.ptr == f.data() + f.size();
    };
    while (std::getline(in, line)) {
        if (++no == 1) continue;
        std::istringstream f(line);
        std::string a, b, c, extra;
        record r{};
        double step = 0;
        if (!(f >> a >> b >> c) || (f >> extra) || !number(a, step) || !number(b, r.train_loss) ||
            !number(c, r.held_out_loss) || step != static_cast<double>(h.size() + 1))
            throw std::runtime_error(shown + ":" + std::to_string(no) + ": malformed or out-of-order record");
        r.step = h.size() + 1;
        h.push_back(r);
    }
    if (h.size() != steps)
        throw std::runtime_error(shown + ": holds " + std::to_string(h.size()) +
                                 " records, the checkpoint is at step " + std::to_string(steps));
    return h;
}

// Removes the temporaries an interrupted run leaves in its directory: the checkpoint's staging
// directories, and `<file>.tmp.XXXXXX` of the files tiny_lm writes (regular files only, exact pattern).
std::size_t remove_stale_temporaries(const fs::path& run, const fs::path& ckpt) {
    std::size_t n = nn::remove_stale_checkpoint_temporaries(ckpt).size();
    for (const auto& e : fs::directory_iterator(run)) {
        const std::string name = e.path().filename().string();
        for (const char* base : {"tokenizer.txt", "history.tsv", "loss.svg", "report.md", "samples.txt"}) {
            const std::string prefix = std::string(base) + ".tmp.";
            const bool ours = name.size() == prefix.size() + 6 && name.compare(0, prefix.size(), prefix) == 0 &&
                              std::all_of(name.begin() + static_cast<std::ptrdiff_t>(prefix.size()), name.end(),
                                          [](unsigned char c) { return std::isalnum(c) != 0; });
            if (ours && e.is_regular_file() && !e.is_symlink()) {
                fs::remove(e.path());
                ++n;
            }
        }
    }
    return n;
}

// A line chart (tools::to_svg): training loss (moving average), held-out loss (points), the unigram baseline
// (dashed). Steps without a held-out loss (NaN) have no point.
std::string loss_svg(const std::vector<record>& h, double unigram_per_piece) {
    exprgrad::tools::svg_chart c;
    c.left = 72;
    c.top = 30;
    c.bottom = 45;
    double ymax = unigram_per_piece * 1.25, ymin = 1e9;
    std::size_t xmax = 1;
    exprgrad::tools::chart_series train{.label = "training loss (EMA)", .stroke = 1.5};
    exprgrad::tools::chart_series held{.label = "held-out (Viterbi)",
                                       .color = "#d62728",
                                       .draw = exprgrad::tools::chart_series::style::points,
                                       .stroke = 4};
    double ema = NAN;
    for (const auto& r : h) {
        xmax = std::max(xmax, r.step);
        ymin = std::min(ymin, r.train_loss);
        ema = std::isnan(ema) ? r.train_loss : 0.9 * ema + 0.1 * r.train_loss;
        train.x.push_back(static_cast<double>(r.step));
        train.y.push_back(std::min(ema, ymax));  // finite for the chart; above ymax the clip hides it anyway
        if (!std::isnan(r.held_out_loss)) {
            ymin = std::min(ymin, r.held_out_loss);
            held.x.push_back(static_cast<double>(r.step));
            held.y.push_back(std::min(r.held_out_loss, ymax));
        }
    }
    ymin = std::max(0.0, std::floor(std::min(ymin, unigram_per_piece) - 0.5));
    c.x_range = {0, static_cast<double>(xmax)};
    c.y_range = {ymin, ymax};
    c.x_label = "step";
    c.y_label = "nats per piece";
    c.legend = exprgrad::tools::svg_chart::corner::bottom_left;  // losses fall from the top left: that corner is free
    if (!train.x.empty()) c.series.push_back(std::move(train));
    if (!held.x.empty()) c.series.push_back(std::move(held));
    c.rules.push_back({.at = unigram_per_piece, .label = "unigram tokenizer"});
    return exprgrad::tools::to_svg(c);
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

// The whole of a file of the run directory, or nullopt if it does not exist. Its type is checked before
// opening (a FIFO would block the open forever, /dev/zero would never end) and again on the descriptor
// (opened O_NONBLOCK, so a FIFO swapped in between cannot block); throws naming the file otherwise.
std::optional<std::string> read_run_file(const fs::path& p) {
    auto refuse = [&](const std::string& why) { throw std::runtime_error(p.string() + ": " + why); };
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) {
        if (errno == ENOENT) return std::nullopt;
        refuse("cannot read it: " + std::error_code(errno, std::generic_category()).message());
    }
    if (!S_ISREG(st.st_mode)) refuse(std::string(exprgrad::detail::file_kind(st.st_mode)) + ", not a regular file");
    const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) refuse("cannot open it: " + std::error_code(errno, std::generic_category()).message());
    std::string bytes;
    int err = 0;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        err = -1;
    } else {
        char buf[65536];
        for (;;) {
            const ssize_t r = ::read(fd, buf, sizeof buf);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) err = errno;
            if (r <= 0) break;
            bytes.append(buf, static_cast<std::size_t>(r));
        }
    }
    ::close(fd);
    if (err == -1) refuse("changed while being opened (not a regular file)");
    if (err != 0) refuse("read error: " + std::error_code(err, std::generic_category()).message());
    return bytes;
}

// Creates --run-dir (and its parents) if needed; refuses, naming the option, what cannot hold a run.
void make_run_dir(const std::string& dir) {
    auto refuse = [&](const std::string& why) {
        throw std::runtime_error("--run-dir: " + exprgrad::tools::shown(dir) + ": " + why);
    };
    std::error_code ec;
    const fs::file_status st = fs::status(dir, ec);  // follows symbolic links
    if (st.type() == fs::file_type::directory) return;
    if (st.type() == fs::file_type::not_found && fs::is_symlink(fs::symlink_status(dir, ec)))
        refuse("a dangling symbolic link (its target does not exist)");
    if (st.type() != fs::file_type::not_found && st.type() != fs::file_type::none)
        refuse("exists and is not a directory");
    fs::create_directories(dir, ec);
    if (ec) refuse("cannot create the directory: " + ec.message());
}

// FNV-1a 64 of every parameter's bytes: equal on all ranks after every step (they apply the same updates).
std::uint64_t parameter_checksum(const nn::parameter_set<float>& params) {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (const auto& p : params) {
        const auto* b = reinterpret_cast<const unsigned char*>(p.value.data());
        for (std::size_t i = 0; i < p.value.size() * sizeof(float); ++i) h = (h ^ b[i]) * 0x100000001b3ULL;
    }
    return h;
}

// Testing hook of the distributed failure handling: EXPRGRAD_FAULT=throw_on_rank_<r>_at_step_<s> makes rank r
// throw after the backward pass of step s (an error on one rank while the others wait for it);
// exit_on_rank_<r>_at_step_<s> ends it there with _exit(86), as a kill would.
class fault_injection {
  public:
    explicit fault_injection(int rank) {
        if (const char* f = std::getenv("EXPRGRAD_FAULT")) {
            const std::string v = f, me = "_on_rank_" + std::to_string(rank) + "_at_step_";
            for (const char* kind : {"throw", "exit"})
                if (v.rfind(kind + me, 0) == 0) {
                    kind_ = kind;
                    step_ = std::strtoull(v.c_str() + std::strlen(kind) + me.size(), nullptr, 10);
                }
            rank_ = rank;
        }
    }
    void at_step(std::size_t step) const {
        if (step_ == 0 || step != step_) return;
        if (kind_ == std::string("exit")) ::_exit(86);
        throw std::runtime_error("injected fault (EXPRGRAD_FAULT) on rank " + std::to_string(rank_) + " at step " +
                                 std::to_string(step));
    }

  private:
    const char* kind_ = "";
    std::size_t step_ = 0;
    int rank_ = 0;
};

// Checks what the command line cannot check one option at a time.
void check_options(const run_options& ro, const session_options& so, const tiny_lm::model_config& mc) {
    using exprgrad::tools::usage_error;
    if (so.run_dir.empty()) throw usage_error("--run-dir: '': the run directory cannot be empty");
    // A rough upper estimate of the memory, in floats, refused up front when it exceeds the machine's
    // physical memory (a huge model would otherwise allocate for seconds and end in bad_alloc or the OOM
    // killer). Parameters: both embeddings and the head (vocabulary at most --vocab-size), per block
    // 12·W² + 9·W (attention 4·W², feed-forward 8·W²), per DEER block n² + 3·W·n + W; each with its
    // gradient and AdamW's two moments (4 copies). Activations kept for the backward pass: 32 per
    // element of B·T·W per block, 4 per attention score B·heads·T² per block, 4 per logit B·T·V, and per
    // DEER block B·T·(n² + 8·n) (the recurrence's Jacobians). Doubles: no overflow at the bounds.
    {
        const double V = static_cast<double>(ro.vocab_size), W = static_cast<double>(mc.width),
                     L = static_cast<double>(mc.layers), T = static_cast<double>(mc.context),
                     B = static_cast<double>(ro.batch), H = static_cast<double>(mc.heads),
                     n = static_cast<double>(mc.deer_state), D = static_cast<double>(mc.deer_layers.size());
        const double params = 2 * V * W + T * W + W + L * (12 * W * W + 9 * W) + D * (n * n + 3 * W * n + W);
        const double acts = 32 * B * T * W * L + 4 * B * H * T * T * L + 4 * B * T * V + D * B * T * (n * n + 8 * n);
        const double bytes = 4 * (4 * params + acts);
        const double phys = static_cast<double>(::sysconf(_SC_PHYS_PAGES)) * static_cast<double>(::sysconf(_SC_PAGE_SIZE));
        if (phys > 0 && bytes > phys) {
            char msg[400];
            std::snprintf(msg, sizeof msg,
                          "--width %zu --layers %zu --heads %zu --context %zu --batch %zu --vocab-size %zu "
                          "--deer-state %zu (%zu DEER blocks): about %.3g GB needed (%.3g parameters; a rough upper "
                          "estimate), more than the %.3g GB of physical memory",
                          mc.width, mc.layers, mc.heads, mc.context, ro.batch, ro.vocab_size, mc.deer_state,
                          mc.deer_layers.size(), bytes / 1e9, params, phys / 1e9);
            throw usage_error(msg);
        }
    }
    if (mc.width % mc.heads != 0)
        throw usage_error("--width " + std::to_string(mc.width) + " is not a multiple of --heads " +
                          std::to_string(mc.heads));
    if (mc.scale != "inv_sqrt_d" && mc.scale != "entropy_invariant" && mc.scale != "gradient_max")
        throw usage_error("--scale: unknown attention scale " + exprgrad::tools::shown(mc.scale) +
                          " (one of: inv_sqrt_d, entropy_invariant, gradient_max)");
    if (mc.emo_cost != "live" && mc.emo_cost != "fixed")
        throw usage_error("--emo-cost: unknown cost embedding " + exprgrad::tools::shown(mc.emo_cost) +
                          " (one of: live, fixed)");
    if (so.parallel != "data" && so.parallel != "ops")
        throw usage_error("--parallel: unknown mode " + exprgrad::tools::shown(so.parallel) + " (one of: data, ops)");
    if (mc.emo_cost == "fixed" && !mc.emo)
        throw usage_error("--emo-cost: 'fixed' is EMO's cost embedding: it needs --emo");
    // Below this a float cap is denormal or zero and training turns NaN; 0 itself turns capping off.
    if (mc.softcap != 0 && mc.softcap < 1e-6)
        throw usage_error("--softcap: " + format_value(mc.softcap) + " is below 1e-6 (0 turns soft-capping off)");
    if (!tiny_lm::known_position(mc.position))
        throw usage_error("--position: unknown position scheme " + exprgrad::tools::shown(mc.position) +
                          " (one of: learned, none, alibi)");
    if (mc.position == "learned")
        for (const std::size_t T : so.eval_contexts)
            if (T > mc.context)
                throw usage_error("--eval-contexts: " + std::to_string(T) + " exceeds --context " +
                                  std::to_string(mc.context) + ", the length of the learned position embeddings " +
                                  "(--position none or alibi can be evaluated past it)");
    for (const std::size_t l : mc.deer_layers)
        if (l >= mc.layers)
            throw usage_error("--deer-layers: block " + std::to_string(l) + " does not exist (--layers " +
                              std::to_string(mc.layers) + ": blocks 0.." + std::to_string(mc.layers - 1) + ")");
}

void train_and_report(const run_options& ro, const session_options& so, tiny_lm::model_config mc,
                      nn::distributed& world) {
    check_options(ro, so, mc);
    const auto ranks = static_cast<std::size_t>(world.size()), rank = static_cast<std::size_t>(world.rank());
    if (ro.batch < ranks)
        throw exprgrad::tools::usage_error("--batch " + std::to_string(ro.batch) + " is smaller than the " +
                                           std::to_string(ranks) + " ranks of mpirun: every rank needs a sequence");
    quiet = !world.root();
    kernels::set_num_threads(so.threads);
    const auto t_start = std::chrono::steady_clock::now();
    auto since = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count(); };
    const fs::path run(so.run_dir), ckpt = run / "ckpt", vocab_file = run / "tokenizer.txt";
    const bool resuming = so.resume;
    // --resume reads before it writes: without a checkpoint, or with other options, nothing is touched.
    nn::checkpoint_info info;
    if (resuming && world.root()) {
        if (!fs::exists(ckpt / "manifest.txt"))
            throw std::runtime_error("--resume: no checkpoint in " + so.run_dir + " (" +
                                     (ckpt / "manifest.txt").string() +
                                     " does not exist); run without --resume to start");
        info = nn::read_checkpoint_info(ckpt);
        check_same(mc, "model.", info, false);
        check_same(ro, "run.", info, false);
        const std::string where = info.manifest.string() + ": ";
        if (!info.schedule_step || !info.optimizer_step)
            throw std::runtime_error(where + "the checkpoint has no optimizer or schedule state");
        if (*info.schedule_step > ro.steps)
            throw std::runtime_error(where + "schedule step " + std::to_string(*info.schedule_step) +
                                     " is beyond the run's " + std::to_string(ro.steps) + " steps");
        if (*info.optimizer_step != *info.schedule_step)
            throw std::runtime_error(where + "optimizer step " + std::to_string(*info.optimizer_step) +
                                     " and schedule step " + std::to_string(*info.schedule_step) + " disagree");
    }
    // --init-from reads before anything is written too: its checkpoint's options (the architecture) and its
    // tokenizer. Its parameters are read, and their checksum checked, after the run directory is made.
    const bool init_from = !ro.init_from.empty();
    nn::checkpoint_info init_info;
    const fs::path init_ckpt = fs::path(ro.init_from) / "ckpt";
    std::string init_vocab_text;
    if (init_from && world.root()) {
        const std::string shown_dir = exprgrad::tools::shown(ro.init_from);
        std::error_code ec;
        if (fs::exists(so.run_dir, ec) && fs::equivalent(ro.init_from, so.run_dir, ec))
            throw exprgrad::tools::usage_error("--init-from: " + shown_dir + " is --run-dir itself; fine-tune into " +
                                               "another directory");
        if (!fs::exists(init_ckpt / "manifest.txt"))
            throw exprgrad::tools::usage_error("--init-from: " + shown_dir + " holds no checkpoint (" +
                                               (init_ckpt / "manifest.txt").string() + " does not exist)");
        init_info = nn::read_checkpoint_info(init_ckpt);
        check_same(mc, "model.", init_info, false, compare_for::init_from);
        const std::string* saved_vocab = init_info.meta("run.vocab_size");
        if (saved_vocab != nullptr && *saved_vocab != format_value(ro.vocab_size))
            throw exprgrad::tools::usage_error("--init-from: --vocab-size " +
                                               exprgrad::tools::shown(format_value(ro.vocab_size)) +
                                               " differs from the checkpoint's " + exprgrad::tools::shown(*saved_vocab) +
                                               " (" + init_info.manifest.string() + "); fine-tuning needs the " +
                                               "architecture and the tokenizer of the run it starts from");
        const fs::path init_vocab = fs::path(ro.init_from) / "tokenizer.txt";
        auto text_read = read_run_file(init_vocab);
        if (!text_read) throw std::runtime_error(init_vocab.string() + ": --init-from: cannot read the tokenizer");
        init_vocab_text = std::move(*text_read);
        const std::string* saved = init_info.meta("tokenizer_fnv1a64");
        char now[17];
        std::snprintf(now, sizeof now, "%016llx", static_cast<unsigned long long>(nn::fnv1a64(init_vocab_text)));
        if (saved == nullptr || *saved != now)
            throw std::runtime_error(init_vocab.string() + ": --init-from: does not belong to the checkpoint " +
                                     "(checksum " + now + ", the checkpoint records " +
                                     (saved ? *saved : std::string("none")) + ")");
    }
    if (world.root()) make_run_dir(so.run_dir);

    std::vector<std::string> train, held;
    load_corpus(ro.corpus_dir, ro.max_corpus, train, held);
    std::size_t train_bytes = 0;
    for (const auto& l : train) train_bytes += l.size() + 1;
    say("corpus: %zu training lines (%zu bytes), %zu held-out lines\n", train.size(), train_bytes, held.size());
    // The corpus files can change under the same --corpus-dir: the checkpoint records what was read.
    const std::string corpus_sum = [&] {
        std::string all;
        for (const auto* part : {&train, &held})
            for (const auto& l : *part) (all += l) += '\n';
        char b[17];
        std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(nn::fnv1a64(all)));
        return std::string(b);
    }();
    // Every rank reads the corpus itself (on its machine): it must be what rank 0 read.
    {
        std::string root_sum = corpus_sum;
        world.broadcast(root_sum);
        if (root_sum != corpus_sum)
            throw std::runtime_error("--corpus-dir " + ro.corpus_dir + ": rank " + std::to_string(rank) +
                                     " read another corpus (checksum " + corpus_sum + ") than rank 0 (" + root_sum +
                                     ")");
    }
    if (resuming && world.root()) {
        const std::string* saved = info.meta("corpus_fnv1a64");
        if (saved == nullptr || *saved != corpus_sum)
            throw std::runtime_error("--corpus-dir " + ro.corpus_dir + ": the corpus read (checksum " + corpus_sum +
                                     ") differs from the checkpoint's (" + (saved ? *saved : std::string("none")) +
                                     "): its files changed since; start a fresh run without --resume");
    }

    // 1. The tokenizer (reloaded when resuming, so the pieces cannot change under a checkpoint; the
    // checkpoint records its checksum, so a tokenizer.txt from another run is refused).
    const double t0 = since();
    std::string vocab_text;
    text::unigram_model tok = [&] {
        if (!world.root()) {  // rank 0's tokenizer, trained or read
            world.broadcast(vocab_text);
            auto loaded = text::parse_vocabulary(vocab_text, text::vocab_format::native, vocab_file.string());
            return text::unigram_model(std::move(loaded.vocab), loaded.options);
        }
        if (resuming) {
            auto text_read = read_run_file(vocab_file);
            if (!text_read) throw std::runtime_error(vocab_file.string() + ": cannot read the tokenizer of the checkpoint");
            vocab_text = std::move(*text_read);
            const std::string* saved = info.meta("tokenizer_fnv1a64");
            char now[17];
            std::snprintf(now, sizeof now, "%016llx", static_cast<unsigned long long>(nn::fnv1a64(vocab_text)));
            if (saved == nullptr || *saved != now)
                throw std::runtime_error(vocab_file.string() + ": does not belong to the checkpoint (checksum " + now +
                                         ", the checkpoint records " + (saved ? *saved : std::string("none")) +
                                         "); it was rewritten by another run: start a fresh run without --resume");
            world.broadcast(vocab_text);
            auto loaded = text::parse_vocabulary(vocab_text, text::vocab_format::native, vocab_file.string());
            return text::unigram_model(std::move(loaded.vocab), loaded.options);
        }
        if (init_from) {  // the tokenizer of the run fine-tuned from (checked above), copied into this run
            vocab_text = init_vocab_text;
            auto loaded = text::parse_vocabulary(vocab_text, text::vocab_format::native, vocab_file.string());
            text::write_file_atomically(vocab_file.string(), vocab_text);
            exprgrad::detail::fault_point("tokenizer_written");
            world.broadcast(vocab_text);
            return text::unigram_model(std::move(loaded.vocab), loaded.options);
        }
        text::train_options to;
        to.vocab_size = ro.vocab_size;
        auto m = text::train_unigram(train, to);
        vocab_text = text::format_native(m.vocab(), m.options());
        text::write_file_atomically(vocab_file.string(), vocab_text);
        exprgrad::detail::fault_point("tokenizer_written");
        world.broadcast(vocab_text);
        return m;
    }();
    char tok_sum[17];
    std::snprintf(tok_sum, sizeof tok_sum, "%016llx", static_cast<unsigned long long>(nn::fnv1a64(vocab_text)));
    const double tok_seconds = since() - t0;
    const held_out_set eval_set = make_held_out(tok, held, ro.eval_bytes);
    const held_out_set quick_set = make_held_out(tok, held, std::max<std::size_t>(1, ro.eval_bytes / 4));
    const std::size_t held_pieces = eval_set.stream.size() - 1;
    const double unigram_bpb = eval_set.unigram_nats / std::log(2.0) / static_cast<double>(eval_set.bytes);
    say(
        "tokenizer: %zu pieces in %.1f s; held-out: %zu bytes, %zu pieces (%.2f bytes/piece), unigram "
        "model %.4f bits/byte\n",
        tok.size(), tok_seconds, eval_set.bytes, held_pieces,
        static_cast<double>(eval_set.bytes) / static_cast<double>(held_pieces), unigram_bpb);

    // 2. The model, optimizer, schedule and generators (all restored together on --resume).
    mc.vocab = tok.size();
    if (resuming && world.root()) check_same(mc, "model.", info, true);
    rng init_gen(ro.seed), data(ro.seed * 2 + 1), sampler(ro.seed * 2 + 2);
    tiny_lm::language_model model(mc, init_gen);
    model.set_data_parallel(so.parallel == "data");
    auto& params = model.params();
    nn::adamw<float> opt({.lr = ro.lr, .weight_decay = 0.01});
    nn::cosine_warmup sched({.base_lr = ro.lr,
                             .warmup_steps = std::min<std::size_t>(100, ro.steps / 10),
                             .total_steps = ro.steps,
                             .min_lr = ro.lr / 10});
    nn::checkpoint_items<float> items{
        .opt = &opt, .sched = &sched, .generators = {{"data", &data}, {"sampler", &sampler}}};
    record_options(mc, "model.", items.metadata);
    record_options(ro, "run.", items.metadata);
    items.metadata.emplace_back("tokenizer_fnv1a64", tok_sum);
    items.metadata.emplace_back("corpus_fnv1a64", corpus_sum);
    items.metadata.emplace_back("world_size", std::to_string(ranks));
    // The starting parameters: --init-from's (the optimizer and schedule stay fresh), recorded by checksum so
    // that a resume can tell whether that checkpoint changed since; then EMO's fixed cost is taken from them.
    if (init_from && world.root()) {
        check_same(mc, "model.", init_info, true, compare_for::init_from);  // the vocabulary
        nn::load_checkpoint(init_ckpt, params);
        char sum[17];
        std::snprintf(sum, sizeof sum, "%016llx", static_cast<unsigned long long>(parameter_checksum(params)));
        items.metadata.emplace_back("init_params_fnv1a64", sum);
        if (resuming) {
            const std::string* saved = info.meta("init_params_fnv1a64");
            if (saved == nullptr || *saved != sum)
                throw std::runtime_error("--init-from " + ro.init_from + ": its checkpoint's parameters (checksum " +
                                         sum + ") are not those this run started from (" +
                                         (saved ? *saved : std::string("none")) + "): it was rewritten since");
        }
        say("initialized from %s (its step %llu), fresh optimizer and schedule\n", init_ckpt.c_str(),
            static_cast<unsigned long long>(init_info.schedule_step.value_or(0)));
    }
    world.broadcast(params);  // rank 0's starting parameters (a random initialization is the same everywhere)
    if (mc.emo && mc.emo_cost == "fixed") model.fix_emo_cost();  // before a resume loads later parameters
    std::vector<record> history;
    std::size_t start = 0;
    if (resuming && world.root()) {
        nn::load_checkpoint(ckpt, params, items);
        start = sched.state().step;
        // The data position is the step (make_sequences): another number of ranks continues the same stream
        // (the sums are then added in another order, so not bit for bit as the saved run would have).
        const std::string* saved_ranks = info.meta("world_size");
        const std::string was = saved_ranks ? *saved_ranks : "1";
        if (was != std::to_string(ranks))
            say("resuming on %zu rank%s a checkpoint written by %s: the data continue at step %zu\n", ranks,
                ranks == 1 ? "" : "s", (was + (was == "1" ? " process" : " ranks")).c_str(), start);
        const std::string* saved = info.file("history.tsv");
        if (saved == nullptr)
            throw std::runtime_error(info.manifest.string() + ": the checkpoint holds no history.tsv");
        history = parse_history(*saved, (ckpt / "files" / "history.tsv").string(), start);
        // A crash after the checkpoint but before history.tsv was rewritten: the checkpoint's copy wins.
        const std::optional<std::string> on_disk = read_run_file(run / "history.tsv");
        if (on_disk != *saved) {
            text::write_file_atomically((run / "history.tsv").string(), *saved);
            say("history.tsv rewritten from the checkpoint (%zu records)\n", history.size());
        }
        say("resumed from %s at step %zu\n", ckpt.c_str(), start);
    }
    // Rank 0's state everywhere: at start (the same initialization, checked) and after a resume (loaded by
    // rank 0 only, so the other ranks need no copy of the run directory).
    world.broadcast(params);
    world.broadcast(opt, params);
    world.broadcast(sched);
    world.broadcast(data);
    world.broadcast(sampler);
    start = static_cast<std::size_t>(sched.current_step());
    // Only now, with every check passed: a refused run leaves the directory as it found it.
    if (const std::size_t n = world.root() ? remove_stale_temporaries(run, ckpt) : 0)
        say("removed %zu stale temporaries of an interrupted run\n", n);
    const std::string deer_layers = format_value(mc.deer_layers);
    const std::string softcap = mc.softcap > 0 ? ", softcap " + format_value(mc.softcap) : "";
    say("model: %zu parameters, %zu layers, width %zu, %zu heads, scale %s, %s positions%s%s%s, loss %s\n",
                params.numel(), mc.layers, mc.width, mc.heads, mc.scale.c_str(), mc.position.c_str(), softcap.c_str(),
                mc.deer_layers.empty() ? "" : ", DEER in blocks ",
                deer_layers.c_str(),
                !mc.emo ? "CE" : mc.emo_cost == "fixed" ? "CE + EMO (mode 1, fixed cost)" : "CE + EMO (mode 1)");
    say("%s\n", exprgrad::kernels::gemm_backend_note().c_str());

    // 3. Training. This rank's share of the global batch: sequences [first, first + mine) of each step's
    // ro.batch; the loss is a mean over the share's targets (all counted), so the gradient of the global
    // mean is the sum over the ranks of (mine / batch) times this rank's.
    const std::size_t first = rank * ro.batch / ranks, mine = (rank + 1) * ro.batch / ranks - first;
    const double share = static_cast<double>(mine) / static_cast<double>(ro.batch);
    nn::distributed_gradients<float> grad_sum(world, params, model.grad_buckets());
    const fault_injection fault(world.rank());
    xt::xarray<std::int32_t> tokens, targets;
    const bool tty = isatty(2);
    const double t_train = since();
    std::size_t seen_pieces = 0, seen_bytes = 0, deer_iters = 0, deer_solves = 0, deer_fallbacks = 0;
    for (std::size_t step = start; step < ro.steps; ++step) {
        make_sequences(tok, train, static_cast<std::uint64_t>(step) * ro.batch + first, mine, mc.context, ro.alpha,
                       data, sampler, tokens, targets, seen_bytes);
        params.zero_grad();
        grad_sum.begin(share);
        const double local_loss = model.train_batch(tokens, targets, &grad_sum);
        grad_sum.finish();
        fault.at_step(step + 1);
        const double loss = ranks == 1 ? local_loss : world.sum(share * local_loss);
        if (!std::isfinite(loss))
            throw std::runtime_error("loss is " + exprgrad::format_number(loss) + " at step " +
                                     std::to_string(step + 1));
        nn::clip_grad_norm(params, 1.0);
        opt.set_lr(sched.lr());
        opt.step(params);
        sched.step();
        seen_pieces += ro.batch * mc.context;
        for (const auto* d : model.step_deer()) {
            deer_iters += d->last_report().iterations;
            deer_fallbacks += d->last_report().fallback;
            ++deer_solves;
        }
        const std::size_t done = step + 1;
        double held_loss = NAN;
        if (done % so.eval_every == 0 || done == ro.steps) {
            held_loss =
                evaluate(model, quick_set, mc.context, 16, world) / static_cast<double>(quick_set.stream.size() - 1);
        }
        history.push_back({done, loss, held_loss});
        const double el = since() - t_train;
        const double rate = static_cast<double>(seen_pieces) / std::max(el, 1e-9);
        const double eta = el / static_cast<double>(done - start) * static_cast<double>(ro.steps - done);
        if (world.root() && (tty || !std::isnan(held_loss) || done == start + 1)) {
            const int fill = static_cast<int>(30.0 * static_cast<double>(done) / static_cast<double>(ro.steps));
            std::fprintf(stderr, "%s[%s%s] step %zu/%zu  loss %.3f  %.0f pieces/s  ETA %s", tty ? "\r" : "",
                         std::string(static_cast<std::size_t>(fill), '#').c_str(),
                         std::string(static_cast<std::size_t>(30 - fill), ' ').c_str(), done, ro.steps, loss, rate,
                         fmt_time(eta).c_str());
            if (!std::isnan(held_loss)) std::fprintf(stderr, "  held-out %.3f", held_loss);
            if (!tty || !std::isnan(held_loss)) std::fprintf(stderr, "\n");
        }
        if (done % so.ckpt_every == 0 || done == ro.steps || done == so.stop_after) {
            // Every rank applied the same updates to the same parameters: checked where it is saved.
            if (ranks > 1)
                world.check_same(parameter_checksum(params), "the parameters after step " + std::to_string(done));
            if (world.root()) {
                // The history goes into the checkpoint too, so the two cannot disagree after a crash.
                const std::string h = history_tsv(history);
                items.files = {{"history.tsv", h}};
                nn::save_checkpoint(ckpt, params, items);
                exprgrad::detail::fault_point("ckpt_saved");
                text::write_file_atomically((run / "history.tsv").string(), h);
            }
        }
        if (done == so.stop_after) {
            say("stopped after step %zu (--stop-after); continue with --resume\n", done);
            return;
        }
    }
    const double train_seconds = since() - t_train;
    if (ranks > 1 && ro.steps > start) {
        // How much of the all-reduce the backward pass hid: the wait in finish() against a blocking
        // all-reduce of the same buckets (measured now, after training).
        const nn::distributed_gradient_stats st = grad_sum.stats();
        const auto split = grad_sum.split_waits();
        const double blocking = grad_sum.blocking_seconds(9), hooks = st.hook_seconds / static_cast<double>(st.steps);
        say("all-reduce: %zu ranks, %zu bytes per step in %zu buckets; per step: %.2f ms for a blocking all-reduce, "
            "%.2f ms exposed after the last rank's backward pass (%.0f%% hidden), %.2f ms in the hooks, %.2f ms "
            "waiting for the slowest rank (medians over the steps; hooks: mean; rank 0)\n",
            ranks, st.bytes_per_step, grad_sum.buckets(), 1e3 * blocking, 1e3 * split.exposed,
            blocking > 0 ? 100.0 * std::clamp(1.0 - split.exposed / blocking, 0.0, 1.0) : 0.0, 1e3 * hooks,
            1e3 * split.imbalance);
    }

    // 4. Final evaluation.
    const double lm_nats = evaluate(model, eval_set, mc.context, 16, world);
    const double lm_bpb = lm_nats / std::log(2.0) / static_cast<double>(eval_set.bytes);
    const double reduction = 100.0 * (1.0 - lm_bpb / unigram_bpb);
    say("held-out bits/byte: model %.4f, unigram tokenizer %.4f (%.1f%% lower)\n", lm_bpb, unigram_bpb,
                reduction);
    // Length extrapolation (bench/scale_length.py parses these lines): the same held-out bytes in windows of
    // T pieces (every piece scored once with at least T/2 pieces of context).
    for (const std::size_t T : so.eval_contexts) {
        const double nats = evaluate(model, eval_set, T, 16, world);
        const double bpb = nats / std::log(2.0) / static_cast<double>(eval_set.bytes);
        say("eval_context: %zu train_context: %zu bits_per_byte: %.6f\n", T, mc.context, bpb);
    }
    if (!world.root()) return;  // samples, generation, plot and report: rank 0's

    // Distribution matching (docs/emo_finetune.md; bench/emo_finetune.py parses the line): streams of 2·context
    // pieces sampled at temperature 1 against the held-out stream, both under the Viterbi segmentation.
    if (so.samples > 0) {
        const double t_sample = since();
        rng sample_rng(ro.seed * 2 + 3);
        const auto sampled = tiny_lm::sample_streams(model, tok, so.samples, 2 * mc.context, 16, eos, sample_rng);
        std::vector<std::vector<std::int32_t>> streams;
        std::string text_out;
        for (const auto& st : sampled) {
            streams.push_back(tiny_lm::viterbi_resegment(tok, st, eos));
            for (std::size_t i = 1; i < st.size(); ++i)
                text_out += st[i] == eos ? std::string("\n")
                                         : tok.decode(std::vector<text::piece_id>{static_cast<text::piece_id>(st[i])});
            text_out += "\n%\n";
        }
        text::write_file_atomically((run / "samples.txt").string(), text_out);
        const tiny_lm::distribution_match dm = tiny_lm::piece_kl({eval_set.stream}, streams, tok.size());
        say("distribution: samples %zu pieces %zu kl_unigram %.6f kl_bigram %.6f (held-out pieces %zu, %.1f s)\n",
            so.samples, dm.sample_pieces, dm.kl_unigram, dm.kl_bigram, dm.reference_pieces, since() - t_sample);
    }

    // 5. Generation with and without token healing.
    rng gen_rng(ro.seed + 99);
    auto next = [&](std::span<const text::piece_id> ctx) {
        std::vector<std::int32_t> c(1, eos);
        c.insert(c.end(), ctx.begin(), ctx.end());
        return model.next_log_probs(c);
    };
    auto continue_from = [&](std::vector<text::piece_id> ctx) {
        std::string out;
        for (std::size_t i = 0; i < so.gen_pieces; ++i) {
            std::vector<double> lp = next(ctx);
            double mx = -INFINITY;
            for (std::size_t v = 0; v < lp.size(); ++v) {
                const bool control = tok.vocab()[static_cast<text::piece_id>(v)].kind == text::piece_kind::control;
                lp[v] = control && v != static_cast<std::size_t>(eos) ? -INFINITY : lp[v] / temperature;
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
    text::token_healer healer(tok);
    std::vector<std::array<std::string, 3>> samples;
    for (const auto& p : so.prompts) {
        const auto ids = tok.encode(p);
        const std::string plain = p + continue_from(std::vector<text::piece_id>(ids.begin(), ids.end()));
        const text::healing_result healed = healer.heal_ids(ids, next, gen_rng);
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
      << "| corpus | " << train.size() << " training lines (" << train_bytes << " bytes), held-out " << eval_set.bytes
      << " bytes |\n"
      << "| tokenizer | unigram, " << tok.size() << " pieces, trained in " << tok_seconds << " s |\n"
      << "| model | " << params.numel() << " parameters: " << mc.layers << " blocks, width " << mc.width << ", "
      << mc.heads << " heads, context " << mc.context << ", scale " << mc.scale
      << (mc.deer_layers.empty() ? std::string() : ", DEER mixer in blocks " + deer_layers) << " |\n"
      << "| training | " << ro.steps << " steps × " << ro.batch << " sequences, " << (mc.emo ? "CE + EMO" : "CE")
      << ", subword α = " << ro.alpha << ", AdamW lr " << ro.lr << ", seed " << ro.seed << ", "
      << (ranks > 1 ? std::to_string(ranks) + " ranks (mpirun) × " : std::string()) << so.threads << " threads"
      << (so.threads > 1 ? (so.parallel == "data" && !mc.emo ? " (data-parallel)" : " (per operation)") : "") << " |\n"
      << "| time | training " << train_seconds << " s (" << (start ? "resumed run" : "whole run") << "), total "
      << since() << " s |\n"
      << "| options | " << show(describe(mc) + " " + describe(ro)) << " |\n";
    if (deer_solves)
        r << "| DEER | " << static_cast<double>(deer_iters) / static_cast<double>(deer_solves)
          << " iterations per solve, " << deer_fallbacks << " sequential fallbacks |\n";
    r << "\n## Held-out bits per byte (Viterbi segmentation)\n\n| model | bits/byte |\n|---|---|\n"
      << "| unigram tokenizer | " << unigram_bpb << " |\n| tiny_lm | " << lm_bpb << " |\n| reduction | " << reduction
      << "% |\n\n![loss](loss.svg)\n\n## Generation (temperature " << temperature
      << ")\n\n| prompt | without token healing | with token healing |\n|---|---|---|\n";
    for (const auto& x : samples) r << "| " << show(x[0]) << " | " << show(x[1]) << " | " << show(x[2]) << " |\n";
    text::write_file_atomically((run / "report.md").string(), r.str());
    std::printf("\nwrote %s/report.md, loss.svg, history.tsv, ckpt/ (%.1f s in all)\n", so.run_dir.c_str(), since());
}

}  // namespace

int main(int argc, char** argv) {
    run_options ro;
    session_options so;
    tiny_lm::model_config mc;
    CLI::App app{"tiny_lm: a small causal language model trained end to end with exprgrad", "tiny_lm"};
    add_options(app, mc);
    add_options(app, ro);
    add_options(app, so);
    // MPI is initialized here, before any thread exists, when mpirun started the process (else: alone).
    std::optional<nn::distributed> world;
    try {
        world.emplace();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tiny_lm: %s\n", e.what());
        return 1;
    }
    if (world->size() > 1) app.name("tiny_lm (rank " + std::to_string(world->rank()) + " of " +
                                    std::to_string(world->size()) + ")");
    const int status = exprgrad::tools::run_main(app, argc, argv, [&] {
        if (world->active() && app.count("--threads") == 0) so.threads = 1;  // one thread per rank unless told
        // An empty --init-from (an unset shell variable) would silently train from scratch.
        if (app.count("--init-from") != 0 && ro.init_from.empty())
            throw exprgrad::tools::usage_error("--init-from: the directory is empty ('')");
        if (mc.softcap == 0) mc.softcap = 0;  // -0 becomes 0: the option is recorded and compared as text
        train_and_report(ro, so, mc, *world);
    });
    // The error was printed by the rank that had it (run_main); the others may be waiting for it in a
    // collective call: end them all now instead of finalizing (which would wait forever).
    if (status != 0 && world->size() > 1) world->abort(status);
    return status;
}
