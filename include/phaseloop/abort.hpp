#pragma once
// Cancellation signals, Node's AbortController and AbortSignal: a controller
// aborts, every operation given its signal gives up at once with the signal's
// reason, and whatever it was waiting on (a timer, queued work) stops keeping
// the loop alive. The promise forms that take a signal are here too:
// delay/immediate (timersPromises.setTimeout/setImmediate with { signal }),
// work (queue_work) and `abortable`, which makes any promise abortable.
// Signals belong to the loop thread, like the rest of a loop's objects.

#include <phaseloop/error.hpp>
#include <phaseloop/fwd.hpp>
#include <phaseloop/loop.hpp>
#include <phaseloop/promise/core.hpp>

#include <chrono>
#include <cstddef>
#include <initializer_list>
#include <memory>
#include <optional>
#include <type_traits>
#include <system_error>
#include <utility>
#include <vector>

namespace phaseloop {

class abort_signal;

namespace detail {

struct abort_listener;

// What every copy of one signal shares; counted without atomics (one thread).
struct abort_state {
  std::size_t refs = 1;
  bool aborted = false;
  std::error_code reason;
  abort_listener* head = nullptr;  // in the order added
  abort_listener* tail = nullptr;
  std::vector<std::unique_ptr<abort_listener>> upstream;  // any(): subscriptions to the inputs

  ~abort_state();
  void link(abort_listener& l) noexcept;
  void unlink(abort_listener& l) noexcept;
  void abort(std::error_code why);
};

struct abort_listener {
  abort_state* owner = nullptr;  // null once run, unsubscribed, or the signal is gone
  abort_listener* prev = nullptr;
  abort_listener* next = nullptr;
  callback fn;
};

inline abort_state::~abort_state() {
  for (auto& l : upstream)
    if (l->owner != nullptr) l->owner->unlink(*l);
  for (abort_listener* l = head; l != nullptr;) {
    abort_listener* next = l->next;
    l->owner = nullptr;
    l->prev = l->next = nullptr;
    l = next;
  }
}

inline void abort_state::link(abort_listener& l) noexcept {
  l.owner = this;
  l.prev = tail;
  l.next = nullptr;
  if (tail != nullptr)
    tail->next = &l;
  else
    head = &l;
  tail = &l;
}

inline void abort_state::unlink(abort_listener& l) noexcept {
  if (l.prev != nullptr)
    l.prev->next = l.next;
  else
    head = l.next;
  if (l.next != nullptr)
    l.next->prev = l.prev;
  else
    tail = l.prev;
  l.owner = nullptr;
  l.prev = l.next = nullptr;
}

inline void abort_state::abort(std::error_code why) {
  if (aborted) return;
  aborted = true;
  reason = why;
  ++refs;  // a listener may drop the last signal; the state stays until the end
  // Listeners run in the order they were added. Each leaves the list before
  // it runs, and its callable is moved out first, so a listener may
  // unsubscribe itself or others, or drop the signal, from inside.
  while (head != nullptr) {
    abort_listener* l = head;
    unlink(*l);
    callback fn = std::move(l->fn);
    if (fn) fn();
  }
  if (--refs == 0) delete this;
}

}  // namespace detail

/// Node's AbortSignal: whether an operation should give up, and why. A
/// copyable reference to shared state; a default-constructed signal never
/// aborts. Loop-thread only.
class abort_signal {
 public:
  /// Removes its listener when destroyed or reset (if it has not run).
  class subscription {
   public:
    subscription() = default;
    subscription(subscription&&) noexcept = default;
    subscription& operator=(subscription&& other) noexcept {
      if (this != &other) {
        reset();
        listener_ = std::move(other.listener_);
      }
      return *this;
    }
    subscription(const subscription&) = delete;
    subscription& operator=(const subscription&) = delete;
    ~subscription() { reset(); }
    /// Remove the listener now: it will not run.
    void reset() noexcept {
      if (listener_ != nullptr && listener_->owner != nullptr) listener_->owner->unlink(*listener_);
      listener_.reset();
    }
    /// The listener is waiting (it has neither run nor been removed).
    [[nodiscard]] bool active() const noexcept { return listener_ != nullptr && listener_->owner != nullptr; }

   private:
    friend class abort_signal;
    explicit subscription(std::unique_ptr<detail::abort_listener> l) noexcept : listener_(std::move(l)) {}
    std::unique_ptr<detail::abort_listener> listener_;
  };

  abort_signal() = default;
  abort_signal(const abort_signal& other) noexcept : state_(other.state_) {
    if (state_ != nullptr) ++state_->refs;
  }
  abort_signal(abort_signal&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  abort_signal& operator=(abort_signal other) noexcept {
    std::swap(state_, other.state_);
    return *this;
  }
  ~abort_signal() { release(); }

  /// Whether the signal can ever abort: false for a default-constructed one.
  [[nodiscard]] bool can_abort() const noexcept { return state_ != nullptr; }
  /// Whether the signal has aborted (Node's signal.aborted).
  [[nodiscard]] bool aborted() const noexcept { return state_ != nullptr && state_->aborted; }
  /// Why it aborted: errc::aborted (ABORT_ERR) unless the controller gave a
  /// reason; std::errc::timed_out for timeout(). Empty before it aborts.
  [[nodiscard]] std::error_code reason() const noexcept { return aborted() ? state_->reason : std::error_code{}; }
  /// Throws std::system_error(reason()) when aborted (Node's throwIfAborted()).
  void throw_if_aborted() const {
    if (aborted()) throw std::system_error(state_->reason);
  }
  /// Run `cb` once, when the signal aborts (Node's 'abort' event, which
  /// fires synchronously inside abort()). Keep the subscription while the
  /// operation is pending; dropping it removes `cb`. On a signal that has
  /// already aborted, or one that can never abort, `cb` never runs: check
  /// aborted() first, as Node code does.
  [[nodiscard]] subscription on_abort(callback cb) const {
    auto l = std::make_unique<detail::abort_listener>();
    l->fn = std::move(cb);
    if (state_ != nullptr && !state_->aborted) state_->link(*l);
    return subscription(std::move(l));
  }

  /// A signal that aborts with std::errc::timed_out after `after` on `loop`
  /// (Node's AbortSignal.timeout). Its timer does not keep the loop alive.
  template <class Loop, class Rep, class Period>
  static abort_signal timeout(Loop& loop, std::chrono::duration<Rep, Period> after) {
    abort_signal s = make();
    auto t = loop.set_timeout(
        [keep = s] { keep.state_->abort(std::make_error_code(std::errc::timed_out)); }, after);
    t.unref();
    return s;
  }

  /// A signal that aborts, with the same reason, as soon as any of `signals`
  /// does (Node's AbortSignal.any); already aborted if one of them is.
  static abort_signal any(std::initializer_list<abort_signal> signals) {
    abort_signal s = make();
    for (const abort_signal& in : signals) {
      if (in.aborted()) {
        s.state_->abort(in.state_->reason);
        return s;
      }
    }
    for (const abort_signal& in : signals) {
      if (in.state_ == nullptr) continue;
      detail::abort_state* out = s.state_;
      detail::abort_state* from = in.state_;
      subscription sub = in.on_abort([out, from] { out->abort(from->reason); });
      out->upstream.push_back(std::move(sub.listener_));
    }
    return s;
  }

 private:
  friend class abort_controller;
  static abort_signal make() {
    abort_signal s;
    s.state_ = new detail::abort_state();
    return s;
  }
  void release() noexcept {
    if (state_ != nullptr && --state_->refs == 0) delete state_;
    state_ = nullptr;
  }
  detail::abort_state* state_ = nullptr;
};

/// Node's AbortController: owns a signal and aborts it.
class abort_controller {
 public:
  abort_controller() : signal_(abort_signal::make()) {}
  /// The signal to give to operations; copies share its state.
  [[nodiscard]] const abort_signal& signal() const noexcept { return signal_; }
  /// Abort: every listener runs now, in the order added; later calls do nothing.
  void abort(std::error_code reason = make_error_code(errc::aborted)) { signal_.state_->abort(reason); }

 private:
  abort_signal signal_;
};

// ------------------------------------------------- abortable promise forms

/// `p`, or a rejection with the signal's reason if the signal aborts first;
/// `on_abort` (optional) stops the underlying work then. A signal that has
/// already aborted rejects at once and calls `on_abort` now.
template <class T>
promise<T> abortable(promise<T> p, const abort_signal& signal, callback on_abort = {}) {
  if (!signal.can_abort()) return p;
  loop_core& loop = p.loop();
  if (signal.aborted()) {
    if (on_abort) on_abort();
    // `p` is given up on: its own rejection, if any, is not an unhandled one.
    if constexpr (std::is_void_v<T>)
      p.then([] {}, [](std::exception_ptr) {});
    else
      p.then([](T) {}, [](std::exception_ptr) {});
    return detail::make_rejected<T>(loop, detail::to_exception_ptr(signal.reason()));
  }
  auto [out, r] = make_promise<T>(loop);
  struct race {
    resolver<T> r;
    abort_signal::subscription sub;
  };
  auto shared = std::make_shared<race>(race{r, {}});
  shared->sub = signal.on_abort([weak = std::weak_ptr<race>(shared), signal, on_abort = std::move(on_abort)]() mutable {
    if (auto s = weak.lock()) s->r.reject(signal.reason());
    if (on_abort) on_abort();
  });
  if constexpr (std::is_void_v<T>) {
    p.then([shared] { shared->sub.reset(); shared->r.resolve(); },
           [shared](std::exception_ptr e) { shared->sub.reset(); shared->r.reject(e); });
  } else {
    p.then([shared](T v) { shared->sub.reset(); shared->r.resolve(std::move(v)); },
           [shared](std::exception_ptr e) { shared->sub.reset(); shared->r.reject(e); });
  }
  return std::move(out);
}

namespace detail {
// How a listener that outlives the call holds its loop: a basic_loop (not
// copyable) by address, a loop reference such as any_loop by value, since the
// caller's any_loop may be a temporary.
template <class Loop>
auto hold_loop(Loop& loop) noexcept {
  if constexpr (std::is_copy_constructible_v<Loop>)
    return loop;
  else
    return &loop;
}
template <class Held>
auto& held_loop(Held& held) noexcept {
  if constexpr (std::is_pointer_v<Held>)
    return *held;
  else
    return held;
}

// A timer or an immediate raced against a signal. The block is owned by the
// timer's (or immediate's) callback; the abort listener only points at it, and
// clearing the timer frees it (with the subscription, whose listener is the
// one running and already detached).
template <class T, class Handle>
struct abortable_wait {
  resolver<T> r;
  abort_signal::subscription sub;
  Handle handle{};
};

// A promise that resolves when what `arm(loop, fn)` schedules runs `fn`, or
// rejects with the signal's reason as soon as it aborts, when
// `disarm(loop, handle)` clears what was scheduled.
template <class Handle, class Loop, class Arm, class Disarm>
promise<void> abortable_wait_for(Loop& loop, const abort_signal& signal, Arm arm, Disarm disarm) {
  loop_core& core = loop;
  if (signal.aborted()) return make_rejected<void>(core, to_exception_ptr(signal.reason()));
  auto [p, r] = make_promise<void>(core);
  using block = abortable_wait<void, Handle>;
  auto owned = std::make_unique<block>(block{std::move(r), {}, {}});
  block* b = owned.get();
  b->handle = arm(loop, [owned = std::move(owned)] {
    owned->sub.reset();
    owned->r.resolve();
  });
  b->sub = signal.on_abort([b, l = hold_loop(loop), signal, disarm]() mutable {
    b->r.reject(signal.reason());
    disarm(held_loop(l), b->handle);  // frees b
  });
  return std::move(p);
}
}  // namespace detail

/// Resolves after `after` unless `signal` aborts first; then it rejects with
/// the reason and the timer is cleared at once (Node's
/// timersPromises.setTimeout(after, undefined, { signal })).
template <class Loop, class Rep, class Period>
promise<void> delay(Loop& loop, std::chrono::duration<Rep, Period> after, const abort_signal& signal) {
  return detail::abortable_wait_for<typename Loop::timer_handle>(
      loop, signal, [after](Loop& l, auto fn) { return l.set_timeout(std::move(fn), after); },
      [](Loop& l, typename Loop::timer_handle& h) { l.clear_timeout(h); });
}

template <backend Backend, timer_store TimerStore, executor Executor>
template <class Rep, class Period>
promise<void> basic_loop<Backend, TimerStore, Executor>::delay(std::chrono::duration<Rep, Period> after,
                                                               const abort_signal& signal) {
  return phaseloop::delay(*this, after, signal);
}

/// Resolves with `value` after `after` unless `signal` aborts first.
template <class Loop, class Rep, class Period, class V>
promise<std::decay_t<V>> delay(Loop& loop, std::chrono::duration<Rep, Period> after, V&& value,
                               const abort_signal& signal) {
  using T = std::decay_t<V>;
  if (signal.aborted()) {
    loop_core& core = loop;
    return detail::make_rejected<T>(core, detail::to_exception_ptr(signal.reason()));
  }
  return delay(loop, after, signal).then([v = T(std::forward<V>(value))]() mutable { return std::move(v); });
}

/// Resolves in the check phase unless `signal` aborts first; then the
/// immediate is cleared (Node's timersPromises.setImmediate with { signal }).
template <class Loop>
promise<void> immediate(Loop& loop, const abort_signal& signal) {
  return detail::abortable_wait_for<typename Loop::immediate_handle>(
      loop, signal, [](Loop& l, auto fn) { return l.set_immediate(std::move(fn)); },
      [](Loop& l, typename Loop::immediate_handle& h) { l.clear_immediate(h); });
}

template <backend Backend, timer_store TimerStore, executor Executor>
promise<void> basic_loop<Backend, TimerStore, Executor>::immediate(const abort_signal& signal) {
  return phaseloop::immediate(*this, signal);
}

/// queue_work's promise form: runs `fn` on the executor and resolves with
/// its result on the loop thread (rejects with what it throws). With a
/// signal, an abort rejects at once and cancels the work if it has not
/// started (libuv's uv_cancel); work already running finishes unobserved.
template <class Loop, class F>
auto work(Loop& loop, F fn, const abort_signal& signal = {}) -> promise<std::invoke_result_t<F&>> {
  using T = std::invoke_result_t<F&>;
  loop_core& core = loop;
  if (signal.aborted()) return detail::make_rejected<T>(core, detail::to_exception_ptr(signal.reason()));
  auto [p, r] = make_promise<T>(core);
  struct state {
    F fn;
    std::exception_ptr error;
    std::conditional_t<std::is_void_v<T>, char, std::optional<T>> value{};
  };
  auto owned = std::make_unique<state>(state{std::move(fn), nullptr, {}});
  state* s = owned.get();
  auto handle = loop.queue_work(
      [s] {
        try {
          if constexpr (std::is_void_v<T>)
            s->fn();
          else
            s->value.emplace(s->fn());
        } catch (...) {
          s->error = std::current_exception();
        }
      },
      [owned = std::move(owned), r = r](std::error_code cancelled) mutable {
        if (cancelled)
          r.reject(cancelled);
        else if (owned->error)
          r.reject(owned->error);
        else if constexpr (std::is_void_v<T>)
          r.resolve();
        else
          r.resolve(std::move(*owned->value));
      });
  if (!signal.can_abort()) return std::move(p);
  return abortable(std::move(p), signal,
                   [l = detail::hold_loop(loop), handle]() mutable { (void)detail::held_loop(l).cancel(handle); });
}

}  // namespace phaseloop
