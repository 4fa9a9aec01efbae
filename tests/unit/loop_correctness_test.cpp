// Issue 18: the loop core's iteration semantics (Node 20 / libuv >= 1.45),
// its memory safety on teardown and across threads, the contract
// assertions, and delays of every std::chrono type. Each test here failed
// before its fix.

#include "support.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <csignal>
#include <sys/wait.h>
#include <unistd.h>
#define PHASELOOP_TEST_CAN_FORK 1
#endif

using namespace phaseloop;
using namespace std::chrono_literals;
using phaseloop::test::trace;

namespace {

// ------------------------------------------------------------ iteration

TEMPLATE_TEST_CASE("loop: an unref'd immediate queued by the last timer does not run (timers end the iteration)",
                   "[loop-correctness]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  trace out;
  loop.set_timeout([&] {
    out.push_back("timeout");
    loop.set_immediate([&] { out.push_back("immediate"); }).unref();
  }, 10ms);
  CHECK_FALSE(loop.run());
  CHECK(out == trace{"timeout"});
}

TEMPLATE_TEST_CASE("loop: an unref'd timer that came due during a busy immediate fires before the loop ends",
                   "[loop-correctness]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  trace out;
  loop.set_timeout([&] { out.push_back("timeout " + std::to_string(loop.now().count())); }, 50ms).unref();
  loop.set_immediate([&] {
    out.push_back("immediate");
    loop.backend().advance(60ms);  // busy for 60 ms
  });
  CHECK_FALSE(loop.run());
  CHECK(out == trace{"immediate", "timeout 60"});
}

TEMPLATE_TEST_CASE("loop: run(once) with an overdue interval runs it once and does not block", "[loop-correctness]",
                   PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  int runs = 0;
  auto iv = loop.set_interval([&] { ++runs; }, 10ms);
  loop.backend().advance(20ms);
  CHECK(loop.run(run_mode::once));
  CHECK(runs == 1);
  CHECK(loop.now() == 20ms);  // no virtual sleep
  loop.clear_interval(iv);
}

TEMPLATE_TEST_CASE("loop: run(once) decides before the idle phase whether poll may block", "[loop-correctness]",
                   PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  auto idle = loop.make_idle();
  auto check = loop.make_check();
  int idles = 0, checks = 0;
  idle.start([&] {
    ++idles;
    idle.stop();
  });
  check.start([&] { ++checks; });
  bool fired = false;
  loop.set_timeout([&] { fired = true; }, 1000ms);  // where the poll would sleep to
  CHECK(loop.run(run_mode::once));
  CHECK(idles == 1);
  CHECK(checks == 1);
  CHECK(loop.now() == 0ms);
  CHECK_FALSE(fired);
  check.stop();
  loop.run();
  CHECK(fired);
}

TEMPLATE_TEST_CASE("loop: run() on a loop with nothing alive still refreshes its time", "[loop-correctness]",
                   PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  (void)loop.now();
  loop.backend().advance(5ms);
  CHECK_FALSE(loop.run(run_mode::nowait));
  CHECK(loop.now() == 5ms);
  const auto start = loop.now();
  int turns = 0;
  while (loop.now() - start < 100ms && turns < 1000) {
    loop.backend().advance(1ms);
    loop.run(run_mode::nowait);
    ++turns;
  }
  CHECK(turns == 100);
}

TEMPLATE_TEST_CASE("loop: several idle, prepare and check handles run newest first, as in libuv",
                   "[loop-correctness]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  trace out;
  auto i1 = loop.make_idle(), i2 = loop.make_idle(), i3 = loop.make_idle();
  auto p1 = loop.make_prepare(), p2 = loop.make_prepare();
  auto c1 = loop.make_check(), c2 = loop.make_check();
  i1.start([&] { out.push_back("i1"); });
  i2.start([&] { out.push_back("i2"); });
  i3.start([&] { out.push_back("i3"); });
  p1.start([&] { out.push_back("p1"); });
  p2.start([&] { out.push_back("p2"); });
  c1.start([&] { out.push_back("c1"); });
  c2.start([&] { out.push_back("c2"); });
  i2.start([&] { out.push_back("i2'"); });  // restarting an active handle keeps its place
  loop.run(run_mode::nowait);
  CHECK(out == trace{"i3", "i2'", "i1", "p2", "p1", "c2", "c1"});
  // Stopped and started again: newest again.
  out.clear();
  i1.stop();
  i1.start([&] { out.push_back("i1"); });
  loop.run(run_mode::nowait);
  CHECK(out == trace{"i1", "i3", "i2'", "p2", "p1", "c2", "c1"});
}

TEMPLATE_TEST_CASE("loop: test_loop without auto-advance returns from run() when only the test can move time",
                   "[loop-correctness]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  loop.backend().set_auto_advance(false);
  int turns = 0;
  auto check = loop.make_check();
  check.start([&] {
    if (++turns == 1000) loop.stop();  // what a spinning run() would reach
  });
  check.unref();
  bool fired = false;
  loop.set_timeout([&] { fired = true; }, 10ms);
  CHECK(loop.run());  // still alive: the timer waits for virtual time
  CHECK(turns == 1);
  CHECK_FALSE(fired);
  loop.backend().advance(10ms);
  CHECK_FALSE(loop.run());
  CHECK(fired);
}

TEMPLATE_TEST_CASE("loop: a poll handle restarted with fewer events gets only what it watches now",
                   "[loop-correctness]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  auto a = loop.make_poll(5);
  auto b = loop.make_poll(6);
  std::vector<io_events> got_b;
  REQUIRE_FALSE(b.start(io_events::readable | io_events::writable,
                        [&](std::error_code, io_events ev) { got_b.push_back(ev); }));
  REQUIRE_FALSE(a.start(io_events::readable, [&](std::error_code, io_events) {
    // b's readiness is already queued behind this completion.
    REQUIRE_FALSE(b.start(io_events::writable, [&](std::error_code, io_events ev) { got_b.push_back(ev); }));
    a.stop();
  }));
  loop.backend().inject(5, io_events::readable);
  loop.backend().inject(6, io_events::readable);
  loop.run(run_mode::nowait);
  for (io_events ev : got_b) CHECK_FALSE(any(ev & io_events::readable));
  b.stop();
  loop.run();
}

TEMPLATE_TEST_CASE("loop: a callback deferred while the pending phase runs waits for the next pending phase",
                   "[loop-correctness]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  trace out;
  auto a = loop.make_poll(5);
  auto b = loop.make_poll(6);
  int a_calls = 0;
  REQUIRE_FALSE(a.start(io_events::readable, [&](std::error_code, io_events) {
    ++a_calls;
    a.stop();
    throw std::runtime_error("a");  // leaves b's completion for the pending phase
  }));
  REQUIRE_FALSE(b.start(io_events::readable, [&](std::error_code, io_events) {
    out.push_back("b");
    b.stop();
    loop.defer([&] { out.push_back("deferred by b"); });
  }));
  auto check = loop.make_check();
  check.start([&] { out.push_back("check"); });
  check.unref();
  loop.backend().inject(5, io_events::readable);
  loop.backend().inject(6, io_events::readable);
  CHECK_THROWS_AS(loop.run(run_mode::nowait), std::runtime_error);
  CHECK(a_calls == 1);
  out.clear();
  loop.run(run_mode::nowait);  // b runs in the pending phase; what it defers waits
  loop.run(run_mode::nowait);
  CHECK(out == trace{"b", "check", "deferred by b", "check"});
}

// run() ends at the callback that throws (its message goes into `out`); a
// second run() does what the first left behind.
template <class Loop>
void run_past_the_throw(Loop& loop, std::string& out) {
  try {
    loop.run();
  } catch (const std::runtime_error& e) {
    out += e.what();
  }
  loop.run();
}

TEMPLATE_TEST_CASE("loop: posted callbacks an exception left behind keep their place ahead of later ones",
                   "[loop-correctness]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  std::string out;
  loop.post([&] {
    out += "A";
    loop.post([&] { out += "D"; });
    throw std::runtime_error("!");
  });
  loop.post([&] { out += "B"; });
  loop.post([&] { out += "C"; });
  run_past_the_throw(loop, out);
  CHECK(out == "A!BCD");
}

TEMPLATE_TEST_CASE("loop: finished work an exception left behind keeps its place ahead of later work",
                   "[loop-correctness]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  std::string out;
  loop.queue_work([] {}, [&](std::error_code) {
    out += "A";
    loop.queue_work([] {}, [&](std::error_code) { out += "D"; });
    throw std::runtime_error("!");
  });
  loop.queue_work([] {}, [&](std::error_code) { out += "B"; });
  loop.queue_work([] {}, [&](std::error_code) { out += "C"; });
  run_past_the_throw(loop, out);
  CHECK(out == "A!BCD");
}

// ------------------------------------------------------------ memory safety

// The everyday Asio pattern: a session owns timers whose callbacks hold it;
// its destructor clears them and schedules more.
template <class Loop>
struct session {
  Loop& loop;
  int& destroyed;
  typename Loop::timer_handle idle_timer;
  typename Loop::timer_handle other_timer;
  session(Loop& l, int& d) : loop(l), destroyed(d) {}
  ~session() {
    loop.clear_timeout(idle_timer);
    loop.clear_timeout(other_timer);
    loop.set_immediate([] {});
    loop.set_timeout([] {}, 5ms);
    loop.post([] {});
    loop.next_tick([] {});
    loop.queue_microtask([] {});
    loop.defer([] {});
    loop.queue_work([] {}, [](std::error_code) {});
    auto idle = loop.make_idle();
    idle.start([] {});
    ++destroyed;
  }
};

TEMPLATE_TEST_CASE("loop: destroying a loop whose pending callbacks' captures call the loop is safe",
                   "[loop-correctness]", PHASELOOP_TEST_MOCK_LOOPS, phaseloop::test::pool_loop) {
  int destroyed = 0;
  {
    auto loop = std::make_unique<TestType>();
    for (int i = 0; i < 8; ++i) {
      auto s = std::make_shared<session<TestType>>(*loop, destroyed);
      s->idle_timer = loop->set_timeout([s] {}, 1h);
      s->other_timer = loop->set_interval([s] {}, 30min);
      loop->set_immediate([s] {});
      loop->post([s] {});
      loop->defer([s] {});
      loop->next_tick([s] {});
      loop->queue_work([s] {}, [s](std::error_code) {});
    }
    loop.reset();
  }
  CHECK(destroyed == 8);
}

TEMPLATE_TEST_CASE("loop: an uncaught-exception handler may replace itself", "[loop-correctness]",
                   PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  auto alive = std::make_shared<int>(42);
  std::weak_ptr<int> watch = alive;
  std::vector<int> seen;
  int second = 0;
  loop.on_uncaught_exception([&, alive](std::exception_ptr) {
    loop.on_uncaught_exception([&](std::exception_ptr) { ++second; });
    seen.push_back(watch.expired() ? -1 : *alive);  // its own captures are still there
  });
  alive.reset();
  loop.set_immediate([] { throw std::runtime_error("one"); });
  loop.set_timeout([] { throw std::runtime_error("two"); }, 1ms);
  loop.run();
  CHECK(seen == std::vector<int>{42});
  CHECK(second == 1);
  CHECK(watch.expired());
}

TEMPLATE_TEST_CASE("loop: timer and immediate handles used after their loop is gone do nothing",
                   "[loop-correctness]", PHASELOOP_TEST_MOCK_LOOPS) {
  typename TestType::timer_handle t;
  typename TestType::immediate_handle i;
  {
    TestType loop;
    t = loop.set_timeout([] {}, 10ms);
    i = loop.set_immediate([] {});
    CHECK(t.active());
    CHECK(i.pending());
  }
  // The memory the handles named is gone; a new loop may sit where it was.
  TestType other;
  auto t2 = other.set_timeout([] {}, 10ms);
  CHECK_FALSE(t.active());
  CHECK_FALSE(t.has_ref());
  t.refresh().unref().ref();
  CHECK_FALSE(i.pending());
  i.unref();
  CHECK(t2.has_ref());
  CHECK_FALSE(other.run());
  CHECK(other.now() == 10ms);
}

TEST_CASE("loop: pool generations never repeat, so a stale handle never names a later record",
          "[loop-correctness]") {
  struct rec : detail::pool_slot {};
  detail::slot_pool<rec> pool;
  const std::uint32_t first = pool.acquire();
  const std::uint32_t keep = pool.acquire();  // the pool is never empty
  std::set<std::pair<std::uint32_t, std::uint32_t>> seen{{first, pool[first].generation}, {keep, pool[keep].generation}};
  pool.release(first);
  pool[first].generation = 0xFFFFFFF0u;  // as after 2^31 - 8 reuses
  for (int i = 0; i < 64; ++i) {
    const std::uint32_t index = pool.acquire();
    const std::uint32_t generation = pool[index].generation;
    CHECK(seen.insert({index, generation}).second);
    if (index == first) {
      CHECK(generation >= 0xFFFFFFF1u);
    }
    pool.release(index);
    CHECK(pool.find(index, generation) == nullptr);
  }
  // Emptied and refilled in address order: the worn-out slot stays retired.
  pool.release(keep);
  for (int i = 0; i < 4; ++i) {
    const std::uint32_t index = pool.acquire();
    CHECK(index != first);
    CHECK(seen.insert({index, pool[index].generation}).second);
  }
}

TEMPLATE_TEST_CASE("loop: stop() from another thread wakes a blocked poll", "[loop-correctness]",
                   PHASELOOP_TEST_MOCK_LOOPS, phaseloop::test::epoll_heap_loop, phaseloop::test::pool_loop) {
  TestType loop;
  auto hold = loop.make_keep_alive();
  std::atomic<bool> watchdog{false};
  std::atomic<bool> done{false};
  std::thread stopper([&] {
    std::this_thread::sleep_for(50ms);
    loop.stop();
  });
  std::thread guard([&] {
    for (int i = 0; i < 300 && !done.load(); ++i) std::this_thread::sleep_for(10ms);
    if (!done.load()) {
      watchdog = true;
      loop.post([&] { loop.stop(); });
    }
  });
  CHECK(loop.run());  // still alive: the keep_alive token
  done = true;
  stopper.join();
  guard.join();
  CHECK_FALSE(watchdog.load());
  hold.reset();
  loop.run();
}

#if !defined(LOOP_CORRECTNESS_BASELINE)  // the poster is new
TEMPLATE_TEST_CASE("loop: a poster and a keep_alive outliving their loop report that it is gone",
                   "[loop-correctness]", PHASELOOP_TEST_MOCK_LOOPS, phaseloop::test::pool_loop) {
  std::optional<typename TestType::poster> p;
  std::optional<typename TestType::keep_alive> k;
  auto token = std::make_shared<int>(0);
  std::weak_ptr<int> watch = token;
  {
    TestType loop;
    p.emplace(loop.make_poster());
    k.emplace(loop.make_keep_alive());
    int ran = 0;
    CHECK(p->post([&] { ++ran; }));
    CHECK(p->alive());
    loop.run(run_mode::nowait);
    CHECK(ran == 1);
  }
  CHECK_FALSE(p->alive());
  CHECK_FALSE(p->post([token] {}));
  token.reset();
  CHECK(watch.expired());  // the refused callback was destroyed
  p->stop();
  std::thread other([&] {
    CHECK_FALSE(p->post([] {}));
    k.reset();  // touches nothing of the loop
  });
  other.join();
}

#endif

// ------------------------------------------------------------ assertions

#if defined(PHASELOOP_TEST_CAN_FORK) && PHASELOOP_ASSERTS
// Runs `f` in a child process and returns what it printed on stderr, or
// "(no abort)" when it did not end with SIGABRT.
template <class F>
std::string abort_message(F f) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    std::signal(SIGABRT, SIG_DFL);  // not the test framework's handler
    ::dup2(fds[1], 2);
    ::close(fds[0]);
    f();
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string text;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT) return "(no abort) " + text;
  return text;
}

void noop() {}

TEST_CASE("loop: contract violations trip PHASELOOP_ASSERT with a message", "[loop-correctness]") {
  using L = phaseloop::test::mock_heap_loop;
  auto trips = [](auto f, const char* fragment) {
    const std::string msg = abort_message(f);
    INFO(msg);
    CHECK(msg.find("phaseloop: ") != std::string::npos);
    CHECK(msg.find(fragment) != std::string::npos);
  };
  trips([] {
    L a, b;
    auto t = a.set_timeout([] {}, 1ms);
    b.clear_timeout(t);
  }, "another loop");
  trips([] {
    L a, b;
    auto i = a.set_immediate([] {});
    b.clear_immediate(i);
  }, "another loop");
  trips([] {
    L loop;
    loop.set_immediate([&] { loop.run(); });
    loop.run();
  }, "re-entered");
  // Every call that takes a callback refuses an empty one.
  auto refuses_empty_callback = [&](auto call) {
    trips([call] {
      L loop;
      call(loop);
    }, "empty callback");
  };
  using function_pointer = void (*)();
  refuses_empty_callback([](L& loop) { loop.set_timeout(function_pointer{}, 1ms); });
  refuses_empty_callback([](L& loop) { loop.set_interval(function_pointer{}, 1ms); });
  refuses_empty_callback([](L& loop) { loop.set_immediate(function_pointer{}); });
  refuses_empty_callback([](L& loop) { loop.next_tick(callback{}); });
  refuses_empty_callback([](L& loop) { loop.queue_microtask(function_pointer{}); });
  refuses_empty_callback([](L& loop) { loop.post(nullptr); });
  refuses_empty_callback([](L& loop) { loop.defer(nullptr); });
  refuses_empty_callback([](L& loop) { loop.queue_work(function_pointer{}, [](std::error_code) {}); });
  refuses_empty_callback([](L& loop) { loop.queue_work(noop, nullptr); });
  refuses_empty_callback([](L& loop) {
    auto idle = loop.make_idle();
    idle.start(nullptr);
  });
  trips([] {
    promise<int> p;
    (void)p.status();
  }, "empty promise");
  trips([] {
    promise<int> p;
    (void)p.then([](int&) {});
  }, "empty promise");
  trips([] {
    resolver<int> r;
    r.resolve(1);
  }, "empty resolver");
  // Not a violation: a valid call does not abort.
  CHECK(abort_message([] {
    L loop;
    loop.set_timeout(noop, 1ms);
    loop.run();
  }).rfind("(no abort)", 0) == 0);
}
#endif

// ------------------------------------------------------------ delays

template <class Loop, class D>
std::int64_t fired_after(D delay) {
  Loop loop;
  std::int64_t at = -1;
  loop.set_timeout([&] { at = loop.now().count(); }, delay);
  loop.run();
  return at;
}

TEMPLATE_TEST_CASE("loop: delays of every std::chrono type follow Node's rule", "[loop-correctness]",
                   PHASELOOP_TEST_MOCK_LOOPS) {
  using std::chrono::duration;
  using namespace std::chrono;
  // Out of range: 1 ms.
  CHECK(fired_after<TestType>(seconds::max()) == 1);
  CHECK(fired_after<TestType>(minutes::max()) == 1);
  CHECK(fired_after<TestType>(hours::max()) == 1);
  CHECK(fired_after<TestType>(seconds::min()) == 1);
  CHECK(fired_after<TestType>(milliseconds::min()) == 1);
  CHECK(fired_after<TestType>(nanoseconds::min()) == 1);
  CHECK(fired_after<TestType>(seconds((std::int64_t{1} << 61) + 5)) == 1);  // * 1000 wraps to 5000
  CHECK(fired_after<TestType>(duration<std::uint64_t, std::milli>(~std::uint64_t{0})) == 1);
  CHECK(fired_after<TestType>(duration<std::uint64_t>(~std::uint64_t{0})) == 1);
  CHECK(fired_after<TestType>(duration<std::uint64_t>((std::uint64_t{1} << 61) + 5)) == 1);
  CHECK(fired_after<TestType>(duration<std::uint32_t, std::ratio<86400>>(~std::uint32_t{0})) == 1);
  CHECK(fired_after<TestType>(duration<std::int8_t, std::ratio<3600>>(-1)) == 1);
  CHECK(fired_after<TestType>(milliseconds(2147483648)) == 1);
  CHECK(fired_after<TestType>(microseconds(999)) == 1);
  CHECK(fired_after<TestType>(duration<double>(std::numeric_limits<double>::infinity())) == 1);
  CHECK(fired_after<TestType>(duration<double>(std::numeric_limits<double>::quiet_NaN())) == 1);
  CHECK(fired_after<TestType>(duration<float, std::ratio<3600>>(1e30f)) == 1);
  // In range: kept (truncated to whole ms).
  CHECK(fired_after<TestType>(milliseconds(2147483647)) == 2147483647);
  CHECK(fired_after<TestType>(microseconds(2147483647999)) == 2147483647);
  CHECK(fired_after<TestType>(microseconds(2147483648000)) == 1);
  CHECK(fired_after<TestType>(nanoseconds(1999999)) == 1);
  CHECK(fired_after<TestType>(nanoseconds(25000000)) == 25);
  CHECK(fired_after<TestType>(seconds(2)) == 2000);
  CHECK(fired_after<TestType>(hours(596)) == 2145600000);
  CHECK(fired_after<TestType>(hours(597)) == 1);
  CHECK(fired_after<TestType>(duration<std::uint8_t, std::ratio<60>>(3)) == 180000);
  CHECK(fired_after<TestType>(duration<std::int64_t, std::ratio<3, 7000>>(7001)) == 3000);  // 3/7 ms each
  CHECK(fired_after<TestType>(duration<double, std::milli>(2.9)) == 2);
}

TEMPLATE_TEST_CASE("loop: delay() takes any duration without overflow", "[loop-correctness]",
                   PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  std::int64_t at = -1;
  loop.delay(std::chrono::hours::max()).then([&] { at = loop.now().count(); });
  loop.run();
  CHECK(at == 1);
}

}  // namespace
