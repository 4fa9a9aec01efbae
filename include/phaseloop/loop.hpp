#pragma once
// basic_loop: Node's event loop, assembled from a Backend, a TimerStore and an
// Executor. One iteration runs the phases timers, pending, idle, prepare,
// poll, check and close, with a microtask checkpoint after every callback
// (DESIGN §2).

#include <phaseloop/concepts.hpp>
#include <phaseloop/detail/function.hpp>
#include <phaseloop/detail/assert.hpp>
#include <phaseloop/detail/intrusive_list.hpp>
#include <phaseloop/detail/loop_life.hpp>
#include <phaseloop/detail/pool.hpp>
#include <phaseloop/detail/ring.hpp>
#include <phaseloop/fwd.hpp>
#include <phaseloop/inbox.hpp>
#include <phaseloop/loop_core.hpp>
#include <phaseloop/operation.hpp>
#include <phaseloop/phase_handles.hpp>
#include <phaseloop/poll.hpp>
#include <phaseloop/timers.hpp>
#include <phaseloop/detail/posix/socket_api.hpp>  // guards its own POSIX code
#include <phaseloop/detail/posix/system.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <ratio>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace phaseloop {

/// How long run() goes on (libuv's uv_run_mode).
enum class run_mode {
  default_,  ///< until nothing keeps the loop alive, or stop()
  once,      ///< one iteration; poll may block; due timers run before returning
  nowait,    ///< one iteration; poll never blocks
};

/// What a loop reports about itself; a plain aggregate.
struct loop_metrics {
  std::uint64_t iterations = 0;             ///< loop iterations started
  std::uint64_t events = 0;                 ///< completions delivered in poll phases
  std::chrono::nanoseconds poll_blocked{};  ///< time spent waiting in poll
};

/// Options a loop is built with.
struct loop_options {
  executor_options executor{};
};

/// Node's largest timer delay; longer (and shorter than 1 ms) delays become 1 ms.
inline constexpr std::chrono::milliseconds max_timer_delay{2147483647};

namespace detail {
/// Whether `f` is a null function pointer or an empty function object.
template <class F>
[[nodiscard]] constexpr bool empty_callable(const F& f) noexcept {
  if constexpr (std::is_function_v<F>)
    return false;  // a function itself, never null
  else if constexpr (std::is_pointer_v<F> || std::is_member_pointer_v<F>)
    return f == nullptr;
  else if constexpr (requires { f.operator bool(); })
    return !static_cast<bool>(f);
  else
    return false;
}

/// Node's delay rule for a duration of any type: its whole milliseconds, or
/// 1 when that is below 1 or above 2^31-1 (NaN too). Compared in the
/// source unit, so no value overflows.
template <class Rep, class Period>
[[nodiscard]] constexpr std::uint32_t clamp_delay(std::chrono::duration<Rep, Period> delay) noexcept {
  constexpr std::uint64_t max = static_cast<std::uint64_t>(max_timer_delay.count());
  if constexpr (std::is_floating_point_v<Rep>) {
    // NaN, infinities and out-of-range values become 1 ms, as in Node.
    const long double ms = static_cast<long double>(delay.count()) * Period::num * 1000 / Period::den;
    if (!(ms >= 1.0L && ms < static_cast<long double>(max + 1))) return 1;
    return static_cast<std::uint32_t>(ms);
  } else {
    static_assert(std::is_integral_v<Rep>, "phaseloop: a delay's representation must be arithmetic");
    using ms_per_unit = std::ratio_divide<Period, std::milli>;  // whole ms = count * N / D
    constexpr auto n = static_cast<std::uint64_t>(ms_per_unit::num);
    constexpr auto d = static_cast<std::uint64_t>(ms_per_unit::den);
    if (delay.count() <= 0) return 1;
    const auto count = static_cast<std::uint64_t>(delay.count());
    std::uint64_t ms;
    if constexpr (d == 1) {  // seconds, minutes, hours: whole ms per unit
      if (count > max / n) return 1;
      ms = count * n;
    } else if constexpr (n == 1) {  // micro-, nanoseconds: units per ms
      ms = count / d;
    } else {  // any other ratio: q * n + r * n / d with r < d, each checked
      const std::uint64_t q = count / d, r = count % d;
      if (q > max / n) return 1;
      if (r != 0 && r > std::numeric_limits<std::uint64_t>::max() / n) {
        const long double exact = static_cast<long double>(count) * n / d;
        if (!(exact >= 1.0L && exact < static_cast<long double>(max + 1))) return 1;
        return static_cast<std::uint32_t>(exact);
      }
      ms = q * n + r * n / d;
    }
    if (ms < 1 || ms > max) return 1;
    return static_cast<std::uint32_t>(ms);
  }
}
}  // namespace detail

template <backend Backend, timer_store TimerStore, executor Executor>
class basic_loop : public loop_core {
  using timer_handle_type = basic_timer_handle<basic_loop>;
  using immediate_handle_type = basic_immediate_handle<basic_loop>;

  // A timer's callback keeps two pointers' worth of captures inline ([this],
  // [this, id], a shared_ptr, a resolver); larger captures are allocated.
  using timer_callback = detail::unique_function<void(), 2 * sizeof(void*)>;

  // Laid out tight: a million live timers are a million of these. The
  // store's node comes first and the pool_slot fills its tail padding; a
  // live timer that is not running is always in the store, and what the one
  // running timer does to itself is kept in the loop (running_timer_), so the
  // record needs only two flags: `repeat` beside the 31-bit delay, and
  // `refed` in the pool slot's owner bit.
  struct timer_fields : TimerStore::node, detail::pool_slot {
    std::uint32_t timing = 1;  // the delay in ms (at most max_timer_delay) | repeat << 31
    timer_callback fn;
  };
  // 64 bytes with wheel_timers, a cache line of its own; 40 (plus a 24-byte
  // heap entry) with heap_timers.
  struct alignas(sizeof(timer_fields) == 64 ? 64 : alignof(timer_fields)) timer_record : timer_fields {
    static constexpr std::uint32_t repeat_bit = 0x80000000u;
    [[nodiscard]] std::uint32_t delay() const noexcept { return this->timing & ~repeat_bit; }
    [[nodiscard]] bool repeat() const noexcept { return (this->timing & repeat_bit) != 0; }
    [[nodiscard]] bool refed() const noexcept { return this->owner_bit(); }
    void set_refed(bool on) noexcept { this->set_owner_bit(on); }
  };

  /// The timer whose callback is on the stack, and what it did to itself.
  struct running_timer {
    timer_record* record = nullptr;
    bool rearmed = false;  // refresh() from inside: it is in the store again
    bool cleared = false;  // cleared from inside: released once the callback returns
  };

  struct immediate_record : detail::list_hook, detail::pool_slot {
    callback fn;
    std::uint64_t pass = 0;  // check phases begun when it was queued
    bool refed = true;
  };

  struct work_record : work_request, detail::pool_slot {
    detail::unique_function<void(std::error_code)> after;
  };

  /// Shared with keep_alive tokens and posters, which may outlive the loop:
  /// the loop clears `loop` first thing in its destructor.
  struct control {
    std::mutex mutex;
    basic_loop* loop;
    explicit control(basic_loop* l) noexcept : loop(l) {}
  };

 public:
  friend timer_handle_type;
  friend immediate_handle_type;
  using backend_type = Backend;
  using timer_store_type = TimerStore;
  using executor_type = Executor;

  // ------------------------------------------------------------------ handles

  using timer_handle = timer_handle_type;
  using immediate_handle = immediate_handle_type;
  using idle = idle_handle;
  using prepare = prepare_handle;
  using check = check_handle;
  using poll_handle = phaseloop::poll_handle;

  /// A request queued with queue_work; pass it to cancel().
  class work_handle {
   public:
    work_handle() = default;
    friend bool operator==(const work_handle&, const work_handle&) = default;

   private:
    friend class basic_loop;
    work_handle(std::uint32_t index, std::uint32_t generation) : index_(index), generation_(generation) {}
    std::uint32_t index_ = 0;
    std::uint32_t generation_ = 0;
  };

  /// Keeps the loop alive while it exists; may be created, moved and destroyed
  /// on any thread (for work the loop will hear about through post()). It
  /// may outlive the loop: destroying it then touches nothing of the loop.
  class keep_alive {
   public:
    keep_alive() = default;
    keep_alive(keep_alive&& other) noexcept = default;
    keep_alive& operator=(keep_alive&& other) noexcept {
      if (this != &other) {
        reset();
        control_ = std::move(other.control_);
      }
      return *this;
    }
    keep_alive(const keep_alive&) = delete;
    keep_alive& operator=(const keep_alive&) = delete;
    ~keep_alive() { reset(); }
    /// Stop keeping the loop alive (does nothing once the loop is gone).
    void reset() {
      if (std::shared_ptr<control> c = std::move(control_)) {
        std::lock_guard<std::mutex> lock(c->mutex);
        if (basic_loop* loop = c->loop) {
          loop->external_refs_.fetch_sub(1, std::memory_order_acq_rel);
          loop->inbox_.signal();
        }
      }
    }

   private:
    friend class basic_loop;
    explicit keep_alive(basic_loop* loop) : control_(loop->control_) {
      loop->external_refs_.fetch_add(1, std::memory_order_acq_rel);
    }
    std::shared_ptr<control> control_;
  };

  /// What a thread that may outlive the loop posts through: a copyable,
  /// thread-safe value whose calls report "loop gone" (false) instead of
  /// touching freed memory once the loop is destroyed.
  class poster {
   public:
    poster() = default;
    /// Run `cb` on the loop thread in the poll phase, as basic_loop::post();
    /// false (and `cb` destroyed here) when the loop is gone.
    bool post(callback cb) const {
      PHASELOOP_ASSERT(static_cast<bool>(cb), "poster::post() was given an empty callback");
      if (!control_) return false;
      {
        std::lock_guard<std::mutex> lock(control_->mutex);
        if (basic_loop* loop = control_->loop) {
          loop->post(std::move(cb));
          return true;
        }
      }
      return false;  // cb is destroyed outside the lock
    }
    /// As basic_loop::stop(); false when the loop is gone.
    bool stop() const {
      if (!control_) return false;
      std::lock_guard<std::mutex> lock(control_->mutex);
      if (control_->loop == nullptr) return false;
      control_->loop->stop();
      return true;
    }
    /// Whether the loop still exists (it may be destroyed right after).
    [[nodiscard]] bool alive() const {
      if (!control_) return false;
      std::lock_guard<std::mutex> lock(control_->mutex);
      return control_->loop != nullptr;
    }

   private:
    friend class basic_loop;
    explicit poster(std::shared_ptr<control> c) noexcept : control_(std::move(c)) {}
    std::shared_ptr<control> control_;
  };

  // ------------------------------------------------------------- the loop

  explicit basic_loop(loop_options options = {})
      : loop_core(services, nullptr), backend_(std::in_place), executor_(std::in_place, inbox_, options.executor) {
    now_ = static_cast<std::uint64_t>(backend_->now().count());
    attach_backend(&*backend_);
  }

  basic_loop(const basic_loop&) = delete;
  basic_loop& operator=(const basic_loop&) = delete;

  ~basic_loop() {
    PHASELOOP_ASSERT(!running_, "a loop was destroyed from inside its own run()");
    {  // posters and keep_alive tokens on other threads: the loop is gone
      std::lock_guard<std::mutex> lock(control_->mutex);
      control_->loop = nullptr;
    }
    // Queued callbacks, promises and coroutine frames go first, while the
    // loop they may refer to (keep_alive tokens, handles) is still whole.
    release_tasks();
    // No worker runs or delivers work any more; then no operation is left in
    // the kernel (a completion backend waits for its cancellations), so the
    // records and buffers of handles can go.
    executor_.reset();
    backend_.reset();
    replace_services(gone_services);
    // Destroy every pending callback while the loop is whole; a destructor
    // may schedule more (a session's timers cleared by its destructor), so
    // repeat until nothing is left.
    for (bool more = true; more;) {
      release_tasks();
      more = destroy_handles();
      more = drop_scheduled() || more;
    }
    // Timer and immediate handles still held are stale from here on.
    detail::loop_lives::instance().release(life_);
  }

  /// Run the loop (Node's event loop). Returns whether it is still alive.
  /// An exception escaping a callback with no on_uncaught_exception handler
  /// leaves run() and the loop stays usable: run() may be called again.
  ///
  /// As Node 20 (libuv >= 1.45): default mode runs due timers once before
  /// the first iteration; every iteration runs pending, idle, prepare, poll,
  /// check and close, then the timers that are due, then checks liveness.
  /// A loop with nothing alive still refreshes its time. On a mock backend
  /// with auto-advance off, run() returns (true: still alive) after an
  /// iteration whose poll would have had to wait for virtual time, which only
  /// the test can move. Precondition: not called from one of the loop's own
  /// callbacks (PHASELOOP_ASSERT).
  bool run(run_mode mode = run_mode::default_) {
    PHASELOOP_ASSERT(!running_, "run() was re-entered from one of the loop's own callbacks");
    if (running_) return alive();  // with assertions off: does nothing
    running_ = true;
    run_thread_.store(std::this_thread::get_id(), std::memory_order_relaxed);
    struct finish {
      basic_loop& loop;
      ~finish() {
        loop.running_ = false;
        loop.run_thread_.store(std::thread::id{}, std::memory_order_relaxed);
        loop.waiting_for_test_ = false;
        loop.stop_flag_.store(false, std::memory_order_relaxed);
      }
    } guard{*this};

    run_microtasks();  // what the caller queued before run()
    const bool live = alive();
    if (!live) update_time();
    if (mode == run_mode::default_ && live && !stopped()) {
      time_stale_ = true;  // read lazily: no timers, no clock read
      run_timers();
    }
    while (!stopped() && alive()) {
      ++metrics_.iterations;
      // Whether poll may block is decided before the pending and idle
      // phases run (libuv's can_sleep): an idle handle that stops itself
      // still makes this iteration's poll non-blocking in once mode.
      const bool may_block = mode == run_mode::default_ ||
                             (mode == run_mode::once && pending_.empty() && completed_.empty() &&
                              phase_list(phase::idle).empty());
      run_pending();
      run_phase(phase_list(phase::idle), &detail::run_phase_record);
      run_phase(phase_list(phase::prepare), &detail::run_phase_record);
      poll_phase(may_block);
      run_check();
      run_phase(phase_list(phase::check), &detail::run_phase_record);
      run_closing();
      time_stale_ = true;  // timers end the iteration (libuv >= 1.45)
      run_timers();
      if (mode != run_mode::default_ || waiting_for_test_) break;
    }
    return alive();
  }

  /// Make run() return after the current iteration; poll does not block.
  /// Thread-safe: from another thread it wakes a blocked poll. (A thread
  /// that may outlive the loop stops it through a poster.)
  void stop() noexcept {
    stop_flag_.store(true, std::memory_order_relaxed);
    // From a callback the loop is not blocked; from another thread, wake it.
    if (run_thread_.load(std::memory_order_relaxed) != std::this_thread::get_id() && backend_) backend_->wakeup();
  }

  /// Whether anything keeps the loop running: ref'd active handles, timers
  /// and immediates, queued work, closing handles, keep_alive tokens, or
  /// posted callbacks not yet run.
  [[nodiscard]] bool alive() const noexcept {
    return timer_refs_ > 0 || immediate_refs_ > 0 || pending_work_ > 0 || handles_alive() ||
           external_refs_.load(std::memory_order_acquire) > 0 || inbox_.pending();
  }

  /// The loop's cached time in milliseconds: read from the clock once per
  /// iteration (at its first use) and after poll, then constant until updated.
  /// On real backends it counts from an arbitrary monotonic origin (compare
  /// two readings, never a reading with wall-clock time); on the mock it
  /// counts virtual time from 0.
  [[nodiscard]] std::chrono::milliseconds now() const noexcept {
    if (time_stale_) update_time();
    return std::chrono::milliseconds(now_);
  }

  /// Refresh the cached time from the backend's clock.
  void update_time() const noexcept {
    if (!backend_) [[unlikely]] {  // the loop's teardown: time stands still
      time_stale_ = false;
      return;
    }
    const auto t = static_cast<std::uint64_t>(backend_->now().count());
    if (t > now_) now_ = t;
    time_stale_ = false;
  }

  [[nodiscard]] loop_metrics metrics() const noexcept {
    loop_metrics m = metrics_;
    m.events += completions_run();
    return m;
  }
  Backend& backend() noexcept { return *backend_; }
  const Backend& backend() const noexcept { return *backend_; }
  Executor& executor() noexcept { return *executor_; }

  // ---------------------------------------------------------------- timers

  /// Run `cb` once after `delay` (Node's setTimeout).
  template <class F, class Rep, class Period>
    requires std::is_invocable_v<std::decay_t<F>&>
  timer_handle set_timeout(F&& cb, std::chrono::duration<Rep, Period> delay) {
    return start_timer(std::forward<F>(cb), delay, false);
  }

  /// Run `cb` every `delay` until cleared (Node's setInterval).
  template <class F, class Rep, class Period>
    requires std::is_invocable_v<std::decay_t<F>&>
  timer_handle set_interval(F&& cb, std::chrono::duration<Rep, Period> delay) {
    return start_timer(std::forward<F>(cb), delay, true);
  }

  /// Run `cb(self)` once after `delay`, `self` being this timer's handle (as
  /// libuv passes the timer), so the callback can refresh, unref or clear it.
  template <class F, class Rep, class Period>
    requires(!std::is_invocable_v<std::decay_t<F>&> && std::is_invocable_v<std::decay_t<F>&, timer_handle&>)
  timer_handle set_timeout(F&& cb, std::chrono::duration<Rep, Period> delay) {
    return start_timer(with_own_handle(std::forward<F>(cb)), delay, false);
  }

  /// Run `cb(self)` every `delay` until cleared: `clear_interval(self)` from
  /// inside needs no variable declared beforehand.
  template <class F, class Rep, class Period>
    requires(!std::is_invocable_v<std::decay_t<F>&> && std::is_invocable_v<std::decay_t<F>&, timer_handle&>)
  timer_handle set_interval(F&& cb, std::chrono::duration<Rep, Period> delay) {
    return start_timer(with_own_handle(std::forward<F>(cb)), delay, true);
  }

  /// Cancel a timer; safe on fired, cleared and default-constructed handles,
  /// and on handles whose loop is gone. Precondition: `t` was made by this
  /// loop (PHASELOOP_ASSERT).
  void clear_timeout(const timer_handle& t) {
    PHASELOOP_ASSERT(t.loop_ == nullptr || t.loop_ == this || !t.loop_alive(),
                     "a timer handle of another loop was given to clear_timeout()");
    if (t.loop_ != this) return;
    if (timer_record* r = t.record()) clear_timer(*r);
  }
  void clear_interval(const timer_handle& t) { clear_timeout(t); }

  // ------------------------------------------------------------ immediates

  /// Run `cb` in the check phase (Node's setImmediate).
  immediate_handle set_immediate(callback cb) {
    PHASELOOP_ASSERT(static_cast<bool>(cb), "set_immediate() was given an empty callback");
    const std::uint32_t index = immediates_.acquire();
    immediate_record& r = immediates_[index];
    r.fn = std::move(cb);
    r.pass = check_pass_;
    r.refed = true;
    ++immediate_refs_;
    immediate_queue_.push_back(r);
    return immediate_handle(this, index, r.generation);
  }

  /// Cancel an immediate that has not run; it never runs.
  void clear_immediate(const immediate_handle& i) {
    PHASELOOP_ASSERT(i.loop_ == nullptr || i.loop_ == this || !i.loop_alive(),
                     "an immediate handle of another loop was given to clear_immediate()");
    if (i.loop_ != this) return;
    immediate_record* r = i.record();
    if (r == nullptr) return;
    immediate_queue_.remove(*r);
    if (r->refed) --immediate_refs_;
    callback dropped = std::move(r->fn);
    immediates_.release(r->slot_index());
  }

  // --------------------------------------------------------- other handles

  idle make_idle() { return idle(*this); }
  prepare make_prepare() { return prepare(*this); }
  check make_check() { return check(*this); }

  /// A poll handle for descriptor `fd` (not started).
  poll_handle make_poll(native_handle fd) { return poll_handle(*this, fd); }

  /// A token that keeps the loop alive until destroyed (thread-safe).
  keep_alive make_keep_alive() { return keep_alive(this); }

  /// A poster for threads that may outlive the loop (thread-safe).
  poster make_poster() const { return poster(control_); }

  // ----------------------------------------------------- threads and work

  /// Thread-safe: run `cb` on the loop thread in the poll phase. Wakeups are
  /// coalesced; every callback is delivered exactly once.
  /// Precondition: the loop exists (a thread that may outlive it posts
  /// through make_poster()).
  void post(callback cb) {
    PHASELOOP_ASSERT(static_cast<bool>(cb), "post() was given an empty callback");
    inbox_.post(std::move(cb));
  }

  /// Run `work` on the executor, then `after(error)` on the loop thread in the
  /// poll phase; error is operation_canceled when cancel() took it first.
  work_handle queue_work(callback work_fn, detail::unique_function<void(std::error_code)> after,
                  work_kind kind = work_kind::fast) {
    PHASELOOP_ASSERT(static_cast<bool>(work_fn), "queue_work() was given an empty callback (work)");
    PHASELOOP_ASSERT(static_cast<bool>(after), "queue_work() was given an empty callback (after)");
    const std::uint32_t index = work_.acquire();
    work_record& r = work_[index];
    r.work = std::move(work_fn);
    r.after = std::move(after);
    r.kind = kind;
    r.error = {};
    r.exception = nullptr;
    r.state.store(0, std::memory_order_relaxed);
    ++pending_work_;
    if (executor_) executor_->submit(r);  // else the teardown drops it
    return work_handle(index, r.generation);
  }

  /// Cancel queued work (libuv's uv_cancel): {} when it had not started (its
  /// `after` gets operation_canceled), device_or_resource_busy when it runs or
  /// ran, invalid_argument when the request is already finished.
  std::error_code cancel(const work_handle& w) {
    work_record* r = work_.find(w.index_, w.generation_);
    if (r == nullptr) return std::make_error_code(std::errc::invalid_argument);
    std::error_code ec = executor_->cancel(*r);
    if (!ec) {
      r->error = std::make_error_code(std::errc::operation_canceled);
      inbox_.deliver(*r);
    }
    return ec;
  }

  // ---- promise forms (defined in promise.hpp)

  /// A promise already fulfilled with `value` (JavaScript's Promise.resolve).
  template <class V>
  promise<std::decay_t<V>> resolved(V&& value);
  /// A promise<void> already fulfilled.
  promise<void> resolved();
  /// A promise already rejected with `error`: an exception_ptr, an exception
  /// object, or a std::error_code (as std::system_error). Promise.reject.
  template <class T = void, class E>
  promise<T> rejected(E&& error);
  /// A pending promise and the resolver that settles it (Promise.withResolvers).
  template <class T = void>
  std::pair<promise<T>, resolver<T>> make_promise();
  /// Fulfilled once `after` has elapsed (Node's timers/promises setTimeout).
  template <class Rep, class Period>
  promise<void> delay(std::chrono::duration<Rep, Period> after);
  /// Fulfilled with `value` once `after` has elapsed.
  template <class Rep, class Period, class V>
    requires(!std::is_same_v<std::decay_t<V>, abort_signal>)
  promise<std::decay_t<V>> delay(std::chrono::duration<Rep, Period> after, V&& value);
  /// Fulfilled once `after` has elapsed unless `signal` aborts first: then
  /// rejected with its reason, the timer cleared (phaseloop/abort.hpp).
  template <class Rep, class Period>
  promise<void> delay(std::chrono::duration<Rep, Period> after, const abort_signal& signal);
  /// Fulfilled in the check phase (Node's timers/promises setImmediate).
  promise<void> immediate();
  /// Fulfilled in the check phase unless `signal` aborts first (phaseloop/abort.hpp).
  promise<void> immediate(const abort_signal& signal);
  /// Fulfilled with `value` in the check phase.
  template <class V>
    requires(!std::is_same_v<std::decay_t<V>, abort_signal>)
  promise<std::decay_t<V>> immediate(V&& value);

  // ---- end of promise forms

 private:
  // ----------------------------------------------------------- timer logic

  template <class F, class Rep, class Period>
  timer_handle start_timer(F&& cb, std::chrono::duration<Rep, Period> delay, bool repeat) {
    PHASELOOP_ASSERT(!detail::empty_callable(cb), "set_timeout() or set_interval() was given an empty callback");
    const std::uint32_t index = timers_.acquire();
    timer_record& r = timers_[index];
    r.fn = std::forward<F>(cb);
    r.timing = detail::clamp_delay(delay) | (repeat ? timer_record::repeat_bit : 0u);
    r.set_refed(true);
    ++timer_refs_;
    update_time();  // Node reads a fresh clock when a timer is set
    arm(r, now_);
    return timer_handle(this, index, r.generation);
  }

  // Only the loop pointer joins the callable, so a small callback still fits
  // the timer record's inline storage; the firing record says which timer it is.
  template <class F>
  auto with_own_handle(F&& cb) {
    PHASELOOP_ASSERT(!detail::empty_callable(cb), "set_timeout() or set_interval() was given an empty callback");
    return [fn = std::decay_t<F>(std::forward<F>(cb)), self = this]() mutable {
      timer_record* r = self->running_timer_.record;
      timer_handle handle(self, r->slot_index(), r->generation);
      fn(handle);
    };
  }

  // A live timer is in the store unless its callback is running; then the
  // loop's running_timer_ says whether it re-armed or cleared itself.
  [[nodiscard]] bool timer_running(const timer_record& r) const noexcept { return running_timer_.record == &r; }
  [[nodiscard]] bool timer_armed(const timer_record& r) const noexcept {
    return !timer_running(r) || running_timer_.rearmed;
  }
  [[nodiscard]] bool timer_cleared(const timer_record& r) const noexcept {
    return timer_running(r) && running_timer_.cleared;
  }
  [[nodiscard]] bool timer_active(const timer_record& r) const noexcept {
    return !timer_cleared(r) && (timer_armed(r) || r.repeat());
  }

  void arm(timer_record& r, std::uint64_t start) {
    timer_store_.insert(r, start + r.delay());
    if (timer_running(r)) running_timer_.rearmed = true;
  }

  void refresh_timer(timer_record& r) {
    if (timer_cleared(r)) return;
    if (timer_armed(r)) timer_store_.erase(r);
    update_time();
    arm(r, now_);
  }

  void set_timer_ref(timer_record& r, bool on) {
    if (r.refed() == on) return;
    r.set_refed(on);
    if (!timer_cleared(r)) on ? ++timer_refs_ : --timer_refs_;
  }

  void clear_timer(timer_record& r) {
    if (timer_cleared(r)) return;
    if (timer_armed(r)) timer_store_.erase(r);
    if (r.refed()) --timer_refs_;
    if (timer_running(r)) {
      running_timer_.rearmed = false;
      running_timer_.cleared = true;
    } else {
      release_timer(r);
    }
  }

  void release_timer(timer_record& r) {
    timer_callback dropped = std::move(r.fn);  // destroyed after the slot is free
    timers_.release(r.slot_index());
  }

  void run_timers() {
    if (timer_store_.size() == 0) return;
    const auto phase_now = static_cast<std::uint64_t>(now().count());  // now_ again: never negative
    while (typename TimerStore::node* n = timer_store_.pop_expired(phase_now))
      fire(static_cast<timer_record&>(*n));
  }

  void fire(timer_record& r) {
    // An interval re-arms from the time its callback started (Node).
    if (r.repeat()) update_time();
    const std::uint64_t start = now_;
    struct after_callback {
      basic_loop& loop;
      timer_record& r;
      std::uint64_t start;
      running_timer outer;
      ~after_callback() {
        const running_timer self = std::exchange(loop.running_timer_, outer);
        if (self.cleared) {
          loop.release_timer(r);
        } else if (self.rearmed) {
          // refresh() from inside its own callback re-armed it
        } else if (r.repeat()) {
          loop.arm(r, start);
        } else {
          if (r.refed()) --loop.timer_refs_;
          loop.release_timer(r);
        }
      }
    };
    {
      after_callback done{*this, r, start, std::exchange(running_timer_, running_timer{&r, false, false})};
      invoke(r.fn);
    }
    run_microtasks();
  }

  // -------------------------------------------------------- immediate logic

  void set_immediate_ref(immediate_record& r, bool on) {
    if (r.refed == on) return;
    r.refed = on;
    on ? ++immediate_refs_ : --immediate_refs_;
  }

  void run_check() {
    // Immediates queued from here on (by these callbacks, their ticks and
    // microtasks) carry the new pass and wait for the next iteration.
    const std::uint64_t pass = ++check_pass_;
    while (immediate_record* r = immediate_queue_.front()) {
      if (r->pass >= pass) break;
      immediate_queue_.remove(*r);
      if (r->refed) --immediate_refs_;
      callback fn = std::move(r->fn);
      immediates_.release(r->slot_index());
      invoke_then_drain(fn);
    }
  }

  // ------------------------------------------ what loop_core's services are

  static basic_loop& self(loop_core& core) noexcept { return static_cast<basic_loop&>(core); }
  static const basic_loop& self(const loop_core& core) noexcept { return static_cast<const basic_loop&>(core); }

  static constexpr std::uint32_t supported_kinds() noexcept {
    std::uint32_t mask = 0;
    for (std::size_t k = 0; k < op_kind_count; ++k)
      if (Backend::supports(static_cast<op_kind>(k))) mask |= 1u << k;
    return mask;
  }

  static timer_id to_id(const timer_handle& t) noexcept { return timer_id{t.index_, t.generation_}; }
  timer_record* find_timer(timer_id t) noexcept {
    return t.generation != 0 ? timers_.find(t.index, t.generation) : nullptr;
  }

  // The backend's own socket calls (the mock's virtual network), else the system's.
  static constexpr const detail::socket_api* socket_api_of() noexcept {
    if constexpr (requires { Backend::socket_table; })
      return &Backend::socket_table;
#if !defined(_WIN32)
    else
      return &detail::posix::system_socket_api;
#else
    else
      return nullptr;
#endif
  }

  static constexpr detail::loop_services services{
      [](loop_core& l, operation& op) { return self(l).backend_->submit(op); },
      [](loop_core& l, operation& op) { return self(l).backend_->cancel(op); },
      [](loop_core& l, native_handle fd) { return self(l).backend_->close(fd); },
      [](const loop_core& l) noexcept { return self(l).now(); },
      [](loop_core& l, callback cb, std::chrono::milliseconds delay, bool repeat) {
        return to_id(self(l).start_timer(std::move(cb), delay, repeat));
      },
      [](loop_core& l, timer_id t) noexcept {
        if (timer_record* r = self(l).find_timer(t)) self(l).clear_timer(*r);
      },
      [](loop_core& l, timer_id t) {
        if (timer_record* r = self(l).find_timer(t)) self(l).refresh_timer(*r);
      },
      [](loop_core& l, timer_id t, bool on) noexcept {
        if (timer_record* r = self(l).find_timer(t)) self(l).set_timer_ref(*r, on);
      },
      [](loop_core& l, callback work, detail::unique_function<void(std::error_code)> after, work_kind kind) {
        (void)self(l).queue_work(std::move(work), std::move(after), kind);
      },
      socket_api_of(),
      Backend::completion_based,
      supported_kinds(),
  };


  // Once the backend is gone (the loop's teardown): nothing starts, and
  // descriptors the destroyed handles still own are closed directly.
  static constexpr detail::loop_services gone_services{
      [](loop_core&, operation&) { return std::make_error_code(std::errc::operation_canceled); },
      [](loop_core&, operation&) { return true; },
      [](loop_core&, native_handle fd) -> std::error_code {
#if !defined(_WIN32)
        return fd >= 0 ? detail::posix::close_fd(static_cast<int>(fd)) : std::error_code{};
#else
        (void)fd;
        return {};
#endif
      },
      [](const loop_core& l) noexcept { return std::chrono::milliseconds(static_cast<std::int64_t>(self(l).now_)); },
      [](loop_core&, callback, std::chrono::milliseconds, bool) { return timer_id{}; },
      [](loop_core&, timer_id) noexcept {},
      [](loop_core&, timer_id) {},
      [](loop_core&, timer_id, bool) noexcept {},
      [](loop_core&, callback, detail::unique_function<void(std::error_code)>, work_kind) {},
      socket_api_of(),
      Backend::completion_based,
      0,
  };

  // The teardown's last step: destroy what is still scheduled (timers,
  // immediates, queued work, posted callbacks) without running it. Returns
  // whether anything was there.
  bool drop_scheduled() noexcept {
    bool dropped = false;
    timers_.for_each_live([&](std::uint32_t, timer_record& r) {
      dropped = true;
      if (timer_armed(r)) timer_store_.erase(r);
      release_timer(r);
    });
    timer_refs_ = 0;
    while (immediate_record* r = immediate_queue_.pop_front()) {
      dropped = true;
      callback fn = std::move(r->fn);
      immediates_.release(r->slot_index());
    }
    immediate_refs_ = 0;
    work_request* done = inbox_.take(posted_);
    while (done != nullptr) {
      auto& r = static_cast<work_record&>(*std::exchange(done, done->next));
      dropped = true;
      r.work = nullptr;
      auto after = std::move(r.after);
      work_.release(r.slot_index());
    }
    work_.for_each_live([&](std::uint32_t, work_record& r) {  // never delivered (the executor was gone)
      dropped = true;
      r.work = nullptr;
      auto after = std::move(r.after);
      work_.release(r.slot_index());
    });
    pending_work_ = 0;
    if (!posted_.empty()) dropped = true;
    posted_.clear();
    return dropped;
  }

  // -------------------------------------------------- poll, inbox

  [[nodiscard]] bool stopped() const noexcept { return stop_flag_.load(std::memory_order_relaxed); }

  [[nodiscard]] std::chrono::milliseconds poll_timeout(bool may_block) noexcept {
    using std::chrono::milliseconds;
    if (!may_block || stopped() || immediate_refs_ > 0 || handles_need_turn() || inbox_.pending())
      return milliseconds::zero();
    if (!alive()) return milliseconds::zero();
    const std::uint64_t due = timer_store_.next_due();
    if (due == UINT64_MAX) return infinite_timeout;
    // Measured from a fresh clock, so a slow callback earlier in the iteration
    // does not make the loop oversleep its next timer.
    update_time();
    return milliseconds(due > now_ ? static_cast<std::int64_t>(due - now_) : 0);
  }

  void poll_phase(bool may_block) {
    const std::chrono::milliseconds timeout = poll_timeout(may_block);
    if constexpr (requires(const Backend& b) { { b.auto_advance() } -> std::convertible_to<bool>; }) {
      // The mock with auto-advance off returns from a timed wait at once:
      // only the test can move time, so run() returns after this iteration.
      if (timeout > std::chrono::milliseconds::zero() && !backend_->auto_advance()) waiting_for_test_ = true;
    }
    if (timeout != std::chrono::milliseconds::zero()) {
      const auto before = backend_->hrtime();
      backend_->poll(timeout, completed_);
      metrics_.poll_blocked += backend_->hrtime() - before;
    } else {
      backend_->poll(timeout, completed_);
    }
    time_stale_ = true;
    run_completions();
    if (inbox_.pending()) drain_inbox();
  }

  void drain_inbox() {
    work_request* done = inbox_.take(posted_);
    std::size_t next = 0;
    struct give_back {
      // When an exception leaves, what did not run goes back to the inbox in order.
      basic_loop& loop;
      work_request*& done;
      std::size_t& next;
      int exceptions = std::uncaught_exceptions();
      ~give_back() {
        // Ahead of what arrived meanwhile (what the throwing callback posted).
        if (std::uncaught_exceptions() > exceptions) loop.inbox_.put_back(done, loop.posted_, next);
        loop.posted_.clear();
      }
    } guard{*this, done, next};
    // Finished work first, in delivery order, then posted callbacks.
    while (done != nullptr) {
      auto& r = static_cast<work_record&>(*std::exchange(done, done->next));
      ++metrics_.events;
      finish_work(r);
    }
    while (next < posted_.size()) {
      callback cb = std::move(posted_[next++]);
      ++metrics_.events;
      invoke_then_drain(cb);
    }
  }

  void finish_work(work_record& r) {
    --pending_work_;
    auto after = std::move(r.after);
    const std::error_code ec = r.error;
    std::exception_ptr thrown = std::move(r.exception);
    r.work = nullptr;
    work_.release(r.slot_index());
    if (thrown) {
      report_exception(std::move(thrown));  // the work itself threw
      run_microtasks();
    } else {
      invoke_then_drain(after, ec);
    }
  }

  static void wake_backend(void* self) noexcept {
    auto& loop = *static_cast<basic_loop*>(self);
    if (loop.backend_) loop.backend_->wakeup();
  }

  // Members. The destructor ends the executor (its threads) and then the
  // backend explicitly; the inbox, the pools and loop_core's handle records
  // outlive both.
  std::optional<Backend> backend_;
  TimerStore timer_store_;
  detail::slot_pool<timer_record> timers_;
  detail::slot_pool<immediate_record> immediates_;
  detail::slot_pool<work_record, 64> work_;
  detail::intrusive_list<immediate_record> immediate_queue_;
  std::vector<callback> posted_;
  inbox inbox_{&basic_loop::wake_backend, this};
  std::optional<Executor> executor_;

  mutable std::uint64_t now_ = 0;
  mutable bool time_stale_ = false;
  running_timer running_timer_{};
  std::uint64_t check_pass_ = 0;
  std::size_t timer_refs_ = 0;
  std::size_t immediate_refs_ = 0;
  std::size_t pending_work_ = 0;
  std::atomic<std::size_t> external_refs_{0};
  loop_metrics metrics_{};
  std::atomic<bool> stop_flag_{false};  // stop() may come from any thread
  std::atomic<std::thread::id> run_thread_{};  // the thread in run(), for stop()
  bool running_ = false;
  bool waiting_for_test_ = false;  // the mock cannot move time by itself
  std::shared_ptr<control> control_ = std::make_shared<control>(this);
  detail::loop_life& life_ = detail::loop_lives::instance().acquire();
  std::uint64_t life_id_ = life_.id.load(std::memory_order_relaxed);
};

}  // namespace phaseloop
