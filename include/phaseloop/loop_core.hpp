#pragma once
// loop_core: the part of every loop that does not depend on its policies.
//
//   - the nextTick and microtask queues, the checkpoint that drains them
//     after each callback, and the routing of uncaught exceptions (promises
//     and coroutines talk to a loop through these);
//   - what handle modules build on (handle.hpp): records from loop-owned
//     pools, the active/ref counts, the phase lists and the close protocol;
//   - the I/O services those modules use, the same on every backend:
//     submit() and cancel() of operations with exactly one final completion
//     each, descriptor close, deferred callbacks, timers. basic_loop provides
//     them through a table of its backend's functions, so a module's handles
//     are plain classes, not templates on the loop's policies.

#include <phaseloop/detail/assert.hpp>
#include <phaseloop/detail/function.hpp>
#include <phaseloop/detail/intrusive_list.hpp>
#include <phaseloop/detail/pool.hpp>
#include <phaseloop/detail/ring.hpp>
#include <phaseloop/fwd.hpp>
#include <phaseloop/detail/socket_api.hpp>
#include <phaseloop/handle.hpp>
#include <phaseloop/inbox.hpp>
#include <phaseloop/operation.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <new>
#include <system_error>
#include <utility>
#include <vector>

namespace phaseloop {

/// A timer set through loop_core (by a module, or through a loop reference):
/// a small value; stale once the timer fired (one-shot) or was cleared.
struct timer_id {
  std::uint32_t index = 0;
  std::uint32_t generation = 0;  ///< 0: no timer
  friend bool operator==(const timer_id&, const timer_id&) = default;
};

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

/// The policy-dependent services a basic_loop gives loop_core.
struct loop_services {
  std::error_code (*submit)(loop_core&, operation&);
  bool (*cancel)(loop_core&, operation&);
  std::error_code (*close)(loop_core&, native_handle);
  std::chrono::milliseconds (*now)(const loop_core&) noexcept;
  timer_id (*set_timer)(loop_core&, callback, std::chrono::milliseconds, bool repeat);
  void (*clear_timer)(loop_core&, timer_id) noexcept;
  void (*refresh_timer)(loop_core&, timer_id);
  void (*set_timer_ref)(loop_core&, timer_id, bool) noexcept;
  void (*queue_work)(loop_core&, callback work, unique_function<void(std::error_code)> after, work_kind kind);
  const socket_api* sockets;  // the backend's socket calls (a virtual network on the mock)
  bool completion_based;
  std::uint32_t supported;  // bit (1 << kind) for each op_kind the backend runs
};

// ---- pools of module records, one per record type
// clang's -Wweak-vtables cannot be met by a header-only library: no source
// file can hold an out-of-line virtual function, so every translation unit
// emits the vtable (the linker keeps one). Silenced for this class alone.
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wweak-vtables"
#endif
struct record_pool_base {
#if defined(__clang__)
#pragma clang diagnostic pop
#endif
  record_pool_base() = default;
  record_pool_base(const record_pool_base&) = delete;
  record_pool_base& operator=(const record_pool_base&) = delete;
  virtual ~record_pool_base() = default;
};
template <class R>
struct record_pool final : record_pool_base {
  struct slot : pool_slot {
    std::uint64_t serial = 0;  // the live record's serial, 0 while free
    alignas(R) unsigned char bytes[sizeof(R)];
  };
  slot_pool<slot, 64> slots;
};
inline std::size_t next_record_type() noexcept {
  static std::atomic<std::size_t> next{0};
  return next.fetch_add(1, std::memory_order_relaxed);
}
/// A dense number per record (or service) type, taken on first use: a
/// function-local static, so no global constructor runs for it and a loop
/// made during static initialization still sees distinct numbers.
template <class R>
inline std::size_t record_type() noexcept {
  static const std::size_t type = next_record_type();
  return type;
}

// clang's -Wweak-vtables cannot be met by a header-only library: no source
// file can hold an out-of-line virtual function, so every translation unit
// emits the vtable (the linker keeps one). Silenced for this class alone.
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wweak-vtables"
#endif
struct service_base {
#if defined(__clang__)
#pragma clang diagnostic pop
#endif
  service_base() = default;
  service_base(const service_base&) = delete;
  service_base& operator=(const service_base&) = delete;
  virtual ~service_base() = default;
};
template <class S>
struct service_holder final : service_base {
  explicit service_holder(loop_core& loop) : value(loop) {}
  S value;
};

/// A callback queued with defer(): run in the pending phase, FIFO with the
/// I/O completions delivered there.
struct deferred_record : operation, pool_slot {
  callback fn;
};
}  // namespace detail

/// Which of the loop's per-iteration phase lists a phase handle is on.
enum class phase : std::uint8_t { idle, prepare, check };

class loop_core {
 public:
  loop_core(const loop_core&) = delete;
  loop_core& operator=(const loop_core&) = delete;

  /// Queue a callback to run before any promise reaction (Node's process.nextTick).
  void next_tick(callback cb) {
    PHASELOOP_ASSERT(static_cast<bool>(cb), "next_tick() was given an empty callback");
    ticks_.push_back(std::move(cb));
  }

  /// Queue a microtask (Node's queueMicrotask; promise reactions use this queue).
  void queue_microtask(callback cb) {
    PHASELOOP_ASSERT(static_cast<bool>(cb), "queue_microtask() was given an empty callback");
    microtasks_.push_back(std::move(cb));
  }

  /// Route exceptions that escape user callbacks to `handler` instead of out
  /// of run(). A handler may replace itself while it runs.
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
    if (!uncaught_handler_) std::rethrow_exception(std::move(error));
    // Called from a local, so a handler that replaces itself does not destroy
    // the running closure; it goes back unless a new one was set meanwhile.
    detail::unique_function<void(std::exception_ptr)> handler = std::move(uncaught_handler_);
    struct restore {
      detail::unique_function<void(std::exception_ptr)>& slot;
      detail::unique_function<void(std::exception_ptr)>& handler;
      ~restore() {
        if (!slot) slot = std::move(handler);
      }
    } guard{uncaught_handler_, handler};
    handler(std::move(error));
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

  // ------------------------------------------------- for module authors

  /// A new record of a module's type R (derived from handle_record), from
  /// the loop's pool of R records.
  template <class R, class... Args>
  R& make_record(Args&&... args) {
    auto& pool = pool_for<R>();
    const std::uint32_t index = pool.slots.acquire();
    R* r;
    try {
      r = ::new (static_cast<void*>(pool.slots[index].bytes)) R(std::forward<Args>(args)...);
    } catch (...) {
      pool.slots.release(index);
      throw;
    }
    r->loop = this;
    r->pool_index = index;
    r->destroy = &destroy_record<R>;
    r->serial = pool.slots[index].serial = ++serials_;
    r->slot_serial = &pool.slots[index].serial;
    r->next_live = live_;
    if (live_ != nullptr) live_->prev_live = r;
    live_ = r;
    return *r;
  }

  /// Count an active handle (a ref'd active handle keeps the loop alive).
  void activate(handle_record& r) noexcept {
    if (r.active) return;
    r.active = true;
    if (r.refed) ++handle_refs_;
  }
  void deactivate(handle_record& r) noexcept {
    if (!r.active) return;
    r.active = false;
    if (r.refed) --handle_refs_;
  }
  void set_handle_ref(handle_record& r, bool on) noexcept {
    if (r.refed == on) return;
    r.refed = on;
    if (r.active) on ? ++handle_refs_ : --handle_refs_;
  }

  /// Stop a handle (its module's stop step) and release its record in a
  /// close phase once the backend has given back every operation it owns,
  /// then run `on_close` there. Closing twice does nothing.
  void close_handle(handle_record& r, callback on_close) {
    PHASELOOP_ASSERT(r.loop == this, "a handle of one loop was closed through another");
    if (r.closing) return;
    if (r.stop != nullptr) r.stop(r);
    deactivate(r);
    r.closing = true;
    if (r.owner != nullptr) {
      r.owner->record_ = nullptr;
      r.owner = nullptr;
    }
    r.close_callback = std::move(on_close);
    r.pass = pass_;
    ++closing_count_;
    closing_.push_back(r);
  }

  /// Submit an operation to the backend. An error means it was not started.
  /// Otherwise exactly one final completion follows, run by op.complete in a
  /// later phase (never from inside submit): in the poll phase, or, when the
  /// backend finished it during submit, in the next pending phase (as libuv
  /// feeds a finished write) — except that an operation resubmitted from its
  /// own completion in the poll phase continues that poll phase (libuv reads
  /// and accepts until the descriptor is drained).
  std::error_code submit(operation& op) {
    PHASELOOP_ASSERT(!op.in_flight() && !op.linked, "an operation was submitted while the backend owns it");
    PHASELOOP_ASSERT(op.complete != nullptr, "an operation was submitted without a completion function");
    op.reset_results();
    if (std::error_code ec = services_->submit(*this, op)) {
      op.state = op_state::idle;
      return ec;
    }
    if (op.owner != nullptr) ++op.owner->outstanding;
    if (op.state == op_state::completed) {
      // Bounded, so a descriptor that never runs dry cannot hold the loop
      // in one poll phase.
      if (&op == dispatching_ && in_poll_phase_ && continued_ < max_continued) {
        ++continued_;
        completed_.push_back(op);
      } else {
        pending_.push_back(op);
      }
    }
    return {};
  }

  /// Cancel a submitted operation: its final completion follows (with
  /// operation_canceled, or its result if that won the race), at the latest
  /// in this iteration's close phase on readiness backends, when the kernel
  /// gives it back on completion backends. Does nothing for an operation
  /// that is not in flight or is cancelled already.
  void cancel(operation& op) {
    if (op.state != op_state::submitted) return;
    if (services_->cancel(*this, op)) {
      op.error = std::make_error_code(std::errc::operation_canceled);
      op.revents = io_events::none;
      op.flags = static_cast<std::uint8_t>(op.flags & ~op_flag::more);
      op.state = op_state::completed;
      if (!op.linked) cancelled_.push_back(op);  // linked: its queued completion becomes the final one
    } else if (op.state == op_state::submitted) {
      op.state = op_state::cancelling;
    }
  }

  /// Close a descriptor through the backend (which forgets its registration
  /// first, so a reused number starts clean). Cancel its operations first.
  std::error_code close_descriptor(native_handle fd) { return services_->close(*this, fd); }

  /// Queue a callback for the next pending phase (how modules report results
  /// known at once, never synchronously). Callbacks deferred while the
  /// pending phase runs wait for the next iteration's.
  void defer(callback cb) {
    PHASELOOP_ASSERT(static_cast<bool>(cb), "defer() was given an empty callback");
    const std::uint32_t index = deferred_.acquire();
    detail::deferred_record& r = deferred_[index];
    r.fn = std::move(cb);
    r.complete = &run_deferred;
    r.user = this;
    r.owner = nullptr;
    r.state = op_state::completed;
    pending_.push_back(r);
  }

  /// Whether the backend's kernel performs operations itself (io_uring, IOCP).
  [[nodiscard]] bool completion_based() const noexcept { return services_->completion_based; }
  /// Whether the backend runs operations of `kind`.
  [[nodiscard]] bool supports(op_kind kind) const noexcept {
    return (services_->supported >> static_cast<unsigned>(kind) & 1u) != 0;
  }

  /// The loop's cached time (as basic_loop::now()).
  [[nodiscard]] std::chrono::milliseconds now() const noexcept { return services_->now(*this); }

  /// Timers for modules (socket and connect timeouts): as set_timeout /
  /// set_interval, clear_timeout, refresh() and unref() on the loop.
  timer_id set_timer(callback cb, std::chrono::milliseconds delay, bool repeat = false) {
    return services_->set_timer(*this, std::move(cb), delay, repeat);
  }
  void clear_timer(timer_id t) noexcept { services_->clear_timer(*this, t); }
  void refresh_timer(timer_id t) { services_->refresh_timer(*this, t); }
  void set_timer_ref(timer_id t, bool on) noexcept { services_->set_timer_ref(*this, t, on); }

  /// Run `work` on the executor, then `after(error)` on the loop thread in
  /// the poll phase (as basic_loop::queue_work).
  void queue_work(callback work, detail::unique_function<void(std::error_code)> after,
                  work_kind kind = work_kind::fast) {
    services_->queue_work(*this, std::move(work), std::move(after), kind);
  }

  /// The backend's socket calls, for the net modules.
  [[nodiscard]] detail::socket_calls sockets() noexcept { return {services_->sockets, backend_}; }

  /// The loop's instance of a per-loop service S (constructed from the loop
  /// on first use, destroyed with the loop after every handle record).
  template <class S>
  S& service() {
    const std::size_t type = detail::record_type<S>();
    if (type >= loop_services_.size()) loop_services_.resize(type + 1);
    // reset(new ...), not make_unique: no unique_ptr class per service type.
    if (!loop_services_[type]) loop_services_[type].reset(new detail::service_holder<S>(*this));
    return static_cast<detail::service_holder<S>&>(*loop_services_[type]).value;
  }

  /// A phase list, for the phase handle module (phase_handles.hpp).
  detail::intrusive_list<handle_record>& phase_list(phase p) noexcept {
    return p == phase::idle ? idle_ : p == phase::prepare ? prepare_ : check_;
  }
  /// Phase passes begun so far (a handle started or closed during a pass waits for the next).
  [[nodiscard]] std::uint64_t current_pass() const noexcept { return pass_; }

 protected:
  loop_core(const detail::loop_services& services, void* backend) noexcept
      : services_(&services), backend_(backend), outer_(detail::thread_loop) {
    detail::thread_loop = this;
  }

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

  /// The backend the services act on (set once the loop's backend exists).
  void attach_backend(void* backend) noexcept { backend_ = backend; }

  /// Swap the policy services (the loop's teardown, once its backend is gone).
  void replace_services(const detail::loop_services& services) noexcept { services_ = &services; }

  /// I/O completions run so far (deferred callbacks aside).
  [[nodiscard]] std::uint64_t completions_run() const noexcept { return completions_run_; }

  // ------------------------------------------------ phases, for basic_loop

  /// Run one completion: the last one of an operation gives it back to its handle.
  void dispatch(operation& op) {
    if (op.complete != &run_deferred) ++completions_run_;
    if (!op.more()) {
      op.state = op_state::completed;
      if (op.owner != nullptr) --op.owner->outstanding;
    }
    operation* outer = std::exchange(dispatching_, &op);
    struct restore {
      operation*& slot;
      operation* outer;
      ~restore() { slot = outer; }
    } guard{dispatching_, outer};
    op.complete(op);
    run_microtasks();
  }

  /// The pending phase: completions an exception left undelivered in the
  /// last poll phase, then what was deferred before this phase began.
  void run_pending() {
    if (pending_.empty() && completed_.empty()) return;
    op_queue batch;
    batch.splice_back(completed_);
    batch.splice_back(pending_);
    struct give_back {  // an exception leaves: what did not run stays first in line
      loop_core& loop;
      op_queue& batch;
      ~give_back() { loop.pending_.splice_front(batch); }
    } guard{*this, batch};
    while (operation* op = batch.pop_front()) dispatch(*op);
  }

  /// The poll phase's completions, in the order the backend reported them.
  void run_completions() {
    in_poll_phase_ = true;
    continued_ = 0;
    struct reset {
      bool& flag;
      ~reset() { flag = false; }
    } guard{in_poll_phase_};
    while (operation* op = completed_.pop_front()) dispatch(*op);
  }

  /// Run the callbacks of a phase list once each; a handle started during
  /// the pass waits for the next.
  template <class Run>
  void run_phase(detail::intrusive_list<handle_record>& list, Run&& run) {
    if (list.empty()) return;
    const std::uint64_t pass = ++pass_;
    list.for_each_safe([&](handle_record& r) {
      if (r.pass == pass || !r.active) return;
      run(r);
    });
  }

  /// The close phase: cancellations the backend let go of at once, then the
  /// close callbacks of handles whose operations are all back.
  void run_closing() {
    while (operation* op = cancelled_.pop_front()) dispatch(*op);
    if (closing_.empty()) return;
    const std::uint64_t pass = ++pass_;
    closing_.for_each_safe([&](handle_record& r) {
      // Closed during this pass, or the backend still owns an operation.
      if (r.pass == pass || r.outstanding != 0) return;
      closing_.remove(r);
      --closing_count_;
      callback on_close = std::move(r.close_callback);
      {
        struct release {  // even when the module's last events throw
          handle_record& r;
          ~release() { r.destroy(r); }
        } guard{r};
        if (r.finish != nullptr) {
          r.finish(r);
          run_microtasks();
        }
      }
      if (on_close) invoke_then_drain(on_close);
    });
  }

  /// Handles, closing handles and queued completions that keep the loop alive.
  [[nodiscard]] bool handles_alive() const noexcept {
    return handle_refs_ > 0 || closing_count_ > 0 || !pending_.empty() || !completed_.empty() ||
           !cancelled_.empty();
  }
  /// Whether the next poll must not block for the handles' sake.
  [[nodiscard]] bool handles_need_turn() const noexcept {
    return !idle_.empty() || !pending_.empty() || closing_count_ > 0 || !completed_.empty() ||
           !cancelled_.empty();
  }

  /// The loop's teardown, once its backend is gone: empty every handle the
  /// user holds, drop queued completions, destroy every record (its
  /// callbacks with it). Returns whether it destroyed anything, so the loop
  /// can repeat while destructors schedule more.
  bool destroy_handles() noexcept {
    bool any_destroyed = false;
    for (op_queue* q : {&completed_, &cancelled_, &pending_}) {
      while (operation* op = q->pop_front()) {
        any_destroyed = true;
        if (op->complete == &run_deferred) {
          auto& r = static_cast<detail::deferred_record&>(*op);
          callback dropped = std::move(r.fn);
          deferred_.release(r.slot_index());
        }
      }
    }
    for (auto* list : {&idle_, &prepare_, &check_, &closing_})
      while (list->pop_front() != nullptr) {}
    closing_count_ = 0;
    handle_refs_ = 0;
    while (handle_record* r = live_) {
      any_destroyed = true;
      if (r->owner != nullptr) {
        r->owner->record_ = nullptr;
        r->owner = nullptr;
      }
      r->closing = true;
      r->destroy(*r);
    }
    return any_destroyed;
  }

  /// Operations finished at submit that one poll phase runs itself.
  static constexpr std::uint32_t max_continued = 4096;

  operation* dispatching_ = nullptr;  // the operation whose completion runs
  std::uint32_t continued_ = 0;       // finished at submit and run in this poll phase
  bool in_poll_phase_ = false;
  op_queue completed_;  // from the backend, run in the poll phase
  op_queue pending_;    // finished at submit, and deferred callbacks: the pending phase
  op_queue cancelled_;  // let go of by the backend at cancel: the close phase

 private:
  friend struct detail::promise_access;
  friend class handle;

  template <class R>
  detail::record_pool<R>& pool_for() {
    const std::size_t type = detail::record_type<R>();
    if (type >= pools_.size()) pools_.resize(type + 1);
    if (!pools_[type]) pools_[type].reset(new detail::record_pool<R>());
    return static_cast<detail::record_pool<R>&>(*pools_[type]);
  }

  template <class R>
  static void destroy_record(handle_record& base) noexcept {
    loop_core& loop = *base.loop;
    (base.prev_live != nullptr ? base.prev_live->next_live : loop.live_) = base.next_live;
    if (base.next_live != nullptr) base.next_live->prev_live = base.prev_live;
    const std::uint32_t index = base.pool_index;
    static_cast<R&>(base).~R();
    auto& pool = loop.pool_for<R>();
    pool.slots[index].serial = 0;
    pool.slots.release(index);
  }

  static void run_deferred(operation& op) {
    auto& r = static_cast<detail::deferred_record&>(op);
    loop_core& loop = *static_cast<loop_core*>(op.user);
    callback fn = std::move(r.fn);
    loop.deferred_.release(r.slot_index());
    loop.invoke(fn);
  }

  // Destroyed last: records return what they hold to these services.
  std::vector<std::unique_ptr<detail::service_base>> loop_services_;
  const detail::loop_services* services_;
  void* backend_;
  std::uint64_t serials_ = 0;
  detail::unique_function<void(std::exception_ptr)> unhandled_rejection_;
  detail::promise_book promises_;
  loop_core* outer_ = nullptr;  // the thread's previous loop
  detail::ring<callback> ticks_;
  detail::ring<callback> microtasks_;
  detail::unique_function<void(std::exception_ptr)> uncaught_handler_;
  detail::unique_function<bool()> drain_hook_;
  bool draining_ = false;

  std::vector<std::unique_ptr<detail::record_pool_base>> pools_;
  detail::slot_pool<detail::deferred_record, 64> deferred_;
  handle_record* live_ = nullptr;
  detail::intrusive_list<handle_record> idle_;
  detail::intrusive_list<handle_record> prepare_;
  detail::intrusive_list<handle_record> check_;
  detail::intrusive_list<handle_record> closing_;
  std::uint64_t pass_ = 0;
  std::uint64_t completions_run_ = 0;
  std::size_t handle_refs_ = 0;
  std::size_t closing_count_ = 0;
};

// ------------------------------------------------- handle.hpp's out-of-line parts

inline void handle::close(callback on_close) {
  if (record_ != nullptr) record_->loop->close_handle(*record_, std::move(on_close));
}

inline void handle::set_ref(bool on) noexcept {
  if (record_ != nullptr) record_->loop->set_handle_ref(*record_, on);
}

}  // namespace phaseloop
