#pragma once
// A move-only callable with a small inline buffer: a lambda capturing up to
// four pointers is stored without a heap allocation.

#include <cstddef>
#include <functional>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace phaseloop::detail {

template <class Signature, std::size_t Capacity = 4 * sizeof(void*)>
class unique_function;

template <class R, class... Args, std::size_t Capacity>
class unique_function<R(Args...), Capacity> {
  struct vtable {
    R (*call)(void* self, Args&&... args);
    void (*relocate)(void* dst, void* src) noexcept;  // move-construct into dst, destroy src
    void (*destroy)(void* self) noexcept;
  };

  template <class F>
  static constexpr bool fits_inline = sizeof(F) <= Capacity && alignof(F) <= alignof(void*) &&
                                      std::is_nothrow_move_constructible_v<F>;

  template <class F>
  static constexpr vtable inline_vtable{
      [](void* self, Args&&... args) -> R {
        return std::invoke(*static_cast<F*>(self), std::forward<Args>(args)...);
      },
      [](void* dst, void* src) noexcept {
        ::new (dst) F(std::move(*static_cast<F*>(src)));
        static_cast<F*>(src)->~F();
      },
      [](void* self) noexcept { static_cast<F*>(self)->~F(); },
  };

  template <class F>
  static constexpr vtable heap_vtable{
      [](void* self, Args&&... args) -> R {
        return std::invoke(**static_cast<F**>(self), std::forward<Args>(args)...);
      },
      [](void* dst, void* src) noexcept { *static_cast<F**>(dst) = *static_cast<F**>(src); },
      [](void* self) noexcept { delete *static_cast<F**>(self); },
  };

 public:
  unique_function() noexcept = default;
  unique_function(std::nullptr_t) noexcept {}

  template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, unique_function> &&
             std::is_invocable_r_v<R, std::decay_t<F>&, Args...>)
  unique_function(F&& f) {  // NOLINT(google-explicit-constructor): callables convert implicitly
    using D = std::decay_t<F>;
    if constexpr (fits_inline<D>) {
      ::new (static_cast<void*>(buffer_)) D(std::forward<F>(f));
      vtable_ = &inline_vtable<D>;
    } else {
      *reinterpret_cast<D**>(buffer_) = new D(std::forward<F>(f));
      vtable_ = &heap_vtable<D>;
    }
  }

  unique_function(unique_function&& other) noexcept : vtable_(other.vtable_) {
    if (vtable_ != nullptr) {
      vtable_->relocate(buffer_, other.buffer_);
      other.vtable_ = nullptr;
    }
  }

  unique_function& operator=(unique_function&& other) noexcept {
    if (this != &other) {
      reset();
      if (other.vtable_ != nullptr) {
        other.vtable_->relocate(buffer_, other.buffer_);
        vtable_ = std::exchange(other.vtable_, nullptr);
      }
    }
    return *this;
  }

  unique_function& operator=(std::nullptr_t) noexcept {
    reset();
    return *this;
  }

  unique_function(const unique_function&) = delete;
  unique_function& operator=(const unique_function&) = delete;
  ~unique_function() { reset(); }

  explicit operator bool() const noexcept { return vtable_ != nullptr; }

  R operator()(Args... args) { return vtable_->call(buffer_, std::forward<Args>(args)...); }

  void reset() noexcept {
    if (vtable_ != nullptr) std::exchange(vtable_, nullptr)->destroy(buffer_);
  }

 private:
  alignas(void*) unsigned char buffer_[Capacity];
  const vtable* vtable_ = nullptr;
};

}  // namespace phaseloop::detail
