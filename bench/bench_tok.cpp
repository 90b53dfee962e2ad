// Throughput of the unigram tokenizer in MB/s (single thread) on the English fortunes (tok_corpus.hpp) with
// an 8000-piece vocabulary trained on the same text by text::train_unigram at start-up (about 4 s):
// Viterbi encode, the exact samplers at α = 0.1 (post 9811's reservoir, FFBS), the biased sampler, and
// log Z + entropy. Google Benchmark's bytes_per_second is the figure. The side-by-side comparison with
// SentencePiece on its own vocabulary is bench/peers/bench_tok_spm.cpp. Results: docs/tokenizer.md.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <exprgrad/text/trainer.hpp>
#include <exprgrad/text/unigram_model.hpp>
#include <memory>
#include <string>
#include <vector>

#include "tok_corpus.hpp"

namespace {

using exprgrad::text::sampler;
using exprgrad::text::unigram_model;

struct Fixture {
    std::vector<std::string> lines;
    std::size_t bytes = 0;
    std::unique_ptr<unigram_model> model;
};

const Fixture& fixture() {
    static const Fixture f = [] {
        Fixture x;
        x.lines = tok_bench::fortunes_lines();
        x.bytes = tok_bench::total_bytes(x.lines);
        if (x.lines.empty()) return x;
        exprgrad::text::train_options opt;
        opt.vocab_size = 8000;
        x.model = std::make_unique<unigram_model>(exprgrad::text::train_unigram(x.lines, opt));
        return x;
    }();
    return f;
}

bool ready(benchmark::State& state) {
    if (fixture().model) return true;
    state.SkipWithError("/usr/share/games/fortunes is missing: install Debian's fortunes package");
    return false;
}

void BM_tok_encode(benchmark::State& state) {
    if (!ready(state)) return;
    const auto& f = fixture();
    std::size_t pieces = 0;
    for (auto _ : state) {
        for (const auto& line : f.lines) pieces += f.model->encode(line).size();
    }
    benchmark::DoNotOptimize(pieces);
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * f.bytes));
}
BENCHMARK(BM_tok_encode)->Unit(benchmark::kMillisecond);

void BM_tok_sample(benchmark::State& state) {
    if (!ready(state)) return;
    const auto& f = fixture();
    const auto how = static_cast<sampler>(state.range(0));
    exprgrad::rng gen(1);
    std::size_t pieces = 0;
    for (auto _ : state) {
        for (const auto& line : f.lines) pieces += f.model->sample(line, 0.1, gen, how).size();
    }
    benchmark::DoNotOptimize(pieces);
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * f.bytes));
    state.SetLabel(how == sampler::reservoir ? "reservoir" : how == sampler::ffbs ? "ffbs" : "biased");
}
BENCHMARK(BM_tok_sample)
    ->Arg(static_cast<int>(sampler::reservoir))
    ->Arg(static_cast<int>(sampler::ffbs))
    ->Arg(static_cast<int>(sampler::biased_sigmoid))
    ->Unit(benchmark::kMillisecond);

void BM_tok_log_partition(benchmark::State& state) {
    if (!ready(state)) return;
    const auto& f = fixture();
    double sum = 0;
    for (auto _ : state) {
        for (const auto& line : f.lines) sum += f.model->log_partition(line, 0.1);
    }
    benchmark::DoNotOptimize(sum);
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * f.bytes));
}
BENCHMARK(BM_tok_log_partition)->Unit(benchmark::kMillisecond);

void BM_tok_analyze(benchmark::State& state) {
    if (!ready(state)) return;
    const auto& f = fixture();
    double sum = 0;
    for (auto _ : state) {
        for (const auto& line : f.lines) sum += f.model->analyze(line, 0.1, false).entropy;
    }
    benchmark::DoNotOptimize(sum);
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * f.bytes));
    state.SetLabel("log Z + entropy (forward-backward)");
}
BENCHMARK(BM_tok_analyze)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
