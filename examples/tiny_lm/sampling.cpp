#include "sampling.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace tiny_lm {

std::vector<std::vector<std::int32_t>> sample_streams(language_model& model, const exprgrad::text::unigram_model& tok,
                                                      std::size_t count, std::size_t length, std::size_t batch,
                                                      std::int32_t eos, exprgrad::rng& gen) {
    if (batch == 0) throw std::invalid_argument("sample_streams: batch 0");
    const std::size_t V = model.config().vocab, window = std::min(model.config().context, model.max_length());
    std::vector<bool> allowed(V);
    for (std::size_t v = 0; v < V; ++v)
        allowed[v] = v == static_cast<std::size_t>(eos) ||
                     tok.vocab()[static_cast<exprgrad::text::piece_id>(v)].kind != exprgrad::text::piece_kind::control;
    std::vector<std::vector<std::int32_t>> out(count, std::vector<std::int32_t>{eos});
    std::vector<double> w(V);
    for (std::size_t s0 = 0; s0 < count; s0 += batch) {
        const std::size_t nb = std::min(batch, count - s0);
        for (std::size_t t = 0; t < length; ++t) {
            const std::size_t have = out[s0].size(), T = std::min(have, window);
            xt::xarray<std::int32_t> tokens = xt::xarray<std::int32_t>::from_shape({nb, T});
            for (std::size_t b = 0; b < nb; ++b)
                std::copy(out[s0 + b].end() - static_cast<std::ptrdiff_t>(T), out[s0 + b].end(),
                          tokens.data() + b * T);
            const xt::xarray<double> lp = model.last_log_probs(tokens);
            for (std::size_t b = 0; b < nb; ++b) {
                double mx = -INFINITY;
                for (std::size_t v = 0; v < V; ++v)
                    if (allowed[v]) mx = std::max(mx, lp(b, v));
                double z = 0;
                for (std::size_t v = 0; v < V; ++v) z += (w[v] = allowed[v] ? std::exp(lp(b, v) - mx) : 0.0);
                double u = gen.uniform() * z;
                std::size_t pick = 0;
                while (pick + 1 < V && (u -= w[pick]) >= 0) ++pick;
                while (!allowed[pick]) --pick;  // rounding ran past the last allowed piece
                out[s0 + b].push_back(static_cast<std::int32_t>(pick));
            }
        }
    }
    return out;
}

}  // namespace tiny_lm
