// The recorded backward over compiled blocks (tensors/record.hpp): a model composed at run time gets the
// gradients of the same model written as one expression, with no VJP called by hand.
#include <doctest/doctest.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>

#include "alloc_counter.hpp"
#include "exprgrad/exprgrad.hpp"
#include "random_arrays.hpp"

using namespace exprgrad;

namespace {
constexpr auto X = tensor<0>;
constexpr auto W = tensor<1>;
using test_util::random_array;

xt::xarray<double> zeros_like(const xt::xarray<double>& a) { return xt::zeros<double>(a.shape()); }
}  // namespace

TEST_CASE("record: two blocks chained by the engine equal the one-expression program") {
    const auto x = random_array({5, 4}, 1), w1 = random_array({4, 3}, 2), w2 = random_array({3, 2}, 3);
    xt::xarray<double> g1 = zeros_like(w1), g2 = zeros_like(w2);
    // docs-begin docs/tensor.md
    auto dense = compile<double>(tanh(matmul(X, W)), wrt<0, 1>);  // two compiled blocks
    auto loss = compile<double>(mean(square(X)), wrt<0>);
    tensors::record<double> rec;                       // one per model, reused every step
    rec.clear();                              // a new step: forgets the calls, keeps the buffers
    const auto h = rec.call(dense, rec.constant(x), rec.leaf(w1, g1));  // data; a parameter and its gradient
    const auto y = rec.call(dense, h, rec.leaf(w2, g2));                // the same block again
    const auto l = rec.call(loss, y);
    rec.backward(l);                          // g1 += dL/dw1, g2 += dL/dw2: no VJP called by hand
    // docs-end
    CHECK(rec.calls() == 3);
    auto [v, g] = value_and_grad(mean(square(tanh(matmul(tanh(matmul(X, W)), tensor<2>)))), wrt<1, 2>)(x, w1, w2);
    CHECK(rec.value(l)(0) == doctest::Approx(v).epsilon(1e-14));
    CHECK(xt::allclose(g1, std::get<0>(g), 1e-12, 1e-15));
    CHECK(xt::allclose(g2, std::get<1>(g), 1e-12, 1e-15));
    // An intermediate's adjoint, independently: dL/dy = 2y/n.
    CHECK(xt::allclose(rec.grad(y), 2.0 * rec.value(y) / double(rec.value(y).size()), 1e-14, 1e-16));
}

TEST_CASE("record: a parameter shared by two calls sums both contributions; integer inputs pass through") {
    const xt::xarray<std::int32_t> tokens = {{0, 2, 1}, {3, 3, 0}};
    const auto table = random_array({4, 3}, 5), w = random_array({3, 3}, 6);
    auto embed = compile<double>(embedding(W, X), wrt<1>);  // tensor<0>: tokens, tensor<1>: the table
    auto dense = compile<double>(sin(matmul(X, W)), wrt<0, 1>);
    auto loss = compile<double>(sum(square(X) * X), wrt<0>);
    xt::xarray<double> dtable = zeros_like(table), dw = zeros_like(w);
    tensors::record<double> rec;
    const auto e = rec.call(embed, tokens, rec.leaf(table, dtable));
    const auto wl = rec.leaf(w, dw);
    const auto l = rec.call(loss, rec.call(dense, rec.call(dense, e, wl), wl));
    rec.backward(l);
    constexpr auto s = sin(matmul(sin(matmul(embedding(W, X), tensor<2>)), tensor<2>));
    auto [v, g] = value_and_grad(sum(square(s) * s), wrt<1, 2>)(tokens, table, w);
    CHECK(rec.value(l)(0) == doctest::Approx(v).epsilon(1e-14));
    CHECK(xt::allclose(dtable, std::get<0>(g), 1e-12, 1e-15));
    CHECK(xt::allclose(dw, std::get<1>(g), 1e-12, 1e-15));
}

TEST_CASE("record: leaf gradients accumulate across backward passes; adjoints of intermediates are assigned") {
    const auto x = random_array({3, 2}, 7), w = random_array({2, 2}, 8);
    auto dense = compile<double>(matmul(X, W), wrt<0, 1>);
    auto loss = compile<double>(sum(X), wrt<0>);
    xt::xarray<double> dw = zeros_like(w);
    tensors::record<double> rec;
    for (int step = 0; step < 2; ++step) {
        rec.clear();
        const auto h = rec.call(dense, rec.constant(x), rec.leaf(w, dw));
        rec.backward(rec.call(loss, h));
        CHECK(xt::allclose(rec.grad(h), xt::ones<double>({3, 2})));  // assigned: 1 on both steps
    }
    // dL/dW for L = sum(XW) is Xᵀ·1 per column; two passes accumulate twice that.
    for (std::size_t k = 0; k < 2; ++k)
        for (std::size_t j = 0; j < 2; ++j) CHECK(dw(k, j) == doctest::Approx(2 * (x(0, k) + x(1, k) + x(2, k))));
}

TEST_CASE("record: a value that does not reach the loss runs no VJP and reads zero adjoints") {
    const auto x = random_array({2, 2}, 9), w = random_array({2, 2}, 10);
    auto dense = compile<double>(exp(matmul(X, W)), wrt<0, 1>);
    auto loss = compile<double>(sum(X), wrt<0>);
    xt::xarray<double> dw = zeros_like(w), du = zeros_like(w);
    tensors::record<double> rec;
    const auto side = rec.call(dense, rec.constant(x), rec.leaf(w, du));  // computed, never used by the loss
    rec.backward(rec.call(loss, rec.call(dense, rec.constant(x), rec.leaf(w, dw))));
    CHECK(xt::all(xt::equal(du, 0.0)));
    CHECK(xt::all(xt::equal(rec.grad(side), 0.0)));
    CHECK(xt::any(xt::not_equal(dw, 0.0)));
}

TEST_CASE("record: the gradient hook fires once per leaf as soon as its last reader's VJP ran; the call hook after each call") {
    const auto x = random_array({2, 3}, 11), w1 = random_array({3, 3}, 12), w2 = random_array({3, 3}, 13);
    auto dense = compile<double>(tanh(matmul(X, W)), wrt<0, 1>);
    auto loss = compile<double>(mean(X), wrt<0>);
    xt::xarray<double> g1 = zeros_like(w1), g2 = zeros_like(w2), unused_g = zeros_like(w1);
    tensors::record<double> rec;
    std::vector<std::string> order;
    const double* p1 = g1.data();
    rec.on_gradient_ready([&](tensors::handle, xt::xarray<double>& g) {
        // The hook sees the finished gradient: nonzero already, and the caller's own array.
        order.push_back(g.data() == p1 ? "w1" : (g.data() == g2.data() ? "w2" : "unused"));
        if (g.data() != unused_g.data()) CHECK(xt::any(xt::not_equal(g, 0.0)));
    });
    rec.on_call_done([&](std::size_t call) { order.push_back("call " + std::to_string(call)); });
    const auto l1 = rec.leaf(w1, g1), l2 = rec.leaf(w2, g2);
    rec.leaf(w1, unused_g);
    const auto h = rec.call(dense, rec.constant(x), l1);
    rec.backward(rec.call(loss, rec.call(dense, h, l2)));
    CHECK((order == std::vector<std::string>{"call 2", "call 1", "w2", "call 0", "w1", "unused"}));
}

namespace {
// A run-time layer as nn::layer defines one: y = tanh(x·W) with W its own, dW accumulated by backward.
struct tanh_layer {
    xt::xarray<double> w, dw;
    decltype(compile<double>(tanh(matmul(X, W)), wrt<0, 1>)) blk;
    xt::xarray<double> y;
    int forwards = 0;
    const xt::xarray<double>& forward(const xt::xarray<double>& x) {
        ++forwards;
        const auto& v = blk.forward(x, w);
        y = xt::adapt(v.data, v.size(), xt::no_ownership(), v.shape.xshape());
        return y;
    }
    const xt::xarray<double>& backward(const xt::xarray<double>& dy) {
        blk.vjp(dy.data());
        dw += blk.grad<1>();
        return blk.grad<0>();
    }
};
}  // namespace

TEST_CASE("record: run-time layers mix with compiled blocks; one backward reaches both") {
    const auto x = random_array({4, 3}, 19), w = random_array({3, 3}, 20), head = random_array({3, 2}, 21);
    tanh_layer layer{w, zeros_like(w), {}, {}, 0};
    auto dense = compile<double>(matmul(X, W), wrt<0, 1>);
    auto loss = compile<double>(mean(square(X)), wrt<0>);
    xt::xarray<double> dhead = zeros_like(head);
    tensors::record<double> rec;
    auto h = rec.call_layer(layer, rec.constant(x));
    h = rec.call_layer(layer, h);  // twice: the first call is recomputed at backward
    rec.backward(rec.call(loss, rec.call(dense, h, rec.leaf(head, dhead))));
    CHECK(layer.forwards == 3);
    auto [v, g] = value_and_grad(mean(square(matmul(tanh(matmul(tanh(matmul(X, W)), W)), tensor<2>))), wrt<1, 2>)(x, w, head);
    CHECK(xt::allclose(layer.dw, std::get<0>(g), 1e-12, 1e-15));
    CHECK(xt::allclose(dhead, std::get<1>(g), 1e-12, 1e-15));
}

TEST_CASE("record: recompute mode frees each block after its forward pass and re-runs it; gradients identical") {
    const auto x = random_array({4, 3}, 22), w1 = random_array({3, 3}, 23), w2 = random_array({3, 3}, 24);
    auto run = [&](bool recompute, xt::xarray<double>& g1, xt::xarray<double>& g2) {
        auto dense = compile<double>(tanh(matmul(X, W)), wrt<0, 1>);
        auto loss = compile<double>(mean(square(X)), wrt<0>);
        tensors::record<double> rec;
        CHECK_FALSE(rec.set_recompute(recompute));  // the default is off
        auto h = rec.call(dense, rec.constant(x), rec.leaf(w1, g1));
        h = rec.call(dense, h, rec.leaf(w2, g2));
        CHECK(rec.set_recompute(false) == recompute);
        const auto l = rec.call(loss, h);
        rec.backward(l);
        return rec.value(l)(0);
    };
    xt::xarray<double> a1 = zeros_like(w1), a2 = zeros_like(w2), b1 = zeros_like(w1), b2 = zeros_like(w2);
    CHECK(run(false, a1, a2) == run(true, b1, b2));
    CHECK(a1 == b1);
    CHECK(a2 == b2);
    CHECK(xt::amax(xt::abs(a1))() > 0.0);
}

TEST_CASE("record: misuse is refused with the operation and the offending value named") {
    const auto x = random_array({2, 3}, 14), w = random_array({3, 2}, 15);
    auto only_x = compile<double>(matmul(X, W), wrt<0>);
    auto dense = compile<double>(matmul(X, W), wrt<0, 1>);
    xt::xarray<double> dw = zeros_like(w), wrong = xt::zeros<double>({4}), five = xt::zeros<double>({5});
    tensors::record<double> rec;
    const auto c = rec.constant(x);
    const auto wl = rec.leaf(w, dw);
    // A parameter at a position the block does not differentiate would lose its gradient silently.
    CHECK_THROWS_WITH_AS(rec.call(only_x, c, wl),
                         doctest::Contains("record::call: argument 1 carries a gradient but the block does not differentiate it"),
                         std::invalid_argument);
    CHECK(rec.calls() == 0);
    CHECK_THROWS_WITH_AS(rec.leaf(w, wrong), doctest::Contains("record::leaf: gradient array of 4 elements"),
                         std::invalid_argument);
    const auto h = rec.call(dense, c, wl);
    CHECK_THROWS_WITH_AS(rec.backward(h), doctest::Contains("record::backward: the loss has shape (2, 2)"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(rec.backward(h, five), doctest::Contains("seed of 5 elements"), std::invalid_argument);
    // A shape error inside the block leaves no entry behind.
    CHECK_THROWS_WITH_AS(rec.call(dense, c, c), doctest::Contains("do not multiply"), std::invalid_argument);
    CHECK(rec.calls() == 1);
    rec.clear();
    CHECK_THROWS_WITH_AS(rec.value(h), doctest::Contains("belongs to an earlier step"), std::invalid_argument);
}

TEST_CASE("record: a block's output and the first gradient it passes on move into the record, not copied") {
    const auto x = random_array({5, 4}, 21), w = random_array({4, 4}, 22);
    auto dense = compile<double>(tanh(matmul(X, W)), wrt<0, 1>);
    auto loss = compile<double>(mean(square(X)), wrt<0>);
    xt::xarray<double> g = zeros_like(w);
    const double* out = dense.forward(x, w).data;  // the blocks' own buffers, allocated by direct calls
    (void)loss.forward(x);
    loss.vjp(xt::xarray<double>{1.0}.data());
    const double* dx = loss.grad<0>().data();
    tensors::record<double> rec;
    const auto h = rec.call(dense, rec.constant(x), rec.leaf(w, g));
    CHECK(rec.value(h).data() == out);  // the same storage
    rec.backward(rec.call(loss, h));
    CHECK(rec.grad(h).data() == dx);
    const xt::xarray<double> y = tensors::evaluate(tanh(matmul(X, W)), x, w);
    CHECK(xt::allclose(rec.value(h), y, 1e-14, 1e-16));
    CHECK(xt::allclose(rec.grad(h), 2.0 * y / 20.0, 1e-14, 1e-16));
}

TEST_CASE("record: an identity block (its output is its argument) passes the gradient on, twice in a row") {
    // Its output's adjoint is its argument's gradient: the seed must reach the caller, not an old buffer.
    const auto x = random_array({5, 4}, 31), w = random_array({4, 3}, 32);
    auto dense = compile<double>(tanh(matmul(X, W)), wrt<0, 1>);
    auto id = compile<double>(X, wrt<0>);
    auto loss = compile<double>(mean(square(X)), wrt<0>);
    auto [v, ref] = value_and_grad(mean(square(tanh(matmul(X, W)))), wrt<1>)(x, w);
    tensors::record<double> rec;
    for (int step = 0; step < 2; ++step) {
        xt::xarray<double> g = zeros_like(w), gw = zeros_like(w);
        rec.clear();
        const auto h = rec.call(id, rec.call(dense, rec.constant(x), rec.leaf(w, g)));
        const auto l = rec.call(loss, h);
        rec.backward(l);
        CHECK(rec.value(l)(0) == doctest::Approx(v).epsilon(1e-14));
        CHECK(xt::allclose(g, std::get<0>(ref), 1e-12, 1e-15));
        // A leaf straight through the identity: d mean(w²)/dw = 2w/n.
        rec.clear();
        rec.backward(rec.call(loss, rec.call(id, rec.leaf(w, gw))));
        CHECK(xt::allclose(gw, 2.0 * w / double(w.size()), 1e-14, 1e-16));
    }
}

TEST_CASE("record: a step of the same shapes allocates nothing once warm") {
    if (!exprgrad_test::alloc_counting_enabled()) return;  // the counter cannot work under ASan
    const auto x = random_array({8, 6}, 16), w1 = random_array({6, 6}, 17), w2 = random_array({6, 6}, 18);
    auto dense = compile<double>(tanh(matmul(X, W)), wrt<0, 1>);
    auto loss = compile<double>(mean(square(X)), wrt<0>);
    xt::xarray<double> g1 = zeros_like(w1), g2 = zeros_like(w2);
    tensors::record<double> rec;
    long hooks = 0;
    rec.on_gradient_ready([&](tensors::handle, xt::xarray<double>&) { ++hooks; });
    auto step = [&] {
        rec.clear();
        const auto h = rec.call(dense, rec.constant(x), rec.leaf(w1, g1));
        rec.backward(rec.call(loss, rec.call(dense, h, rec.leaf(w2, g2))));
    };
    step();
    step();
    const long before = exprgrad_test::allocation_count();
    step();
    CHECK(exprgrad_test::allocation_count() - before == 0);
    CHECK(hooks == 6);
}
