#pragma once
// Coroutines as async functions: a function returning promise<T> is a
// coroutine; `co_await p` resumes one microtask after p settles and rethrows a
// rejection; an exception leaving the body rejects its promise
// (docs/promises.md).

#include <phaseloop/version.hpp>
#include <phaseloop/promise/core.hpp>

#include <coroutine>
#include <exception>
#include <type_traits>
#include <utility>

namespace phaseloop {

// ----------------------------------------------------------- coroutines

namespace detail {

struct coroutine_tag {};

// A loop among a coroutine's arguments: a loop reference or pointer.
template <class A>
loop_core* loop_argument(A& a) noexcept {
  if constexpr (std::is_convertible_v<A*, loop_core*>)
    return static_cast<loop_core*>(&a);
  else if constexpr (std::is_pointer_v<A> && std::is_convertible_v<A, loop_core*>)
    return static_cast<loop_core*>(a);
  else
    return nullptr;
}

template <class... A>
loop_core* find_loop(A&... args) {
  loop_core* found = nullptr;
  ((found = found != nullptr ? found : loop_argument(args)), ...);
  if (found == nullptr) found = thread_loop;
  if (found == nullptr)
    throw std::logic_error(
        "phaseloop: a coroutine returning promise<T> needs a loop: pass one as an argument, or construct one on "
        "this thread first");
  return found;
}

// The coroutine promise of a function returning promise<T>: an async function.
template <class T>
struct coroutine_promise_base : coroutine_tag {
  template <class... A>
  explicit coroutine_promise_base(A&... args) : node(new state<T>(find_loop(args...))) {}
  coroutine_promise_base(const coroutine_promise_base&) = delete;
  coroutine_promise_base& operator=(const coroutine_promise_base&) = delete;
  ~coroutine_promise_base() { node->release(); }

  promise<T> get_return_object() noexcept {
    node->add_ref();
    return promise_access::wrap<T>(node);
  }
  std::suspend_never initial_suspend() const noexcept { return {}; }  // runs to its first co_await
  std::suspend_never final_suspend() const noexcept { return {}; }
  void unhandled_exception() noexcept {
    if (!node->resolved) node->reject_now(std::current_exception());
  }

  state<T>* node;
};

template <class T>
struct coroutine_promise : coroutine_promise_base<T> {
  template <class... A>
  explicit coroutine_promise(A&... args) : coroutine_promise_base<T>(args...) {}
  template <class U = T>
    requires std::convertible_to<U &&, T>
  void return_value(U&& value) {
    this->node->resolve_value(std::forward<U>(value));
  }
  /// co_return of a promise adopts it (an async function returning a promise).
  void return_value(const promise<T>& other) { this->node->follow(promise_access::node(other)); }
};

template <>
struct coroutine_promise<void> : coroutine_promise_base<void> {
  template <class... A>
  explicit coroutine_promise(A&... args) : coroutine_promise_base<void>(args...) {}
  void return_void() { node->resolve_value(); }
};

// co_await promise<T>: a reaction on the awaited promise. It lives in the
// suspended coroutine's frame; a frame of one of our coroutines is owned by
// the reaction (dropping it destroys the frame); other coroutine types keep
// their own ownership.
template <class T>
class awaiter : reaction {
 public:
  explicit awaiter(state<T>* n) noexcept : node_(node_ptr<state<T>>::share(n)) {}
  awaiter(const awaiter&) = delete;
  awaiter& operator=(const awaiter&) = delete;
  ~awaiter() = default;

  bool await_ready() const noexcept { return false; }  // even a settled promise resumes in a job

  template <class P>
  void await_suspend(std::coroutine_handle<P> h) {
    frame_ = h;
    ops = std::is_base_of_v<coroutine_tag, P> ? &owning_ops : &borrowed_ops;
    node_->add_reaction(*this);
  }

  T await_resume() {
    if (node_->status == promise_status::rejected) std::rethrow_exception(node_->error);
    if constexpr (!std::is_void_v<T>) return node_->take();
  }

 private:
  static awaiter& from(reaction& r) noexcept { return static_cast<awaiter&>(r); }
  static void run(reaction& r, promise_node&) { from(r).frame_.resume(); }
  static void destroy_frame(reaction& r) noexcept { from(r).frame_.destroy(); }
  static void forget(reaction&) noexcept {}
  static constexpr reaction_ops owning_ops{&run, &destroy_frame};
  static constexpr reaction_ops borrowed_ops{&run, &forget};

  node_ptr<state<T>> node_;
  std::coroutine_handle<> frame_;
};

}  // namespace detail

}  // namespace phaseloop
