// Learning-rate schedules: a pure function lr(step) plus the current step, which is the whole state.
//
//   nn::cosine_warmup sched({.base_lr = 3e-4, .warmup_steps = 100, .total_steps = 10000});
//   for (...) { opt.set_lr(sched.lr()); opt.step(params); sched.step(); }
//
// Steps count from 0: lr() is the rate for the current step, step() advances. The formulas follow the
// Hugging Face transformers schedules (get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup)
// with an optional floor min_lr, and torch.optim.lr_scheduler.StepLR. Arguments are checked at
// construction (std::invalid_argument naming the schedule and the value); lr_at() is defined for every
// step and never returns NaN for valid arguments.
#pragma once

#include <cmath>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "exprgrad/nn/optimizer.hpp"  // hyperparameter

namespace exprgrad::nn {

/// The saved form of a schedule: its kind, its hyperparameters (fixed order) and its current step.
struct schedule_state {
    std::string kind;
    std::uint64_t step = 0;
    std::vector<hyperparameter> hyper;
};

/// The common interface of the schedules.
class lr_schedule {
  public:
    virtual ~lr_schedule() = default;

    /// "constant", "step_decay", "cosine_warmup" or "linear_warmup".
    virtual const char* kind() const noexcept = 0;

    /// The learning rate at step `step` (0-based); a pure function of the hyperparameters.
    virtual double lr_at(std::uint64_t step) const noexcept = 0;

    /// The hyperparameters in a fixed order (integer-valued ones are exact in a double up to 2^53).
    virtual std::vector<hyperparameter> hyperparameters() const = 0;

    /// The learning rate at the current step.
    double lr() const noexcept { return lr_at(step_); }

    /// Advances to the next step.
    void step() noexcept { ++step_; }

    /// The current step (the number of step() calls, unless set_step or load_state changed it).
    std::uint64_t current_step() const noexcept { return step_; }

    /// Jumps to step `s` (any value; lr_at is defined everywhere).
    void set_step(std::uint64_t s) noexcept { step_ = s; }

    /// The kind, the current step and the hyperparameters, for checkpoints.
    schedule_state state() const { return {kind(), step_, hyperparameters()}; }

    /// Throws std::invalid_argument if `s` is for another kind of schedule or other hyperparameters
    /// (names and values must be equal: a resumed run continues the same schedule).
    void check_state(const schedule_state& s) const {
        const std::string who = std::string("nn::") + kind() + "::load_state: ";
        if (s.kind != kind()) throw std::invalid_argument(who + "state is for a \"" + s.kind + "\" schedule");
        const auto mine = hyperparameters();
        if (s.hyper.size() != mine.size())
            throw std::invalid_argument(who + "state has " + std::to_string(s.hyper.size()) +
                                        " hyperparameters, expected " + std::to_string(mine.size()));
        for (std::size_t i = 0; i < mine.size(); ++i) {
            if (s.hyper[i].name != mine[i].name)
                throw std::invalid_argument(who + "hyperparameter " + std::to_string(i) + " is \"" + s.hyper[i].name +
                                            "\", expected \"" + mine[i].name + "\"");
            if (!(s.hyper[i].value == mine[i].value))
                throw std::invalid_argument(who + "saved " + s.hyper[i].name + " = " + format_number(s.hyper[i].value) +
                                            " differs from this schedule's " + format_number(mine[i].value));
        }
    }

    /// Restores the step after check_state(s) (strong guarantee).
    void load_state(const schedule_state& s) {
        check_state(s);
        step_ = s.step;
    }

  protected:
    lr_schedule() = default;
    lr_schedule(const lr_schedule&) = default;
    lr_schedule& operator=(const lr_schedule&) = default;

    static void require(bool ok, const char* who, const char* name, double v, const char* domain) {
        detail::require_hyper(ok, who, name, v, domain);
    }

  private:
    std::uint64_t step_ = 0;
};

/// lr(step) = lr for every step.
class constant_schedule final : public lr_schedule {
  public:
    explicit constant_schedule(double lr) : lr_(lr) {
        require(std::isfinite(lr) && lr >= 0, "constant", "lr", lr, "finite, >= 0");
    }
    const char* kind() const noexcept override { return "constant"; }
    double lr_at(std::uint64_t) const noexcept override { return lr_; }
    std::vector<hyperparameter> hyperparameters() const override { return {{"lr", lr_}}; }

  private:
    double lr_;
};

/// Options of step_decay.
struct step_decay_options {
    double base_lr = 1e-3;           ///< finite >= 0
    std::uint64_t step_size = 1000;  ///< > 0
    double gamma = 0.1;              ///< finite >= 0
};

/// Step decay (torch StepLR): lr(s) = base_lr · gamma^floor(s / step_size).
/// Example: base 1, step_size 3, gamma 0.5: steps 0..2 -> 1, 3..5 -> 0.5, 6 -> 0.25.
class step_decay final : public lr_schedule {
  public:
    explicit step_decay(step_decay_options o) : o_(o) {
        require(std::isfinite(o.base_lr) && o.base_lr >= 0, "step_decay", "base_lr", o.base_lr, "finite, >= 0");
        require(o.step_size > 0, "step_decay", "step_size", static_cast<double>(o.step_size), "> 0");
        require(std::isfinite(o.gamma) && o.gamma >= 0, "step_decay", "gamma", o.gamma, "finite, >= 0");
    }
    const char* kind() const noexcept override { return "step_decay"; }
    double lr_at(std::uint64_t s) const noexcept override {
        return o_.base_lr * std::pow(o_.gamma, static_cast<double>(s / o_.step_size));
    }
    std::vector<hyperparameter> hyperparameters() const override {
        return {{"base_lr", o_.base_lr}, {"step_size", static_cast<double>(o_.step_size)}, {"gamma", o_.gamma}};
    }

  private:
    step_decay_options o_;
};

/// Options of cosine_warmup and linear_warmup.
struct warmup_options {
    double base_lr = 1e-3;             ///< peak rate, finite >= 0
    std::uint64_t warmup_steps = 0;    ///< W <= total_steps
    std::uint64_t total_steps = 1000;  ///< T > 0
    double min_lr = 0.0;               ///< floor reached at T, finite in [0, base_lr]
};

namespace detail {
inline void check_warmup(const warmup_options& o, const char* who) {
    detail::require_hyper(std::isfinite(o.base_lr) && o.base_lr >= 0, who, "base_lr", o.base_lr, "finite, >= 0");
    detail::require_hyper(o.total_steps > 0, who, "total_steps", static_cast<double>(o.total_steps), "> 0");
    detail::require_hyper(o.warmup_steps <= o.total_steps, who, "warmup_steps", static_cast<double>(o.warmup_steps),
                          "<= total_steps");
    detail::require_hyper(std::isfinite(o.min_lr) && o.min_lr >= 0 && o.min_lr <= o.base_lr, who, "min_lr", o.min_lr,
                          "finite, in [0, base_lr]");
}
inline std::vector<hyperparameter> warmup_hyper(const warmup_options& o) {
    return {{"base_lr", o.base_lr},
            {"warmup_steps", static_cast<double>(o.warmup_steps)},
            {"total_steps", static_cast<double>(o.total_steps)},
            {"min_lr", o.min_lr}};
}
}  // namespace detail

/// Linear warmup then cosine decay (W = warmup_steps, T = total_steps, s = step):
///
///     s < W:       lr = base_lr · s / W
///     W <= s < T:  lr = min_lr + (base_lr − min_lr) · ½ (1 + cos(π (s − W) / (T − W)))
///     s >= T:      lr = min_lr
///
/// Example: base 1, W 10, T 110, min 0: s = 0 -> 0, 5 -> 0.5, 10 -> 1, 60 -> 0.5, 110 -> 0.
class cosine_warmup final : public lr_schedule {
  public:
    explicit cosine_warmup(warmup_options o) : o_(o) { detail::check_warmup(o, "cosine_warmup"); }
    const char* kind() const noexcept override { return "cosine_warmup"; }
    double lr_at(std::uint64_t s) const noexcept override {
        if (s < o_.warmup_steps) return o_.base_lr * static_cast<double>(s) / static_cast<double>(o_.warmup_steps);
        if (s >= o_.total_steps) return o_.min_lr;
        const double progress =
            static_cast<double>(s - o_.warmup_steps) / static_cast<double>(o_.total_steps - o_.warmup_steps);
        constexpr double pi = 3.141592653589793238462643383279502884;
        return o_.min_lr + (o_.base_lr - o_.min_lr) * 0.5 * (1.0 + std::cos(pi * progress));
    }
    std::vector<hyperparameter> hyperparameters() const override { return detail::warmup_hyper(o_); }

  private:
    warmup_options o_;
};

/// Linear warmup then linear decay:
///
///     s < W:       lr = base_lr · s / W
///     W <= s < T:  lr = min_lr + (base_lr − min_lr) · (T − s) / (T − W)
///     s >= T:      lr = min_lr
///
/// Example: base 2, W 4, T 12: s = 2 -> 1, 4 -> 2, 8 -> 1, 12 -> 0.
class linear_warmup final : public lr_schedule {
  public:
    explicit linear_warmup(warmup_options o) : o_(o) { detail::check_warmup(o, "linear_warmup"); }
    const char* kind() const noexcept override { return "linear_warmup"; }
    double lr_at(std::uint64_t s) const noexcept override {
        if (s < o_.warmup_steps) return o_.base_lr * static_cast<double>(s) / static_cast<double>(o_.warmup_steps);
        if (s >= o_.total_steps) return o_.min_lr;
        const double remaining =
            static_cast<double>(o_.total_steps - s) / static_cast<double>(o_.total_steps - o_.warmup_steps);
        return o_.min_lr + (o_.base_lr - o_.min_lr) * remaining;
    }
    std::vector<hyperparameter> hyperparameters() const override { return detail::warmup_hyper(o_); }

  private:
    warmup_options o_;
};

}  // namespace exprgrad::nn
