// The tiny causal language model of examples/tiny_lm: token embeddings and a position scheme (learned
// embeddings, none, or ALiBi), a run-time stack of pre-norm transformer blocks (nn/transformer.hpp;
// optionally with DEER recurrent mixers), a final RMSNorm and an untied output head, trained with
// cross-entropy or with CE + EMO (mode 1; the cost embedding is the output head itself, detached, or with
// emo_cost = fixed the head as it was at the start of the run, held constant: docs/emo_finetune.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>

#include <exprgrad/nn/distributed_gradients.hpp>
#include <exprgrad/nn/parameters.hpp>
#include <exprgrad/nn/transformer.hpp>
#include <exprgrad/tensors/record.hpp>
#include <exprgrad/random.hpp>

namespace tiny_lm {

/// What the model looks like; every field is a command-line flag of tiny_lm.
struct model_config {
    std::size_t vocab = 0;     ///< V, the tokenizer's size
    std::size_t context = 64;  ///< T, the longest sequence
    std::size_t width = 128;
    std::size_t layers = 2;
    std::size_t heads = 4;
    std::string scale = "inv_sqrt_d";  ///< inv_sqrt_d | entropy_invariant | gradient_max (docs/scale_length.md)
    /// learned: a learned table of `context` position embeddings (sequences longer than context are refused);
    /// none: no position signal but the causal mask; alibi: ALiBi's fixed per-head slopes 2^(−8(h+1)/H) on
    /// the query-key distance (flex attention). none and alibi accept sequences longer than `context`.
    std::string position = "learned";
    /// Attention logit soft-capping: every score z becomes C·tanh(z/C) (flex attention, after ALiBi's bias) for
    /// softcap = C > 0; 0: none. Finite and ≥ 0 (the constructor throws std::invalid_argument otherwise).
    double softcap = 0.0;
    std::vector<std::size_t> deer_layers{};
    std::size_t deer_state = 32;
    bool emo = false;  ///< CE + EMO (mode 1) instead of CE
    /// EMO's cost embedding (with emo): live = the output head as it trains, detached (each step's costs
    /// come from the current head); fixed = the head as it was when fix_emo_cost() was called (at the
    /// start of the run: the random initialization, or the parameters of --init-from), held constant, the
    /// paper's fixed cost c_ij = 1 − cos(e_i, e_j).
    std::string emo_cost = "live";
};

/// The attention scale policy of a name (throws std::invalid_argument naming it otherwise).
exprgrad::ops::scale_policy scale_by_name(const std::string& name);

/// True for the position schemes model_config::position accepts: learned, none, alibi.
bool known_position(const std::string& name);

/// The model and its compiled programs. Not reentrant.
class language_model {
  public:
    language_model(const model_config& config, exprgrad::rng& gen);
    ~language_model();

    exprgrad::nn::parameter_set<float>& params() { return params_; }
    const model_config& config() const { return config_; }

    /// Forward and backward over tokens [B, T] predicting targets [B, T] (−100: not counted): returns the
    /// mean training loss; the gradients are added into params(). With `sum` (data-parallel training), each
    /// bucket of grad_buckets() is announced to it (sum->grad_ready(b)) as soon as the backward pass has
    /// completed its gradients, so its all-reduce runs during the rest of the backward pass; the caller
    /// calls sum->begin before and sum->finish after.
    ///
    /// With more than one thread (exprgrad::kernels::num_threads()) and data_parallel() (the default), the
    /// rows are split into that many contiguous shards (at most one per row), each trained on its own copy of
    /// the model on its own thread (kernels::run_replicas: serial kernels, one-thread BLAS), and the shards'
    /// gradients are added in shard order, each weighted by its share of the counted targets: the gradient
    /// of the batch's mean loss, deterministic for a thread count. Not with CE + EMO (mode 1's weight is a
    /// ratio of batch means, which a sum over shards would change), nor when a shard has no counted target or
    /// a token or target is out of range (the whole batch then reports it, with its positions): those run as
    /// one batch with every thread on each operation. With `sum` and shards, every bucket is announced after
    /// the shards' sum, in bucket order (the all-reduce then overlaps nothing of the backward pass).
    double train_batch(const xt::xarray<std::int32_t>& tokens, const xt::xarray<std::int32_t>& targets,
                       exprgrad::nn::distributed_gradients<float>* sum = nullptr);
    /// Whether train_batch may split a batch over the threads (see there); true unless set otherwise.
    bool data_parallel() const { return data_parallel_; }
    /// Lets train_batch split batches over the threads (true) or not (false: every operation of one step is
    /// split over them instead). Takes effect at the next train_batch.
    void set_data_parallel(bool on) { data_parallel_ = on; }
    /// The number of shards the last train_batch was split into (1: the whole batch at once; 0: none yet).
    std::size_t last_shards() const { return last_shards_; }
    /// The parameters (indices into params()) in the order the backward pass completes them, one bucket per
    /// compiled stage: {final_norm, head}, then every transformer block from the last to the first, then
    /// {tok_emb, pos_emb} (only tok_emb unless position = learned). Fixed by the configuration, so every rank
    /// has the same schedule.
    const std::vector<std::vector<std::size_t>>& grad_buckets() const { return buckets_; }
    /// The summed cross-entropy (nats) of the counted targets, and their number; no gradients.
    std::pair<double, std::size_t> eval_batch(const xt::xarray<std::int32_t>& tokens,
                                              const xt::xarray<std::int32_t>& targets);
    /// The longest sequence the model accepts: config().context with learned positions, unbounded otherwise.
    std::size_t max_length() const;
    /// Natural-log probabilities of the next piece after `context` (its last config().context pieces are used).
    std::vector<double> next_log_probs(std::span<const std::int32_t> context);
    /// Log-probabilities [B, V] of the piece after each row of tokens [B, T] (T ≤ max_length()): the
    /// model's next-piece distribution at the last position of every row, in one forward pass.
    xt::xarray<double> last_log_probs(const xt::xarray<std::int32_t>& tokens);
    /// With emo_cost = fixed: takes the current head, transposed to [V, D], as EMO's cost embedding from
    /// now on (it never changes afterwards, whatever the optimizer does to the head). Call it once the
    /// starting parameters are in place and before any resumed state is loaded. Without it (or with
    /// emo_cost = live) the live head is the cost. Throws std::logic_error unless emo_cost = fixed.
    void fix_emo_cost();
    /// The DEER mixers (empty unless config.deer_layers), for their reports. After a split train_batch
    /// their reports cover the first shard only: step_deer() has every shard's.
    const std::vector<exprgrad::nn::deer_mixer<float>*>& deer() const { return stack_.deer; }
    /// The DEER mixers that ran the last train_batch: deer(), then each other shard's copy's (a split step).
    std::vector<const exprgrad::nn::deer_mixer<float>*> step_deer() const;

  private:
    // One shard of train_batch: its mean loss; the gradients, times `weight`, are added into params().
    double train_shard(const xt::xarray<std::int32_t>& tokens, const xt::xarray<std::int32_t>& targets, float weight,
                       exprgrad::nn::distributed_gradients<float>* sum);
    // train_batch over `shards` replicas (shards > 1): nullopt when the batch cannot be split exactly.
    std::optional<double> train_sharded(const xt::xarray<std::int32_t>& tokens,
                                        const xt::xarray<std::int32_t>& targets, std::size_t shards,
                                        exprgrad::nn::distributed_gradients<float>* sum);
    std::size_t checked_length(const xt::xarray<std::int32_t>& tokens) const;
    const xt::xarray<float>& embed(const xt::xarray<std::int32_t>& tokens);
    void announce(std::size_t call);

    struct programs;
    model_config config_;
    exprgrad::nn::parameter_set<float> params_;
    exprgrad::nn::parameter<float>*tok_, *pos_, *norm_, *head_;  // pos_: nullptr unless position = learned
    // ALiBi's slopes (position = alibi) and the soft-cap C per head (softcap > 0): read by the attention layers,
    // never stepped, not in the checkpoint (they follow from the number of heads and --softcap).
    exprgrad::nn::parameter_set<float> fixed_;
    exprgrad::nn::parameter_set<float> cost_;  // emo_cost = fixed: the cost embedding [V, D] (fix_emo_cost)
    exprgrad::nn::transformer_stack<float> stack_;
    std::unique_ptr<programs> prog_;
    xt::xarray<float> h0_;
    std::vector<std::vector<std::size_t>> buckets_;
    exprgrad::tensors::record<float> rec_;  // the training step's calls (train_batch)
    std::vector<int> call_bucket_;          // per recorded call: the bucket its VJP completes, or -1
    exprgrad::nn::distributed_gradients<float>* sum_ = nullptr;  // during train_batch's backward only
    xt::xarray<float> seed_;                                     // the loss's adjoint: the shard's weight
    // Data parallelism (train_batch): the other shards' models, made at the first split, and every shard's
    // rows and mean loss.
    bool data_parallel_ = true;
    std::size_t last_shards_ = 0;
    std::vector<std::unique_ptr<language_model>> replicas_;
    struct shard {
        xt::xarray<std::int32_t> tokens, targets;
        std::size_t counted = 0;  // targets other than −100
        double loss = 0.0;
    };
    std::vector<shard> shards_;
    std::vector<std::size_t> grad_offsets_;  // where each parameter starts in the gradients laid end to end
};

}  // namespace tiny_lm
