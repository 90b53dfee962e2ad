// Data-parallel training over MPI, part 1: the process group. One `distributed` object per process
// initializes MPI when the process was started by Open MPI's `mpirun` (and finalizes it when destroyed);
// started any other way, it is a group of one and every operation below is a no-op, so the same training
// program runs alone or under `mpirun -np N` unchanged. The gradient all-reduce in buckets is part 2,
// nn/distributed_gradients.hpp; the guide is docs/distributed.md.
//
//   nn::distributed world;                        // first thing in main(), before any thread starts
//   nn::parameter_set<float> params = ...;        // built the same way on every rank
//   world.broadcast(params);                      // rank 0's values everywhere (after a resume too)
//   world.broadcast(opt, params); world.broadcast(sched);
//   ... train with nn::distributed_gradients (nn/distributed_gradients.hpp) ...
//   if (world.root()) save_checkpoint(...);       // one writer
//
// Collective calls (broadcast, sum, check_same, barrier) must be made by every rank, in the same order:
// a rank that skips one makes the others wait for it. A failure on one rank therefore cannot be handled
// locally: catch it at the top of the program, print it, and call abort(), which ends every rank
// (MPI_Abort) instead of leaving the others blocked forever.
//
// MPI is compiled in when Meson found Open MPI (`dependency('mpi')`); without it built_with_mpi() is false,
// a process started by mpirun with more than one rank is refused, and everything else works as a group of
// one. The header holds no MPI type, so consumers need no MPI headers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "exprgrad/nn/optimizer_interface.hpp"
#include "exprgrad/nn/parameters.hpp"
#include "exprgrad/nn/schedule.hpp"
#include "exprgrad/random.hpp"

namespace exprgrad::nn {

/// Whether this library was built with MPI (Open MPI found when it was configured).
bool built_with_mpi() noexcept;

/// Whether this process was started by Open MPI's launcher: OMPI_COMM_WORLD_SIZE or PMIX_RANK is set in
/// the environment (mpirun, mpiexec and PMIx launchers such as `srun --mpi=pmix` set them).
bool launched_by_mpirun() noexcept;

/// The processes of one data-parallel job (MPI_COMM_WORLD), or this process alone. Not copyable; one per
/// process (MPI can be initialized once): a second object while one lives throws std::logic_error.
class distributed {
  public:
    /// Initializes MPI (thread level "funneled": only the thread that made this object calls MPI) when
    /// launched_by_mpirun() and built_with_mpi(); otherwise a group of one. Throws std::runtime_error when
    /// launched by mpirun with more than one rank in a build without MPI (each rank would train alone),
    /// naming the variable that says so.
    distributed();
    /// Finalizes MPI if this object initialized it. After an error on any rank, call abort() instead: the
    /// finalization waits for the other ranks, which may be waiting for this one.
    ~distributed();
    distributed(const distributed&) = delete;
    distributed& operator=(const distributed&) = delete;

    /// This process's rank, 0 .. size() − 1 (0 alone).
    int rank() const noexcept { return rank_; }
    /// The number of processes (1 alone).
    int size() const noexcept { return size_; }
    /// Whether this is rank 0: the one that reads and writes files and prints.
    bool root() const noexcept { return rank_ == 0; }
    /// Whether MPI is in use (launched by mpirun in a build with MPI, even with one rank).
    bool active() const noexcept { return active_; }

    /// Ends every rank at once with exit status `code`: stdout and stderr are flushed, then MPI_Abort
    /// (Open MPI's mpirun kills the other ranks and reports the rank that aborted). Alone: std::_Exit(code).
    [[noreturn]] void abort(int code) noexcept;

    /// Waits until every rank has called it.
    void barrier();

    /// Copies `bytes` bytes at `data` from rank 0 to every rank (every rank passes the same size).
    void broadcast_bytes(void* data, std::size_t bytes);
    /// Rank 0's string on every rank (any length, any bytes). Example: the tokenizer rank 0 trained.
    void broadcast(std::string& s);
    /// Rank 0's generator state on every rank.
    void broadcast(rng& g);
    /// Rank 0's schedule step on every rank (the schedules' hyperparameters are fixed at construction).
    void broadcast(lr_schedule& s);

    /// Rank 0's parameter values on every rank. Every rank must hold the same parameters (names, shapes,
    /// order; checked: std::runtime_error naming the first rank that differs otherwise). Gradients are
    /// left alone.
    template <parameter_value T>
    void broadcast(parameter_set<T>& params) {
        if (size_ == 1) return;
        check_same(layout_hash(params), "the parameters (names and shapes)");
        for (auto& p : params) broadcast_bytes(p.value.data(), p.value.size() * sizeof(T));
    }

    /// Rank 0's optimizer state (step, lr, every buffer) on every rank. The optimizers must be of the same
    /// kind and hyperparameters (checked by load_state: std::invalid_argument otherwise), and rank 0's
    /// state, if bound, must belong to `params` (std::invalid_argument otherwise).
    template <parameter_value T>
    void broadcast(optimizer<T>& opt, const parameter_set<T>& params) {
        if (size_ == 1) return;
        optimizer_state<T> s = opt.state();
        std::uint64_t head[2] = {s.step, s.param_names.empty() ? 0u : 1u};
        double lr = opt.lr();
        broadcast_bytes(head, sizeof head);
        broadcast_bytes(&lr, sizeof lr);
        if (root() && head[1] != 0) {
            std::vector<std::string> names;
            for (const auto& p : params) names.push_back(p.name);
            if (names != s.param_names)
                throw std::invalid_argument("nn::distributed::broadcast: the optimizer state belongs to other "
                                            "parameters than the set passed");
        }
        if (!root()) {
            s.step = head[0];
            s.hyper[0].value = lr;
            s.param_names.clear();
            s.buffers.assign(s.buffer_names.size(), {});
            if (head[1] != 0)
                for (const auto& p : params) {
                    s.param_names.push_back(p.name);
                    for (auto& list : s.buffers) list.push_back(xt::xarray<T>::from_shape(p.value.shape()));
                }
        }
        for (auto& list : s.buffers)
            for (auto& a : list) broadcast_bytes(a.data(), a.size() * sizeof(T));
        if (!root()) opt.load_state(std::move(s));
        opt.set_lr(lr);
    }

    /// The sum over the ranks of `x` (every rank gets the same value; for two ranks the order of the
    /// additions cannot matter, for more it is MPI's). NaN or Inf on any rank propagates to every rank.
    /// Alone: x. Example: world.sum(1.0) == world.size().
    double sum(double x);
    /// The elementwise sum over the ranks, in place (every rank passes the same length). Example: per-batch
    /// losses, each rank filling its own entries and leaving zeros elsewhere, become the whole list.
    void sum(std::span<double> xs);

    /// Throws std::runtime_error "<what> differs between ranks: rank R has V, rank 0 has W" on every rank
    /// when `value` is not the same on all of them. Alone: nothing. Example: before a checkpoint,
    /// world.check_same(checksum_of(params), "the parameters") catches ranks that drifted apart.
    void check_same(std::uint64_t value, const std::string& what);

    /// An FNV-1a 64 checksum of the parameters' names and shapes (not their values), as broadcast(params)
    /// compares them. Example: two sets built by the same code on two ranks have the same layout_hash.
    template <parameter_value T>
    static std::uint64_t layout_hash(const parameter_set<T>& params) {
        std::uint64_t h = 0xcbf29ce484222325ULL;
        auto mix = [&](std::uint64_t v) {
            for (int i = 0; i < 8; ++i) h = (h ^ ((v >> (8 * i)) & 0xff)) * 0x100000001b3ULL;
        };
        mix(sizeof(T));
        for (const auto& p : params) {
            for (const char c : p.name) mix(static_cast<unsigned char>(c));
            mix(p.value.dimension());
            for (const std::size_t d : p.value.shape()) mix(d);
        }
        return h;
    }

  private:
    int rank_ = 0, size_ = 1;
    bool active_ = false;
};

}  // namespace exprgrad::nn
