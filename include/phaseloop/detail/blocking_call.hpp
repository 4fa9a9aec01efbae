#pragma once
// The machinery under fs and dns: run a blocking system call on the loop's
// executor and hand its (error, value) to an err-first callback on the loop
// thread, in the poll phase.

#include <phaseloop/inbox.hpp>
#include <phaseloop/use_promise.hpp>

#include <concepts>
#include <memory>
#include <new>
#include <system_error>
#include <type_traits>
#include <utility>

namespace phaseloop::detail {

/// The value of an operation that reports only an error (close, unlink, ...):
/// its callback is called as cb(error_code).
struct no_value {};

/// What a callback for an operation with result T must accept.
template <class Cb, class T>
concept err_first_callback =
    (std::is_same_v<T, no_value> && std::invocable<Cb&, std::error_code>) ||
    (!std::is_same_v<T, no_value> && std::invocable<Cb&, std::error_code, T>);

/// Run `op(T& out) -> std::error_code` on the executor of `loop`, then
/// `cb(error, out)` (or `cb(error)` when T is no_value) on the loop thread.
/// A request cancelled before it ran calls cb with operation_canceled and a
/// value-initialised T. Memory running out inside `op` becomes
/// not_enough_memory; nothing the operation does escapes as an exception.
/// One allocation per call: the state shared by the work and its completion,
/// owned by the completion, so a loop destroyed with the call pending frees it.
///
/// With the use_promise token for `cb`, it returns a promise of T (void for
/// no_value) instead of the loop's work handle.
template <class T, class Loop, class Op, class Cb>
auto queue_now(Loop& loop, work_kind kind, Op op, Cb cb);

template <class T, class Loop, class Op, class Cb>
auto queue_blocking(Loop& loop, work_kind kind, Op op, Cb cb) {
  if constexpr (is_promise_token<Cb>) {
    using R = std::conditional_t<std::is_same_v<T, no_value>, void, T>;
    return promise_for<R>(
        loop, cb, [&](resolver<R> r) { return queue_blocking<T>(loop, kind, std::move(op), std::move(r)); },
        [](Loop& l, const auto& handle) { (void)l.cancel(handle); });
  } else {
    return queue_now<T>(loop, kind, std::move(op), std::move(cb));
  }
}

template <class T, class Loop, class Op, class Cb>
auto queue_now(Loop& loop, work_kind kind, Op op, Cb cb) {
  struct state {
    Op op;
    Cb cb;
    std::error_code error;
    T value{};
  };
  auto owned = std::make_unique<state>(state{std::move(op), std::move(cb), {}, T{}});
  state* shared = owned.get();
  return loop.queue_work(
      [shared] {
        try {
          shared->error = shared->op(shared->value);
        } catch (const std::bad_alloc&) {
          shared->error = std::make_error_code(std::errc::not_enough_memory);
        } catch (const std::system_error& e) {
          shared->error = e.code();
        } catch (...) {
          shared->error = std::make_error_code(std::errc::io_error);
        }
      },
      [owned = std::move(owned)](std::error_code cancelled) mutable {
        state& s = *owned;
        if (cancelled) s.error = cancelled;
        if constexpr (std::is_same_v<T, no_value>)
          s.cb(s.error);
        else
          s.cb(s.error, std::move(s.value));
      },
      kind);
}

}  // namespace phaseloop::detail
