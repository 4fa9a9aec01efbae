#pragma once
// any_loop: a reference to any basic_loop, so code written once (a service, a
// client, a retry policy) runs on phaseloop::loop in production and on
// test_loop under virtual time, without becoming a template. It forwards the
// scheduling API (timers, immediates, ticks, microtasks, post, queue_work,
// promises) through one table of function pointers per loop type; fs:: and
// dns:: accept it like a loop.

#include <phaseloop/abort.hpp>
#include <phaseloop/loop.hpp>
#include <phaseloop/promise/core.hpp>

#include <chrono>
#include <cstring>
#include <exception>
#include <system_error>
#include <type_traits>
#include <utility>

namespace phaseloop {

/// A non-owning reference to a basic_loop of any backend, timer store and
/// executor: `void start(phaseloop::any_loop loop)` accepts a `phaseloop::loop`
/// and a `phaseloop::test_loop` alike. Copy it freely; the loop must outlive
/// every copy. Each call costs one indirect call over the typed loop's.
class any_loop {
  // A typed handle (timer, immediate, work) kept by value: they are small,
  // trivially copyable values (a loop pointer or slot index and a generation).
  struct handle_bytes {
    alignas(8) unsigned char bytes[48];
  };
  template <class H>
  static handle_bytes store(const H& h) noexcept {
    static_assert(std::is_trivially_copyable_v<H> && sizeof(H) <= sizeof(handle_bytes) && alignof(H) <= 8,
                  "any_loop keeps a loop's handles as plain bytes");
    handle_bytes out{};
    std::memcpy(out.bytes, &h, sizeof(H));
    return out;
  }
  template <class H>
  static H load(const handle_bytes& b) noexcept {
    H h;
    std::memcpy(&h, b.bytes, sizeof(H));
    return h;
  }

 public:
  class timer_handle;
  class immediate_handle;
  class work_handle;

 private:
  using millis = std::chrono::duration<double, std::milli>;
  using timer_fn = detail::unique_function<void(), 2 * sizeof(void*)>;
  using self_timer_fn = detail::unique_function<void(timer_handle&)>;

  struct vtable {
    bool (*run)(void*, run_mode);
    void (*stop)(void*) noexcept;
    bool (*alive)(const void*) noexcept;
    std::chrono::milliseconds (*now)(const void*) noexcept;
    void (*update_time)(const void*) noexcept;
    handle_bytes (*set_timer)(void*, timer_fn, millis, bool repeat);
    handle_bytes (*set_self_timer)(void*, self_timer_fn, millis, bool repeat, const vtable*);
    void (*clear_timer)(void*, const handle_bytes&);
    void (*timer_refresh)(const handle_bytes&);
    void (*timer_set_ref)(const handle_bytes&, bool);
    bool (*timer_has_ref)(const handle_bytes&);
    bool (*timer_active)(const handle_bytes&);
    bool (*timer_equal)(const handle_bytes&, const handle_bytes&);
    handle_bytes (*set_immediate)(void*, callback);
    void (*clear_immediate)(void*, const handle_bytes&);
    void (*immediate_set_ref)(const handle_bytes&, bool);
    bool (*immediate_has_ref)(const handle_bytes&);
    bool (*immediate_active)(const handle_bytes&);
    bool (*immediate_equal)(const handle_bytes&, const handle_bytes&);
    void (*post)(void*, callback);
    handle_bytes (*queue_work)(void*, callback, detail::unique_function<void(std::error_code)>, work_kind);
    std::error_code (*cancel)(void*, const handle_bytes&);
    bool (*work_equal)(const handle_bytes&, const handle_bytes&);
    loop_core& (*core)(void*) noexcept;
    const void* type;  // identifies the loop type for target<Loop>()
  };

  template <class Loop>
  struct type_tag {
    static constexpr char id = 0;
  };

  template <class Loop>
  static Loop& as(void* p) noexcept {
    return *static_cast<Loop*>(p);
  }
  template <class Loop>
  static const Loop& as(const void* p) noexcept {
    return *static_cast<const Loop*>(p);
  }

 public:
  /// A timer set through an any_loop: the typed loop's timer handle, erased.
  class timer_handle {
   public:
    timer_handle() = default;
    /// Restart the countdown from now with the original delay (Node's refresh()).
    timer_handle& refresh() {
      if (vt_ != nullptr) vt_->timer_refresh(h_);
      return *this;
    }
    /// Make the timer keep the loop alive (the default).
    timer_handle& ref() {
      if (vt_ != nullptr) vt_->timer_set_ref(h_, true);
      return *this;
    }
    /// Let the loop end while this timer is pending.
    timer_handle& unref() {
      if (vt_ != nullptr) vt_->timer_set_ref(h_, false);
      return *this;
    }
    [[nodiscard]] bool has_ref() const { return vt_ != nullptr && vt_->timer_has_ref(h_); }
    /// Scheduled to fire (an interval stays active until cleared).
    [[nodiscard]] bool active() const { return vt_ != nullptr && vt_->timer_active(h_); }
    friend bool operator==(const timer_handle& a, const timer_handle& b) {
      if (a.vt_ != b.vt_) return false;
      return a.vt_ == nullptr || a.vt_->timer_equal(a.h_, b.h_);
    }

   private:
    friend class any_loop;
    timer_handle(const vtable* vt, handle_bytes h) noexcept : vt_(vt), h_(h) {}
    const vtable* vt_ = nullptr;
    handle_bytes h_{};
  };

  /// An immediate set through an any_loop.
  class immediate_handle {
   public:
    immediate_handle() = default;
    immediate_handle& ref() {
      if (vt_ != nullptr) vt_->immediate_set_ref(h_, true);
      return *this;
    }
    immediate_handle& unref() {
      if (vt_ != nullptr) vt_->immediate_set_ref(h_, false);
      return *this;
    }
    [[nodiscard]] bool has_ref() const { return vt_ != nullptr && vt_->immediate_has_ref(h_); }
    /// Queued and not yet run or cleared.
    [[nodiscard]] bool active() const { return vt_ != nullptr && vt_->immediate_active(h_); }
    [[nodiscard]] bool pending() const { return active(); }
    friend bool operator==(const immediate_handle& a, const immediate_handle& b) {
      if (a.vt_ != b.vt_) return false;
      return a.vt_ == nullptr || a.vt_->immediate_equal(a.h_, b.h_);
    }

   private:
    friend class any_loop;
    immediate_handle(const vtable* vt, handle_bytes h) noexcept : vt_(vt), h_(h) {}
    const vtable* vt_ = nullptr;
    handle_bytes h_{};
  };

  /// Work queued through an any_loop; pass it to cancel().
  class work_handle {
   public:
    work_handle() = default;
    friend bool operator==(const work_handle& a, const work_handle& b) {
      if (a.vt_ != b.vt_) return false;
      return a.vt_ == nullptr || a.vt_->work_equal(a.h_, b.h_);
    }

   private:
    friend class any_loop;
    work_handle(const vtable* vt, handle_bytes h) noexcept : vt_(vt), h_(h) {}
    const vtable* vt_ = nullptr;
    handle_bytes h_{};
  };

 private:
  template <class Loop>
  static constexpr vtable table_for = {
      [](void* l, run_mode m) { return as<Loop>(l).run(m); },
      [](void* l) noexcept { as<Loop>(l).stop(); },
      [](const void* l) noexcept { return as<Loop>(l).alive(); },
      [](const void* l) noexcept { return as<Loop>(l).now(); },
      [](const void* l) noexcept { as<Loop>(l).update_time(); },
      [](void* l, timer_fn fn, millis delay, bool repeat) {
        Loop& loop = as<Loop>(l);
        return store(repeat ? loop.set_interval(std::move(fn), delay) : loop.set_timeout(std::move(fn), delay));
      },
      [](void* l, self_timer_fn fn, millis delay, bool repeat, const vtable* vt) {
        Loop& loop = as<Loop>(l);
        auto adapt = [fn = std::move(fn), vt](typename Loop::timer_handle& self) mutable {
          timer_handle erased(vt, store(self));
          fn(erased);
        };
        return store(repeat ? loop.set_interval(std::move(adapt), delay) : loop.set_timeout(std::move(adapt), delay));
      },
      [](void* l, const handle_bytes& h) { as<Loop>(l).clear_timeout(load<typename Loop::timer_handle>(h)); },
      [](const handle_bytes& h) { load<typename Loop::timer_handle>(h).refresh(); },
      [](const handle_bytes& h, bool on) {
        auto t = load<typename Loop::timer_handle>(h);
        if (on)
          t.ref();
        else
          t.unref();
      },
      [](const handle_bytes& h) { return load<typename Loop::timer_handle>(h).has_ref(); },
      [](const handle_bytes& h) { return load<typename Loop::timer_handle>(h).active(); },
      [](const handle_bytes& a, const handle_bytes& b) {
        return load<typename Loop::timer_handle>(a) == load<typename Loop::timer_handle>(b);
      },
      [](void* l, callback cb) { return store(as<Loop>(l).set_immediate(std::move(cb))); },
      [](void* l, const handle_bytes& h) { as<Loop>(l).clear_immediate(load<typename Loop::immediate_handle>(h)); },
      [](const handle_bytes& h, bool on) {
        auto i = load<typename Loop::immediate_handle>(h);
        if (on)
          i.ref();
        else
          i.unref();
      },
      [](const handle_bytes& h) { return load<typename Loop::immediate_handle>(h).has_ref(); },
      [](const handle_bytes& h) { return load<typename Loop::immediate_handle>(h).active(); },
      [](const handle_bytes& a, const handle_bytes& b) {
        return load<typename Loop::immediate_handle>(a) == load<typename Loop::immediate_handle>(b);
      },
      [](void* l, callback cb) { as<Loop>(l).post(std::move(cb)); },
      [](void* l, callback work, detail::unique_function<void(std::error_code)> after, work_kind kind) {
        return store(as<Loop>(l).queue_work(std::move(work), std::move(after), kind));
      },
      [](void* l, const handle_bytes& h) { return as<Loop>(l).cancel(load<typename Loop::work_handle>(h)); },
      [](const handle_bytes& a, const handle_bytes& b) {
        return load<typename Loop::work_handle>(a) == load<typename Loop::work_handle>(b);
      },
      [](void* l) noexcept -> loop_core& { return as<Loop>(l); },
      &type_tag<Loop>::id,
  };

 public:
  /// Refer to `loop` (implicit, so a basic_loop passes where an any_loop is taken).
  template <class Backend, class TimerStore, class Executor>
  any_loop(basic_loop<Backend, TimerStore, Executor>& loop) noexcept  // NOLINT(google-explicit-constructor)
      : loop_(&loop), vt_(&table_for<basic_loop<Backend, TimerStore, Executor>>) {}

  /// The typed loop, when it is a `Loop`; nullptr otherwise (as std::function::target).
  template <class Loop>
  [[nodiscard]] Loop* target() const noexcept {
    return vt_->type == &type_tag<Loop>::id ? static_cast<Loop*>(loop_) : nullptr;
  }

  // ------------------------------------------------------------- the loop

  /// basic_loop::run.
  bool run(run_mode mode = run_mode::default_) { return vt_->run(loop_, mode); }
  /// basic_loop::stop.
  void stop() noexcept { vt_->stop(loop_); }
  [[nodiscard]] bool alive() const noexcept { return vt_->alive(loop_); }
  /// The loop's cached time (virtual time on test_loop).
  [[nodiscard]] std::chrono::milliseconds now() const noexcept { return vt_->now(loop_); }
  void update_time() const noexcept { vt_->update_time(loop_); }
  /// The loop's non-template core: ticks, microtasks, promises.
  [[nodiscard]] loop_core& core() const noexcept { return vt_->core(loop_); }
  operator loop_core&() const noexcept { return core(); }  // NOLINT(google-explicit-constructor)

  // ---------------------------------------------------------------- timers

  /// Run `cb` once after `delay` (Node's setTimeout); the delay follows the
  /// loop's rule (below 1 ms or above 2^31-1 ms means 1 ms).
  template <class F, class Rep, class Period>
    requires std::is_invocable_v<std::decay_t<F>&>
  timer_handle set_timeout(F&& cb, std::chrono::duration<Rep, Period> delay) {
    return {vt_, vt_->set_timer(loop_, timer_fn(std::forward<F>(cb)), millis(delay), false)};
  }
  /// Run `cb` every `delay` until cleared (Node's setInterval).
  template <class F, class Rep, class Period>
    requires std::is_invocable_v<std::decay_t<F>&>
  timer_handle set_interval(F&& cb, std::chrono::duration<Rep, Period> delay) {
    return {vt_, vt_->set_timer(loop_, timer_fn(std::forward<F>(cb)), millis(delay), true)};
  }
  /// Run `cb(self)` once after `delay`, `self` being this timer's handle.
  template <class F, class Rep, class Period>
    requires(!std::is_invocable_v<std::decay_t<F>&> && std::is_invocable_v<std::decay_t<F>&, timer_handle&>)
  timer_handle set_timeout(F&& cb, std::chrono::duration<Rep, Period> delay) {
    return {vt_, vt_->set_self_timer(loop_, self_timer_fn(std::forward<F>(cb)), millis(delay), false, vt_)};
  }
  /// Run `cb(self)` every `delay` until cleared.
  template <class F, class Rep, class Period>
    requires(!std::is_invocable_v<std::decay_t<F>&> && std::is_invocable_v<std::decay_t<F>&, timer_handle&>)
  timer_handle set_interval(F&& cb, std::chrono::duration<Rep, Period> delay) {
    return {vt_, vt_->set_self_timer(loop_, self_timer_fn(std::forward<F>(cb)), millis(delay), true, vt_)};
  }
  /// Cancel a timer; safe on fired, cleared and default-constructed handles.
  void clear_timeout(const timer_handle& t) {
    if (t.vt_ == vt_) vt_->clear_timer(loop_, t.h_);
  }
  void clear_interval(const timer_handle& t) { clear_timeout(t); }

  // ------------------------------------------------------------ immediates

  /// Run `cb` in the check phase (Node's setImmediate).
  immediate_handle set_immediate(callback cb) { return {vt_, vt_->set_immediate(loop_, std::move(cb))}; }
  /// Cancel an immediate that has not run.
  void clear_immediate(const immediate_handle& i) {
    if (i.vt_ == vt_) vt_->clear_immediate(loop_, i.h_);
  }

  // ------------------------------------------------ ticks, microtasks, post

  /// Node's process.nextTick.
  void next_tick(callback cb) { core().next_tick(std::move(cb)); }
  /// Node's queueMicrotask.
  void queue_microtask(callback cb) { core().queue_microtask(std::move(cb)); }
  /// Thread-safe: run `cb` on the loop thread in the poll phase.
  void post(callback cb) { vt_->post(loop_, std::move(cb)); }

  // ------------------------------------------------------------------ work

  /// Run `work` on the loop's executor, then `after(error)` on the loop thread.
  work_handle queue_work(callback work, detail::unique_function<void(std::error_code)> after,
                         work_kind kind = work_kind::fast) {
    return {vt_, vt_->queue_work(loop_, std::move(work), std::move(after), kind)};
  }
  /// basic_loop::cancel: {} when the work had not started.
  std::error_code cancel(const work_handle& w) {
    if (w.vt_ != vt_) return std::make_error_code(std::errc::invalid_argument);
    return vt_->cancel(loop_, w.h_);
  }

  // -------------------------------------------------------------- promises

  /// A pending promise and its resolver.
  template <class T = void>
  std::pair<promise<T>, resolver<T>> make_promise() {
    return phaseloop::make_promise<T>(core());
  }
  /// A promise resolved with `value`.
  template <class V>
  promise<std::decay_t<V>> resolved(V&& value) {
    static_assert(!detail::is_promise_v<V>, "phaseloop: resolved(p) of a promise is p itself");
    return detail::make_resolved<std::decay_t<V>>(core(), std::forward<V>(value));
  }
  promise<void> resolved() { return detail::make_resolved<void>(core()); }
  /// A promise rejected with `error` (an exception_ptr, an exception or an error_code).
  template <class T = void, class E>
  promise<T> rejected(E&& error) {
    return detail::make_rejected<T>(core(), detail::to_exception_ptr(std::forward<E>(error)));
  }
  /// Resolves after `after` (a timer).
  template <class Rep, class Period>
  promise<void> delay(std::chrono::duration<Rep, Period> after) {
    auto made = make_promise<void>();
    set_timeout([r = std::move(made.second)] { r.resolve(); }, after);
    return std::move(made.first);
  }
  /// Resolves after `after` unless `signal` aborts first: then it rejects
  /// with the signal's reason and the timer is cleared.
  template <class Rep, class Period>
  promise<void> delay(std::chrono::duration<Rep, Period> after, const abort_signal& signal) {
    return phaseloop::delay(*this, after, signal);
  }
  /// Resolves with `value` after `after`.
  template <class Rep, class Period, class V>
    requires(!std::is_same_v<std::decay_t<V>, abort_signal>)
  promise<std::decay_t<V>> delay(std::chrono::duration<Rep, Period> after, V&& value) {
    using T = std::decay_t<V>;
    auto made = make_promise<T>();
    set_timeout([r = std::move(made.second), v = T(std::forward<V>(value))]() mutable { r.resolve(std::move(v)); },
                after);
    return std::move(made.first);
  }
  /// Resolves in the check phase unless `signal` aborts first.
  promise<void> immediate(const abort_signal& signal) { return phaseloop::immediate(*this, signal); }
  /// Resolves in the check phase (an immediate).
  promise<void> immediate() {
    auto made = make_promise<void>();
    set_immediate([r = std::move(made.second)] { r.resolve(); });
    return std::move(made.first);
  }

 private:
  void* loop_;
  const vtable* vt_;
};

}  // namespace phaseloop
