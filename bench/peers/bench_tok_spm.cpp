// Side by side with SentencePiece (libsentencepiece-dev 0.1.97, Debian): the same vocabulary, the same
// text, one run. At start-up SentencePiece's trainer builds an 8000-piece unigram model on the English
// fortunes (identity normalization, no dummy prefix; tok_corpus.hpp), its pieces and exact float scores
// are imported into text::unigram_model in the SentencePiece-compatible mode, and both encode (Viterbi) and
// sample at α = 0.1 (SentencePiece: SampleEncode with nbest_size = −1, i.e. exact FFBS). Built only with
// -Dpeers=true. Reports bytes_per_second; results in docs/tokenizer.md.
#include <benchmark/benchmark.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdio>
#include <exprgrad/text/vocab_io.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "../tok_corpus.hpp"

namespace {

using exprgrad::text::sampler;
using exprgrad::text::unigram_model;

struct Fixture {
    std::vector<std::string> lines;
    std::size_t bytes = 0;
    sentencepiece::SentencePieceProcessor spm;
    std::unique_ptr<unigram_model> ours;
    std::string error;
};

const Fixture& fixture() {
    static Fixture f;
    static const bool once = [] {
        f.lines = tok_bench::fortunes_lines();
        f.bytes = tok_bench::total_bytes(f.lines);
        if (f.lines.empty()) {
            f.error = "/usr/share/games/fortunes is missing: install Debian's fortunes package";
            return true;
        }
        const auto dir = std::filesystem::temp_directory_path() / "exprgrad_bench_tok_spm";
        std::filesystem::create_directories(dir);
        {
            std::ofstream out(dir / "corpus.txt", std::ios::binary);
            for (const auto& l : f.lines) out << l << '\n';
        }
        const std::string prefix = (dir / "spm8000").string();
        const auto status = sentencepiece::SentencePieceTrainer::Train(
            "--input=" + (dir / "corpus.txt").string() + " --model_prefix=" + prefix +
            " --vocab_size=8000 --model_type=unigram --normalization_rule_name=identity"
            " --add_dummy_prefix=false --max_sentence_length=100000 --minloglevel=2");
        if (!status.ok() || !f.spm.Load(prefix + ".model").ok()) {
            f.error = "SentencePiece training failed: " + status.ToString();
            return true;
        }
        // Export with exact scores (%.9g round-trips a float), then import as a SentencePiece vocabulary.
        std::string vocab;
        char score[32];
        for (int i = 0; i < f.spm.GetPieceSize(); ++i) {
            std::snprintf(score, sizeof score, "%.9g", static_cast<double>(f.spm.GetScore(i)));
            vocab += f.spm.IdToPiece(i) + "\t" + score + "\n";
        }
        auto loaded = exprgrad::text::parse_vocabulary(vocab, exprgrad::text::vocab_format::sentencepiece, "spm8000");
        f.ours = std::make_unique<unigram_model>(std::move(loaded.vocab), loaded.options);
        return true;
    }();
    (void)once;
    return f;
}

bool ready(benchmark::State& state) {
    if (fixture().error.empty()) return true;
    state.SkipWithError(fixture().error.c_str());
    return false;
}

void BM_spm_encode(benchmark::State& state) {
    if (!ready(state)) return;
    const auto& f = fixture();
    std::vector<int> ids;
    std::size_t pieces = 0;
    for (auto _ : state) {
        for (const auto& line : f.lines) {
            f.spm.Encode(line, &ids);
            pieces += ids.size();
        }
    }
    benchmark::DoNotOptimize(pieces);
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * f.bytes));
}
BENCHMARK(BM_spm_encode)->Unit(benchmark::kMillisecond);

void BM_spm_sample(benchmark::State& state) {
    if (!ready(state)) return;
    const auto& f = fixture();
    std::vector<int> ids;
    std::size_t pieces = 0;
    for (auto _ : state) {
        for (const auto& line : f.lines) {
            f.spm.SampleEncode(line, -1, 0.1f, &ids);
            pieces += ids.size();
        }
    }
    benchmark::DoNotOptimize(pieces);
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * f.bytes));
}
BENCHMARK(BM_spm_sample)->Unit(benchmark::kMillisecond);

void BM_ours_encode(benchmark::State& state) {
    if (!ready(state)) return;
    const auto& f = fixture();
    std::size_t pieces = 0;
    for (auto _ : state) {
        for (const auto& line : f.lines) pieces += f.ours->encode(line).size();
    }
    benchmark::DoNotOptimize(pieces);
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * f.bytes));
}
BENCHMARK(BM_ours_encode)->Unit(benchmark::kMillisecond);

void BM_ours_sample(benchmark::State& state) {
    if (!ready(state)) return;
    const auto& f = fixture();
    const auto how = static_cast<sampler>(state.range(0));
    exprgrad::rng gen(1);
    std::size_t pieces = 0;
    for (auto _ : state) {
        for (const auto& line : f.lines) pieces += f.ours->sample(line, 0.1, gen, how).size();
    }
    benchmark::DoNotOptimize(pieces);
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * f.bytes));
    state.SetLabel(how == sampler::reservoir ? "reservoir" : "ffbs");
}
BENCHMARK(BM_ours_sample)
    ->Arg(static_cast<int>(sampler::reservoir))
    ->Arg(static_cast<int>(sampler::ffbs))
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
