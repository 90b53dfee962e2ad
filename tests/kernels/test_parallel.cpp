// The thread pool (kernels/parallel.hpp) called directly: the partition, exceptions, nested regions,
// changing the thread count, and the refusal of thread counts the machine cannot have; and its data
// parallelism (kernels/replicas.hpp).
#include <doctest/doctest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "exprgrad/kernels/blas.hpp"
#include "exprgrad/kernels/parallel.hpp"
#include "exprgrad/kernels/replicas.hpp"

using namespace exprgrad::kernels;

namespace {
struct thread_guard {
    std::size_t saved = num_threads();
    ~thread_guard() { set_num_threads(saved); }
};

// The ranges parallel_for hands out, sorted by their start.
std::vector<std::pair<std::size_t, std::size_t>> ranges_of(std::size_t begin, std::size_t end, std::size_t grain,
                                                           std::size_t max_chunks = 0) {
    std::mutex m;
    std::set<std::pair<std::size_t, std::size_t>> seen;
    parallel_for(
        begin, end, grain,
        [&](std::size_t lo, std::size_t hi) {
            std::lock_guard<std::mutex> lock(m);
            seen.insert({lo, hi});
        },
        max_chunks);
    return {seen.begin(), seen.end()};
}
}  // namespace

TEST_CASE("parallel_for covers [begin, end) once, in a partition that depends only on its arguments") {
    thread_guard g;
    for (std::size_t threads : {1u, 2u, 3u, 4u}) {
        set_num_threads(threads);
        CHECK(num_threads() == threads);
        for (auto [begin, end, grain] : {std::tuple<std::size_t, std::size_t, std::size_t>{0, 1000, 1},
                                         {5, 17, 4},
                                         {0, 3, 1},
                                         {7, 8, 100},
                                         {100, 1100, 300}}) {
            const auto r = ranges_of(begin, end, grain, 4);
            REQUIRE(!r.empty());
            CHECK(r.front().first == begin);
            CHECK(r.back().second == end);
            for (std::size_t i = 0; i + 1 < r.size(); ++i) CHECK(r[i].second == r[i + 1].first);  // no gap, no overlap
            // At most min(max_chunks, n / grain) chunks, each at least `grain` long when split.
            const std::size_t n = end - begin;
            CHECK(r.size() <= std::max<std::size_t>(1, std::min<std::size_t>(4, n / grain)));
            if (r.size() > 1)
                for (auto [lo, hi] : r) CHECK(hi - lo >= grain);
            // max_chunks given: the same partition whatever the thread count.
            set_num_threads(1);
            CHECK(ranges_of(begin, end, grain, 4) == r);
            set_num_threads(threads);
        }
    }
    // Empty and inverted ranges call nothing.
    int calls = 0;
    parallel_for(5, 5, 1, [&](std::size_t, std::size_t) { ++calls; });
    parallel_for(9, 2, 1, [&](std::size_t, std::size_t) { ++calls; });
    CHECK(calls == 0);
}

TEST_CASE("parallel_for: every chunk runs, then the first exception propagates to the caller") {
    thread_guard g;
    for (std::size_t threads : {1u, 2u, 4u}) {
        set_num_threads(threads);
        std::atomic<int> ran{0};
        auto throwing = [&](std::size_t lo, std::size_t) {
            ++ran;
            if (lo == 0) throw std::runtime_error("chunk 0 failed");
        };
        CHECK_THROWS_WITH_AS(parallel_for(0, 8, 1, throwing, 8), "chunk 0 failed", std::runtime_error);
        CHECK(ran.load() == 8);
        // The pool still works afterwards.
        std::atomic<int> sum{0};
        parallel_for(
            0, 100, 1, [&](std::size_t lo, std::size_t hi) { sum += static_cast<int>(hi - lo); }, 8);
        CHECK(sum.load() == 100);
    }
}

TEST_CASE("a parallel region inside a parallel region runs serially on the calling thread") {
    thread_guard g;
    set_num_threads(2);
    std::mutex m;
    std::vector<std::pair<std::thread::id, std::thread::id>> inner_threads;  // (outer chunk's, inner chunk's)
    std::atomic<std::size_t> inner_total{0};
    parallel_for(
        0, 4, 1,
        [&](std::size_t, std::size_t) {
            const auto outer = std::this_thread::get_id();
            parallel_for(0, 64, 1, [&](std::size_t lo, std::size_t hi) {
                inner_total += hi - lo;
                std::lock_guard<std::mutex> lock(m);
                inner_threads.push_back({outer, std::this_thread::get_id()});
            });
        },
        4);
    CHECK(inner_total.load() == 4 * 64);
    REQUIRE(!inner_threads.empty());
    for (auto [outer, inner] : inner_threads) CHECK(outer == inner);
}

TEST_CASE("set_num_threads: 0 counts as 1, an impossible count is refused with a message") {
    thread_guard g;
    set_num_threads(0);
    CHECK(num_threads() == 1);
    CHECK_THROWS_WITH_AS(set_num_threads(1'000'000'000), doctest::Contains("set_num_threads"), std::invalid_argument);
    CHECK(num_threads() == 1);  // unchanged by the refused call
    set_num_threads(3);
    std::atomic<int> chunks{0};
    parallel_for(0, 30, 1, [&](std::size_t, std::size_t) { ++chunks; });
    CHECK(chunks.load() == 3);
}

TEST_CASE("run_replicas: each replica once, serial kernels and one BLAS thread inside, the first error after all") {
    thread_guard g;
    set_num_threads(2);
    // More replicas than threads: each r exactly once.
    std::vector<std::atomic<int>> runs(5);
    run_replicas(5, [&](std::size_t r) { ++runs[r]; });
    for (auto& n : runs) CHECK(n.load() == 1);
    // Inside a replica: a region of its own, BLAS at one thread, nested parallel_for on the replica's thread.
    std::atomic<int> inside{0}, one_blas{0}, nested_same_thread{0};
    run_replicas(2, [&](std::size_t) {
        inside += in_parallel_region();
        one_blas += openblas_get_num_threads() == 1;
        const auto self = std::this_thread::get_id();
        bool same = true;
        parallel_for(0, 64, 1, [&](std::size_t, std::size_t) { same = same && std::this_thread::get_id() == self; });
        nested_same_thread += same;
    });
    CHECK(inside.load() == 2);
    CHECK(one_blas.load() == 2);
    CHECK(nested_same_thread.load() == 2);
    CHECK(!in_parallel_region());
    // After a GEMM outside a region, OpenBLAS is back at the pool's thread count.
    const float a[4] = {1, 2, 3, 4}, b[4] = {1, 0, 0, 1};
    float c[4] = {};
    blas::gemm(false, false, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
    CHECK(c[3] == 4.0f);
    CHECK(openblas_get_num_threads() == 2);
    // A throw in replica 1: replicas 0 and 2 still run, then the error reaches the caller.
    std::vector<std::atomic<int>> done(3);
    CHECK_THROWS_WITH_AS(run_replicas(3,
                                      [&](std::size_t r) {
                                          if (r == 1) throw std::runtime_error("replica 1 failed");
                                          ++done[r];
                                      }),
                         "replica 1 failed", std::runtime_error);
    CHECK(done[0].load() == 1);
    CHECK(done[2].load() == 1);
    // Called inside a region: the replicas run one after another on the calling thread.
    std::atomic<int> on_caller{0};
    parallel_for(
        0, 2, 1,
        [&](std::size_t, std::size_t) {
            const auto self = std::this_thread::get_id();
            run_replicas(3, [&](std::size_t) { on_caller += std::this_thread::get_id() == self; });
        },
        2);
    CHECK(on_caller.load() == 6);
}
