#pragma once
// A move-only callable with a small inline buffer: a lambda capturing up to
// four pointers (or the chosen capacity) is stored without a heap
// allocation. A trivially copyable callable stored inline (a lambda
// capturing pointers and numbers) moves by copying the buffer and needs no
// destruction, so moving and dropping it makes no indirect call.

#include <phaseloop/detail/invoke.hpp>

#include <cstddef>
#include <cstring>
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
    void (*relocate)(void* dst, void* src) noexcept;  // move-construct into dst, destroy src; null: copy the bytes
    void (*destroy)(void* self) noexcept;             // null: nothing to do
  };

  template <class F>
  static constexpr bool fits_inline = sizeof(F) <= Capacity && alignof(F) <= alignof(void*) &&
                                      std::is_nothrow_move_constructible_v<F>;

  template <class F>
  static constexpr bool trivial = std::is_trivially_copyable_v<F> && std::is_trivially_destructible_v<F>;

  template <class F>
  static void relocate_inline(void* dst, void* src) noexcept {
    ::new (dst) F(std::move(*static_cast<F*>(src)));
    static_cast<F*>(src)->~F();
  }

  template <class F>
  static void destroy_inline(void* self) noexcept {
    static_cast<F*>(self)->~F();
  }

  template <class F>
  static constexpr vtable inline_vtable{
      [](void* self, Args&&... args) -> R {
        return detail::invoke(*static_cast<F*>(self), std::forward<Args>(args)...);
      },
      trivial<F> ? nullptr : &relocate_inline<F>,
      trivial<F> ? nullptr : &destroy_inline<F>,
  };

  template <class F>
  static constexpr vtable heap_vtable{
      [](void* self, Args&&... args) -> R {
        return detail::invoke(**static_cast<F**>(self), std::forward<Args>(args)...);
      },
      nullptr,  // the pointer moves with the bytes
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
    if constexpr (std::is_pointer_v<std::remove_cvref_t<F>> || std::is_member_pointer_v<std::remove_cvref_t<F>>) {
      if (f == nullptr) return;  // a null function pointer makes an empty function, as std::function
    }
    if constexpr (fits_inline<D>) {
      ::new (static_cast<void*>(buffer_)) D(std::forward<F>(f));
      vtable_ = &inline_vtable<D>;
    } else {
      *reinterpret_cast<D**>(buffer_) = new D(std::forward<F>(f));
      vtable_ = &heap_vtable<D>;
    }
  }

  unique_function(unique_function&& other) noexcept { take(other); }

  unique_function& operator=(unique_function&& other) noexcept {
    if (this != &other) {
      reset();
      take(other);
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
    if (vtable_ != nullptr) {
      const vtable* v = std::exchange(vtable_, nullptr);
      if (v->destroy != nullptr) v->destroy(buffer_);
    }
  }

 private:
  /// Moves other's callable here (this holds none).
  void take(unique_function& other) noexcept {
    if (other.vtable_ == nullptr) return;
    if (other.vtable_->relocate != nullptr)
      other.vtable_->relocate(buffer_, other.buffer_);
    else
      copy_buffer(other);
    vtable_ = std::exchange(other.vtable_, nullptr);
  }

  // The callable may fill only part of the buffer; copying the rest as bytes
  // is well defined (unsigned char), but GCC's flow analysis reports it.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
  void copy_buffer(const unique_function& other) noexcept { std::memcpy(buffer_, other.buffer_, Capacity); }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

  alignas(void*) unsigned char buffer_[Capacity];
  const vtable* vtable_ = nullptr;
};

}  // namespace phaseloop::detail
