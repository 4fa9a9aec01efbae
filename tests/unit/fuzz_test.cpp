// A randomized API-sequence fuzzer on the mock loops (issue 18): random
// sequences of timers, intervals, immediates, ticks, microtasks, promises,
// coroutines, idle/prepare/check handles, post, defer and work, issued from
// the top level and from inside callbacks (nesting, clears and restarts from
// inside), with run modes and virtual time moved between runs. What it checks
// on every callback and at the end of every case:
//   - every callback that was not cleared runs exactly once (an interval: its
//     target count, after which it clears itself), and a cleared one never
//     runs afterwards; a stopped or closed phase handle never runs;
//   - never early: a timeout runs at loop.now() >= its start + its delay, an
//     interval's runs are at least its delay apart, a delay() promise settles
//     no earlier than its delay;
//   - one-shot timers run in (due time, insertion) order; immediates, posts,
//     ticks and microtasks in the order they were queued;
//   - the microtask checkpoint: no tick or microtask queued by a callback is
//     still pending when the next callback starts; a microtask runs only once
//     the tick queue holds nothing but ticks queued by microtasks; a tick
//     queued by a microtask runs only once the microtask queue is empty;
//   - phase order within an iteration: pending, idle, prepare, poll
//     (posts and finished work), immediates, check handles, close callbacks
//     (timers may run at either end of an iteration, and are left out);
//   - a callback deferred while the pending phase runs waits for a later
//     iteration; loop.now() never goes backwards;
//   - nothing runs while the loop is being destroyed.
//
// Seeded and time-boxed: PHASELOOP_FUZZ_SECONDS (default 5) bounds the run,
// PHASELOOP_FUZZ_SEED=<n> replays the one case with that seed (each failure
// prints its seed). Tag "[fuzz]".
#include "support.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

namespace {

using namespace phaseloop;
using namespace std::chrono_literals;

/// A phase tag for the order check; timers are left out of it.
enum tag : int {
  t_none = -1,
  t_timer = 0,
  t_pending = 1,
  t_idle = 2,
  t_prepare = 3,
  t_poll = 4,
  t_immediate = 5,
  t_check = 6,
  t_close = 7,
};

std::uint64_t env_number(const char* name, std::uint64_t fallback, bool* given = nullptr) {
  const char* text = std::getenv(name);
  if (given != nullptr) *given = text != nullptr && *text != '\0';
  if (text == nullptr || *text == '\0') return fallback;
  return std::strtoull(text, nullptr, 0);
}

/// Node's rule for a delay: below 1 ms or above 2^31 - 1 ms it is 1 ms.
std::uint64_t node_delay(std::int64_t ms) {
  return ms < 1 || ms > 2147483647 ? 1u : static_cast<std::uint64_t>(ms);
}

struct fuzz_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <class Loop>
class fuzzer {
 public:
  using timer_handle = typename Loop::timer_handle;
  using immediate_handle = typename Loop::immediate_handle;
  using work_handle = typename Loop::work_handle;

  explicit fuzzer(std::uint64_t seed) : rng_(seed) {}

  /// One case: a fresh loop, a random sequence, the end checks. Returns the
  /// failures found (empty when every invariant held).
  std::vector<std::string> run_case() {
    storage_.emplace();
    loop_ = &*storage_;
    handler_ = chance(50);
    if (handler_) {
      loop_->on_uncaught_exception([this](std::exception_ptr e) {
        try {
          std::rethrow_exception(e);
        } catch (const fuzz_error&) {
          ++caught_;
        } catch (...) {
          fail("an unexpected exception reached the handler");
        }
      });
    }
    budget_ = pick(20, 400);
    const int steps = pick(5, 40);
    for (int step = 0; step < steps && failures_.size() < 5; ++step) {
      const int what = pick(0, 9);
      if (what < 5) {
        top_level_ops(pick(1, 6));
      } else if (what < 7) {
        loop_->backend().advance(std::chrono::milliseconds(pick(0, 3) == 0 ? pick(0, 5000) : pick(0, 60)));
      } else {
        const int mode = pick(0, 2);
        guarded_run(mode == 0 ? run_mode::default_ : mode == 1 ? run_mode::once : run_mode::nowait);
      }
    }
    if (chance(12)) {
      destroy_with_pending();
    } else {
      drain_and_check();
    }
    return failures_;
  }

  [[nodiscard]] std::uint64_t callbacks() const noexcept { return callbacks_; }
  /// Exceptions thrown, and caught by the handler; probe destructors run.
  [[nodiscard]] std::uint64_t thrown() const noexcept { return thrown_; }
  [[nodiscard]] std::uint64_t caught() const noexcept { return caught_; }
  [[nodiscard]] std::uint64_t probes() const noexcept { return probes_; }

 private:
  // ------------------------------------------------------------- the model

  struct timer_e {
    timer_handle h;
    bool interval = false;
    std::uint64_t delay = 1;
    std::uint64_t start = 0;  // when the countdown began (set, refresh, last run)
    std::uint64_t seq = 0;    // insertion number of the last arm
    int runs = 0;
    int target = 1;  // an interval clears itself after this many runs
    bool cleared = false;
    bool done = false;  // a timeout ran, or an interval reached its target
    bool refed = true;
  };
  struct immediate_e {
    immediate_handle h;
    std::uint64_t seq = 0;
    int runs = 0;
    bool cleared = false;
    bool refed = true;
  };
  struct queued_e {  // ticks, microtasks, posts, deferred callbacks
    std::uint64_t seq = 0;
    std::uint64_t iteration = 0;  // when it was queued
    int tag = t_none;             // the phase it was queued from
    bool from_microtask = false;
    int runs = 0;
    bool from_tick = false;
  };
  struct work_e {
    work_handle h;
    bool cancelled = false;
    int runs = 0;
  };
  struct promise_e {
    std::optional<resolver<int>> r;
    bool settled = false;
    bool rejected = false;
    int value = 0;
    int runs = 0;
    std::size_t micro = 0;  // its reaction's entry among the microtasks
  };
  struct delay_e {
    std::uint64_t start = 0;
    std::uint64_t delay = 1;
    int runs = 0;
    int steps = 0;  // coroutines: 2 steps (after the delay, after an immediate)
    bool coroutine = false;
  };
  template <class H>
  struct phase_e {
    H h;
    bool active = false;
    bool closed = false;
    bool close_requested = false;
    bool refed = true;
    int quota = 0;
    int since_start = 0;
    int runs = 0;
    int close_runs = 0;
  };

  /// A capture whose destructor calls the loop (a session's destructor
  /// clearing its other timers, scheduling cleanup): it runs when the loop
  /// destroys the callback after its last run, at a clear, or in the loop's
  /// destructor, which must still take the calls (and run none of them).
  struct probe {
    explicit probe(fuzzer* f) noexcept : f_(f) {}
    probe(probe&& other) noexcept : f_(std::exchange(other.f_, nullptr)) {}
    probe(const probe&) = delete;
    probe& operator=(const probe&) = delete;
    probe& operator=(probe&&) = delete;
    ~probe() {
      if (f_ != nullptr) f_->probe_destroyed();
    }
    fuzzer* f_;
  };

  void probe_destroyed() {
    ++probes_;
    if (destroying_) {
      // Calls into a loop being destroyed: taken, never run.
      if (!timers_.empty()) loop_->clear_timeout(timers_[static_cast<std::size_t>(pick(0, static_cast<int>(timers_.size()) - 1))].h);
      loop_->set_immediate([this] { fail("an immediate set while the loop was destroyed ran"); });
      loop_->post([this] { fail("a callback posted while the loop was destroyed ran"); });
      (void)loop_->set_timeout([this] { fail("a timer set while the loop was destroyed ran"); }, 1ms);
      loop_->next_tick([this] { fail("a tick queued while the loop was destroyed ran"); });
      return;
    }
    if (budget_ <= 0) return;
    --budget_;
    switch (pick(0, 4)) {
      case 0: clear_random_timer(); break;
      case 1: add_immediate(4); break;
      case 2: add_post(4); break;
      case 3: add_timer(false, 4); break;
      case 4: clear_random_immediate(); break;
    }
  }

  // ------------------------------------------------------------- randomness

  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool chance(int percent) { return pick(0, 99) < percent; }
  std::int64_t random_delay() {
    switch (pick(0, 19)) {
      case 0: return 0;
      case 1: return -pick(1, 10);        // negative: 1 ms
      case 2: return 2147483647;          // Node's largest
      case 3: return 2147483648;          // one more: 1 ms
      case 4: return pick(100, 5000);
      default: return pick(1, 40);
    }
  }

  void fail(const std::string& what) {
    if (failures_.size() >= 20) return;
    std::ostringstream out;
    out << what << " [callback #" << callbacks_;
    if (!destroying_) out << ", now " << now() << " ms";
    out << "]";
    failures_.push_back(out.str());
  }

  /// With PHASELOOP_FUZZ_TRACE set, what the case did, printed on failure.
  void note(const std::string& what) {
    if (tracing_ && !destroying_) std::cout << now() << " ms: " << what << std::endl;
  }

 public:
  bool tracing_ = false;

 private:
  std::uint64_t now() const { return static_cast<std::uint64_t>(loop_->now().count()); }
  std::uint64_t iteration() const { return loop_->metrics().iterations; }

  // ------------------------------------------------------ running callbacks

  /// Every macrotask callback starts here: the checkpoint, clock and phase-order checks.
  void enter_macro(int tag) {
    ++callbacks_;
    if (destroying_) fail("a callback ran while the loop was being destroyed");
    if (ticks_other_ + ticks_from_micro_ + micro_pending_ != 0) {
      std::ostringstream out;
      out << "a callback started with " << ticks_other_ + ticks_from_micro_ << " ticks and " << micro_pending_
          << " microtasks still queued (the checkpoint after the last callback did not drain them)";
      fail(out.str());
    }
    const std::uint64_t t = now();
    if (t < last_now_) fail("loop.now() went backwards");
    last_now_ = t;
    const std::uint64_t it = iteration();
    if (tag != t_timer) {
      if (it == order_iteration_ && tag < order_tag_) {
        std::ostringstream out;
        out << "phase order: a callback of phase " << tag << " ran after one of phase " << order_tag_
            << " in iteration " << it;
        fail(out.str());
      }
      if (it != order_iteration_) {
        order_iteration_ = it;
        order_tag_ = tag;
      } else {
        order_tag_ = std::max(order_tag_, tag);
      }
    }
    current_tag_ = tag;
    note("callback of phase " + std::to_string(tag) + " in iteration " + std::to_string(it));
    if (callbacks_ > callback_limit_ && !runaway_) {
      runaway_ = true;
      fail("more than the callback limit ran: the case does not end");
    }
    if (runaway_) loop_->stop();
  }

  /// What a callback does: a few random operations, maybe loop.stop(), maybe throw.
  void body(int depth) {
    if (runaway_) return;
    const int n = depth < 4 ? pick(0, 3) : 0;
    ops(n, depth + 1);
    if (chance(2)) loop_->stop();
    if (chance(3)) throw_or_not();
  }

  void throw_or_not() {
    ++thrown_;
    throw fuzz_error("thrown by the fuzzer");
  }

  // ------------------------------------------------------------ operations

  void top_level_ops(int n) {
    current_tag_ = t_none;
    ops(n, 0);
  }

  void ops(int n, int depth) {
    for (int i = 0; i < n && budget_ > 0; ++i) {
      --budget_;
      one_op(depth);
    }
  }

  void one_op(int depth) {
    const int op = pick(0, 27);
    note("op " + std::to_string(op) + " depth " + std::to_string(depth));
    switch (op) {
      case 0:
      case 1:
      case 2: add_timer(false, depth); break;
      case 3: add_timer(true, depth); break;
      case 4:
      case 5: clear_random_timer(); break;
      case 6: refresh_random_timer(); break;
      case 7: ref_random_timer(); break;
      case 8:
      case 9: add_immediate(depth); break;
      case 10: clear_random_immediate(); break;
      case 11: ref_random_immediate(); break;
      case 12:
      case 13: add_tick(depth); break;
      case 14: add_microtask(depth); break;
      case 15: add_promise(depth); break;
      case 16: settle_random_promise(); break;
      case 17: add_delay_promise(false); break;
      case 18: add_delay_promise(true); break;
      case 19: phase_op(idles_, t_idle, depth); break;
      case 20: phase_op(prepares_, t_prepare, depth); break;
      case 21: phase_op(checks_, t_check, depth); break;
      case 22: add_post(depth); break;
      case 23: add_defer(depth); break;
      case 24: add_work(depth); break;
      case 25: cancel_random_work(); break;
      case 26: add_immediate_promise(); break;
      case 27: add_coroutine(); break;
    }
  }

  // ---- timers

  void add_timer(bool interval, int depth) {
    const std::size_t idx = timers_.size();
    timers_.emplace_back();
    timer_e& t = timers_.back();
    t.interval = interval;
    const std::int64_t d = random_delay();
    t.delay = node_delay(d);
    t.target = interval ? pick(1, 4) : 1;
    if (chance(20)) {
      // The session pattern: a capture whose destructor calls the loop.
      auto cb = [this, idx, depth, p = probe(this)] { timer_fired(idx, depth); };
      t.h = interval ? loop_->set_interval(std::move(cb), std::chrono::milliseconds(d))
                     : loop_->set_timeout(std::move(cb), std::chrono::milliseconds(d));
    } else {
      auto cb = [this, idx, depth] { timer_fired(idx, depth); };
      t.h = interval ? loop_->set_interval(cb, std::chrono::milliseconds(d))
                     : loop_->set_timeout(cb, std::chrono::milliseconds(d));
    }
    t.start = now();  // set_timeout reads a fresh clock: the countdown starts there
    t.seq = ++timer_seq_;
    if (chance(15)) {
      t.h.unref();
      t.refed = false;
    }
  }

  void timer_fired(std::size_t idx, int depth) {
    enter_macro(t_timer);
    timer_e& t = timers_[idx];
    const std::uint64_t n = now();
    if (t.cleared) fail("timer " + std::to_string(idx) + " ran after it was cleared");
    if (t.done) fail("timer " + std::to_string(idx) + " ran again after its last run");
    if (n < t.start + t.delay) {
      std::ostringstream out;
      out << "timer " << idx << " ran early: at " << n << " ms, started at " << t.start << " ms with a delay of "
          << t.delay << " ms";
      fail(out.str());
    }
    if (!t.interval) {
      // (due, insertion) order: no live one-shot timer due before it may still wait.
      for (std::size_t j = 0; j < timers_.size(); ++j) {
        const timer_e& o = timers_[j];
        if (j == idx || o.interval || o.cleared || o.done) continue;
        const std::uint64_t due = t.start + t.delay;
        const std::uint64_t other_due = o.start + o.delay;
        if (other_due < due || (other_due == due && o.seq < t.seq)) {
          std::ostringstream out;
          out << "timer order: timer " << idx << " (due " << due << ") ran before timer " << j << " (due "
              << other_due << ")";
          fail(out.str());
        }
      }
    }
    ++t.runs;
    if (t.interval) {
      t.start = n;  // the next run is due a delay after this one
      t.seq = ++timer_seq_;
      if (t.runs >= t.target) {
        t.done = true;
        loop_->clear_interval(t.h);
      }
    } else {
      t.done = true;
    }
    body(depth);
  }

  timer_e* random_timer() {
    if (timers_.empty()) return nullptr;
    return &timers_[static_cast<std::size_t>(pick(0, static_cast<int>(timers_.size()) - 1))];
  }

  void clear_random_timer() {
    timer_e* t = random_timer();
    if (t == nullptr) return;
    loop_->clear_timeout(t->h);  // fired or cleared already: a no-op on a stale handle
    if (!t->done) t->cleared = true;
  }

  void refresh_random_timer() {
    timer_e* t = random_timer();
    if (t == nullptr || t->done || t->cleared) return;
    t->h.refresh();
    t->start = now();
    t->seq = ++timer_seq_;
  }

  void ref_random_timer() {
    timer_e* t = random_timer();
    if (t == nullptr) return;
    const bool on = chance(50);
    if (on)
      t->h.ref();
    else
      t->h.unref();
    t->refed = on;
    if (t->h.active() != (!t->done && !t->cleared)) fail("timer_handle::active() disagrees with the model");
  }

  // ---- immediates

  void add_immediate(int depth) {
    const std::size_t idx = immediates_.size();
    immediates_.emplace_back();
    immediate_e& e = immediates_.back();
    e.seq = ++immediate_seq_;
    e.h = loop_->set_immediate([this, idx, depth] { immediate_ran(idx, depth); });
    if (chance(10)) {
      e.h.unref();
      e.refed = false;
    }
  }

  void immediate_ran(std::size_t idx, int depth) {
    enter_macro(t_immediate);
    immediate_e& e = immediates_[idx];
    if (e.cleared) fail("immediate " + std::to_string(idx) + " ran after it was cleared");
    if (e.runs != 0) fail("immediate " + std::to_string(idx) + " ran twice");
    if (e.seq <= last_immediate_run_) fail("immediate " + std::to_string(idx) + " ran out of order");
    last_immediate_run_ = e.seq;
    ++e.runs;
    body(depth);
  }

  void clear_random_immediate() {
    if (immediates_.empty()) return;
    immediate_e& e = immediates_[static_cast<std::size_t>(pick(0, static_cast<int>(immediates_.size()) - 1))];
    loop_->clear_immediate(e.h);
    if (e.runs == 0) e.cleared = true;
  }

  void ref_random_immediate() {
    if (immediates_.empty()) return;
    immediate_e& e = immediates_[static_cast<std::size_t>(pick(0, static_cast<int>(immediates_.size()) - 1))];
    const bool on = chance(50);
    if (on)
      e.h.ref();
    else
      e.h.unref();
    e.refed = on;
    if (e.h.pending() != (e.runs == 0 && !e.cleared)) fail("immediate_handle::pending() disagrees with the model");
  }

  // ---- ticks, microtasks, promises

  void add_tick(int depth) {
    const std::size_t idx = ticks_.size();
    note("queue tick " + std::to_string(idx));
    ticks_.push_back(queued_e{++tick_seq_, 0, current_tag_, in_microtask_, 0, in_tick_});
    (in_microtask_ ? ticks_from_micro_ : ticks_other_) += 1;
    loop_->next_tick([this, idx, depth] { tick_ran(idx, depth); });
  }

  void tick_ran(std::size_t idx, int depth) {
    ++callbacks_;
    note("tick " + std::to_string(idx) + (ticks_[idx].from_microtask ? " (queued by a microtask)" : ""));
    queued_e& e = ticks_[idx];
    if (e.runs != 0) fail("tick " + std::to_string(idx) + " ran twice");
    if (e.seq <= last_tick_run_) fail("tick " + std::to_string(idx) + " ran out of order");
    last_tick_run_ = e.seq;
    ++e.runs;
    (e.from_microtask ? ticks_from_micro_ : ticks_other_) -= 1;
    // The tick phase it runs in began once the microtask queue was empty:
    // only microtasks queued by ticks since may wait.
    if (e.from_microtask && micro_pending_ != micro_from_ticks_)
      fail("a tick queued by a microtask ran before the microtask queue was empty (" +
           std::to_string(micro_pending_ - micro_from_ticks_) + " microtasks queued before this tick phase wait)");
    const bool outer = std::exchange(in_tick_, true);
    struct restore {
      bool& flag;
      bool value;
      ~restore() { flag = value; }
    } guard{in_tick_, outer};
    body(depth);
  }

  /// A microtask's (or a promise reaction's) entry, queued now.
  std::size_t queue_micro_entry() {
    const std::size_t idx = micros_.size();
    micros_.push_back(queued_e{++micro_seq_, 0, current_tag_, in_microtask_, 0, in_tick_});
    ++micro_pending_;
    if (in_tick_) ++micro_from_ticks_;
    return idx;
  }

  void add_microtask(int depth) {
    const std::size_t idx = micros_.size();
    note("queue microtask " + std::to_string(idx));
    queue_micro_entry();
    loop_->queue_microtask([this, idx, depth] { microtask_ran(idx, depth, true); });
  }

  void microtask_ran(std::size_t idx, int depth, bool tracked) {
    ++callbacks_;
    note("microtask " + std::to_string(idx));
    if (ticks_other_ != 0) fail("a microtask ran while ticks queued before the microtask phase were pending");
    if (tracked) {
      queued_e& e = micros_[idx];
      if (e.runs != 0) fail("microtask " + std::to_string(idx) + " ran twice");
      if (e.seq <= last_micro_run_) fail("microtask " + std::to_string(idx) + " ran out of order");
      last_micro_run_ = e.seq;
      ++e.runs;
      --micro_pending_;
      if (e.from_tick) --micro_from_ticks_;
    }
    const bool outer = std::exchange(in_microtask_, true);
    struct restore {
      bool& flag;
      bool value;
      ~restore() { flag = value; }
    } guard{in_microtask_, outer};
    body(depth);
  }

  void add_promise(int depth) {
    const std::size_t idx = promises_.size();
    note("promise " + std::to_string(idx));
    promises_.emplace_back();
    auto [p, r] = loop_->template make_promise<int>();
    promises_.back().r.emplace(r);
    p.then(
        [this, idx, depth](int& v) {
          promise_reaction(idx, depth, false, v);
          return 0;
        },
        [this, idx, depth](std::exception_ptr) {
          promise_reaction(idx, depth, true, 0);
          return 0;
        });
  }

  void promise_reaction(std::size_t idx, int depth, bool rejected, int value) {
    note("reaction of promise " + std::to_string(idx));
    promise_e& e = promises_[idx];
    if (!e.settled) fail("promise " + std::to_string(idx) + " reacted before it was settled");
    if (e.runs != 0) fail("promise " + std::to_string(idx) + " reacted twice");
    if (rejected != e.rejected || (!rejected && value != e.value)) fail("promise " + std::to_string(idx) + " reacted with the wrong outcome");
    ++e.runs;
    microtask_ran(e.micro, depth, true);  // a reaction: the microtask queued when it settled
  }

  void settle_random_promise() {
    std::vector<std::size_t> open;
    for (std::size_t i = 0; i < promises_.size(); ++i)
      if (!promises_[i].settled) open.push_back(i);
    if (open.empty()) return;
    settle(open[static_cast<std::size_t>(pick(0, static_cast<int>(open.size()) - 1))]);
  }

  void settle(std::size_t idx) {
    note("settle promise " + std::to_string(idx));
    promise_e& e = promises_[idx];
    e.settled = true;
    e.rejected = chance(25);
    e.value = pick(0, 1000);
    // Its reaction is queued now, behind every microtask queued before.
    e.micro = queue_micro_entry();
    if (e.rejected)
      e.r->reject(fuzz_error("rejected by the fuzzer"));
    else
      e.r->resolve(e.value);
  }

  void add_delay_promise(bool with_value) {
    const std::size_t idx = delays_.size();
    delays_.emplace_back();
    const std::int64_t d = random_delay();
    delays_.back().delay = node_delay(d);
    if (with_value) {
      auto p = loop_->delay(std::chrono::milliseconds(d), static_cast<int>(idx));
      delays_.back().start = now();
      p.then([this, idx](int& v) {
        if (static_cast<std::size_t>(v) != idx) fail("a delay() promise fulfilled with the wrong value");
        delay_done(idx);
      });
    } else {
      auto p = loop_->delay(std::chrono::milliseconds(d));
      delays_.back().start = now();
      p.then([this, idx] { delay_done(idx); });
    }
  }

  void delay_done(std::size_t idx) {
    ++callbacks_;
    delay_e& e = delays_[idx];
    if (e.runs != 0) fail("a delay() promise reacted twice");
    ++e.runs;
    if (now() < e.start + e.delay) fail("a delay() promise settled early");
  }

  void add_immediate_promise() {
    const std::size_t idx = delays_.size();
    delays_.emplace_back();
    delays_.back().delay = 0;
    delays_.back().start = now();
    loop_->immediate().then([this, idx] { delay_done(idx); });
  }

  static promise<void> coroutine(Loop& loop, fuzzer* self, std::size_t idx, std::int64_t d) {
    co_await loop.delay(std::chrono::milliseconds(d));
    self->coroutine_step(idx, 1);
    co_await loop.immediate();
    self->coroutine_step(idx, 2);
  }

  void add_coroutine() {
    const std::size_t idx = delays_.size();
    delays_.emplace_back();
    const std::int64_t d = random_delay();
    delays_.back().delay = node_delay(d);
    delays_.back().coroutine = true;
    delays_.back().start = now();
    coroutines_.push_back(coroutine(*loop_, this, idx, d));
  }

  void coroutine_step(std::size_t idx, int step) {
    ++callbacks_;
    delay_e& e = delays_[idx];
    if (e.steps != step - 1) fail("a coroutine resumed out of step");
    e.steps = step;
    if (step == 1 && now() < e.start + e.delay) fail("a coroutine's co_await delay() resumed early");
    if (step == 2) ++e.runs;
  }

  // ---- phase handles

  template <class H>
  void phase_op(std::deque<phase_e<H>>& list, int tag, int depth) {
    const int what = pick(0, 5);
    if (list.empty() || what <= 1) {
      const std::size_t idx = list.size();
      list.emplace_back();
      list.back().h = H(*loop_);
      // A ref'd prepare or check handle keeps the loop alive without making
      // poll return (as in libuv, a loop with nothing else then blocks for
      // good): those are unref'd. Idle handles make poll non-blocking and
      // stop themselves after their quota, so they may keep the loop alive.
      if (tag != t_idle || chance(30)) {
        list.back().h.unref();
        list.back().refed = false;
      }
      start_phase(list, idx, tag, depth);
      return;
    }
    const std::size_t idx = static_cast<std::size_t>(pick(0, static_cast<int>(list.size()) - 1));
    phase_e<H>& e = list[idx];
    if (what <= 3) {
      start_phase(list, idx, tag, depth);
    } else if (what == 4) {
      e.h.stop();
      e.active = false;
    } else if (!e.closed) {
      e.closed = true;
      e.active = false;
      e.close_requested = true;
      e.h.close([this, &list, idx, depth] {
        enter_macro(t_close);
        phase_e<H>& c = list[idx];
        if (c.close_runs != 0) fail("a close callback ran twice");
        ++c.close_runs;
        body(depth);
      });
    }
  }

  template <class H>
  void start_phase(std::deque<phase_e<H>>& list, std::size_t idx, int tag, int depth) {
    phase_e<H>& e = list[idx];
    e.h.start([this, &list, idx, tag, depth] {
      enter_macro(tag);
      phase_e<H>& p = list[idx];
      if (!p.active || p.closed) fail("a phase handle ran while stopped or closed");
      ++p.runs;
      if (++p.since_start >= p.quota) {
        p.h.stop();
        p.active = false;
      }
      body(depth);
    });
    if (e.closed) return;  // starting a closed handle does nothing
    e.active = true;
    e.quota = pick(1, 4);
    e.since_start = 0;
  }

  // ---- post, defer, work

  void add_post(int depth) {
    const std::size_t idx = posts_.size();
    posts_.push_back(queued_e{++post_seq_, iteration(), current_tag_, false, 0});
    loop_->post([this, idx, depth] {
      enter_macro(t_poll);
      queued_e& e = posts_[idx];
      if (e.runs != 0) fail("posted callback " + std::to_string(idx) + " ran twice");
      if (e.seq <= last_post_run_) fail("posted callback " + std::to_string(idx) + " ran out of order");
      last_post_run_ = e.seq;
      ++e.runs;
      body(depth);
    });
  }

  void add_defer(int depth) {
    const std::size_t idx = defers_.size();
    defers_.push_back(queued_e{++defer_seq_, iteration(), current_tag_, false, 0});
    loop_->defer([this, idx, depth] {
      enter_macro(t_pending);
      queued_e& e = defers_[idx];
      if (e.runs != 0) fail("deferred callback " + std::to_string(idx) + " ran twice");
      if (e.seq <= last_defer_run_) fail("deferred callback " + std::to_string(idx) + " ran out of order");
      last_defer_run_ = e.seq;
      // Deferred from the pending phase or any later one: the next
      // iteration's pending phase at the earliest.
      if (e.tag >= t_pending && iteration() <= e.iteration) {
        std::ostringstream out;
        out << "deferred callback " << idx << " (deferred in phase " << e.tag << " of iteration " << e.iteration
            << ") ran in the same iteration";
        fail(out.str());
      }
      ++e.runs;
      body(depth);
    });
  }

  void add_work(int depth) {
    const std::size_t idx = works_.size();
    works_.emplace_back();
    works_.back().h = loop_->queue_work(
        [] {},
        [this, idx, depth](std::error_code ec) {
          enter_macro(t_poll);
          work_e& w = works_[idx];
          if (w.runs != 0) fail("work completion " + std::to_string(idx) + " ran twice");
          ++w.runs;
          if (static_cast<bool>(ec) != w.cancelled) fail("work completion with the wrong error");
          body(depth);
        });
  }

  void cancel_random_work() {
    if (works_.empty()) return;
    work_e& w = works_[static_cast<std::size_t>(pick(0, static_cast<int>(works_.size()) - 1))];
    const std::error_code ec = loop_->cancel(w.h);
    if (!ec) w.cancelled = true;  // the inline executor has always run it: busy or finished
  }

  // ---------------------------------------------------------------- running

  void guarded_run(run_mode mode) {
    note("run(" + std::to_string(static_cast<int>(mode)) + ")");
    current_tag_ = t_none;
    try {
      loop_->run(mode);
    } catch (const fuzz_error&) {
      if (handler_) fail("an exception left run() although a handler was set");
      interrupted();
    }
    current_tag_ = t_none;
  }

  void drain_microtasks() {
    current_tag_ = t_none;
    for (int attempt = 0; attempt < 100; ++attempt) {
      try {
        loop_->run_microtasks();
        return;
      } catch (const fuzz_error&) {
        if (handler_) fail("an exception left run_microtasks() although a handler was set");
        interrupted();
      }
    }
  }

  /// An exception left a checkpoint: the next one starts afresh, with the
  /// ticks left over (whoever queued them) ahead of the microtasks.
  void interrupted() {
    for (queued_e& e : ticks_)
      if (e.runs == 0) e.from_microtask = false;
    ticks_other_ += std::exchange(ticks_from_micro_, 0);
    micro_from_ticks_ = 0;
    for (queued_e& e : micros_) e.from_tick = false;
  }

  /// Everything still pending is made to run: unref'd timers and immediates
  /// ref'd again, promises settled, then run() until the loop is done.
  void drain_and_check() {
    // Callbacks of the final runs may add more (budget permitting): repeat
    // until nothing is pending or unsettled.
    for (int attempt = 0; attempt < 1000; ++attempt) {
      drain_microtasks();  // what the top level queued (alive() does not count it)
      bool more = false;
      for (timer_e& t : timers_)
        if (!t.refed && !t.done && !t.cleared) {
          t.h.ref();
          t.refed = true;
        }
      for (immediate_e& e : immediates_)
        if (!e.refed && e.runs == 0 && !e.cleared) {
          e.h.ref();
          e.refed = true;
        }
      for (std::size_t i = 0; i < promises_.size(); ++i)
        if (!promises_[i].settled) {
          settle(i);
          more = true;
        }
      if (!more && !loop_->alive()) break;
      guarded_run(run_mode::default_);
    }
    // Unref'd internals aside, a promise's timer is ref'd: delay() keeps the loop alive.
    if (loop_->alive() && !runaway_) fail("the loop is still alive after the final runs");
    if (ticks_other_ + ticks_from_micro_ + micro_pending_ != 0) fail("ticks or microtasks never ran");

    for (std::size_t i = 0; i < timers_.size(); ++i) {
      const timer_e& t = timers_[i];
      if (t.cleared) continue;
      if (t.runs != t.target) {
        std::ostringstream out;
        out << (t.interval ? "interval " : "timeout ") << i << " ran " << t.runs << " times, not " << t.target
            << " (delay " << t.delay << " ms)";
        fail(out.str());
      }
    }
    for (std::size_t i = 0; i < immediates_.size(); ++i)
      if (!immediates_[i].cleared && immediates_[i].runs != 1)
        fail("immediate " + std::to_string(i) + " ran " + std::to_string(immediates_[i].runs) + " times");
    auto once = [&](const std::deque<queued_e>& list, const char* what) {
      for (std::size_t i = 0; i < list.size(); ++i)
        if (list[i].runs != 1)
          fail(std::string(what) + " " + std::to_string(i) + " ran " + std::to_string(list[i].runs) + " times");
    };
    once(ticks_, "tick");
    once(micros_, "microtask");
    once(posts_, "posted callback");
    once(defers_, "deferred callback");
    for (std::size_t i = 0; i < works_.size(); ++i)
      if (works_[i].runs != 1) fail("work completion " + std::to_string(i) + " ran " + std::to_string(works_[i].runs) + " times");
    for (std::size_t i = 0; i < promises_.size(); ++i)
      if (promises_[i].runs != 1) fail("promise " + std::to_string(i) + " reacted " + std::to_string(promises_[i].runs) + " times");
    for (std::size_t i = 0; i < delays_.size(); ++i)
      if (delays_[i].runs != 1)
        fail(std::string(delays_[i].coroutine ? "coroutine " : "delay()/immediate() promise ") + std::to_string(i) +
             " finished " + std::to_string(delays_[i].runs) + " times");
    check_closed(idles_);
    check_closed(prepares_);
    check_closed(checks_);
    teardown();
  }

  template <class H>
  void check_closed(std::deque<phase_e<H>>& list) {
    for (std::size_t i = 0; i < list.size(); ++i) {
      if (list[i].active && list[i].refed) fail("a ref'd phase handle is still active after the final runs");
      if (list[i].h.active() != list[i].active) fail("a phase handle's active() disagrees with the model");
      if (list[i].close_requested && list[i].close_runs != 1) fail("a close callback ran " + std::to_string(list[i].close_runs) + " times");
    }
  }

  /// Destroy the loop with whatever is pending: nothing may run, nothing may leak (ASan).
  void destroy_with_pending() { teardown(); }

  void teardown() {
    // Promises and resolvers go first, or last with the handles (both are legal).
    const bool handles_first = chance(50);
    for (promise_e& e : promises_) e.r.reset();
    coroutines_.clear();
    if (handles_first) {
      idles_.clear();
      prepares_.clear();
      checks_.clear();
    }
    destroying_ = true;
    storage_.reset();
    destroying_ = false;
    loop_ = nullptr;
  }

  std::mt19937_64 rng_;
  int budget_ = 0;
  bool handler_ = false;
  bool destroying_ = false;
  bool runaway_ = false;
  std::uint64_t callbacks_ = 0;
  std::uint64_t callback_limit_ = 200000;
  std::uint64_t caught_ = 0;
  std::uint64_t thrown_ = 0;
  std::uint64_t probes_ = 0;
  std::vector<std::string> failures_;

  // Where we are.
  int current_tag_ = t_none;
  std::uint64_t order_iteration_ = ~std::uint64_t{0};
  int order_tag_ = t_none;
  std::uint64_t last_now_ = 0;
  bool in_microtask_ = false;
  bool in_tick_ = false;
  int micro_from_ticks_ = 0;  // of micro_pending_: queued by ticks
  int ticks_other_ = 0;       // queued ticks not queued by a microtask
  int ticks_from_micro_ = 0;  // queued ticks queued by a microtask
  int micro_pending_ = 0;     // queued microtasks and promise reactions

  std::uint64_t timer_seq_ = 0, immediate_seq_ = 0, tick_seq_ = 0, micro_seq_ = 0, post_seq_ = 0, defer_seq_ = 0;
  std::uint64_t last_immediate_run_ = 0, last_tick_run_ = 0, last_micro_run_ = 0, last_post_run_ = 0,
                last_defer_run_ = 0;

  std::deque<timer_e> timers_;
  std::deque<immediate_e> immediates_;
  std::deque<queued_e> ticks_, micros_, posts_, defers_;
  std::deque<work_e> works_;
  std::deque<promise_e> promises_;
  std::deque<delay_e> delays_;
  std::vector<promise<void>> coroutines_;
  std::deque<phase_e<idle_handle>> idles_;
  std::deque<phase_e<prepare_handle>> prepares_;
  std::deque<phase_e<check_handle>> checks_;
  std::optional<Loop> storage_;  // last: destroyed before the model its callbacks use
  Loop* loop_ = nullptr;         // the loop, still reachable from destructors while it is destroyed
};

}  // namespace

TEMPLATE_TEST_CASE("fuzz: random API sequences keep exactly-once, never-early and Node's order", "[fuzz]",
                   PHASELOOP_TEST_MOCK_LOOPS) {
  bool replay = false;
  const std::uint64_t replay_seed = env_number("PHASELOOP_FUZZ_SEED", 0, &replay);
  const std::uint64_t seconds = env_number("PHASELOOP_FUZZ_SECONDS", 5);
  // Each loop type gets half of the time box.
  const auto budget = std::chrono::milliseconds(seconds * 1000 / 2);
  // A different base per run (printed), so the suite keeps exploring.
  const std::uint64_t base = replay ? replay_seed : std::random_device{}() * 1000003ull;
  const bool verbose = env_number("PHASELOOP_FUZZ_VERBOSE", 0) != 0;  // each seed before its case
  const auto start = std::chrono::steady_clock::now();
  std::uint64_t cases = 0, callbacks = 0, thrown = 0, caught = 0, probes = 0;
  for (std::uint64_t i = 0;; ++i) {
    const std::uint64_t seed = base + i;
    fuzzer<TestType> f(seed);
    f.tracing_ = replay && env_number("PHASELOOP_FUZZ_TRACE", 0) != 0;
    if (verbose) std::cerr << "fuzz seed " << seed << std::endl;
    const std::vector<std::string> failures = f.run_case();
    ++cases;
    callbacks += f.callbacks();
    thrown += f.thrown();
    caught += f.caught();
    probes += f.probes();
    if (!failures.empty()) {
      std::ostringstream out;
      out << "fuzz case failed; replay with PHASELOOP_FUZZ_SEED=" << seed << "\n";
      for (const std::string& s : failures) out << "  " << s << "\n";
      FAIL(out.str());
    }
    if (replay || std::chrono::steady_clock::now() - start >= budget) break;
  }
  // Not an assertion about the results: proof the box was used.
  CHECK(cases > 0);
  std::cout << "fuzz (" << typeid(TestType).name() << "): " << cases << " cases, " << callbacks << " callbacks, "
            << thrown << " exceptions (" << caught << " to the handler), " << probes
            << " destructors calling the loop; base seed " << base << "\n";
}
