// Data-parallel training over MPI, part 2: the gradient all-reduce in buckets, overlapped with the
// backward pass (part 1, the process group, is nn/distributed.hpp; the guide is docs/distributed.md).
//
// Each rank computes the gradients of its share of the global batch; the optimizer needs their weighted
// sum. The parameters are split into buckets in the order the backward pass completes them (the output
// head first, the embeddings last). As soon as a bucket's gradients are complete, grad_ready(bucket)
// multiplies them by the rank's weight and starts their non-blocking sum over the ranks in place
// (MPI_Iallreduce on each gradient array), which runs while the backward pass goes on with the blocks
// below; finish() waits for all of them before the optimizer step. From grad_ready(b) to finish() the
// gradients of bucket b belong to MPI: the backward pass must not touch them any more (a parameter shared
// by two blocks goes in the bucket of the one whose VJP runs last). grad_ready is the hook a backward pass calls per block (examples/tiny_lm
// calls it after each transformer block's VJP); progress() lets MPI advance the started sums between
// blocks (Open MPI moves a non-blocking collective only inside MPI calls).
//
//   nn::distributed_gradients<float> ar(world, params, model.grad_buckets());
//   params.zero_grad();
//   ar.begin(local_share);          // this rank's fraction of the global loss's normalizer
//   model.train_batch(tokens, targets, &ar);   // calls ar.grad_ready(b) as bucket b completes
//   ar.finish();                    // every rank now holds the same summed gradients
//   nn::clip_grad_norm(params, 1.0); opt.step(params);
//
// Every rank must call grad_ready for the buckets in the same order (the same program does); a bucket
// not announced by the end of the backward pass is started by finish(), in bucket order.
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>
#include <vector>

#include "exprgrad/nn/distributed.hpp"
#include "exprgrad/nn/parameters.hpp"

namespace exprgrad::nn {

/// What a distributed_gradients object measured since it was made (or since reset_stats()).
struct distributed_gradient_stats {
    std::size_t steps = 0;            ///< finish() calls
    std::size_t bytes_per_step = 0;   ///< bytes of gradients each rank contributes per step (all buckets)
    double hook_seconds = 0;          ///< inside grad_ready/progress: weighting, starting and advancing sums
    double wait_seconds = 0;          ///< inside finish(): waiting for the sums (what the backward did not hide)
    std::vector<double> step_waits;   ///< the wait of each finish(), in order
    std::vector<double> step_enters;  ///< when each finish() was entered (steady clock, seconds)

    /// The median of step_waits (0 without steps): robust to the steps where one rank was held up by
    /// something else (rank 0 writing a checkpoint), whose waits measure that imbalance, not the all-reduce.
    double median_wait_seconds() const {
        if (step_waits.empty()) return 0;
        std::vector<double> w = step_waits;
        std::nth_element(w.begin(), w.begin() + static_cast<std::ptrdiff_t>(w.size() / 2), w.end());
        return w[w.size() / 2];
    }
};

/// The weighted sum over the ranks of every parameter's gradient, in buckets, overlapped with the
/// backward pass (see the top of this header). For a loss that is a mean over the global batch, each
/// rank's weight is its share of the batch (its sequences, or counted targets, over the global number),
/// so that the result is the gradient of the global mean. Alone (a group of one) the gradients are only
/// multiplied by the weight (not at all for weight 1). Not copyable; the buckets keep references into
/// `params`, which must outlive this object and keep its parameters.
template <parameter_value T>
class distributed_gradients {
  public:
    /// `buckets[b]`: the indices (insertion order of `params`) of the parameters of bucket b; the buckets
    /// are numbered in the order the backward pass completes them. Every parameter must be in exactly one
    /// bucket (std::invalid_argument naming the first one that is not, or that is twice, or an index out
    /// of range). Example for [embedding, block, head]: {{2}, {1}, {0}}.
    distributed_gradients(distributed& world, parameter_set<T>& params, std::vector<std::vector<std::size_t>> buckets);
    ~distributed_gradients();
    distributed_gradients(const distributed_gradients&) = delete;
    distributed_gradients& operator=(const distributed_gradients&) = delete;

    /// Starts a step: `weight` multiplies this rank's gradients before the sum (finite, else
    /// std::invalid_argument). Call before the backward pass; the gradients must be zeroed or hold only
    /// this step's contributions. Throws std::logic_error if the previous step was not finished.
    void begin(double weight);

    /// Bucket b's gradients are complete on this rank: multiplies them by the weight and starts their sum
    /// over the ranks (in place: they must not change until finish()), then lets the earlier sums advance. A bucket
    /// announced twice in a step, or outside begin()/finish(), throws std::logic_error; b out of range,
    /// std::out_of_range. NaN and Inf are summed as they are (they propagate, as in one process).
    void grad_ready(std::size_t b);

    /// Lets MPI advance the sums in flight (cheap; call between the blocks of the backward pass).
    void progress();

    /// Starts the buckets not announced yet (in bucket order) and waits for every sum: afterwards every
    /// rank's gradients hold Σ_r weight_r · grad_r, bit-identical on all ranks. Throws std::logic_error
    /// without begin().
    void finish();

    /// The number of buckets.
    std::size_t buckets() const noexcept;

    /// Measurements since construction or reset_stats().
    const distributed_gradient_stats& stats() const noexcept;
    void reset_stats() noexcept;

    /// Splits the median wait in finish() into its two causes (collective: every rank calls it after the
    /// same number of steps, else std::logic_error): `imbalance`, waiting for the slowest rank to end its
    /// backward pass, and `exposed`, the all-reduce time left after the last rank entered finish() (what
    /// the backward pass did not hide). Medians over the steps; the clocks of the ranks are compared, so
    /// the split is meaningful on one machine (one steady clock) or with synchronized clocks.
    struct wait_split {
        double imbalance = 0, exposed = 0;
    };
    wait_split split_waits();

    /// For the report of the overlap: the median over `reps` runs (≥ 1) of the time of a blocking
    /// all-reduce of all the buckets, one after the other (the time finish() would wait if nothing
    /// overlapped). Collective: every rank calls it. Leaves the gradients alone. Alone: 0.
    double blocking_seconds(int reps);

  private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

extern template class distributed_gradients<float>;
extern template class distributed_gradients<double>;

}  // namespace exprgrad::nn
