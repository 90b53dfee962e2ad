// `exprgrad tok`: train, encode, sample, decode and score with a unigram tokenizer (docs/tokenizer.md,
// "Command-line contract"). Every subcommand but train reads stdin and writes stdout, one text per line.
#include "tok.hpp"

#include <cstdint>
#include <cstdio>
#include <exprgrad/text/piece_format.hpp>
#include <exprgrad/text/trainer.hpp>
#include <exprgrad/text/unigram_model.hpp>
#include <exprgrad/text/vocab_io.hpp>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli_options.hpp"
#include "input_check.hpp"

namespace exprgrad::cli {

namespace {

using text::piece_span;
using text::unigram_model;

struct tok_settings {
    std::string vocab;
    std::string format = "native";
    double alpha = 0.0;
    std::uint64_t seed = 0;
    std::uint64_t count = 1;
    std::string sampler = "reservoir";
    // train
    std::string output;
    std::vector<std::string> inputs;
    std::uint64_t vocab_size = 8000;
    std::uint64_t max_piece_length = 16;
    double coverage = 0.9995;
    bool no_utf8 = false;
    bool no_split = false;
    bool quiet = false;
};

// A failure of the subcommand: run_main prints `exprgrad tok COMMAND: message` and exits 1.
[[noreturn]] void fail(const std::string& message) { throw std::runtime_error(message); }

unigram_model load(const tok_settings& s) {
    tools::check_input_file("--vocab", s.vocab);
    return text::load_model(s.vocab, text::parse_vocab_format(s.format));
}

// Buffered stdout; lines are written in large blocks.
class buffered_stdout {
  public:
    ~buffered_stdout() { flush_quietly(); }
    void line(std::string_view s) {
        buffer_.append(s);
        buffer_ += '\n';
        if (buffer_.size() > (1u << 16)) flush_quietly();
    }
    bool finish() {
        flush_quietly();
        return std::fflush(stdout) == 0 && !std::ferror(stdout);
    }

  private:
    void flush_quietly() {
        if (!buffer_.empty()) std::fwrite(buffer_.data(), 1, buffer_.size(), stdout);
        buffer_.clear();
    }
    std::string buffer_;
};

template <class PerLine>
void stream_lines(const std::string& command, PerLine&& per_line) {
    std::ios::sync_with_stdio(false);
    tools::check_stdin();
    buffered_stdout out;
    bool ok = true;
    std::size_t number = 0;
    for (std::string line; std::getline(std::cin, line);) {
        ++number;
        try {
            per_line(line, out);
        } catch (const std::exception& e) {
            // One line of at most 400 characters, whatever the message quotes of a long input line.
            std::cerr << tools::one_line("exprgrad tok " + command + ": line " + std::to_string(number) + ": " +
                                         e.what())
                      << '\n';
            ok = false;
        }
    }
    tools::check_read(std::cin, "standard input");
    if (!out.finish()) fail("cannot write to stdout");
    if (!ok) throw CLI::RuntimeError(1);  // each bad line has its own message
}

std::string formatted(const unigram_model& m, std::string_view line, const std::vector<piece_span>& spans) {
    const bool spm = m.options().mode == text::mode::sentencepiece;
    return text::format_segmentation(line, spans, spm, spm ? &m.vocab() : nullptr);
}

void add_model_options(CLI::App* sub, tok_settings& s) {
    sub->add_option("--vocab", s.vocab, "Vocabulary file")->required();
    sub->add_option("--vocab-format", s.format, "native (default), spm (SentencePiece piece<TAB>score) or jieba")
        ->check(CLI::IsMember({"native", "spm", "jieba"}));
}

void run_train(const tok_settings& s) {
    text::train_options opt;
    opt.vocab_size = s.vocab_size;
    opt.max_piece_length = s.max_piece_length;
    opt.character_coverage = s.coverage;
    opt.utf8_boundaries = !s.no_utf8;
    opt.split_by_whitespace = !s.no_split;
    if (!s.quiet) {
        opt.progress = [](const text::train_progress& p) {
            std::fprintf(stderr, "exprgrad tok train: %6.1fs %-6s round %2zu  %8zu pieces", p.seconds,
                         std::string(p.stage).c_str(), p.round, p.pieces);
            if (p.stage == "em") std::fprintf(stderr, "  %.6f nats/byte", p.objective);
            std::fputc('\n', stderr);
        };
    }
    text::word_counts words;
    // Bounded reads: a device such as /dev/zero (or a file with no newline) must be refused, not fill memory.
    // Pipes (process substitution /dev/fd/N) stay allowed, so the caps are on bytes, not on the file type.
    constexpr std::size_t max_line = std::size_t{64} << 20;     // 64 MiB in one line
    constexpr std::uint64_t max_corpus = std::uint64_t{4} << 30;  // 4 GiB in all inputs together
    std::uint64_t corpus_bytes = 0;
    auto read = [&](std::istream& in, const std::string& what) {
        for (std::string line; tools::read_line_capped(in, line, max_line, what);) {
            corpus_bytes += line.size() + 1;
            if (corpus_bytes > max_corpus)
                fail(what + ": the training text exceeds " + std::to_string(max_corpus >> 30) +
                     " GiB (the limit of tok train); train on a sample");
            text::count_words(line, opt.split_by_whitespace, words);
        }
    };
    // Every file is checked before any is read: a typo in the last one does not cost a long count.
    for (const auto& path : s.inputs) tools::check_input_file("FILES", path);
    if (s.inputs.empty()) {
        tools::check_stdin();
        read(std::cin, "standard input");
        tools::check_read(std::cin, "standard input");
    } else {
        for (const auto& path : s.inputs) {
            std::ifstream in(path, std::ios::binary);
            if (!in) fail("FILES: cannot open " + tools::shown(path));
            read(in, "FILES: " + tools::shown(path));
            tools::check_read(in, "FILES: " + tools::shown(path));
        }
    }
    const unigram_model m = text::train_unigram(words, opt);
    text::save_native(s.output, m.vocab(), m.options());
    if (!s.quiet) std::fprintf(stderr, "exprgrad tok train: wrote %zu pieces to %s\n", m.size(), s.output.c_str());
}

}  // namespace

void register_tok(CLI::App& app) {
    auto s = std::make_shared<tok_settings>();
    CLI::App* tok = app.add_subcommand("tok", "Unigram tokenizer: train, encode, sample, decode, score");
    tok->require_subcommand(1);
    tok->footer(
        "Each input line (without its newline) is one text. Pieces are printed joined by single spaces; inside a\n"
        "piece a space is written U+2581, tab/CR/LF/backslash as \\t \\r \\n \\\\, and a byte that is not part of\n"
        "valid UTF-8 as <0xAB>. Formats and algorithms: docs/tokenizer.md.");

    CLI::App* encode = tok->add_subcommand("encode", "Viterbi segmentation of each stdin line");
    add_model_options(encode, *s);
    encode->footer(
        "--vocab-format spm applies the SentencePiece-compatible mode (spaces match U+2581 pieces; runs of unknown\n"
        "characters print as one piece); jieba the jieba-compatible mode (jieba.cut(text, HMM=False) on Han runs).");
    encode->callback([s] {
        const unigram_model m = load(*s);
        stream_lines("encode", [&](const std::string& line, buffered_stdout& out) {
            out.line(formatted(m, line, m.encode_spans(line)));
        });
    });

    CLI::App* sample = tok->add_subcommand("sample", "Random segmentations of each stdin line");
    add_model_options(sample, *s);
    tools::add_number(*sample, "--alpha", s->alpha,
                      "Inverse temperature: P(seg) ∝ exp(alpha·score); < 0: Viterbi, 0: uniform (finite, at most 1e200)",
                      std::numeric_limits<double>::lowest(), text::max_alpha)
        ->required()
        ->default_str("");
    tools::add_number(*sample, "--seed", s->seed, "Seed of the random generator (xoshiro256**), 0 to 2^64 - 1",
                      std::uint64_t{0}, ~std::uint64_t{0})
        ->required()
        ->default_str("");
    tools::add_number(*sample, "--count", s->count, "Segmentations per input line (1 to 10^6)", std::uint64_t{1},
                      std::uint64_t{1'000'000});
    sample
        ->add_option("--sampler", s->sampler,
                     "reservoir (default, post 9811's exact single pass), ffbs (exact), biased (post 9768's, biased)")
        ->check(CLI::IsMember({"reservoir", "ffbs", "biased"}));
    sample->callback([s] {
        const unigram_model m = load(*s);
        const text::sampler how = s->sampler == "ffbs"     ? text::sampler::ffbs
                                  : s->sampler == "biased" ? text::sampler::biased_sigmoid
                                                           : text::sampler::reservoir;
        rng gen(s->seed);
        stream_lines("sample", [&](const std::string& line, buffered_stdout& out) {
            for (std::size_t k = 0; k < s->count; ++k)
                out.line(formatted(m, line, m.sample_spans(line, s->alpha, gen, how)));
        });
    });

    CLI::App* score = tok->add_subcommand("score", "log Z and entropy (nats) of each stdin line's segmentations");
    add_model_options(score, *s);
    tools::add_number(*score, "--alpha", s->alpha, "Inverse temperature, 0 to 1e200", 0.0,
                      text::max_alpha)
        ->required()
        ->default_str("");
    score->footer("Prints logZ<TAB>entropy per line with 17 significant digits.");
    score->callback([s] {
        const unigram_model m = load(*s);
        char buffer[64];
        stream_lines("score", [&](const std::string& line, buffered_stdout& out) {
            const text::lattice_stats st = m.analyze(line, s->alpha, false);
            std::snprintf(buffer, sizeof buffer, "%.17g\t%.17g", st.log_partition, st.entropy);
            out.line(buffer);
        });
    });

    CLI::App* decode = tok->add_subcommand("decode", "Bytes of each stdin line of pieces (the inverse of encode)");
    decode->callback([] {
        stream_lines("decode",
                     [&](const std::string& line, buffered_stdout& out) { out.line(text::parse_pieces(line)); });
    });

    CLI::App* train = tok->add_subcommand("train", "Train a unigram vocabulary (EM + pruning) on text files or stdin");
    tools::add_number(*train, "--vocab-size", s->vocab_size,
                      "Total pieces, specials and the 256 bytes included (261 to 2^30)", std::uint64_t{261},
                      std::uint64_t{1} << 30);
    train->add_option("--output,-o", s->output, "Native vocabulary file to write (atomically)")->required();
    tools::add_number(*train, "--max-piece-length", s->max_piece_length, "Longest piece in bytes (2 to 1024)",
                      std::uint64_t{2}, std::uint64_t{1024});
    tools::add_number(*train, "--character-coverage", s->coverage,
                      "Code points kept whole until this coverage (0 to 1)", 0.0, 1.0);
    tools::add_switch(*train, "--no-utf8-boundaries", s->no_utf8, "Let pieces split UTF-8 code points");
    tools::add_switch(*train, "--no-split-whitespace", s->no_split, "Let pieces contain inner spaces");
    tools::add_switch(*train, "--quiet,-q", s->quiet, "No progress on stderr");
    train->add_option("FILES", s->inputs, "Text files (default: stdin)");
    train->callback([s] { run_train(*s); });
}

}  // namespace exprgrad::cli
