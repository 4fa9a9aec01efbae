// Loop-level differential test of the timer stores: seeded random streams of
// set/clear/refresh/interval/unref/ref/time-advance/stop operations, from the
// "main script" and from inside timer callbacks, run on
//   basic_loop<mock_backend, heap_timers, inline_executor>,
//   basic_loop<mock_backend, wheel_timers, inline_executor>,
//   basic_loop<mock_backend, reference_timers (a std::multimap), inline_executor>
// and on an independent model of Node's timer rules (DESIGN §2), written
// without any timer store. All four traces must be byte-identical. Plus the
// uptime tests: a virtual clock past 2^31, 2^32 and 2^53 ms, where every timer
// fires exactly once, at its due time, in order.
// phaseloop: portable (mock backend and inline executor only; built for Windows too)

#include "support.hpp"
#include "reference_timers.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace {

using namespace std::chrono_literals;
using phaseloop::basic_loop;
using phaseloop::heap_timers;
using phaseloop::inline_executor;
using phaseloop::mock_backend;
using phaseloop::run_mode;
using phaseloop::wheel_timers;
using phaseloop::test::det_random;
using phaseloop::test::reference_timers;

using phaseloop::test::two31;
using phaseloop::test::two32;
using phaseloop::test::two53;
constexpr std::int64_t max_delay = 2147483647;

/// A delay as a user writes it: integral milliseconds or a fractional duration.
struct delay_spec {
  std::int64_t ms = 1;
  double fractional_ms = 0;
  bool fractional = false;
};

// ---------------------------------------------------------------------------
// Drivers: the same operations on a real loop or on the model.

/// Runs the operations on basic_loop<mock_backend, Store, inline_executor>.
template <class Store>
class loop_driver {
  using loop_type = basic_loop<mock_backend, Store, inline_executor>;

 public:
  std::function<void(std::size_t)> on_fire;

  void set(std::size_t id, delay_spec d, bool repeat) {
    auto cb = [this, id] { on_fire(id); };
    if (handles_.size() <= id) handles_.resize(id + 1);
    if (d.fractional) {
      const std::chrono::duration<double, std::milli> fd(d.fractional_ms);
      handles_[id] = repeat ? loop_.set_interval(cb, fd) : loop_.set_timeout(cb, fd);
    } else {
      const std::chrono::milliseconds md(d.ms);
      handles_[id] = repeat ? loop_.set_interval(cb, md) : loop_.set_timeout(cb, md);
    }
  }
  void clear(std::size_t id) { loop_.clear_timeout(handles_.at(id)); }
  void refresh(std::size_t id) { handles_.at(id).refresh(); }
  void ref(std::size_t id) { handles_.at(id).ref(); }
  void unref(std::size_t id) { handles_.at(id).unref(); }
  bool active(std::size_t id) const { return handles_.at(id).active(); }
  bool has_ref(std::size_t id) const { return handles_.at(id).has_ref(); }
  void advance(std::int64_t ms) { loop_.backend().advance(std::chrono::milliseconds(ms)); }
  void set_time(std::uint64_t ms) {
    loop_.backend().set_time(std::chrono::milliseconds(static_cast<std::int64_t>(ms)));
  }
  bool run(run_mode m) { return loop_.run(m); }
  void stop() { loop_.stop(); }
  bool alive() const { return loop_.alive(); }
  std::uint64_t now() const { return static_cast<std::uint64_t>(loop_.now().count()); }
  std::uint64_t clock() const { return static_cast<std::uint64_t>(loop_.backend().now().count()); }
  std::uint64_t polls() const { return loop_.backend().polls(); }

 private:
  loop_type loop_;
  std::vector<typename loop_type::timer_handle> handles_;
};

/// Node's timer rules and the mock backend's clock, simulated directly: the
/// loop caches its time at the start of each iteration; setting a timer reads
/// a fresh clock; delays outside [1, 2^31-1] ms become 1 ms; timers fire in
/// (due, set order); a timer set during the timers phase waits for the next
/// iteration; an interval re-arms from the time its callback started;
/// refresh() restarts the countdown; unref'd timers do not keep the loop
/// alive; a blocking poll waits from a fresh clock until the earliest timer
/// and moves the virtual clock by that timeout.
class model_driver {
  struct timer {
    std::uint64_t due = 0, seq = 0;
    std::uint32_t delay = 1;
    bool repeat = false, refed = true, armed = false, running = false, cleared = false, released = false;
  };

 public:
  std::function<void(std::size_t)> on_fire;

  void set(std::size_t id, delay_spec d, bool repeat) {
    if (timers_.size() <= id) timers_.resize(id + 1);
    timer& t = timers_[id];
    t = timer{};
    t.delay = clamp(d);
    t.repeat = repeat;
    ++refs_;
    update_time();
    arm(id, now_);
  }
  void clear(std::size_t id) {
    timer& t = timers_.at(id);
    if (t.released || t.cleared) return;
    disarm(id);
    if (t.refed) --refs_;
    t.cleared = true;
    if (!t.running) t.released = true;
  }
  void refresh(std::size_t id) {
    timer& t = timers_.at(id);
    if (t.released || t.cleared) return;
    disarm(id);
    update_time();
    arm(id, now_);
  }
  void ref(std::size_t id) { set_ref(id, true); }
  void unref(std::size_t id) { set_ref(id, false); }
  bool active(std::size_t id) const {
    const timer& t = timers_.at(id);
    return !t.released && !t.cleared && (t.armed || (t.running && t.repeat));
  }
  bool has_ref(std::size_t id) const {
    const timer& t = timers_.at(id);
    return !t.released && t.refed;
  }
  void advance(std::int64_t ms) {
    if (ms > 0) clock_ += static_cast<std::uint64_t>(ms);
  }
  void set_time(std::uint64_t ms) { clock_ = std::max(clock_, ms); }
  void stop() { stop_ = true; }
  bool alive() const { return refs_ > 0; }
  std::uint64_t now() const { return now_; }
  std::uint64_t clock() const { return clock_; }

  // Node 20 (libuv >= 1.45): a loop with nothing alive refreshes its time;
  // default mode runs due timers once first; each iteration polls, then
  // runs the due timers at its end, before the liveness check.
  bool run(run_mode m) {
    if (!alive()) update_time();
    if (m == run_mode::default_ && !stop_ && alive()) {
      update_time();
      run_timers();
    }
    while (!stop_ && alive()) {
      // poll: block until the earliest timer (the mock jumps its clock there)
      if (m != run_mode::nowait && !stop_ && alive()) {
        REQUIRE(!queue_.empty());  // something alive and nothing to wait for: a hang
        const std::uint64_t due = std::get<0>(*queue_.begin());
        update_time();  // the timeout is measured from a fresh clock
        if (due > now_) clock_ += due - now_;
      }
      update_time();
      run_timers();
      if (m != run_mode::default_) break;
    }
    stop_ = false;
    return alive();
  }

 private:
  static std::uint32_t clamp(delay_spec d) {
    if (d.fractional) {
      const double ms = d.fractional_ms;
      return ms >= 1.0 && ms <= static_cast<double>(max_delay) ? static_cast<std::uint32_t>(ms) : 1;
    }
    return d.ms >= 1 && d.ms <= max_delay ? static_cast<std::uint32_t>(d.ms) : 1;
  }
  void update_time() { now_ = std::max(now_, clock_); }
  void arm(std::size_t id, std::uint64_t start) {
    timer& t = timers_[id];
    t.due = start + t.delay;
    t.seq = next_seq_++;
    t.armed = true;
    queue_.emplace(t.due, t.seq, id);
  }
  void disarm(std::size_t id) {
    timer& t = timers_[id];
    if (t.armed) queue_.erase({t.due, t.seq, id});
    t.armed = false;
  }
  void set_ref(std::size_t id, bool on) {
    timer& t = timers_.at(id);
    if (t.released || t.refed == on) return;
    t.refed = on;
    if (!t.cleared) on ? ++refs_ : --refs_;
  }
  void run_timers() {
    const std::uint64_t phase_now = now_;
    while (!queue_.empty() && std::get<0>(*queue_.begin()) <= phase_now) {
      const std::size_t id = std::get<2>(*queue_.begin());
      queue_.erase(queue_.begin());
      timer& t = timers_[id];
      t.armed = false;
      if (t.repeat) update_time();
      const std::uint64_t start = now_;
      t.running = true;
      on_fire(id);
      timer& u = timers_[id];  // on_fire may have grown timers_
      u.running = false;
      if (u.cleared) {
        u.released = true;
      } else if (u.armed) {
        // refreshed from its own callback
      } else if (u.repeat) {
        arm(id, start);
      } else {
        if (u.refed) --refs_;
        u.cleared = u.released = true;
      }
    }
  }

  std::vector<timer> timers_;
  std::set<std::tuple<std::uint64_t, std::uint64_t, std::size_t>> queue_;
  std::uint64_t now_ = 0, clock_ = 0, next_seq_ = 0;
  std::size_t refs_ = 0;
  bool stop_ = false;
};

// ---------------------------------------------------------------------------
// The random stream, written once for every driver.

template <class Driver>
class stream {
 public:
  stream(Driver& d, std::uint64_t seed) : d_(d), rng_(seed) {
    d_.on_fire = [this](std::size_t id) { fire(id); };
  }

  std::string run() {
    static constexpr std::uint64_t starts[] = {0,         0,         1000,          two31 - 300, two31 + 7,
                                               two32 - 300, two32 + 11, two53 - 300, two53 + two32 - 100};
    const std::uint64_t start = starts[rng_.below(std::size(starts))];
    d_.set_time(start);
    log("start " + std::to_string(start));
    budget_ = 150 + rng_.below(300);
    for (std::uint64_t n = 1 + rng_.below(20); n > 0; --n) op(false);
    // Rounds of "main script" operations and run() calls until the budget of
    // callbacks is spent (or 60 rounds); a finished loop gets new timers.
    for (int round = 0; round < 60 && budget_ > 0; ++round) {
      for (std::uint64_t n = d_.alive() ? rng_.below(4) : 1 + rng_.below(8); n > 0; --n) op(false);
      if (rng_.chance(30)) {
        const auto ms = static_cast<std::int64_t>(rng_.below(rng_.chance(80) ? 50 : 100'000));
        log("advance " + std::to_string(ms));
        d_.advance(ms);
      }
      const run_mode m = rng_.chance(40) ? run_mode::nowait : rng_.chance(60) ? run_mode::once : run_mode::default_;
      run_and_log(m);
    }
    budget_ = 0;  // wind down: intervals clear themselves, nothing new is set
    run_and_log(run_mode::default_);
    log("end fired " + std::to_string(fired_));
    return trace_;
  }

 private:
  void run_and_log(run_mode m) {
    const bool alive = d_.run(m);
    log("run " + std::to_string(static_cast<int>(m)) + " -> " + (alive ? "alive" : "done") + " now " +
        std::to_string(d_.now()) + " clock " + std::to_string(d_.clock()));
  }

  void fire(std::size_t id) {
    ++fired_;
    log("fire " + std::to_string(id) + " now " + std::to_string(d_.now()) + " clock " + std::to_string(d_.clock()));
    if (budget_ == 0) {
      if (repeat_.at(id)) d_.clear(id);
      return;
    }
    --budget_;
    for (std::uint64_t n = rng_.below(4); n > 0; --n) op(true);
  }

  delay_spec pick_delay() {
    delay_spec d;
    switch (rng_.below(14)) {
      case 0: d.ms = static_cast<std::int64_t>(rng_.below(3)); break;  // 0 becomes 1
      case 1: d.ms = -static_cast<std::int64_t>(rng_.below(10)); break;
      case 2: d.ms = max_delay; break;
      case 3: d.ms = max_delay + 1 + static_cast<std::int64_t>(rng_.below(1000)); break;  // becomes 1
      case 4: d.ms = static_cast<std::int64_t>(rng_.between(1, max_delay)); break;
      case 5: d.ms = static_cast<std::int64_t>(255 + rng_.below(3)); break;
      case 6: d.ms = static_cast<std::int64_t>(rng_.chance(50) ? 4095 + rng_.below(3) : 1'048'575 + rng_.below(3)); break;
      case 7:
        d.fractional = true;
        d.fractional_ms = static_cast<double>(rng_.below(4000)) / 1000.0;  // 0 .. 3.999
        break;
      case 8: d.ms = static_cast<std::int64_t>(1 + rng_.below(100'000)); break;
      default: d.ms = static_cast<std::int64_t>(1 + rng_.below(rng_.chance(50) ? 10 : 300)); break;
    }
    return d;
  }

  std::size_t pick_id() {
    // Mostly recent timers (likely still live), sometimes any.
    const std::size_t n = repeat_.size();
    if (rng_.chance(70) && n > 16) return n - 1 - rng_.below(16);
    return rng_.below(n);
  }

  void op(bool in_callback) {
    const unsigned r = static_cast<unsigned>(rng_.below(100));
    if (r < 35 || repeat_.empty()) {
      const bool repeat = rng_.chance(25);
      const delay_spec d = pick_delay();
      const std::size_t id = repeat_.size();
      repeat_.push_back(repeat);
      d_.set(id, d, repeat);
      log(std::string(repeat ? "interval " : "timeout ") + std::to_string(id) + " delay " +
          (d.fractional ? std::to_string(d.fractional_ms) : std::to_string(d.ms)));
      return;
    }
    const std::size_t id = pick_id();
    const std::string ids = std::to_string(id);
    if (r < 50) {
      log("clear " + ids);
      d_.clear(id);
    } else if (r < 62) {
      log("refresh " + ids);
      d_.refresh(id);
    } else if (r < 70) {
      log("unref " + ids);
      d_.unref(id);
    } else if (r < 76) {
      log("ref " + ids);
      d_.ref(id);
    } else if (r < 86) {
      log("query " + ids + (d_.active(id) ? " active" : " inactive") + (d_.has_ref(id) ? " ref" : " unref") +
          (d_.alive() ? " alive" : " idle"));
    } else if (r < 96) {
      const auto ms = static_cast<std::int64_t>(rng_.below(rng_.chance(85) ? 20 : 5000));
      log("advance " + std::to_string(ms));
      d_.advance(ms);
    } else if (r < 98 && in_callback) {
      log("stop");
      d_.stop();
    }
  }

  void log(const std::string& line) {
    trace_ += line;
    trace_ += '\n';
  }

  Driver& d_;
  det_random rng_;
  std::vector<bool> repeat_;
  std::string trace_;
  std::uint64_t budget_ = 0, fired_ = 0;
};

template <class Driver>
std::string run_stream(std::uint64_t seed) {
  Driver d;
  return stream<Driver>(d, seed).run();
}

/// First differing line of two traces, for the failure message.
std::string first_difference(const std::string& a, const std::string& b) {
  std::size_t i = 0, line = 1;
  while (i < a.size() && i < b.size() && a[i] == b[i]) {
    if (a[i] == '\n') ++line;
    ++i;
  }
  const std::size_t from_a = a.rfind('\n', i == 0 ? 0 : i - 1), from_b = b.rfind('\n', i == 0 ? 0 : i - 1);
  auto line_at = [](const std::string& s, std::size_t from) {
    const std::size_t begin = from == std::string::npos ? 0 : from + 1;
    return s.substr(begin, s.find('\n', begin) - begin);
  };
  return "line " + std::to_string(line) + ": '" + line_at(a, from_a) + "' vs '" + line_at(b, from_b) + "'";
}

}  // namespace

TEST_CASE("timer differential: heap, wheel, multimap store and the Node model give identical traces",
          "[timers][wheel]") {
  // PHASELOOP_TIMER_SEEDS=N runs N seeds instead of 1000.
  const char* env = std::getenv("PHASELOOP_TIMER_SEEDS");
  const std::uint64_t seeds = env != nullptr ? std::strtoull(env, nullptr, 10) : 1000;
  std::size_t fires = 0;
  for (std::uint64_t seed = 1; seed <= seeds; ++seed) {
    const std::string model = run_stream<model_driver>(seed);
    const std::string heap = run_stream<loop_driver<heap_timers>>(seed);
    const std::string wheel = run_stream<loop_driver<wheel_timers>>(seed);
    const std::string reference = run_stream<loop_driver<reference_timers>>(seed);
    if (heap != model) FAIL("seed " << seed << " heap vs model, " << first_difference(heap, model));
    if (wheel != model) FAIL("seed " << seed << " wheel vs model, " << first_difference(wheel, model));
    if (reference != model) FAIL("seed " << seed << " multimap vs model, " << first_difference(reference, model));
    for (std::size_t at = model.find("\nfire "); at != std::string::npos; at = model.find("\nfire ", at + 1)) ++fires;
  }
  CHECK(fires > 200 * seeds);  // the streams really exercise the timers
}

// ---------------------------------------------------------------------------
// Virtual uptime past 2^31, 2^32 and 2^53 ms.

TEMPLATE_TEST_CASE("timers past 2^31, 2^32 and 2^53 ms of uptime fire exactly once, on time, in order",
                   "[timers][wheel]", heap_timers, wheel_timers, reference_timers) {
  using loop_type = basic_loop<mock_backend, TestType, inline_executor>;
  for (const std::uint64_t start : {two31 - 1000, two32 - 1000, two53 - 1000, two53 + two31, two53 + two32 - 7}) {
    loop_type loop;
    loop.backend().set_time(std::chrono::milliseconds(static_cast<std::int64_t>(start)));
    struct fired {
      std::uint64_t due, seq, at;
    };
    std::vector<fired> log;
    std::vector<int> count;
    std::uint64_t seq = 0;
    const std::int64_t delays[] = {1, 2, 999, 1000, 1001, 1002, 65'536, 16'777'216, max_delay - 1, max_delay};
    for (int wave = 0; wave < 3; ++wave) {
      for (std::int64_t d : delays) {
        const std::size_t id = count.size();
        const std::uint64_t due = static_cast<std::uint64_t>(loop.backend().now().count() + d);
        count.push_back(0);
        loop.set_timeout(
            [&, id, due, s = seq++] {
              ++count[id];
              log.push_back({due, s, static_cast<std::uint64_t>(loop.now().count())});
            },
            std::chrono::milliseconds(d));
      }
      loop.backend().advance(std::chrono::milliseconds(500));
      loop.run(run_mode::nowait);
    }
    // An interval of 2^31-1 ms crossing the boundary three times, then cleared.
    int ticks = 0;
    typename loop_type::timer_handle interval;
    interval = loop.set_interval([&] { if (++ticks == 3) loop.clear_interval(interval); },
                                 std::chrono::milliseconds(max_delay));
    loop.run();
    CHECK(ticks == 3);
    CHECK(loop.now().count() >= static_cast<std::int64_t>(start + 3 * static_cast<std::uint64_t>(max_delay)));
    CHECK(std::all_of(count.begin(), count.end(), [](int c) { return c == 1; }));
    bool on_time = true, ordered = true;
    for (std::size_t i = 0; i < log.size(); ++i) {
      on_time = on_time && log[i].at >= log[i].due && (log[i].due >= start + 1500 || log[i].at <= log[i].due + 500);
      if (i > 0)
        ordered = ordered && std::tie(log[i - 1].due, log[i - 1].seq) < std::tie(log[i].due, log[i].seq);
    }
    CHECK(on_time);
    CHECK(ordered);
    CHECK(log.size() == count.size());
  }
}

TEMPLATE_TEST_CASE("a far timer costs no wake-ups: the poll waits exactly until it is due", "[timers][wheel]",
                   heap_timers, wheel_timers) {
  using loop_type = basic_loop<mock_backend, TestType, inline_executor>;
  for (const std::uint64_t start : {std::uint64_t{0}, two32 - 5, two53 + 123}) {
    loop_type loop;
    loop.backend().set_time(std::chrono::milliseconds(static_cast<std::int64_t>(start)));
    std::uint64_t fired_at = 0;
    loop.set_timeout([&] { fired_at = static_cast<std::uint64_t>(loop.now().count()); },
                     std::chrono::milliseconds(max_delay));
    loop.set_timeout([] {}, std::chrono::milliseconds(70'000)).unref();  // fires on the way, no extra wake-up
    const std::uint64_t polls_before = loop.backend().polls();
    loop.run();
    CHECK(fired_at == start + static_cast<std::uint64_t>(max_delay));
    // one poll to the unref'd timer, one to the far timer; the timers end
    // each iteration (Node 20), so no non-blocking poll follows
    CHECK(loop.backend().polls() - polls_before == 2);
  }
}

TEMPLATE_TEST_CASE("a million live timers on the loop fire once each, in order", "[timers][wheel]", heap_timers,
                   wheel_timers) {
  using loop_type = basic_loop<mock_backend, TestType, inline_executor>;
  loop_type loop;
  loop.backend().set_time(std::chrono::milliseconds(static_cast<std::int64_t>(two53 - 50'000)));
  constexpr std::size_t count = 1'000'000;
  struct state {
    loop_type* loop;
    std::uint64_t last_due = 0, fired = 0;
    bool ordered = true;
  } st{&loop};
  det_random rng(7);
  const auto base = static_cast<std::uint64_t>(loop.backend().now().count());
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint64_t delay = 1 + rng.below(i % 8 == 0 ? 10'000'000 : 100'000);
    loop.set_timeout(
        [s = &st, due = base + delay] {
          s->ordered = s->ordered && due >= s->last_due && static_cast<std::uint64_t>(s->loop->now().count()) == due;
          s->last_due = due;
          ++s->fired;
        },
        std::chrono::milliseconds(delay));
  }
  loop.run();
  CHECK(st.ordered);
  CHECK(st.fired == count);
}

// Hidden: prints the model's and the heap loop's traces of one seed
// (PHASELOOP_TIMER_SEED, default 1) to investigate a failure.
TEST_CASE("timer differential: dump one seed", "[.timer-dump]") {
  const char* env = std::getenv("PHASELOOP_TIMER_SEED");
  const std::uint64_t seed = env != nullptr ? std::strtoull(env, nullptr, 10) : 1;
  std::printf("--- model\n%s--- heap\n%s--- wheel\n%s", run_stream<model_driver>(seed).c_str(),
              run_stream<loop_driver<heap_timers>>(seed).c_str(), run_stream<loop_driver<wheel_timers>>(seed).c_str());
}
