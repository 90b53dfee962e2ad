// The compiled programs of the tiny language model (one translation unit, so the rest of the example
// compiles quickly).
#include "model.hpp"
#include "flex_stack.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <type_traits>

#include <exprgrad/exprgrad.hpp>
#include <exprgrad/kernels/contiguous.hpp>
#include <exprgrad/kernels/replicas.hpp>
#include <exprgrad/nn/init.hpp>
#include <exprgrad/ops/attention_mods.hpp>
#include <exprgrad/ops/emo.hpp>

namespace tiny_lm {

using namespace exprgrad;

namespace {
constexpr tensors::Input<0> X{};
constexpr tensors::Input<1> G{};
constexpr tensors::Input<2> W{};
constexpr tensors::Input<3> Y{};
constexpr auto logits = tensors::matmul(tensors::rms_norm(X, G), W);  // [B, T, V]
}  // namespace

struct language_model::programs {
    // tokens, E, P, T -> E[tokens] + P[0:T] (learned positions)
    decltype(tensors::compile<float>(tensors::embedding(tensors::Input<1>{}, tensors::Input<0>{}) +
                                         tensors::slice<0>(tensors::Input<2>{}, 0_c, tensors::Input<3>{}),
                                     tensors::wrt<1, 2>)) embed;
    // tokens, E -> E[tokens] (no position embedding)
    decltype(tensors::compile<float>(tensors::embedding(tensors::Input<1>{}, tensors::Input<0>{}),
                                     tensors::wrt<1>)) embed_tokens;
    decltype(tensors::compile<float>(tensors::cross_entropy(logits, Y), tensors::wrt<0, 1, 2>)) ce;
    // The EMO cost embedding is the head transposed, [V, D]; the node passes no gradient into it.
    decltype(tensors::compile<float>(emo_loss<emo_objective::mode1>(logits, Y, tensors::transpose(W)),
                                     tensors::wrt<0, 1, 2>)) emo;
    // The fixed cost (emo_cost = fixed): a constant [V, D] input, the head as it was at the start.
    decltype(tensors::compile<float>(emo_loss<emo_objective::mode1>(logits, Y, tensors::Input<4>{}),
                                     tensors::wrt<0, 1, 2>)) emo_fixed;
    decltype(tensors::compile<float>(tensors::cross_entropy(logits, Y), tensors::wrt<0>)) eval;
    decltype(tensors::compile<float>(tensors::log_softmax(logits), tensors::wrt<0>)) next;
};

scale_policy scale_by_name(const std::string& name) {
    if (name == "inv_sqrt_d") return scale::inv_sqrt_d();
    if (name == "entropy_invariant") return scale::entropy_invariant();
    if (name == "gradient_max") return scale::gradient_max();
    throw std::invalid_argument("tiny_lm: unknown attention scale '" + name +
                                "' (inv_sqrt_d, entropy_invariant, gradient_max)");
}

bool known_position(const std::string& name) { return name == "learned" || name == "none" || name == "alibi"; }

language_model::language_model(const model_config& c, rng& gen) : config_(c), prog_(std::make_unique<programs>()) {
    if (c.vocab < 5 || c.context < 2) throw std::invalid_argument("tiny_lm: vocab >= 5 and context >= 2 needed");
    if (!known_position(c.position))
        throw std::invalid_argument("tiny_lm: unknown position scheme '" + c.position + "' (learned, none, alibi)");
    tok_ = &params_.add("tok_emb", xt::xarray<float>::from_shape({c.vocab, c.width}));
    pos_ = c.position == "learned" ? &params_.add("pos_emb", xt::xarray<float>::from_shape({c.context, c.width}))
                                   : nullptr;
    nn::init::normal(tok_->value, gen, 0.0, 0.02);
    if (pos_ != nullptr) nn::init::normal(pos_->value, gen, 0.0, 0.02);
    nn::transformer_options o;
    o.layers = c.layers;
    o.width = c.width;
    o.heads = c.heads;
    o.attention.causal = true;
    o.attention.scale = scale_by_name(c.scale);
    o.deer_layers = c.deer_layers;
    o.deer_state = c.deer_state;
    if (!(c.softcap >= 0.0 && c.softcap < std::numeric_limits<double>::infinity()))
        throw std::invalid_argument("tiny_lm: softcap must be a finite number >= 0 (0: none)");
    std::vector<nn::parameter<float>*> mods;
    if (c.position == "alibi")
        mods.push_back(&fixed_.add("alibi_slopes", xt::xarray<float>(ops::attn::alibi_slopes(c.heads))));
    if (c.softcap > 0.0)
        mods.push_back(
            &fixed_.add("softcap", xt::xarray<float>(xt::ones<float>({c.heads}) * static_cast<float>(c.softcap))));
    stack_ = c.position == "alibi" || c.softcap > 0.0
                 ? flex_stack(c.position == "alibi", c.softcap > 0.0, params_, mods, "block", o, gen)
                 : nn::transformer<float>(params_, "block", o, gen);
    norm_ = &params_.add("final_norm", xt::ones<float>({c.width}));
    head_ = &params_.add("head", xt::xarray<float>::from_shape({c.width, c.vocab}));
    nn::init::normal(head_->value, gen, 0.0, 0.02);
    // The all-reduce buckets, by the names the blocks registered (nn::transformer: block.<l>.*).
    buckets_.assign(c.layers + 2, {});
    for (std::size_t i = 0; i < params_.size(); ++i) {
        const std::string& n = params_[i].name;
        std::size_t b = c.layers + 1;  // tok_emb, pos_emb: completed last
        if (n == "final_norm" || n == "head") {
            b = 0;
        } else if (n.rfind("block.", 0) == 0) {
            b = c.layers - std::stoul(n.substr(6, n.find('.', 6) - 6));
        }
        buckets_[b].push_back(i);
    }
    rec_.on_call_done([this](std::size_t call) { announce(call); });
}

language_model::~language_model() = default;

std::size_t language_model::max_length() const {
    return pos_ != nullptr ? config_.context : std::numeric_limits<std::size_t>::max();
}

std::size_t language_model::checked_length(const xt::xarray<std::int32_t>& tokens) const {
    const std::size_t T = tokens.shape(1);
    if (T > max_length()) {
        throw std::invalid_argument("tiny_lm: sequence of " + std::to_string(T) + " pieces exceeds the context " +
                                    std::to_string(config_.context) + " of the learned position embeddings");
    }
    return T;
}

const xt::xarray<float>& language_model::embed(const xt::xarray<std::int32_t>& tokens) {
    const std::size_t T = checked_length(tokens);
    const auto& out = pos_ != nullptr ? prog_->embed.forward(tokens, tok_->value, pos_->value, T)
                                      : prog_->embed_tokens.forward(tokens, tok_->value);
    h0_.resize({tokens.shape(0), T, config_.width});
    std::copy(out.data, out.data + out.size(), h0_.data());
    return h0_;
}

// The step as recorded calls: the embedding, each layer of the stack (its few compiled blocks, parameters as
// leaves), the loss; one backward runs their VJPs in reverse and adds every parameter's gradient. Under
// data-parallel training, the record's call hook (set in the constructor) announces each bucket as its last
// call's VJP completes it (call_bucket_, filled while recording).
double language_model::train_batch(const xt::xarray<std::int32_t>& tokens, const xt::xarray<std::int32_t>& targets,
                                   nn::distributed_gradients<float>* sum) {
    const std::size_t threads = kernels::num_threads();
    if (data_parallel_ && !config_.emo && threads > 1 && tokens.dimension() == 2 && tokens.shape(0) > 1) {
        const std::size_t shards = std::min(threads, tokens.shape(0));
        if (const std::optional<double> loss = train_sharded(tokens, targets, shards, sum)) {
            last_shards_ = shards;
            return *loss;
        }
    }
    last_shards_ = 1;
    return train_shard(tokens, targets, 1.0f, sum);
}

std::optional<double> language_model::train_sharded(const xt::xarray<std::int32_t>& tokens,
                                                    const xt::xarray<std::int32_t>& targets, std::size_t shards,
                                                    nn::distributed_gradients<float>* sum) {
    // Shapes the single batch would refuse are refused there, with its messages.
    if (targets.dimension() != 2 || targets.shape(0) != tokens.shape(0) || targets.shape(1) != tokens.shape(1))
        return std::nullopt;
    checked_length(tokens);
    // Out-of-range pieces are reported by the whole batch (positions in it, not in a shard).
    const auto V = static_cast<std::int32_t>(config_.vocab);
    for (const std::int32_t t : tokens)
        if (t < 0 || t >= V) return std::nullopt;
    for (const std::int32_t t : targets)
        if (t != -100 && (t < 0 || t >= V)) return std::nullopt;
    const std::size_t B = tokens.shape(0), T = tokens.shape(1);
    shards_.resize(shards);
    std::size_t total = 0;
    for (std::size_t r = 0; r < shards; ++r) {
        const std::size_t lo = r * B / shards, hi = (r + 1) * B / shards;
        shard& s = shards_[r];
        s.tokens.resize({hi - lo, T});
        s.targets.resize({hi - lo, T});
        std::copy(tokens.data() + lo * T, tokens.data() + hi * T, s.tokens.data());
        std::copy(targets.data() + lo * T, targets.data() + hi * T, s.targets.data());
        s.counted = 0;
        for (const std::int32_t t : s.targets) s.counted += t != -100;
        if (s.counted == 0) return std::nullopt;  // its mean is undefined: the whole batch at once instead
        total += s.counted;
    }
    // The replicas are made once; their initialization is overwritten by the parameters before every step.
    while (replicas_.size() + 1 < shards) {
        rng unused(0);
        replicas_.push_back(std::make_unique<language_model>(config_, unused));
    }
    const auto weight = [&](std::size_t r) {
        return static_cast<float>(static_cast<double>(shards_[r].counted) / static_cast<double>(total));
    };
    kernels::run_replicas(shards, [&](std::size_t r) {
        shard& s = shards_[r];
        if (r == 0) {
            s.loss = train_shard(s.tokens, s.targets, weight(0), nullptr);
            return;
        }
        language_model& m = *replicas_[r - 1];
        for (std::size_t i = 0; i < params_.size(); ++i) {
            const xt::xarray<float>& v = params_[i].value;
            std::copy(v.data(), v.data() + v.size(), m.params_[i].value.data());
        }
        m.params_.zero_grad();
        s.loss = m.train_shard(s.tokens, s.targets, weight(r), nullptr);
    });
    // The shards' weighted gradients, added to shard 0's in shard order (the same sums for every partition), in
    // one region over all the parameters' elements end to end.
    grad_offsets_.resize(params_.size() + 1);
    grad_offsets_[0] = 0;
    for (std::size_t i = 0; i < params_.size(); ++i) grad_offsets_[i + 1] = grad_offsets_[i] + params_[i].grad.size();
    kernels::parallel_for(0, grad_offsets_.back(), 16384, [&](std::size_t lo, std::size_t hi) {
        std::size_t i = static_cast<std::size_t>(std::upper_bound(grad_offsets_.begin(), grad_offsets_.end(), lo) -
                                                 grad_offsets_.begin()) - 1;
        for (; i < params_.size() && grad_offsets_[i] < hi; ++i) {
            const std::size_t a = std::max(lo, grad_offsets_[i]) - grad_offsets_[i];
            const std::size_t b = std::min(hi, grad_offsets_[i + 1]) - grad_offsets_[i];
            for (std::size_t r = 1; r < shards; ++r)
                kernels::add_row(params_[i].grad.data() + a, replicas_[r - 1]->params_[i].grad.data() + a, b - a);
        }
    });
    double loss = 0.0;
    for (std::size_t r = 0; r < shards; ++r) loss += static_cast<double>(weight(r)) * shards_[r].loss;
    if (sum != nullptr)
        for (std::size_t b = 0; b < buckets_.size(); ++b) sum->grad_ready(b);
    return loss;
}

double language_model::train_shard(const xt::xarray<std::int32_t>& tokens, const xt::xarray<std::int32_t>& targets,
                                   float weight, nn::distributed_gradients<float>* sum) {
    const std::size_t T = checked_length(tokens);
    auto leaf = [&](nn::parameter<float>* p) { return nn::leaf(rec_, *p); };
    rec_.clear();
    call_bucket_.clear();
    fixed_.zero_grad();  // the slopes' gradients are never used: keep them from growing without bound
    tensors::handle h = pos_ != nullptr ? rec_.call(prog_->embed, tokens, leaf(tok_), leaf(pos_), T)
                                        : rec_.call(prog_->embed_tokens, tokens, leaf(tok_));
    call_bucket_.push_back(static_cast<int>(config_.layers) + 1);  // the embeddings
    auto& layers = *stack_.blocks;
    for (std::size_t i = 0; i < layers.size(); ++i) {
        const std::size_t first = rec_.calls();
        h = layers.at(i).record_into(rec_, h);
        call_bucket_.resize(rec_.calls(), -1);
        // Block l = layers 2l (mixer) and 2l + 1 (feed-forward): complete once the mixer's first call is done.
        if (i % 2 == 0) call_bucket_[first] = static_cast<int>(config_.layers - i / 2);
    }
    const bool fixed_cost = config_.emo && config_.emo_cost == "fixed";
    if (fixed_cost && cost_.size() == 0)
        throw std::logic_error("tiny_lm: emo_cost = fixed but fix_emo_cost() was not called");
    const tensors::handle loss =
        fixed_cost  ? rec_.call(prog_->emo_fixed, h, leaf(norm_), leaf(head_), targets, rec_.constant(cost_[0].value))
        : config_.emo ? rec_.call(prog_->emo, h, leaf(norm_), leaf(head_), targets)
                      : rec_.call(prog_->ce, h, leaf(norm_), leaf(head_), targets);
    call_bucket_.push_back(0);  // {final_norm, head}
    sum_ = sum;
    seed_.resize({std::size_t{1}});
    seed_(0) = weight;
    rec_.backward(loss, seed_);
    sum_ = nullptr;
    return rec_.value(loss)(0);
}

std::vector<const nn::deer_mixer<float>*> language_model::step_deer() const {
    std::vector<const nn::deer_mixer<float>*> out(stack_.deer.begin(), stack_.deer.end());
    for (std::size_t r = 0; r + 1 < last_shards_ && r < replicas_.size(); ++r)
        out.insert(out.end(), replicas_[r]->stack_.deer.begin(), replicas_[r]->stack_.deer.end());
    return out;
}

void language_model::announce(std::size_t call) {
    // Bucket 0 is {final_norm, head}, bucket L - l block l, bucket L + 1 the embeddings; a call that completes
    // none reports progress.
    if (sum_ == nullptr) return;
    const int b = call < call_bucket_.size() ? call_bucket_[call] : -1;
    if (b >= 0) {
        sum_->grad_ready(static_cast<std::size_t>(b));
    } else {
        sum_->progress();
    }
}

std::pair<double, std::size_t> language_model::eval_batch(const xt::xarray<std::int32_t>& tokens,
                                                          const xt::xarray<std::int32_t>& targets) {
    std::size_t counted = 0;
    for (std::int32_t t : targets)
        if (t != -100) ++counted;
    if (counted == 0) return {0.0, 0};
    const xt::xarray<float>& h = stack_.blocks->forward(embed(tokens));
    const auto& mean = prog_->eval.forward(h, norm_->value, head_->value, targets);
    return {static_cast<double>(mean.data[0]) * static_cast<double>(counted), counted};
}

void language_model::fix_emo_cost() {
    if (config_.emo_cost != "fixed")
        throw std::logic_error("tiny_lm: fix_emo_cost() with emo_cost '" + config_.emo_cost + "'");
    xt::xarray<float> cost = xt::transpose(head_->value);  // [V, D]: row k is piece k's output embedding
    if (cost_.size() == 0) {
        cost_.add("emo_cost", std::move(cost));
    } else {
        cost_[0].value = std::move(cost);
    }
}

xt::xarray<double> language_model::last_log_probs(const xt::xarray<std::int32_t>& tokens) {
    const std::size_t B = tokens.shape(0), T = checked_length(tokens);
    const xt::xarray<float>& h = stack_.blocks->forward(embed(tokens));
    const auto& lp = prog_->next.forward(h, norm_->value, head_->value);  // [B, T, V]
    xt::xarray<double> out = xt::xarray<double>::from_shape({B, config_.vocab});
    for (std::size_t b = 0; b < B; ++b) {
        const float* last = lp.data + (b * T + T - 1) * config_.vocab;
        std::copy(last, last + config_.vocab, out.data() + b * config_.vocab);
    }
    return out;
}

std::vector<double> language_model::next_log_probs(std::span<const std::int32_t> context) {
    const std::size_t T = std::min(context.size(), config_.context);
    if (T == 0) throw std::invalid_argument("tiny_lm: next_log_probs needs at least one piece of context");
    xt::xarray<std::int32_t> tokens = xt::xarray<std::int32_t>::from_shape({1, T});
    std::copy(context.end() - static_cast<std::ptrdiff_t>(T), context.end(), tokens.data());
    const xt::xarray<float>& h = stack_.blocks->forward(embed(tokens));
    const auto& lp = prog_->next.forward(h, norm_->value, head_->value);
    const float* last = lp.data + (T - 1) * config_.vocab;
    return std::vector<double>(last, last + config_.vocab);
}

}  // namespace tiny_lm
