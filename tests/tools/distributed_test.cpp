// nn::distributed and nn::distributed_gradients (issue #21), run alone and under `mpirun -np 2` by the
// suite (tests/tools/meson.build). Not a doctest unit test: under mpirun every rank runs the same checks
// in the same order (they are collective), and Open MPI's finalization leaks for the sanitizer stage.
// Every rank's gradients and parameters are set from its rank, so the expected sums are known exactly.
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>

#include <exprgrad/nn/adam.hpp>
#include <exprgrad/nn/distributed.hpp>
#include <exprgrad/nn/distributed_gradients.hpp>
#include <exprgrad/nn/schedule.hpp>

using namespace exprgrad;

namespace {

int failures = 0;
int rank = 0;

void check(bool ok, const std::string& what) {
    std::printf("rank %d: %s %s\n", rank, ok ? "ok  " : "FAIL", what.c_str());
    if (!ok) ++failures;
}

template <class F>
bool throws(F&& f) {
    try {
        f();
    } catch (const std::exception&) {
        return true;
    }
    return false;
}

}  // namespace

int main() {
    nn::distributed world;
    rank = world.rank();
    const int n = world.size();
    const bool under_mpirun = nn::launched_by_mpirun();
    std::printf("rank %d of %d (built with MPI: %d, launched by mpirun: %d)\n", rank, n, nn::built_with_mpi(),
                under_mpirun);
    check(under_mpirun == world.active() || !nn::built_with_mpi(), "MPI is in use exactly when launched by mpirun");
    check(throws([] { nn::distributed second; }), "a second process group is refused");

    // Three parameters, two buckets: {2, 0} and {1}. Rank r's gradients are r + 1 + i/8 (exact in float).
    nn::parameter_set<float> params;
    params.add("a", xt::zeros<float>({3}));
    params.add("b", xt::zeros<float>({2, 2}));
    params.add("c", xt::zeros<float>({5}));
    check(throws([&] { nn::distributed_gradients<float>(world, params, {{0, 2}}); }),
          "a parameter in no bucket is refused");
    check(throws([&] { nn::distributed_gradients<float>(world, params, {{0, 2}, {1, 2}}); }),
          "a parameter in two buckets is refused");
    check(throws([&] { nn::distributed_gradients<float>(world, params, {{0, 1, 2, 3}}); }),
          "an index out of range is refused");
    nn::distributed_gradients<float> sum(world, params, {{2, 0}, {1}});
    check(sum.stats().bytes_per_step == 12 * sizeof(float), "bytes per step: all 12 gradients");
    check(throws([&] { sum.grad_ready(0); }), "grad_ready outside begin/finish is refused");

    auto fill = [&] {
        for (auto& p : params)
            for (std::size_t i = 0; i < p.grad.size(); ++i) p.grad.data()[i] = static_cast<float>(rank + 1) + i / 8.0f;
    };
    // weights 1/n: the mean over the ranks, Σ_r (r + 1 + i/8) / n = (n + 1)/2 + i/8 (exact for n = 1, 2, 4).
    fill();
    sum.begin(1.0 / n);
    sum.grad_ready(1);  // out of bucket order: allowed, the same on every rank
    check(throws([&] { sum.grad_ready(1); }), "a bucket announced twice is refused");
    sum.progress();
    sum.finish();  // starts bucket 0 itself
    bool mean_ok = true;
    for (const auto& p : params)
        for (std::size_t i = 0; i < p.grad.size(); ++i)
            mean_ok = mean_ok && p.grad.data()[i] == static_cast<float>((n + 1) / 2.0 + i / 8.0);
    check(mean_ok, "finish: every gradient is the mean over the ranks");
    check(sum.stats().steps == 1 && sum.stats().step_waits.size() == 1, "stats: one step");
    // Weight 1: the sum, Σ_r (r + 1) + n·i/8.
    fill();
    sum.begin(1.0);
    sum.grad_ready(0);
    sum.grad_ready(1);
    sum.finish();
    bool sum_ok = true;
    for (const auto& p : params)
        for (std::size_t i = 0; i < p.grad.size(); ++i)
            sum_ok = sum_ok && p.grad.data()[i] == static_cast<float>(n * (n + 1) / 2.0 + n * (i / 8.0));
    check(sum_ok, "weight 1: every gradient is the sum over the ranks");
    check(throws([&] { sum.finish(); }), "finish without begin is refused");
    check(throws([&] { sum.begin(NAN); }), "a NaN weight is refused");
    check(sum.blocking_seconds(2) >= 0, "blocking_seconds runs");

    // Broadcasts: rank 0's values everywhere.
    for (auto& p : params) p.value.fill(static_cast<float>(rank * 10 + 1));
    world.broadcast(params);
    bool values_ok = true;
    for (const auto& p : params)
        for (const float v : p.value) values_ok = values_ok && v == 1.0f;
    check(values_ok, "broadcast(parameters): rank 0's values");
    nn::adamw<float> opt({.lr = 1e-3});
    if (world.root()) {  // only rank 0's optimizer has stepped: its state must reach the others
        for (auto& p : params) p.grad.fill(0.5f);
        opt.set_lr(2e-3);
        opt.step(params);
        opt.step(params);
    }
    world.broadcast(opt, params);
    check(opt.step_count() == 2 && opt.lr() == 2e-3 && opt.buffers().size() == 2 &&
              opt.buffers()[0].size() == 3 && opt.buffers()[0][1](0, 0) != 0.0f,
          "broadcast(optimizer): rank 0's step, lr and moments");
    nn::cosine_warmup sched({.base_lr = 1e-3, .warmup_steps = 2, .total_steps = 10, .min_lr = 1e-4});
    if (world.root()) sched.set_step(7);
    world.broadcast(sched);
    check(sched.current_step() == 7, "broadcast(schedule): rank 0's step");
    std::string s = world.root() ? std::string("tokenizer\0bytes", 15) : std::string("other");
    world.broadcast(s);
    check(s == std::string("tokenizer\0bytes", 15), "broadcast(string): rank 0's bytes");
    rng g(static_cast<std::uint64_t>(rank));
    world.broadcast(g);
    check(g.state() == rng(0).state(), "broadcast(rng): rank 0's state");
    check(world.sum(rank + 1.0) == n * (n + 1) / 2.0, "sum of doubles");
    check(!throws([&] { world.check_same(42, "a constant"); }), "check_same accepts equal values");
    check(n == 1 || throws([&] { world.check_same(static_cast<std::uint64_t>(rank), "the rank"); }),
          "check_same refuses values that differ (on every rank)");

    nn::parameter_set<float> other;
    other.add(rank == 0 ? "a" : "z", xt::zeros<float>({3}));
    check(n == 1 || throws([&] { world.broadcast(other); }), "broadcast refuses parameters that differ between ranks");

    world.barrier();
    if (failures) {
        std::printf("rank %d: %d check(s) failed\n", rank, failures);
        std::fflush(stdout);
        world.abort(1);
    }
    std::printf("rank %d: all checks passed\n", rank);
    return 0;
}
