// Named trainable parameters: a value and its gradient, kept in insertion order with lookup by name.
//
//   nn::parameter_set<float> params;
//   auto& w = params.add("layer0.weight", xt::xarray<float>::from_shape({784, 128}));
//   nn::init::kaiming_uniform(w.value, gen);
//   ... fill w.grad ...; optimizer.step(params); params.zero_grad();
//
// Names become file names in checkpoints (see nn/checkpoint.hpp), so they are restricted to a portable
// alphabet; references returned by add() stay valid while the set lives (the storage is a deque).
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <cstddef>
#include <deque>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include <xtensor/xarray.hpp>
#include <xtensor/xbuilder.hpp>

#include "exprgrad/format.hpp"

namespace exprgrad::nn {

/// The element types the training utilities support.
template <class T>
concept parameter_value = std::is_same_v<T, float> || std::is_same_v<T, double>;

/// One named parameter. `grad` has the shape of `value` (add() sets it to zeros); optimizers read
/// `grad` and update `value` in place, and throw if the two shapes differ.
template <parameter_value T>
struct parameter {
    std::string name;
    xt::xarray<T> value;
    xt::xarray<T> grad;

    /// Number of elements of `value`.
    std::size_t size() const noexcept { return value.size(); }

    /// Sets `grad` to zeros of the shape of `value` (reallocating only when the shapes differ).
    void zero_grad() {
        if (grad.shape() != value.shape()) grad.resize(value.shape());
        grad.fill(T(0));
    }

    /// grad += g, element by element in row-major order; g must have as many elements as `value`
    /// (its shape is not checked, so a flat VJP buffer fits). A `grad` of another shape is reset to zeros
    /// first. NaN in g propagates. Example: `w.accumulate_grad(prog.grad_of<1>());`
    void accumulate_grad(const xt::xarray<T>& g) {
        if (grad.shape() != value.shape()) grad = xt::zeros<T>(value.shape());
        T* d = grad.data();
        const T* s = g.data();
        for (std::size_t i = 0; i < g.size(); ++i) d[i] += s[i];
    }
};

/// Whether `name` may name a parameter: 1 to 200 characters from [A-Za-z0-9_.-], not starting with
/// '.' or '-' (so it is a safe, portable file name and never "." or ".."). Example: "mlp.0.weight".
inline bool is_valid_parameter_name(std::string_view name) noexcept {
    if (name.empty() || name.size() > 200 || name.front() == '.' || name.front() == '-') return false;
    for (const char c : name) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                        c == '.' || c == '-';
        if (!ok) return false;
    }
    return true;
}

/// Parameters in insertion order with lookup by name. Iteration (begin/end) visits them in insertion
/// order, which is also the order optimizers and checkpoints use.
namespace detail {
/// Throws std::invalid_argument naming the parameter when the product of `shape` times `element_size`
/// does not fit in size_t (a shape such as {1 << 40, 1 << 40} would wrap to 0 elements). A shape with a 0
/// dimension holds no elements and is accepted whatever its other dimensions.
template <class Shape>
void check_element_count(const std::string& name, const Shape& shape, std::size_t element_size) {
    for (const std::size_t d : shape)
        if (d == 0) return;
    std::size_t count = 1;
    for (const std::size_t d : shape) {
        if (count > static_cast<std::size_t>(-1) / element_size / d) {
            throw std::invalid_argument("nn::parameter_set::add: parameter \"" + name + "\" has shape " +
                                        format_shape(shape) + ", whose element count overflows");
        }
        count *= d;
    }
}
}  // namespace detail

template <parameter_value T>
class parameter_set {
  public:
    using value_type = parameter<T>;
    using iterator = typename std::deque<parameter<T>>::iterator;
    using const_iterator = typename std::deque<parameter<T>>::const_iterator;

    parameter_set() = default;
    // Copying would silently duplicate the references that layers keep into the set; moving keeps them
    // valid (a deque's move transfers its blocks).
    parameter_set(const parameter_set&) = delete;
    parameter_set& operator=(const parameter_set&) = delete;
    parameter_set(parameter_set&&) = default;
    parameter_set& operator=(parameter_set&&) = default;

    /// Adds a parameter with the given initial value and a zero gradient of the same shape; returns a
    /// reference that stays valid for the life of the set. Throws std::invalid_argument if the name is
    /// not valid (is_valid_parameter_name) or already present, or if the shape's element count times
    /// sizeof(T) does not fit in size_t (e.g. {1 << 40, 1 << 40}: the product would wrap).
    /// Example: `auto& b = params.add("bias", xt::zeros<float>({16}));`
    parameter<T>& add(std::string name, xt::xarray<T> value) {
        if (!is_valid_parameter_name(name))
            throw std::invalid_argument("nn::parameter_set::add: invalid parameter name \"" + name +
                                        "\" (use 1-200 characters from [A-Za-z0-9_.-], not starting with '.' or '-')");
        if (index_.count(name) != 0)
            throw std::invalid_argument("nn::parameter_set::add: duplicate parameter name \"" + name + "\"");
        detail::check_element_count(name, value.shape(), sizeof(T));
        xt::xarray<T> grad = xt::zeros<T>(value.shape());
        index_.emplace(name, params_.size());
        params_.push_back(parameter<T>{std::move(name), std::move(value), std::move(grad)});
        return params_.back();
    }

    /// The parameter named `name`, or nullptr.
    parameter<T>* find(std::string_view name) noexcept {
        const auto it = index_.find(std::string(name));
        return it == index_.end() ? nullptr : &params_[it->second];
    }
    const parameter<T>* find(std::string_view name) const noexcept {
        const auto it = index_.find(std::string(name));
        return it == index_.end() ? nullptr : &params_[it->second];
    }

    /// The parameter named `name`; throws std::out_of_range naming it if absent.
    parameter<T>& at(std::string_view name) {
        if (auto* p = find(name)) return *p;
        throw std::out_of_range("nn::parameter_set: no parameter named \"" + std::string(name) + "\"");
    }
    const parameter<T>& at(std::string_view name) const {
        if (const auto* p = find(name)) return *p;
        throw std::out_of_range("nn::parameter_set: no parameter named \"" + std::string(name) + "\"");
    }

    /// Whether a parameter named `name` exists.
    bool contains(std::string_view name) const noexcept { return find(name) != nullptr; }

    /// The i-th parameter in insertion order (unchecked, like std::vector::operator[]).
    parameter<T>& operator[](std::size_t i) noexcept { return params_[i]; }
    const parameter<T>& operator[](std::size_t i) const noexcept { return params_[i]; }

    /// Number of parameters (not elements; see numel()).
    std::size_t size() const noexcept { return params_.size(); }
    bool empty() const noexcept { return params_.empty(); }

    /// Total number of elements over all parameter values.
    std::size_t numel() const noexcept {
        std::size_t n = 0;
        for (const auto& p : params_) n += p.value.size();
        return n;
    }

    /// Sets every gradient to zero (see parameter::zero_grad).
    void zero_grad() {
        for (auto& p : params_) p.zero_grad();
    }

    iterator begin() noexcept { return params_.begin(); }
    iterator end() noexcept { return params_.end(); }
    const_iterator begin() const noexcept { return params_.begin(); }
    const_iterator end() const noexcept { return params_.end(); }

  private:
    std::deque<parameter<T>> params_;
    std::unordered_map<std::string, std::size_t> index_;
};

}  // namespace exprgrad::nn
