// libFuzzer target: vocabulary parsing (native, SentencePiece, jieba) and every lattice algorithm on the
// parsed model. Input: byte 0 picks the format; the rest is the file content, up to an optional separator
// "\xff\x00", after which comes the text to segment (else the content itself is segmented).
// Properties checked (a violation aborts): a parse either throws vocabulary_file_error or yields a model;
// decode(encode(x)) == x and the same for samples; log Z is finite; the native format round-trips.
// Build and run: tests/fuzz/run_fuzz.sh.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exprgrad/text/vocab_io.hpp>
#include <string>
#include <string_view>

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace exprgrad::text;
    if (size == 0) return 0;
    const vocab_format format = data[0] % 3 == 0   ? vocab_format::native
                                : data[0] % 3 == 1 ? vocab_format::sentencepiece
                                                   : vocab_format::jieba;
    const std::string_view all(reinterpret_cast<const char*>(data) + 1, size - 1);
    const std::size_t sep = all.find(std::string_view("\xff\x00", 2));
    const std::string_view content = sep == std::string_view::npos ? all : all.substr(0, sep);
    std::string_view text = sep == std::string_view::npos ? all : all.substr(sep + 2);
    if (text.size() > 2048) text = text.substr(0, 2048);

    loaded_vocabulary loaded;
    try {
        loaded = parse_vocabulary(content, format, "fuzz");
    } catch (const vocabulary_file_error&) {
        return 0;
    }
    model_options options = loaded.options;
    options.utf8_boundaries = options.utf8_boundaries || (data[0] & 8) != 0;
    const unigram_model model(loaded.vocab, options);

    require(model.decode(model.encode(text)) == text);
    exprgrad::rng gen(size);
    for (const sampler how : {sampler::reservoir, sampler::ffbs, sampler::biased_sigmoid}) {
        require(model.decode(model.sample(text, 0.5, gen, how)) == text);
    }
    const double log_z = model.log_partition(text, 0.25);
    require(std::isfinite(log_z));
    const lattice_stats stats = model.analyze(text, 1.0, true);
    require(std::isfinite(stats.log_partition) && stats.entropy >= 0);
    const auto best = model.nbest(text, 3);
    require(!best.empty());
    if (options.mode == mode::native) {
        const double viterbi = model.score(model.encode_spans(text));
        require(std::abs(best[0].score - viterbi) <= 1e-9 * (1 + std::abs(viterbi)));
    }
    if (loaded.vocab.has_reserved_specials()) {
        const std::string native = format_native(model.vocab(), model.options());
        const loaded_vocabulary again = parse_vocabulary(native, vocab_format::native, "roundtrip");
        require(again.vocab == model.vocab());
    }
    return 0;
}
