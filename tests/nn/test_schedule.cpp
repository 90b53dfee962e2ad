// Learning-rate schedules at known steps, and their saved state.
#include <doctest/doctest.h>

#include <cmath>
#include <stdexcept>

#include <exprgrad/nn/schedule.hpp>

using namespace exprgrad;

TEST_CASE("constant schedule") {
    nn::constant_schedule s(0.25);
    CHECK(s.lr() == 0.25);
    for (int i = 0; i < 5; ++i) s.step();
    CHECK(s.current_step() == 5);
    CHECK(s.lr() == 0.25);
    CHECK(s.lr_at(1u << 30) == 0.25);
    CHECK_THROWS_AS(nn::constant_schedule(-1), std::invalid_argument);
}

TEST_CASE("step decay: base * gamma^floor(step / step_size)") {
    nn::step_decay s({.base_lr = 1.0, .step_size = 3, .gamma = 0.5});
    const double want[] = {1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125};
    for (double w : want) {
        CHECK(s.lr() == w);
        s.step();
    }
    CHECK(s.lr_at(3000) == std::ldexp(1.0, -1000));  // exact powers of 0.5
    CHECK(s.lr_at(30000) == 0.0);                    // 0.5^10000 underflows to 0, no NaN
    CHECK_THROWS_AS(nn::step_decay({.step_size = 0}), std::invalid_argument);
    CHECK_THROWS_AS(nn::step_decay({.gamma = NAN}), std::invalid_argument);
}

TEST_CASE("cosine with linear warmup at known steps") {
    // base 1, W = 10, T = 110: warmup s/10; then ½(1 + cos(π (s − 10) / 100)).
    nn::cosine_warmup s({.base_lr = 1.0, .warmup_steps = 10, .total_steps = 110});
    CHECK(s.lr_at(0) == 0.0);
    CHECK(s.lr_at(5) == 0.5);
    CHECK(s.lr_at(9) == doctest::Approx(0.9).epsilon(1e-15));
    CHECK(s.lr_at(10) == 1.0);
    CHECK(s.lr_at(35) == doctest::Approx(0.5 * (1 + std::sqrt(0.5))).epsilon(1e-15));  // cos(π/4)
    CHECK(s.lr_at(60) == doctest::Approx(0.5).epsilon(1e-15));                         // cos(π/2) = 0
    CHECK(s.lr_at(85) == doctest::Approx(0.5 * (1 - std::sqrt(0.5))).epsilon(1e-14));  // cos(3π/4)
    CHECK(s.lr_at(110) == 0.0);
    CHECK(s.lr_at(1000000) == 0.0);
    // Monotone decay after warmup.
    for (std::uint64_t i = 10; i < 110; ++i) CHECK(s.lr_at(i + 1) <= s.lr_at(i));

    // With a floor: min + (base − min) · ½(1 + cos(...)).
    nn::cosine_warmup f({.base_lr = 1.0, .warmup_steps = 10, .total_steps = 110, .min_lr = 0.1});
    CHECK(f.lr_at(60) == doctest::Approx(0.55).epsilon(1e-15));
    CHECK(f.lr_at(110) == 0.1);
    CHECK(f.lr_at(5) == 0.5);  // warmup goes from 0, not from min_lr

    // No warmup: starts at the peak.
    nn::cosine_warmup nw({.base_lr = 2.0, .warmup_steps = 0, .total_steps = 4});
    CHECK(nw.lr_at(0) == 2.0);
    CHECK(nw.lr_at(2) == doctest::Approx(1.0).epsilon(1e-15));
    // Warmup over the whole run: no division by zero, min_lr afterwards.
    nn::cosine_warmup all({.base_lr = 1.0, .warmup_steps = 4, .total_steps = 4, .min_lr = 0.0});
    CHECK(all.lr_at(2) == 0.5);
    CHECK(all.lr_at(4) == 0.0);

    CHECK_THROWS_AS(nn::cosine_warmup({.warmup_steps = 11, .total_steps = 10}), std::invalid_argument);
    CHECK_THROWS_AS(nn::cosine_warmup({.total_steps = 0}), std::invalid_argument);
    CHECK_THROWS_AS(nn::cosine_warmup({.base_lr = 1.0, .min_lr = 2.0}), std::invalid_argument);
}

TEST_CASE("linear warmup then linear decay at known steps") {
    nn::linear_warmup s({.base_lr = 2.0, .warmup_steps = 4, .total_steps = 12});
    CHECK(s.lr_at(0) == 0.0);
    CHECK(s.lr_at(2) == 1.0);
    CHECK(s.lr_at(4) == 2.0);
    CHECK(s.lr_at(6) == 1.5);
    CHECK(s.lr_at(8) == 1.0);
    CHECK(s.lr_at(11) == 0.25);
    CHECK(s.lr_at(12) == 0.0);
    CHECK(s.lr_at(20) == 0.0);
    nn::linear_warmup f({.base_lr = 2.0, .warmup_steps = 4, .total_steps = 12, .min_lr = 1.0});
    CHECK(f.lr_at(8) == 1.5);
    CHECK(f.lr_at(100) == 1.0);
}

TEST_CASE("schedule state: the step is saved and restored; another schedule's state is refused") {
    nn::cosine_warmup a({.base_lr = 0.3, .warmup_steps = 5, .total_steps = 50});
    for (int i = 0; i < 17; ++i) a.step();
    const nn::schedule_state st = a.state();
    CHECK(st.kind == "cosine_warmup");
    CHECK(st.step == 17);
    REQUIRE(st.hyper.size() == 4);
    CHECK(st.hyper[1].name == "warmup_steps");
    CHECK(st.hyper[1].value == 5.0);

    nn::cosine_warmup b({.base_lr = 0.3, .warmup_steps = 5, .total_steps = 50});
    b.load_state(st);
    CHECK(b.current_step() == 17);
    CHECK(b.lr() == a.lr());

    nn::cosine_warmup other({.base_lr = 0.3, .warmup_steps = 5, .total_steps = 60});
    CHECK_THROWS_WITH_AS(other.load_state(st), doctest::Contains("total_steps"), std::invalid_argument);
    CHECK(other.current_step() == 0);
    nn::linear_warmup lin({.base_lr = 0.3, .warmup_steps = 5, .total_steps = 50});
    CHECK_THROWS_WITH_AS(lin.load_state(st), doctest::Contains("cosine_warmup"), std::invalid_argument);
}
