// The optimizer interface shared by sgd, adam and adamw: hyperparameters, the saved state
// (optimizer_state) and the base class `optimizer` that training code and checkpoints take.
// The update rules and the NaN/Inf policy are described in nn/optimizer.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <xtensor/xarray.hpp>
#include <xtensor/xbuilder.hpp>

#include "exprgrad/format.hpp"
#include "exprgrad/nn/parameters.hpp"

namespace exprgrad::nn {

/// A named scalar hyperparameter (booleans are 0 or 1).
struct hyperparameter {
    std::string name;
    double value;
};

/// Everything an optimizer needs to continue exactly where it stopped.
template <parameter_value T>
struct optimizer_state {
    std::string kind;                       ///< "sgd", "adam" or "adamw"
    std::uint64_t step = 0;                 ///< number of step() calls so far
    std::vector<hyperparameter> hyper;      ///< in the optimizer's fixed order, lr first
    std::vector<std::string> buffer_names;  ///< e.g. {"exp_avg", "exp_avg_sq"}
    std::vector<std::string> param_names;   ///< parameters the buffers belong to (empty before the first step)
    std::vector<std::vector<xt::xarray<T>>> buffers;  ///< buffers[b][p]: buffer b of parameter p
};

namespace detail {

inline void require_hyper(bool ok, const char* who, const char* name, double v, const char* domain) {
    if (!ok)
        throw std::invalid_argument(std::string("nn::") + who + ": " + name + " = " + format_number(v) +
                                    " is out of range (" + domain + ")");
}

}  // namespace detail

/// The common interface of the optimizers, so training code and checkpoints can take any of them.
template <parameter_value T>
class optimizer {
  public:
    virtual ~optimizer() = default;

    /// "sgd", "adam" or "adamw".
    virtual const char* kind() const noexcept = 0;

    /// Names of the per-parameter state buffers, in a fixed order.
    virtual std::vector<std::string> buffer_names() const = 0;

    /// The hyperparameters, lr first, in a fixed order.
    virtual std::vector<hyperparameter> hyperparameters() const = 0;

    /// Learning rate used by the next step().
    double lr() const noexcept { return lr_; }

    /// Sets the learning rate (finite, >= 0; otherwise throws std::invalid_argument).
    void set_lr(double lr) {
        detail::require_hyper(std::isfinite(lr) && lr >= 0.0, kind(), "lr", lr, "finite, >= 0");
        lr_ = lr;
    }

    /// Number of completed step() calls (t of the formulas after the step).
    std::uint64_t step_count() const noexcept { return step_; }

    /// Names of the parameters the state is bound to, in order (empty before the first step).
    const std::vector<std::string>& param_names() const noexcept { return names_; }

    /// The state buffers, buffers()[b][p], without copying (for checkpoint writers).
    const std::vector<std::vector<xt::xarray<T>>>& buffers() const noexcept { return buffers_; }

    /// Applies one update to every parameter of `params` from its `grad` (formulas at each class).
    /// The first call binds the state to the parameters' names and shapes; later calls (and calls after
    /// load_state) must pass a set with the same names in the same order and the same shapes, else
    /// std::invalid_argument.
    void step(parameter_set<T>& params) {
        check_params(params);
        if (!bound()) bind(params);
        ++step_;
        update(params, step_);
    }

    /// A copy of the whole state.
    optimizer_state<T> state() const {
        return optimizer_state<T>{kind(), step_, hyperparameters(), buffer_names(), names_, buffers_};
    }

    /// Throws std::invalid_argument if `s` was written by a differently configured optimizer: other
    /// kind, other hyperparameter names or values (lr excepted; it must only be finite and >= 0), or
    /// other buffer names. Ignores the step and the buffers themselves.
    void check_compatible(const optimizer_state<T>& s) const {
        const std::string who = std::string("nn::") + kind() + "::load_state: ";
        if (s.kind != kind()) throw std::invalid_argument(who + "state is for a \"" + s.kind + "\" optimizer");
        const auto mine = hyperparameters();
        if (s.hyper.size() != mine.size())
            throw std::invalid_argument(who + "state has " + std::to_string(s.hyper.size()) +
                                        " hyperparameters, expected " + std::to_string(mine.size()));
        for (std::size_t i = 0; i < mine.size(); ++i) {
            const auto& h = s.hyper[i];
            if (h.name != mine[i].name)
                throw std::invalid_argument(who + "hyperparameter " + std::to_string(i) + " is \"" + h.name +
                                            "\", expected \"" + mine[i].name + "\"");
            if (i == 0) {
                if (!(std::isfinite(h.value) && h.value >= 0.0))
                    throw std::invalid_argument(who + "saved lr = " + format_number(h.value) +
                                                " is not finite and >= 0");
            } else if (!(h.value == mine[i].value)) {
                throw std::invalid_argument(who + "saved " + h.name + " = " + format_number(h.value) +
                                            " differs from this optimizer's " + format_number(mine[i].value));
            }
        }
        if (s.buffer_names != buffer_names()) throw std::invalid_argument(who + "state has other buffer names");
    }

    /// Throws std::invalid_argument describing the first problem if `s` cannot be loaded into this
    /// optimizer: check_compatible fails, the buffer lists are inconsistent with the parameter names,
    /// buffers of one parameter differ in shape, or a parameter name is invalid.
    void check_state(const optimizer_state<T>& s) const {
        check_compatible(s);
        const std::string who = std::string("nn::") + kind() + "::load_state: ";
        if (s.buffers.size() != s.buffer_names.size())
            throw std::invalid_argument(who + "state has " + std::to_string(s.buffers.size()) + " buffer lists for " +
                                        std::to_string(s.buffer_names.size()) + " buffer names");
        for (const auto& list : s.buffers)
            if (list.size() != s.param_names.size())
                throw std::invalid_argument(who + "a buffer list has " + std::to_string(list.size()) + " arrays for " +
                                            std::to_string(s.param_names.size()) + " parameters");
        for (std::size_t p = 0; p < s.param_names.size(); ++p) {
            if (!is_valid_parameter_name(s.param_names[p]))
                throw std::invalid_argument(who + "invalid parameter name \"" + s.param_names[p] + "\"");
            for (std::size_t b = 1; b < s.buffers.size(); ++b)
                if (s.buffers[b][p].shape() != s.buffers[0][p].shape())
                    throw std::invalid_argument(who + "buffers of \"" + s.param_names[p] + "\" differ in shape");
        }
    }

    /// Replaces the state by `s` after check_state(s) (strong guarantee: on a throw nothing changed).
    void load_state(optimizer_state<T> s) {
        check_state(s);
        lr_ = s.hyper[0].value;
        step_ = s.step;
        names_ = std::move(s.param_names);
        buffers_ = std::move(s.buffers);
    }

  protected:
    explicit optimizer(double lr) : lr_(lr) {}
    optimizer(const optimizer&) = default;
    optimizer& operator=(const optimizer&) = default;

    /// Applies step number t (1-based) to the bound parameters; buffers_ are allocated.
    virtual void update(parameter_set<T>& params, std::uint64_t t) = 0;

    // buffers_[b][p]; bound buffers start as zeros (SGD's momentum buffer is then overwritten by the
    // first gradient, as PyTorch's clone).
    std::vector<std::vector<xt::xarray<T>>> buffers_;

  private:
    void check_params(const parameter_set<T>& params) const {
        const std::string who = std::string("nn::") + kind() + "::step: ";
        for (const auto& p : params)
            if (p.grad.shape() != p.value.shape())
                throw std::invalid_argument(who + "parameter \"" + p.name + "\" has value shape " +
                                            format_shape(p.value.shape()) + " but grad shape " +
                                            format_shape(p.grad.shape()));
        if (!bound()) return;
        if (params.size() != names_.size())
            throw std::invalid_argument(who + "the optimizer state holds " + std::to_string(names_.size()) +
                                        " parameters, the set passed has " + std::to_string(params.size()));
        for (std::size_t i = 0; i < names_.size(); ++i) {
            if (params[i].name != names_[i])
                throw std::invalid_argument(who + "parameter " + std::to_string(i) + " is \"" + params[i].name +
                                            "\", the optimizer state has \"" + names_[i] + "\"");
            for (const auto& list : buffers_)
                if (list[i].shape() != params[i].value.shape())
                    throw std::invalid_argument(who + "parameter \"" + names_[i] + "\" has shape " +
                                                format_shape(params[i].value.shape()) +
                                                ", its optimizer state has shape " + format_shape(list[i].shape()));
        }
    }

    // The state is bound from the first step on (even to an empty set), so a later set must match it.
    bool bound() const noexcept { return step_ != 0 || !names_.empty(); }

    void bind(const parameter_set<T>& params) {
        std::vector<std::string> names;
        std::vector<std::vector<xt::xarray<T>>> bufs(buffer_names().size());
        for (const auto& p : params) names.push_back(p.name);
        for (auto& list : bufs)
            for (const auto& p : params) list.push_back(xt::zeros<T>(p.value.shape()));
        names_ = std::move(names);
        buffers_ = std::move(bufs);
    }

    double lr_;
    std::uint64_t step_ = 0;
    std::vector<std::string> names_;
};

}  // namespace exprgrad::nn
