#pragma once
// basic_loop: Node's event loop, assembled from a Backend, a TimerStore and an
// Executor. One iteration runs the phases timers, pending, idle, prepare,
// poll, check and close, with a microtask checkpoint after every callback
// (DESIGN §2).

#include <phaseloop/concepts.hpp>
#include <phaseloop/detail/function.hpp>
#include <phaseloop/detail/intrusive_list.hpp>
#include <phaseloop/detail/pool.hpp>
#include <phaseloop/detail/ring.hpp>
#include <phaseloop/inbox.hpp>
#include <phaseloop/microtasks.hpp>
#include <phaseloop/operation.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace phaseloop {

template <class T> class promise;   // promise.hpp
template <class T> class resolver;  // promise.hpp

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

template <backend Backend, timer_store TimerStore, executor Executor>
class basic_loop : public loop_core {
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
    std::uint64_t epoch = 0;  // check phases begun when it was queued
    bool refed = true;
  };

  enum class handle_kind : std::uint8_t { idle, prepare, check, poll };
  using callback_poll = detail::unique_function<void(std::error_code, unsigned)>;

 public:
  class handle_base;

 private:
  struct handle_record : detail::list_hook, detail::pool_slot {
    handle_kind kind = handle_kind::idle;
    bool active = false;
    bool refed = true;
    bool closing = false;
    bool restart = false;           // started again while the backend still owns the cancelled operation
    std::uint32_t outstanding = 0;  // operations the backend still owns
    std::uint64_t walk = 0;         // the phase walk during which it was started or closed
    callback on_phase;
    detail::unique_function<void(std::error_code, unsigned)> on_poll;
    callback on_close;
    operation op;
    basic_loop* loop = nullptr;
    handle_base* owner = nullptr;
  };

  struct work_record : work_request, detail::pool_slot {
    detail::unique_function<void(std::error_code)> after;
  };

 public:
  using backend_type = Backend;
  using timer_store_type = TimerStore;
  using executor_type = Executor;

  // ------------------------------------------------------------------ handles

  /// A timer from set_timeout or set_interval. A small copyable value; once
  /// the timer has fired (one-shot) or been cleared, every call is a no-op.
  class timer_handle {
   public:
    timer_handle() = default;
    /// Restart the countdown from now with the original delay (Node's refresh()).
    timer_handle& refresh() {
      if (timer_record* r = record()) loop_->refresh_timer(*r);
      return *this;
    }
    /// Make the timer keep the loop alive (the default).
    timer_handle& ref() {
      if (timer_record* r = record()) loop_->set_timer_ref(*r, true);
      return *this;
    }
    /// Let the loop end while this timer is pending; it still fires if the loop runs.
    timer_handle& unref() {
      if (timer_record* r = record()) loop_->set_timer_ref(*r, false);
      return *this;
    }
    [[nodiscard]] bool has_ref() const {
      const timer_record* r = record();
      return r != nullptr && r->refed();
    }
    /// Scheduled to fire (an interval stays active until cleared).
    [[nodiscard]] bool active() const {
      const timer_record* r = record();
      return r != nullptr && loop_->timer_active(*r);
    }
    friend bool operator==(const timer_handle&, const timer_handle&) = default;

   private:
    friend class basic_loop;
    timer_handle(basic_loop* loop, std::uint32_t index, std::uint32_t generation)
        : loop_(loop), index_(index), generation_(generation) {}
    timer_record* record() const {
      return loop_ != nullptr ? loop_->timers_.find(index_, generation_) : nullptr;
    }
    basic_loop* loop_ = nullptr;
    std::uint32_t index_ = 0;
    std::uint32_t generation_ = 0;
  };

  /// An immediate from set_immediate; a small copyable value.
  class immediate_handle {
   public:
    immediate_handle() = default;
    immediate_handle& ref() {
      if (immediate_record* r = record()) loop_->set_immediate_ref(*r, true);
      return *this;
    }
    immediate_handle& unref() {
      if (immediate_record* r = record()) loop_->set_immediate_ref(*r, false);
      return *this;
    }
    [[nodiscard]] bool has_ref() const {
      const immediate_record* r = record();
      return r != nullptr && r->refed;
    }
    /// Queued and not yet run or cleared.
    [[nodiscard]] bool pending() const { return record() != nullptr; }
    friend bool operator==(const immediate_handle&, const immediate_handle&) = default;

   private:
    friend class basic_loop;
    immediate_handle(basic_loop* loop, std::uint32_t index, std::uint32_t generation)
        : loop_(loop), index_(index), generation_(generation) {}
    immediate_record* record() const {
      if (loop_ == nullptr) return nullptr;
      immediate_record* r = loop_->immediates_.find(index_, generation_);
      return r != nullptr && r->linked ? r : nullptr;
    }
    basic_loop* loop_ = nullptr;
    std::uint32_t index_ = 0;
    std::uint32_t generation_ = 0;
  };

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

  /// The common part of the RAII handles (idle, prepare, check, poll): a
  /// move-only owner of a loop record. Destroying it closes the handle;
  /// close(cb) runs cb in the close phase. Safe to use after the loop is gone
  /// (every call becomes a no-op).
  class handle_base {
   public:
    handle_base(const handle_base&) = delete;
    handle_base& operator=(const handle_base&) = delete;

    /// Keep the loop alive while active (the default).
    void ref() {
      if (handle_record* r = record()) loop_->set_handle_ref(*r, true);
    }
    /// Let the loop end while this handle is active.
    void unref() {
      if (handle_record* r = record()) loop_->set_handle_ref(*r, false);
    }
    [[nodiscard]] bool has_ref() const {
      const handle_record* r = record();
      return r != nullptr && r->refed;
    }
    [[nodiscard]] bool is_active() const {
      const handle_record* r = record();
      return r != nullptr && r->active;
    }
    /// False once closed, moved from, or when the loop is gone.
    explicit operator bool() const { return record() != nullptr; }

    /// Stop the handle and release it in the close phase, then run `on_close`.
    void close(callback on_close = {}) {
      if (handle_record* r = record()) {
        loop_->close_handle(*r, std::move(on_close));
        loop_ = nullptr;
      }
    }

   protected:
    handle_base() = default;
    handle_base(basic_loop* loop, handle_record& r) : loop_(loop), index_(r.slot_index()) {
      r.owner = this;
    }
    handle_base(handle_base&& other) noexcept
        : loop_(std::exchange(other.loop_, nullptr)), index_(other.index_) {
      if (handle_record* r = record()) r->owner = this;
    }
    handle_base& operator=(handle_base&& other) noexcept {
      if (this != &other) {
        close();
        loop_ = std::exchange(other.loop_, nullptr);
        index_ = other.index_;
        if (handle_record* r = record()) r->owner = this;
      }
      return *this;
    }
    ~handle_base() { close(); }

    handle_record* record() const {
      return loop_ != nullptr ? &loop_->handles_[index_] : nullptr;
    }

    friend class basic_loop;
    basic_loop* loop_ = nullptr;  // null once closed or when the loop is destroyed
    std::uint32_t index_ = 0;
  };

  /// A handle whose callback runs once per iteration in one phase: idle
  /// (before prepare; an active idle handle makes poll non-blocking), prepare
  /// (right before poll) or check (right after poll, after the immediates).
  template <handle_kind Kind>
  class phase_handle : public handle_base {
   public:
    phase_handle() = default;
    /// Start (or restart with a new callback). Starting while closing is ignored.
    void start(callback cb) {
      if (handle_record* r = this->record()) this->loop_->start_phase_handle(*r, std::move(cb));
    }
    void stop() {
      if (handle_record* r = this->record()) this->loop_->stop_handle(*r);
    }

   private:
    friend class basic_loop;
    phase_handle(basic_loop* loop, handle_record& r) : handle_base(loop, r) {}
  };

  using idle = phase_handle<handle_kind::idle>;
  using prepare = phase_handle<handle_kind::prepare>;
  using check = phase_handle<handle_kind::check>;

  /// Watches a raw descriptor for readiness (libuv's uv_poll_t): the callback
  /// gets an error or the events that happened, level-triggered, until stop().
  /// Stop or close the handle before closing the descriptor: a descriptor
  /// closed under an active handle keeps its slot busy (as in libuv).
  class poll_handle : public handle_base {
   public:
    using poll_callback = detail::unique_function<void(std::error_code, unsigned)>;
    poll_handle() = default;

    /// Watch for `events` (readable | writable). An invalid descriptor, one
    /// the backend cannot watch, or a closed handle gives an error.
    std::error_code start(unsigned events, poll_callback cb) {
      handle_record* r = this->record();
      if (r == nullptr) return std::make_error_code(std::errc::bad_file_descriptor);
      return this->loop_->start_poll(*r, events, std::move(cb));
    }
    void stop() {
      if (handle_record* r = this->record()) this->loop_->stop_handle(*r);
    }
    [[nodiscard]] native_handle fd() const {
      const handle_record* r = this->record();
      return r != nullptr ? r->op.fd : -1;
    }

   private:
    friend class basic_loop;
    poll_handle(basic_loop* loop, handle_record& r) : handle_base(loop, r) {}
  };

  /// Keeps the loop alive while it exists; may be created, moved and destroyed
  /// on any thread (for work the loop will hear about through post()). Like a
  /// thread that calls post(), it must be gone before the loop is destroyed.
  class keep_alive {
   public:
    keep_alive() = default;
    keep_alive(keep_alive&& other) noexcept : loop_(std::exchange(other.loop_, nullptr)) {}
    keep_alive& operator=(keep_alive&& other) noexcept {
      if (this != &other) {
        reset();
        loop_ = std::exchange(other.loop_, nullptr);
      }
      return *this;
    }
    keep_alive(const keep_alive&) = delete;
    keep_alive& operator=(const keep_alive&) = delete;
    ~keep_alive() { reset(); }
    void reset() {
      if (basic_loop* loop = std::exchange(loop_, nullptr)) {
        loop->external_refs_.fetch_sub(1, std::memory_order_acq_rel);
        loop->inbox_.signal();
      }
    }

   private:
    friend class basic_loop;
    explicit keep_alive(basic_loop* loop) : loop_(loop) {
      loop_->external_refs_.fetch_add(1, std::memory_order_acq_rel);
    }
    basic_loop* loop_ = nullptr;
  };

  // ------------------------------------------------------------- the loop

  explicit basic_loop(loop_options options = {})
      : executor_(inbox_, options.executor) {
    now_ = backend_.now().count();
  }

  basic_loop(const basic_loop&) = delete;
  basic_loop& operator=(const basic_loop&) = delete;

  ~basic_loop() {
    // Queued callbacks, promises and coroutine frames go first, while the
    // loop they may refer to (keep_alive tokens, handles) is still whole.
    release_tasks();
    // Handles the user still holds become empty; pending callbacks are
    // destroyed without running.
    handles_.for_each_live([](std::uint32_t, handle_record& r) {
      if (r.owner != nullptr) r.owner->loop_ = nullptr;
    });
  }

  /// Run the loop (Node's event loop). Returns whether it is still alive.
  /// An exception escaping a callback with no on_uncaught_exception handler
  /// leaves run() and the loop stays usable: run() may be called again.
  bool run(run_mode mode = run_mode::default_) {
    if (running_) return alive();  // run() from inside a callback does nothing
    running_ = true;
    struct finish {
      basic_loop& loop;
      ~finish() {
        loop.running_ = false;
        loop.stop_flag_ = false;
      }
    } guard{*this};

    run_microtasks();  // what the caller queued before run()
    while (!stop_flag_ && alive()) {
      ++metrics_.iterations;
      time_stale_ = true;  // read lazily: a turn without timers needs no clock read
      run_timers();
      run_pending();
      run_phase_handles(idle_);
      run_phase_handles(prepare_);
      poll_phase(mode);
      run_check();
      run_phase_handles(check_);
      run_closing();
      if (mode == run_mode::once) {
        // Forward progress: timers that came due while poll waited run now.
        time_stale_ = true;
        run_timers();
      }
      if (mode != run_mode::default_) break;
    }
    return alive();
  }

  /// Make run() return after the current iteration; poll does not block.
  void stop() noexcept { stop_flag_ = true; }

  /// Whether anything keeps the loop running: ref'd active handles, timers
  /// and immediates, queued work, closing handles, keep_alive tokens, or
  /// posted callbacks not yet run.
  [[nodiscard]] bool alive() const noexcept {
    return timer_refs_ > 0 || immediate_refs_ > 0 || handle_refs_ > 0 || pending_work_ > 0 ||
           closing_count_ > 0 || !pending_.empty() || !completed_.empty() ||
           external_refs_.load(std::memory_order_acquire) > 0 || inbox_.pending();
  }

  /// The loop's cached time in milliseconds: read from the clock once per
  /// iteration (at its first use) and after poll, then constant until updated.
  [[nodiscard]] std::chrono::milliseconds now() const noexcept {
    if (time_stale_) update_time();
    return std::chrono::milliseconds(now_);
  }

  /// Refresh the cached time from the backend's clock.
  void update_time() const noexcept {
    const auto t = static_cast<std::uint64_t>(backend_.now().count());
    if (t > now_) now_ = t;
    time_stale_ = false;
  }

  [[nodiscard]] loop_metrics metrics() const noexcept { return metrics_; }
  Backend& backend() noexcept { return backend_; }
  const Backend& backend() const noexcept { return backend_; }
  Executor& executor() noexcept { return executor_; }

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

  /// Cancel a timer; safe on fired, cleared and default-constructed handles.
  void clear_timeout(const timer_handle& t) {
    if (timer_record* r = t.record()) clear_timer(*r);
  }
  void clear_interval(const timer_handle& t) { clear_timeout(t); }

  // ------------------------------------------------------------ immediates

  /// Run `cb` in the check phase (Node's setImmediate).
  immediate_handle set_immediate(callback cb) {
    const std::uint32_t index = immediates_.acquire();
    immediate_record& r = immediates_[index];
    r.fn = std::move(cb);
    r.epoch = check_epoch_;
    r.refed = true;
    ++immediate_refs_;
    immediate_queue_.push_back(r);
    return immediate_handle(this, index, r.generation);
  }

  /// Cancel an immediate that has not run; it never runs.
  void clear_immediate(const immediate_handle& i) {
    immediate_record* r = i.record();
    if (r == nullptr) return;
    immediate_queue_.remove(*r);
    if (r->refed) --immediate_refs_;
    callback dropped = std::move(r->fn);
    immediates_.release(r->slot_index());
  }

  // --------------------------------------------------------- other handles

  idle make_idle() { return idle(this, new_handle(handle_kind::idle)); }
  prepare make_prepare() { return prepare(this, new_handle(handle_kind::prepare)); }
  check make_check() { return check(this, new_handle(handle_kind::check)); }

  /// A poll handle for descriptor `fd` (not started).
  poll_handle make_poll(native_handle fd) {
    handle_record& r = new_handle(handle_kind::poll);
    r.op = operation{};
    r.op.kind = op_kind::poll;
    r.op.fd = fd;
    r.op.user = &r;
    r.op.complete = &basic_loop::complete_poll;
    return poll_handle(this, r);
  }

  /// A token that keeps the loop alive until destroyed (thread-safe).
  keep_alive make_keep_alive() { return keep_alive(this); }

  // ----------------------------------------------------- threads and work

  /// Thread-safe: run `cb` on the loop thread in the poll phase. Wakeups are
  /// coalesced; every callback is delivered exactly once.
  void post(callback cb) { inbox_.post(std::move(cb)); }

  /// Run `work` on the executor, then `after(error)` on the loop thread in the
  /// poll phase; error is operation_canceled when cancel() took it first.
  work_handle queue_work(callback work_fn, detail::unique_function<void(std::error_code)> after,
                  work_kind kind = work_kind::fast) {
    const std::uint32_t index = work_.acquire();
    work_record& r = work_[index];
    r.work = std::move(work_fn);
    r.after = std::move(after);
    r.kind = kind;
    r.error = {};
    r.exception = nullptr;
    r.state.store(0, std::memory_order_relaxed);
    ++pending_work_;
    executor_.submit(r);
    return work_handle(index, r.generation);
  }

  /// Cancel queued work (libuv's uv_cancel): {} when it had not started (its
  /// `after` gets operation_canceled), device_or_resource_busy when it runs or
  /// ran, invalid_argument when the request is already finished.
  std::error_code cancel(const work_handle& w) {
    work_record* r = work_.find(w.index_, w.generation_);
    if (r == nullptr) return std::make_error_code(std::errc::invalid_argument);
    std::error_code ec = executor_.cancel(*r);
    if (!ec) {
      r->error = std::make_error_code(std::errc::operation_canceled);
      inbox_.deliver(*r);
    }
    return ec;
  }

  /// Queue a callback for the next pending phase (how I/O modules report
  /// results that are known at once, never synchronously). Callbacks deferred
  /// while the pending phase runs wait for the next iteration's.
  void defer(callback cb) { pending_.push_back(std::move(cb)); }

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
  promise<std::decay_t<V>> delay(std::chrono::duration<Rep, Period> after, V&& value);
  /// Fulfilled in the check phase (Node's timers/promises setImmediate).
  promise<void> immediate();
  /// Fulfilled with `value` in the check phase.
  template <class V>
  promise<std::decay_t<V>> immediate(V&& value);

  // ---- end of promise forms

 private:
  // ----------------------------------------------------------- timer logic

  template <class F, class Rep, class Period>
  timer_handle start_timer(F&& cb, std::chrono::duration<Rep, Period> delay, bool repeat) {
    const std::uint32_t index = timers_.acquire();
    timer_record& r = timers_[index];
    r.fn = std::forward<F>(cb);
    r.timing = clamp_delay(delay) | (repeat ? timer_record::repeat_bit : 0u);
    r.set_refed(true);
    ++timer_refs_;
    update_time();  // Node reads a fresh clock when a timer is set
    arm(r, now_);
    return timer_handle(this, index, r.generation);
  }

  template <class Rep, class Period>
  static std::uint32_t clamp_delay(std::chrono::duration<Rep, Period> delay) noexcept {
    if constexpr (std::is_floating_point_v<Rep>) {
      // NaN and out-of-range values become 1 ms, as in Node.
      const double ms = std::chrono::duration<double, std::milli>(delay).count();
      if (!(ms >= 1.0 && ms <= static_cast<double>(max_timer_delay.count()))) return 1;
      return static_cast<std::uint32_t>(ms);
    } else {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(delay);
      if (ms < std::chrono::milliseconds(1) || ms > max_timer_delay) return 1;
      return static_cast<std::uint32_t>(ms.count());
    }
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
    const std::uint64_t phase_now = now().count();
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
    // microtasks) carry the new epoch and wait for the next iteration.
    const std::uint64_t phase = ++check_epoch_;
    while (immediate_record* r = immediate_queue_.front()) {
      if (r->epoch >= phase) break;
      immediate_queue_.remove(*r);
      if (r->refed) --immediate_refs_;
      callback fn = std::move(r->fn);
      immediates_.release(r->slot_index());
      invoke_then_drain(fn);
    }
  }

  // --------------------------------------------------------- handle logic

  handle_record& new_handle(handle_kind kind) {
    const std::uint32_t index = handles_.acquire();
    handle_record& r = handles_[index];
    r.kind = kind;
    r.active = r.closing = r.restart = false;
    r.refed = true;
    r.outstanding = 0;
    r.loop = this;
    r.owner = nullptr;
    return r;
  }

  detail::intrusive_list<handle_record>& list_for(handle_kind kind) {
    return kind == handle_kind::idle ? idle_ : kind == handle_kind::prepare ? prepare_ : check_;
  }

  void activate(handle_record& r) {
    if (r.active) return;
    r.active = true;
    if (r.refed) ++handle_refs_;
  }

  void deactivate(handle_record& r) {
    if (!r.active) return;
    r.active = false;
    if (r.refed) --handle_refs_;
  }

  void set_handle_ref(handle_record& r, bool on) {
    if (r.refed == on) return;
    r.refed = on;
    if (r.active) on ? ++handle_refs_ : --handle_refs_;
  }

  void start_phase_handle(handle_record& r, callback cb) {
    if (r.closing) return;
    r.on_phase = std::move(cb);
    if (r.active) return;
    r.walk = walk_;
    list_for(r.kind).push_back(r);
    activate(r);
  }

  std::error_code start_poll(handle_record& r, unsigned events, callback_poll cb) {
    if (r.closing) return std::make_error_code(std::errc::bad_file_descriptor);
    if ((events & (readable | writable)) == 0 || (events & ~(readable | writable)) != 0)
      return std::make_error_code(std::errc::invalid_argument);
    r.op.events = events;
    if (r.restart || (r.outstanding != 0 && !r.active)) {
      // Stopped on a completion backend, which has not given the cancelled
      // operation back yet: submitting it again now would let that late
      // cancellation end the new watch. Submit once it is back.
      r.restart = true;
      r.on_poll = std::move(cb);
      activate(r);
      return {};
    }
    if (std::error_code ec = backend_.submit(r.op)) return ec;
    r.outstanding = 1;
    r.on_poll = std::move(cb);
    activate(r);
    return {};
  }

  void stop_handle(handle_record& r) {
    if (!r.active) return;
    deactivate(r);
    if (r.kind == handle_kind::poll) {
      if (r.restart) {  // the backend is already cancelling it
        r.restart = false;
        return;
      }
      if (backend_.cancel(r.op)) {
        completed_.remove(r.op);  // readiness delivered but not yet run: drop it
        r.outstanding = 0;
      }
    } else
      list_for(r.kind).remove(r);
  }

  void close_handle(handle_record& r, callback on_close) {
    if (r.closing) return;
    stop_handle(r);
    r.closing = true;
    r.owner = nullptr;
    r.on_close = std::move(on_close);
    r.walk = walk_;
    ++closing_count_;
    closing_.push_back(r);
  }

  // Runs a handle's callback from a local, so start() with a new callback
  // from inside the running one cannot destroy the callable on the stack; the
  // callback goes back unless a new one was set meanwhile.
  template <class Fn, class... Args>
  void invoke_handle_callback(Fn& slot, Args&&... args) {
    Fn fn = std::move(slot);
    struct restore {
      Fn& slot;
      Fn& fn;
      ~restore() {
        if (!slot) slot = std::move(fn);
      }
    };
    {
      restore guard{slot, fn};
      invoke(fn, std::forward<Args>(args)...);
    }
    run_microtasks();
  }

  static void complete_poll(operation& op) {
    auto& r = *static_cast<handle_record*>(op.user);
    if (op.error == std::errc::operation_canceled) {
      r.outstanding = 0;  // the backend has let go of the operation
      if (r.restart) r.loop->resubmit_poll(r);
      return;
    }
    if (!r.active || r.closing || (op.revents == 0 && !op.error)) return;
    r.loop->invoke_handle_callback(r.on_poll, op.error, op.revents);
  }

  // A start() that waited for the backend to give the operation back.
  void resubmit_poll(handle_record& r) {
    r.restart = false;
    r.op.error = {};
    r.op.revents = 0;
    if (std::error_code ec = backend_.submit(r.op)) {
      deactivate(r);
      invoke_handle_callback(r.on_poll, ec, 0u);
      return;
    }
    r.outstanding = 1;
  }

  void run_phase_handles(detail::intrusive_list<handle_record>& list) {
    if (list.empty()) return;
    const std::uint64_t walk = ++walk_;
    list.for_each_safe([&](handle_record& r) {
      if (r.walk == walk || !r.active) return;  // started during this walk
      invoke_handle_callback(r.on_phase);
    });
  }

  void run_closing() {
    if (closing_.empty()) return;
    const std::uint64_t walk = ++walk_;
    closing_.for_each_safe([&](handle_record& r) {
      // Closed during this walk, or the backend still owns its operation.
      if (r.walk == walk || r.outstanding != 0) return;
      closing_.remove(r);
      --closing_count_;
      callback on_close = std::move(r.on_close);
      r.on_phase = nullptr;
      r.on_poll = nullptr;
      handles_.release(r.slot_index());
      if (on_close) invoke_then_drain(on_close);
    });
  }

  // -------------------------------------------------- pending, poll, inbox

  void run_pending() {
    // I/O completions an exception interrupted in the last poll phase.
    while (operation* op = completed_.pop_front()) {
      ++metrics_.events;
      op->complete(*op);
    }
    for (std::size_t n = pending_.size(); n > 0 && !pending_.empty(); --n) {
      callback cb = pending_.pop_front();
      invoke_then_drain(cb);
    }
  }

  [[nodiscard]] std::chrono::milliseconds poll_timeout(run_mode mode) noexcept {
    using std::chrono::milliseconds;
    if (mode == run_mode::nowait || stop_flag_ || immediate_refs_ > 0 || !idle_.empty() ||
        !pending_.empty() || closing_count_ > 0 || !completed_.empty() || inbox_.pending())
      return milliseconds::zero();
    if (!alive()) return milliseconds::zero();
    const std::uint64_t due = timer_store_.next_due();
    if (due == UINT64_MAX) return infinite_timeout;
    // Measured from a fresh clock, so a slow callback earlier in the iteration
    // does not make the loop oversleep its next timer.
    update_time();
    return milliseconds(due > now_ ? static_cast<std::int64_t>(due - now_) : 0);
  }

  void poll_phase(run_mode mode) {
    const std::chrono::milliseconds timeout = poll_timeout(mode);
    if (timeout != std::chrono::milliseconds::zero()) {
      const auto before = backend_.hrtime();
      backend_.poll(timeout, completed_);
      metrics_.poll_blocked += backend_.hrtime() - before;
    } else {
      backend_.poll(timeout, completed_);
    }
    time_stale_ = true;
    while (operation* op = completed_.pop_front()) {
      ++metrics_.events;
      op->complete(*op);
    }
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
        if (std::uncaught_exceptions() > exceptions) {
          while (done != nullptr) loop.inbox_.deliver(*std::exchange(done, done->next));
          for (; next < loop.posted_.size(); ++next) loop.inbox_.post(std::move(loop.posted_[next]));
        }
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
    static_cast<basic_loop*>(self)->backend_.wakeup();
  }

  // Members. Order matters for destruction: the executor (its threads) goes
  // first, then the inbox it delivers to, then the pools its requests live in.
  Backend backend_;
  TimerStore timer_store_;
  detail::slot_pool<timer_record> timers_;
  detail::slot_pool<immediate_record> immediates_;
  detail::slot_pool<handle_record, 64> handles_;
  detail::slot_pool<work_record, 64> work_;
  detail::intrusive_list<immediate_record> immediate_queue_;
  detail::intrusive_list<handle_record> idle_;
  detail::intrusive_list<handle_record> prepare_;
  detail::intrusive_list<handle_record> check_;
  detail::intrusive_list<handle_record> closing_;
  detail::ring<callback> pending_;
  op_queue completed_;
  std::vector<callback> posted_;
  inbox inbox_{&basic_loop::wake_backend, this};
  Executor executor_;

  mutable std::uint64_t now_ = 0;
  mutable bool time_stale_ = false;
  running_timer running_timer_{};
  std::uint64_t check_epoch_ = 0;
  std::uint64_t walk_ = 0;
  std::size_t timer_refs_ = 0;
  std::size_t immediate_refs_ = 0;
  std::size_t handle_refs_ = 0;
  std::size_t pending_work_ = 0;
  std::size_t closing_count_ = 0;
  std::atomic<std::size_t> external_refs_{0};
  loop_metrics metrics_{};
  bool stop_flag_ = false;
  bool running_ = false;
};

}  // namespace phaseloop
