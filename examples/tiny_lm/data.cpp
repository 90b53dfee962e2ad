#include "data.hpp"

#include <fstream>
#include <stdexcept>

namespace tiny_lm {

void load_corpus(const std::string& corpus_dir, std::size_t max_bytes, std::vector<std::string>& train,
                 std::vector<std::string>& held_out) {
    std::size_t bytes = 0, fortune = 0;
    for (const char* name :
         {"fortunes",      "literature", "science", "wisdom",     "people",      "politics", "work",
          "computers",     "education",  "food",    "humorists",  "law",         "love",     "men-women",
          "miscellaneous", "news",       "pets",    "platitudes", "songs-poems", "sports"}) {
        std::ifstream in(corpus_dir + "/" + name, std::ios::binary);
        std::string line;
        while (in && bytes < max_bytes && std::getline(in, line)) {
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
        throw std::runtime_error("no corpus under " + corpus_dir +
                                 " (install the Debian package 'fortunes', or pass --corpus-dir)");
    }
}

void make_batch(const exprgrad::text::UnigramModel& tok, const std::vector<std::string>& lines, std::size_t B,
                std::size_t T, double alpha, exprgrad::rng& data, exprgrad::rng& sampler,
                xt::xarray<std::int32_t>& tokens, xt::xarray<std::int32_t>& targets, std::size_t& bytes) {
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
            for (exprgrad::text::piece_id id : tok.sample(lines[r], alpha, sampler)) s.push_back(id);
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

}  // namespace tiny_lm
