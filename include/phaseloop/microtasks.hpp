#pragma once
// loop_core: the part of every loop that does not depend on its policies:
// the nextTick and microtask queues, the checkpoint that drains them after
// each callback, and the routing of uncaught exceptions. Promises and
// coroutines talk to a loop through this class.

#include <phaseloop/detail/function.hpp>
#include <phaseloop/detail/ring.hpp>

#include <exception>
#include <utility>

namespace phaseloop {

/// A callback with no arguments, as the loop stores it.
using callback = detail::unique_function<void()>;

class loop_core;

namespace detail {
// ---- promise support (promise.hpp fills these in)
struct promise_node;
struct promise_access;
/// What the promise module keeps per loop.
struct promise_book {
  promise_node* waiting = nullptr;         // pending promises with reactions
  promise_node* unhandled_head = nullptr;  // rejected with no handler yet, oldest first
  promise_node* unhandled_tail = nullptr;
  void (*release)(loop_core&) noexcept = nullptr;  // frees what is left when the loop goes
  bool hooked = false;                             // the drain hook reports unhandled rejections
};
/// The newest live loop constructed on this thread (coroutines without a loop argument use it).
inline thread_local loop_core* thread_loop = nullptr;
}  // namespace detail

class loop_core {
 public:
  loop_core() noexcept : outer_(detail::thread_loop) { detail::thread_loop = this; }
  loop_core(const loop_core&) = delete;
  loop_core& operator=(const loop_core&) = delete;

  /// Queue a callback to run before any promise reaction (Node's process.nextTick).
  void next_tick(callback cb) { ticks_.push_back(std::move(cb)); }

  /// Queue a microtask (Node's queueMicrotask; promise reactions use this queue).
  void queue_microtask(callback cb) { microtasks_.push_back(std::move(cb)); }

  /// Route exceptions that escape user callbacks to `handler` instead of out of run().
  void on_uncaught_exception(detail::unique_function<void(std::exception_ptr)> handler) {
    uncaught_handler_ = std::move(handler);
  }

  /// The microtask checkpoint (Node's processTicksAndRejections): run every
  /// nextTick callback, including ones they add, then every microtask,
  /// including ones they add, and repeat until both queues are empty. A tick
  /// queued by a microtask waits until the microtask queue is empty.
  void run_microtasks() {
    if (draining_) return;
    draining_ = true;
    struct reset {
      bool& flag;
      ~reset() { flag = false; }
    } guard{draining_};
    do {
      while (!ticks_.empty()) {
        callback cb = ticks_.pop_front();
        invoke(cb);
      }
      while (!microtasks_.empty()) {
        callback cb = microtasks_.pop_front();
        invoke(cb);
      }
    } while (!ticks_.empty() || !microtasks_.empty() || (drain_hook_ && drain_hook_()));
  }

  /// Hand an exception that escaped a user callback to the uncaught-exception
  /// handler; without one, rethrow it (it leaves run()).
  void report_exception(std::exception_ptr error) {
    if (uncaught_handler_)
      uncaught_handler_(std::move(error));
    else
      std::rethrow_exception(std::move(error));
  }

  /// Run a user callback, routing what it throws to report_exception.
  template <class F, class... Args>
  void invoke(F& f, Args&&... args) {
    try {
      f(std::forward<Args>(args)...);
    } catch (...) {
      report_exception(std::current_exception());
    }
  }

  /// Run a user callback, then the microtask checkpoint: what every phase does per callback.
  template <class F, class... Args>
  void invoke_then_drain(F& f, Args&&... args) {
    invoke(f, std::forward<Args>(args)...);
    run_microtasks();
  }

  /// Called when both queues are empty at the end of a checkpoint; returns true
  /// when it queued more work (the promise module reports unhandled rejections here).
  void set_drain_hook(detail::unique_function<bool()> hook) { drain_hook_ = std::move(hook); }

  /// Handle promises still rejected with no handler when a checkpoint ends
  /// (Node's 'unhandledRejection'). Without a handler the reason goes to
  /// report_exception, as in Node >= 15.
  void on_unhandled_rejection(detail::unique_function<void(std::exception_ptr)> handler) {
    unhandled_rejection_ = std::move(handler);
  }

 protected:
  /// Drop every queued tick and microtask and free pending promises and
  /// suspended coroutines. A loop calls this first in its destructor, while
  /// everything those callbacks and frames may still touch is alive.
  void release_tasks() noexcept {
    if (promises_.release != nullptr) std::exchange(promises_.release, nullptr)(*this);
    ticks_.clear();
    microtasks_.clear();
  }

  ~loop_core() {
    release_tasks();
    for (loop_core** p = &detail::thread_loop; *p != nullptr; p = &(*p)->outer_) {
      if (*p == this) {
        *p = outer_;
        break;
      }
    }
  }

 private:
  friend struct detail::promise_access;
  detail::unique_function<void(std::exception_ptr)> unhandled_rejection_;
  detail::promise_book promises_;
  loop_core* outer_ = nullptr;  // the thread's previous loop
  detail::ring<callback> ticks_;
  detail::ring<callback> microtasks_;
  detail::unique_function<void(std::exception_ptr)> uncaught_handler_;
  detail::unique_function<bool()> drain_hook_;
  bool draining_ = false;
};

}  // namespace phaseloop
