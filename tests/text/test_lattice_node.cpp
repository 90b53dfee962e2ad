// The lattice as a tensor node: its value is the sum of log Z over the texts, its gradient with
// respect to the scores is α times the marginals (checked against finite differences of log Z).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <xtensor/xarray.hpp>

#include "exprgrad/exprgrad.hpp"
#include "exprgrad/text/lattice_node.hpp"

using namespace exprgrad;

TEST_CASE("log_partition node: value, gradient = alpha * marginals, finite differences") {
    // the T6 lattice of the notes: "ABC" with A, B, C, AB, BC, ABC
    text::vocabulary v = text::vocabulary::with_specials();
    v.add("A", 1.0);
    v.add("B", 1.2);
    v.add("C", 2.5);
    v.add("AB", 3.0);
    v.add("BC", 4.0);
    v.add("ABC", 2.0);
    text::unigram_model model(v);
    text::lattice_batch batch{&model, {"ABC", "AB", "CAB"}};
    const std::size_t V = model.size();
    xt::xarray<double> scores = xt::xarray<double>::from_shape({V});
    for (std::size_t i = 0; i < V; ++i) scores(i) = model.vocab()[static_cast<text::piece_id>(i)].score;
    constexpr double alpha = 0.5;
    auto prog = value_and_grad(text::log_partition(tensor<0>, tensor<1>, c<1, 2>), wrt<0>);
    auto [lz, g] = prog(scores, batch);
    double want = 0;
    std::vector<double> counts(V, 0.0);
    for (const auto& t : batch.texts) {
        want += model.log_partition(t, alpha);
        const auto m = model.marginals(t, alpha);
        for (std::size_t i = 0; i < V; ++i) counts[i] += m[i];
    }
    CHECK(lz == doctest::Approx(want).epsilon(1e-12));
    const auto& grad = std::get<0>(g);
    for (std::size_t i = 0; i < V; ++i) CHECK(grad(i) == doctest::Approx(alpha * counts[i]).epsilon(1e-12));
    // finite differences of the node's value over the non-control scores
    for (std::size_t i = 4; i < 10; ++i) {
        xt::xarray<double> up = scores, down = scores;
        up(i) += 1e-6;
        down(i) -= 1e-6;
        const double fd = (prog(up, batch).first - prog(down, batch).first) / 2e-6;
        CHECK(grad(i) == doctest::Approx(fd).epsilon(1e-6));
    }
}

TEST_CASE("log_partition node: bad arguments throw naming the problem") {
    text::vocabulary v = text::vocabulary::with_specials();
    v.add("a", -1.0);
    text::unigram_model model(v);
    text::lattice_batch batch{&model, {"aa"}};
    auto prog = value_and_grad(text::log_partition(tensor<0>, tensor<1>), wrt<0>);
    xt::xarray<double> wrong = xt::zeros<double>({3});
    CHECK_THROWS_AS(prog(wrong, batch), std::invalid_argument);
    xt::xarray<double> scores = xt::zeros<double>({model.size()});
    xt::xarray<double> not_a_batch = xt::zeros<double>({2});
    CHECK_THROWS_AS(prog(scores, not_a_batch), std::invalid_argument);
}
