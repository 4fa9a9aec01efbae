#pragma once
// use_promise: a completion token. Passed where an fs or dns call takes its
// callback, it makes the call return a promise of the result instead
// (Asio's completion tokens): `fs::stat(loop, path, use_promise)` is a
// promise<fs::stats>. `use_promise(signal)` makes the call abortable: an
// abort rejects the promise at once with the signal's reason and cancels the
// request if the thread pool has not started it (libuv's uv_cancel); a call
// already running finishes unobserved. Every fs::promises function is its
// callback form with this token.

#include <phaseloop/abort.hpp>

#include <type_traits>
#include <utility>

namespace phaseloop {

/// The type of `use_promise`.
struct use_promise_t {
  /// `use_promise(signal)`: the token with a cancellation signal.
  struct with_signal {
    abort_signal signal;
  };
  /// The token carrying `signal`.
  with_signal operator()(abort_signal signal) const { return {std::move(signal)}; }
};

/// Pass in place of a callback to get a promise of the result.
inline constexpr use_promise_t use_promise{};

namespace detail {

/// Whether Cb is the use_promise token (with or without a signal).
template <class Cb>
inline constexpr bool is_promise_token =
    std::is_same_v<std::decay_t<Cb>, use_promise_t> || std::is_same_v<std::decay_t<Cb>, use_promise_t::with_signal>;

inline abort_signal token_signal(const use_promise_t&) noexcept { return {}; }
inline abort_signal token_signal(const use_promise_t::with_signal& t) noexcept { return t.signal; }

/// Start `start(callback)` with a resolver as its err-first callback and give
/// the promise; with a signal, `cancel(handle)` runs on abort, `handle` being
/// what `start` returned.
template <class T, class Loop, class Token, class Start, class Cancel>
promise<T> promise_for(Loop& loop, const Token& token, Start start, Cancel cancel) {
  loop_core& core = loop;
  abort_signal signal = token_signal(token);
  if (signal.aborted()) return make_rejected<T>(core, to_exception_ptr(signal.reason()));
  auto made = make_promise<T>(core);
  auto handle = start(std::move(made.second));
  if (!signal.can_abort()) return std::move(made.first);
  return abortable(std::move(made.first), signal, [l = hold_loop(loop), handle, cancel]() mutable {
    cancel(held_loop(l), handle);
  });
}

}  // namespace detail

}  // namespace phaseloop
