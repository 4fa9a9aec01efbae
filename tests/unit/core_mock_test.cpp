// The rules of DESIGN §2 on the mock backend: virtual time, so every timing
// rule is checked exactly and instantly, with each timer store.
// phaseloop: portable (mock backend and inline executor only; built for Windows too)

#include "support.hpp"

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace phaseloop;
using namespace phaseloop::test;
using std::chrono::milliseconds;

namespace {

/// One step of a phase trace: which phase ran what, at which loop time.
struct step {
  std::string what;
  std::int64_t at_ms;
  friend bool operator==(const step& a, const step& b) { return boost::pfr::eq_fields(a, b); }
};

}  // namespace

namespace Catch {
template <>
struct StringMaker<step> {
  static std::string convert(const step& s) { return describe_aggregate(s); }
};
}  // namespace Catch

// ------------------------------------------------------------------- phases

TEMPLATE_TEST_CASE("one iteration runs pending, idle, prepare, poll, check, close, then timers, in order (Node 20)", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  trace out;
  auto idle = loop.make_idle();
  auto prepare = loop.make_prepare();
  auto check = loop.make_check();
  auto poll = loop.make_poll(7);

  loop.set_timeout([&] { out.push_back("timers"); }, 1ms);
  loop.backend().advance(1ms);
  loop.defer([&] { out.push_back("pending"); });
  idle.start([&] { out.push_back("idle"); idle.stop(); });
  prepare.start([&] { out.push_back("prepare"); prepare.stop(); });
  REQUIRE_FALSE(poll.start(io_events::readable, [&](std::error_code ec, io_events events) {
    CHECK_FALSE(ec);
    CHECK(events == io_events::readable);
    out.push_back("poll");
    poll.close([&] { out.push_back("close poll"); });
  }));
  loop.backend().inject(7, io_events::readable);
  loop.set_immediate([&] { out.push_back("check: immediate"); });
  check.start([&] {
    out.push_back("check: handle");
    check.close([&] { out.push_back("close check"); });
  });

  loop.run(run_mode::once);
  CHECK(out == trace{"pending", "idle", "prepare", "poll", "check: immediate", "check: handle",
                     "close poll", "close check", "timers"});
  CHECK(loop.metrics().iterations == 1);
  CHECK_FALSE(loop.alive());
}

TEMPLATE_TEST_CASE("the microtask checkpoint runs after every callback and before the first iteration", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  trace out;
  loop.next_tick([&] { out.push_back("main tick"); });
  loop.queue_microtask([&] { out.push_back("main microtask"); });
  loop.set_immediate([&] {
    out.push_back("immediate 1");
    loop.queue_microtask([&] {
      out.push_back("microtask from 1");
      loop.next_tick([&] { out.push_back("tick from microtask"); });
    });
  });
  loop.set_immediate([&] { out.push_back("immediate 2"); });
  loop.run();
  CHECK(out == trace{"main tick", "main microtask", "immediate 1", "microtask from 1", "tick from microtask",
                     "immediate 2"});
}

// -------------------------------------------------------------- run and stop

TEMPLATE_TEST_CASE("stop() before run() makes run() return without an iteration", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  bool fired = false;
  loop.set_timeout([&] { fired = true; }, 1ms);
  loop.stop();
  CHECK(loop.run());  // still alive: the timer is pending
  CHECK_FALSE(fired);
  CHECK(loop.metrics().iterations == 0);
  CHECK(loop.run() == false);  // the stop request was consumed
  CHECK(fired);
}

TEMPLATE_TEST_CASE("stop() inside a callback ends run() after the current iteration", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  int ticks = 0;
  bool immediate_ran = false;
  auto iv = loop.set_interval([&] {
    if (++ticks == 3) {
      loop.stop();
      // Timers end the iteration (Node 20): the next iteration's check phase,
      // which this run() does not reach.
      loop.set_immediate([&] { immediate_ran = true; });
    }
  }, 10ms);
  CHECK(loop.run());
  CHECK(ticks == 3);
  CHECK_FALSE(immediate_ran);
  CHECK(loop.now() == 30ms);
  loop.set_timeout([&] { loop.clear_interval(iv); }, 25ms);
  CHECK_FALSE(loop.run());  // runs again where it stopped
  CHECK(immediate_ran);
  CHECK(ticks == 5);
}

TEMPLATE_TEST_CASE("run(once) runs one iteration, may block, and fires timers that came due", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  int fired = 0;
  loop.set_timeout([&] { ++fired; }, 50ms);
  loop.set_timeout([&] { ++fired; }, 80ms);
  CHECK(loop.run(run_mode::once));
  CHECK(loop.metrics().iterations == 1);
  CHECK(fired == 1);
  CHECK(loop.now() == 50ms);
  CHECK_FALSE(loop.run(run_mode::once));
  CHECK(loop.metrics().iterations == 2);
  CHECK(fired == 2);
}

TEMPLATE_TEST_CASE("run(nowait) never blocks", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  int fired = 0;
  int immediates = 0;
  loop.set_timeout([&] { ++fired; }, 50ms);
  loop.set_immediate([&] { ++immediates; });
  CHECK(loop.run(run_mode::nowait));
  CHECK(loop.metrics().iterations == 1);
  CHECK(immediates == 1);
  CHECK(fired == 0);
  CHECK(loop.now() == 0ms);  // virtual time did not jump: poll did not wait
  loop.backend().advance(50ms);
  CHECK_FALSE(loop.run(run_mode::nowait));
  CHECK(fired == 1);
}

#if !PHASELOOP_ASSERTS  // with assertions on, it trips PHASELOOP_ASSERT (loop_correctness_test.cpp)
TEMPLATE_TEST_CASE("run() from inside a callback does nothing", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  int order = 0;
  loop.set_timeout([&] {
    loop.set_timeout([&] { order = 2; }, 1ms);
    loop.run();
    order = order == 0 ? 1 : -1;
  }, 1ms);
  loop.run();
  CHECK(order == 2);
}
#endif

// ------------------------------------------------------------------ timers

TEMPLATE_TEST_CASE("timers fire in (due, seq) order with the 1 ms clamp", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  std::vector<step> out;
  auto log = [&](std::string what) { return [&, what] { out.push_back({what, loop.now().count()}); }; };
  loop.set_timeout(log("b 20"), 20ms);
  loop.set_timeout(log("a 10"), 10ms);
  loop.set_timeout(log("zero is 1"), 0ms);
  loop.set_timeout(log("negative is 1"), milliseconds(-7));
  loop.set_timeout(log("too long is 1"), milliseconds(2147483648LL));
  loop.set_timeout(log("max stays"), max_timer_delay);
  loop.set_timeout(log("fraction truncates"), std::chrono::duration<double, std::milli>(1.9));
  loop.set_timeout(log("c 10"), 10ms);
  loop.run();
  CHECK(out == std::vector<step>{{"zero is 1", 1},
                                 {"negative is 1", 1},
                                 {"too long is 1", 1},
                                 {"fraction truncates", 1},
                                 {"a 10", 10},
                                 {"c 10", 10},
                                 {"b 20", 20},
                                 {"max stays", 2147483647}});
}

TEMPLATE_TEST_CASE("a timer's due time is computed from a fresh clock when it is set", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  std::int64_t fired_at = -1;
  loop.set_timeout([&] {
    loop.backend().advance(7ms);  // the callback "takes" 7 ms
    loop.set_timeout([&] { fired_at = loop.now().count(); }, 10ms);
  }, 5ms);
  loop.run();
  CHECK(fired_at == 22);  // 5 + 7 + 10, not 5 + 10
}

TEMPLATE_TEST_CASE("a timer set during the timers phase waits for the next iteration", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  loop.backend().set_auto_advance(false);
  trace out;
  loop.set_timeout([&] {
    out.push_back("first");
    loop.set_timeout([&] { out.push_back("set in phase"); }, 1ms);
    loop.backend().advance(5ms);  // the clock passes its due time while the phase goes on
  }, 1ms);
  loop.set_timeout([&] { out.push_back("sibling"); }, 1ms);
  loop.backend().advance(1ms);
  loop.run(run_mode::nowait);
  CHECK(out == trace{"first", "sibling"});
  loop.run(run_mode::nowait);
  CHECK(out == trace{"first", "sibling", "set in phase"});
}

TEMPLATE_TEST_CASE("an interval re-arms from the time its callback started", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  std::vector<std::int64_t> at;
  typename TestType::timer_handle iv;
  iv = loop.set_interval([&] {
    at.push_back(loop.now().count());
    loop.backend().advance(3ms);  // a slow callback
    if (at.size() == 3) loop.clear_interval(iv);
  }, 10ms);
  loop.run();
  CHECK(at == std::vector<std::int64_t>{10, 20, 30});
}

TEMPLATE_TEST_CASE("re-arming a 0 ms timer from its own callback does not busy-loop", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  int fires = 0;
  int immediates = 0;
  typename TestType::timer_handle t;
  t = loop.set_timeout([&] {
    if (++fires < 100) t.refresh();
    loop.set_immediate([&] { ++immediates; });
  }, 0ms);
  loop.run();
  CHECK(fires == 100);
  CHECK(immediates == 100);  // one check phase between consecutive fires
  CHECK(loop.now() == 100ms);  // each re-arm waited its 1 ms
  CHECK(loop.metrics().iterations >= 100);
}

TEMPLATE_TEST_CASE("clearing a timer due later in the same batch stops it", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  trace out;
  typename TestType::timer_handle second;
  loop.set_timeout([&] {
    out.push_back("first");
    loop.clear_timeout(second);
    loop.clear_timeout(second);  // twice is harmless
  }, 5ms);
  second = loop.set_timeout([&] { out.push_back("second"); }, 5ms);
  loop.set_timeout([&] { out.push_back("third"); }, 5ms);
  loop.run();
  CHECK(out == trace{"first", "third"});
  CHECK_FALSE(second.active());
}

TEMPLATE_TEST_CASE("refresh() restarts the countdown and moves the timer behind its peers", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  std::vector<step> out;
  auto a = loop.set_timeout([&] { out.push_back({"a", loop.now().count()}); }, 10ms);
  loop.set_timeout([&] { out.push_back({"b", loop.now().count()}); }, 10ms);
  loop.set_timeout([&] { a.refresh(); }, 5ms);
  loop.run();
  CHECK(out == std::vector<step>{{"b", 10}, {"a", 15}});
  CHECK_FALSE(a.active());
  a.refresh();  // a fired one-shot handle is stale: no-op
  CHECK_FALSE(loop.alive());
}

TEMPLATE_TEST_CASE("an unref'd timer alone lets run() return at once", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  bool fired = false;
  auto t = loop.set_timeout([&] { fired = true; }, 1h);
  t.unref();
  CHECK_FALSE(t.has_ref());
  CHECK(t.active());
  CHECK_FALSE(loop.alive());
  CHECK_FALSE(loop.run());
  CHECK_FALSE(fired);
  CHECK(loop.now() == 0ms);
  t.ref();
  CHECK(loop.alive());
  loop.run();
  CHECK(fired);
  CHECK(loop.now() == 1h);
}

TEMPLATE_TEST_CASE("handles of cleared or fired timers are safe no-ops", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  typename TestType::timer_handle none;
  none.refresh().unref().ref();
  loop.clear_timeout(none);
  CHECK_FALSE(none.active());
  auto t = loop.set_timeout([] {}, 1ms);
  loop.clear_timeout(t);
  t.refresh();
  t.ref();
  CHECK_FALSE(loop.alive());
  auto again = loop.set_timeout([] {}, 1ms);  // reuses the slot, new generation
  CHECK(again.active());
  CHECK_FALSE(t.active());
  loop.clear_timeout(t);  // does not clear the new timer in the same slot
  CHECK(again.active());
  loop.run();
}

TEMPLATE_TEST_CASE("a cleared interval's handle stays cleared inside its own callback", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  int n = 0;
  typename TestType::timer_handle iv;
  iv = loop.set_interval([&] {
    ++n;
    loop.clear_interval(iv);
    CHECK_FALSE(iv.active());
    iv.refresh();  // cleared: refresh does nothing
  }, 1ms);
  loop.run();
  CHECK(n == 1);
}

// -------------------------------------------------------------- immediates

TEMPLATE_TEST_CASE("immediates queued during the check phase run on the next iteration", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  std::vector<std::uint64_t> iteration_of;
  loop.set_immediate([&] {
    iteration_of.push_back(loop.metrics().iterations);
    loop.set_immediate([&] { iteration_of.push_back(loop.metrics().iterations); });
  });
  loop.run();
  CHECK(iteration_of == std::vector<std::uint64_t>{1, 2});
}

TEMPLATE_TEST_CASE("a cleared immediate never runs, even from the same batch", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  trace out;
  typename TestType::immediate_handle b;
  loop.set_immediate([&] {
    out.push_back("a");
    loop.clear_immediate(b);
  });
  b = loop.set_immediate([&] { out.push_back("b"); });
  loop.set_immediate([&] { out.push_back("c"); });
  CHECK(b.pending());
  loop.run();
  CHECK(out == trace{"a", "c"});
  CHECK_FALSE(b.pending());
}

TEMPLATE_TEST_CASE("pending ref'd immediates make poll non-blocking; unref'd ones do not hold the loop", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  int chain = 0;
  std::function<void()> next = [&] {
    if (++chain < 5) loop.set_immediate(next);
  };
  loop.set_timeout([] {}, 100ms);
  loop.set_immediate(next);
  loop.run(run_mode::once);
  CHECK(chain == 1);
  CHECK(loop.now() == 0ms);  // poll did not wait for the timer
  loop.run();
  CHECK(chain == 5);

  TestType other;
  bool ran = false;
  other.set_immediate([&] { ran = true; }).unref();
  CHECK_FALSE(other.alive());
  CHECK_FALSE(other.run());
  CHECK_FALSE(ran);
  other.set_timeout([] {}, 1ms);
  other.run();
  CHECK(ran);  // runs once something else keeps the loop going
}

// ----------------------------------------------------- idle, prepare, check

TEMPLATE_TEST_CASE("idle, prepare and check handles run once per iteration and can stop from inside", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  int idles = 0, prepares = 0, checks = 0;
  auto idle = loop.make_idle();
  auto prepare = loop.make_prepare();
  auto check = loop.make_check();
  idle.start([&] {
    if (++idles == 3) idle.stop();
  });
  prepare.start([&] { ++prepares; });
  check.start([&] { ++checks; });
  prepare.unref();
  check.unref();
  CHECK(idle.active());
  loop.run();
  CHECK(idles == 3);
  CHECK(prepares == 3);
  CHECK(checks == 3);
  CHECK(loop.now() == 0ms);
  CHECK_FALSE(idle.active());
}

TEMPLATE_TEST_CASE("a handle started during its phase's walk first runs on the next iteration", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  trace out;
  auto first = loop.make_check();
  auto second = loop.make_check();
  first.start([&] {
    out.push_back("first");
    first.stop();
    second.start([&] {
      out.push_back("second");
      second.stop();
    });
  });
  loop.set_immediate([] {});
  loop.set_immediate([] {});
  loop.run(run_mode::once);
  CHECK(out == trace{"first"});
  loop.set_immediate([] {});  // an active check handle alone would block poll forever, as in libuv
  loop.run();
  CHECK(out == trace{"first", "second"});
}

TEMPLATE_TEST_CASE("start() with a new callback from inside the running one is safe", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  trace out;
  auto idle = loop.make_idle();
  std::string big(100, 'x');  // a capture too big for the inline buffer
  idle.start([&, big] {
    out.push_back("old " + std::to_string(big.size()));
    idle.start([&] {
      out.push_back("new");
      idle.stop();
    });
  });
  loop.run();
  CHECK(out == trace{"old 100", "new"});
}

TEMPLATE_TEST_CASE("closing handles: callbacks in the close phase, RAII, and handles outliving the loop", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  trace out;
  auto loop = std::make_unique<TestType>();
  {
    auto scoped = loop->make_idle();
    scoped.start([] {});
    CHECK(loop->alive());
  }  // the destructor closes it
  CHECK(loop->alive());  // closing handles keep the loop alive until the close phase
  auto idle = loop->make_idle();
  idle.start([&] {
    out.push_back("idle");
    idle.close([&] { out.push_back("closed"); });
    idle.close([&] { out.push_back("closed twice"); });
  });
  auto moved = loop->make_check();
  auto target = std::move(moved);
  CHECK_FALSE(moved);
  CHECK(target);
  target.start([] {});
  target.unref();
  loop->run();
  CHECK(out == trace{"idle", "closed"});
  CHECK_FALSE(idle);
  auto survivor = loop->make_prepare();
  survivor.start([] {});
  loop.reset();
  CHECK_FALSE(survivor);  // the loop is gone: every call is a no-op
  survivor.stop();
  survivor.close();
}

// -------------------------------------------------------------- exceptions

TEMPLATE_TEST_CASE("an exception without a handler leaves run() and the loop stays usable", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  trace out;
  loop.set_immediate([&] {
    out.push_back("one");
    throw std::runtime_error("boom");
  });
  loop.set_immediate([&] { out.push_back("two"); });
  loop.set_timeout([&] { out.push_back("timer"); }, 5ms);
  loop.next_tick([&] { out.push_back("tick"); });
  CHECK_THROWS_WITH(loop.run(), "boom");
  CHECK(out == trace{"tick", "one"});
  CHECK(loop.alive());
  loop.run();
  CHECK(out == trace{"tick", "one", "two", "timer"});
}

TEMPLATE_TEST_CASE("exceptions from every kind of callback reach on_uncaught_exception", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  std::vector<std::string> caught;
  loop.on_uncaught_exception([&](std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      caught.emplace_back(ex.what());
    }
  });
  auto idle = loop.make_idle();
  idle.start([&] {
    idle.stop();
    throw std::runtime_error("idle");
  });
  auto iv = loop.set_interval([] { throw std::runtime_error("interval"); }, 1ms);
  loop.set_timeout([&] { loop.clear_interval(iv); }, 2ms);
  loop.set_immediate([] { throw std::runtime_error("immediate"); });
  loop.next_tick([] { throw std::runtime_error("tick"); });
  loop.queue_microtask([] { throw std::runtime_error("microtask"); });
  loop.post([] { throw std::runtime_error("posted"); });
  loop.queue_work([] { throw std::runtime_error("work"); }, [](std::error_code) {});
  loop.queue_work([] {}, [](std::error_code) { throw std::runtime_error("after work"); });
  loop.run();
  CHECK(caught == std::vector<std::string>{"tick", "microtask", "idle", "work", "after work", "posted",
                                           "immediate", "interval"});
}

TEMPLATE_TEST_CASE("a throwing interval is re-armed and a throwing one-shot is released", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  int n = 0;
  auto iv = loop.set_interval([&] {
    ++n;
    throw std::logic_error("again");
  }, 10ms);
  auto once = loop.set_timeout([] { throw std::logic_error("once"); }, 15ms);
  CHECK_THROWS(loop.run());
  CHECK(iv.active());
  CHECK_THROWS(loop.run());
  CHECK_FALSE(once.active());
  CHECK_THROWS(loop.run());
  CHECK(n == 2);
  loop.clear_interval(iv);
  CHECK_FALSE(loop.alive());
}

// -------------------------------------------------------- poll and post

TEMPLATE_TEST_CASE("poll handles on the mock backend: injected readiness, stop, errors", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  auto p = loop.make_poll(3);
  std::vector<io_events> seen;
  REQUIRE_FALSE(p.start(io_events::readable | io_events::writable, [&](std::error_code ec, io_events events) {
    CHECK_FALSE(ec);
    seen.push_back(events);
    if (seen.size() == 2) p.stop();
  }));
  CHECK(loop.backend().watching(3));
  loop.backend().inject(3, io_events::writable);
  loop.run(run_mode::nowait);
  loop.backend().inject(3, io_events::readable | io_events::hangup);
  loop.run(run_mode::nowait);
  CHECK(seen == std::vector<io_events>{io_events::writable, io_events::readable | io_events::hangup});
  CHECK_FALSE(loop.backend().watching(3));
  loop.backend().inject(3, io_events::readable);
  loop.run(run_mode::nowait);
  CHECK(seen.size() == 2);

  operation unknown;
  unknown.kind = static_cast<op_kind>(99);
  unknown.fd = 4;
  CHECK(loop.backend().submit(unknown) == std::errc::operation_not_supported);

  auto bad = loop.make_poll(-1);
  CHECK(bad.start(io_events::readable, [](std::error_code, io_events) {}) == std::errc::bad_file_descriptor);
  auto twice = loop.make_poll(3);
  CHECK(p.start(io_events::readable, [](std::error_code, io_events) {}) == std::error_code{});
  CHECK(twice.start(io_events::readable, [](std::error_code, io_events) {}) == std::errc::device_or_resource_busy);
  CHECK(p.start(io_events::none, [](std::error_code, io_events) {}) == std::errc::invalid_argument);
  p.close();
  CHECK(p.start(io_events::readable, [](std::error_code, io_events) {}) == std::errc::bad_file_descriptor);
  loop.run();
  CHECK_FALSE(loop.alive());
}

// A completion backend (io_uring, IOCP) cannot drop an operation at once:
// cancel() returns false and the operation completes later with
// operation_canceled. The mock's async cancel stands in for one.

TEMPLATE_TEST_CASE("completion-style cancel: a poll handle closes only once the backend gives its operation back",
                   "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  loop.backend().set_async_cancel(true);
  trace out;
  auto p = loop.make_poll(3);
  REQUIRE_FALSE(p.start(io_events::readable, [&](std::error_code ec, io_events events) {
    CHECK_FALSE(ec);
    CHECK(events == io_events::readable);
    out.push_back("readable");
    p.close([&] { out.push_back("closed"); });  // the cancellation completes at the next poll
  }));
  auto check = loop.make_check();
  check.start([&] { out.push_back("check"); });
  check.unref();
  loop.backend().inject(3, io_events::readable);
  CHECK(loop.run(run_mode::nowait));  // the closing handle still waits for its operation
  CHECK(out == trace{"readable", "check"});
  loop.run(run_mode::nowait);
  CHECK(out == trace{"readable", "check", "check", "closed"});
  CHECK_FALSE(loop.alive());
  CHECK_FALSE(loop.backend().watching(3));
}

TEMPLATE_TEST_CASE("completion-style cancel: start after stop waits for the cancellation, then watches again",
                   "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  loop.backend().set_async_cancel(true);
  std::vector<io_events> seen;
  auto p = loop.make_poll(5);
  auto record = [&](std::error_code ec, io_events events) {
    CHECK_FALSE(ec);
    seen.push_back(events);
  };
  REQUIRE_FALSE(p.start(io_events::readable, record));
  p.stop();
  REQUIRE_FALSE(p.start(io_events::writable, record));  // the backend still owns the cancelled operation
  REQUIRE_FALSE(p.start(io_events::readable | io_events::writable, record));  // a second start while waiting: new events, one submit
  CHECK_FALSE(loop.backend().watching(5));
  CHECK(loop.alive());
  loop.run(run_mode::nowait);  // the cancellation completes; the watch is submitted again
  CHECK(loop.backend().watching(5));
  loop.backend().inject(5, io_events::writable);
  loop.run(run_mode::nowait);
  loop.backend().inject(5, io_events::readable);
  loop.run(run_mode::nowait);
  CHECK(seen == std::vector<io_events>{io_events::writable, io_events::readable});
  // The late cancellation did not end the new watch: closing now cancels it once more.
  bool closed = false;
  p.close([&] { closed = true; });
  loop.run();
  CHECK(closed);
  CHECK_FALSE(loop.backend().watching(5));
}

TEMPLATE_TEST_CASE("completion-style cancel: stop, start and close before the cancellation completes",
                   "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  loop.backend().set_async_cancel(true);
  int calls = 0;
  bool closed = false;
  {
    auto p = loop.make_poll(6);
    REQUIRE_FALSE(p.start(io_events::readable, [&](std::error_code, io_events) { ++calls; }));
    p.stop();
    REQUIRE_FALSE(p.start(io_events::readable, [&](std::error_code, io_events) { ++calls; }));
    p.stop();  // the pending restart is dropped; the cancellation is still on its way
    REQUIRE_FALSE(p.start(io_events::readable, [&](std::error_code, io_events) { ++calls; }));
    p.close([&] { closed = true; });
  }
  loop.backend().inject(6, io_events::readable);
  loop.run();
  CHECK(closed);
  CHECK(calls == 0);
  CHECK_FALSE(loop.backend().watching(6));
}

TEMPLATE_TEST_CASE("post() runs callbacks on the loop thread in the poll phase", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  trace out;
  loop.post([&] { out.push_back("posted"); });
  loop.set_immediate([&] { out.push_back("immediate"); });
  loop.set_timeout([&] { out.push_back("timer"); }, 1ms);
  loop.backend().advance(1ms);
  auto keep = loop.make_keep_alive();
  loop.set_timeout([&] { keep.reset(); }, 5ms);
  loop.run();
  CHECK(out == trace{"timer", "posted", "immediate"});
}

// On every loop: the mock backend wakes through a condition variable, epoll through its eventfd.
TEMPLATE_TEST_CASE("post() from 4 threads x 100k delivers every callback exactly once", "[core][threads]",
                   PHASELOOP_TEST_ALL_LOOPS) {
  TestType loop;
  constexpr int threads = 4;
  constexpr int per_thread = 100000;
  std::vector<int> seen(threads * per_thread, 0);
  std::size_t delivered = 0;
  auto keep = loop.make_keep_alive();
  std::vector<std::thread> producers;
  for (int t = 0; t < threads; ++t)
    producers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i)
        loop.post([&, slot = t * per_thread + i] {
          ++seen[static_cast<std::size_t>(slot)];
          if (++delivered == seen.size()) keep.reset();
        });
    });
  loop.run();
  for (auto& p : producers) p.join();
  CHECK(delivered == seen.size());
  CHECK(std::count(seen.begin(), seen.end(), 1) == static_cast<long>(seen.size()));
  CHECK(loop.metrics().events == seen.size());
}

TEMPLATE_TEST_CASE("a keep_alive token holds the loop until released from another thread", "[core][threads]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  auto keep = loop.make_keep_alive();
  std::atomic<bool> posted{false};
  std::thread other([&, token = std::move(keep)]() mutable {
    loop.post([&] { posted = true; });
    token.reset();
  });
  loop.run();  // blocks on the mock's wakeup until the token is gone
  other.join();
  CHECK(posted);
  CHECK_FALSE(loop.alive());
}

// -------------------------------------------------------------------- work

TEMPLATE_TEST_CASE("inline_executor work completes in the poll phase, never synchronously", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  trace out;
  loop.set_timeout([&] {
    loop.queue_work([&] { out.push_back("work"); }, [&](std::error_code ec) {
      CHECK_FALSE(ec);
      out.push_back("after");
    });
    out.push_back("queued");
    loop.set_immediate([&] { out.push_back("immediate"); });
  }, 1ms);
  loop.run();
  CHECK(out == trace{"work", "queued", "after", "immediate"});
  auto w = loop.queue_work([] {}, [](std::error_code) {});
  CHECK(loop.cancel(w) == std::errc::device_or_resource_busy);
  loop.run();
  CHECK(loop.cancel(w) == std::errc::invalid_argument);
}

// ----------------------------------------------------------------- metrics

TEMPLATE_TEST_CASE("metrics count iterations, events and virtual time blocked in poll", "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  loop.set_timeout([] {}, 30ms);
  loop.post([] {});
  loop.run();
  const loop_metrics m = loop.metrics();
  // Two iterations (Node 20): the post runs in the first, whose timers are
  // not due; the second blocks 30 ms and ends with the timer.
  CHECK(boost::pfr::eq(m, loop_metrics{2, 1, 30ms}));
}

// ------------------------------------------------------- records and captures

TEMPLATE_TEST_CASE("handles from before the loop's timers all finished stay stale when their slots are reused",
                   "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  // Once no timer is live the loop hands out timer slots from the start
  // again, so new timers take the old ones' slots: the generation keeps the
  // old handles from reaching the new timers.
  TestType loop;
  using handle = typename TestType::timer_handle;
  std::vector<handle> old_handles;
  int old_fired = 0, new_fired = 0;
  for (int i = 0; i < 600; ++i) old_handles.push_back(loop.set_timeout([&] { ++old_fired; }, milliseconds(1 + i % 7)));
  loop.run();
  REQUIRE(old_fired == 600);
  std::vector<handle> new_handles;
  for (int i = 0; i < 600; ++i) new_handles.push_back(loop.set_interval([&] { ++new_fired; }, 10ms));
  for (const handle& h : old_handles) {
    CHECK_FALSE(h.active());
    loop.clear_timeout(h);  // must not clear the new timer in the same slot
  }
  for (handle& h : old_handles) h.refresh().unref();
  for (const handle& h : new_handles) {
    CHECK(h.active());
    CHECK(h.has_ref());
  }
  CHECK(std::none_of(new_handles.begin(), new_handles.end(),
                     [&](const handle& h) { return std::find(old_handles.begin(), old_handles.end(), h) != old_handles.end(); }));
  loop.set_timeout([&] { for (const handle& h : new_handles) loop.clear_interval(h); }, 25ms);
  loop.run();
  CHECK(new_fired == 2 * 600);
}

TEMPLATE_TEST_CASE("callback captures are destroyed exactly once: inline, trivially copyable or allocated",
                   "[core]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  auto token = std::make_shared<int>(0);
  struct big {
    std::shared_ptr<int> token;
    char padding[64] = {};
  };
  int ran = 0;
  int* counter = &ran;
  for (int i = 0; i < 100; ++i) {
    loop.set_timeout([token] { ++*token; }, 1ms);                      // inline, not trivially copyable
    loop.set_timeout([counter, i] { *counter += i >= 0 ? 1 : 0; }, 2ms);  // inline, trivially copyable
    loop.set_timeout([b = big{token}] { ++*b.token; }, 3ms);           // allocated
    auto cleared = loop.set_timeout([token] { ++*token; }, 4ms);       // cleared before it runs
    loop.clear_timeout(cleared);
    loop.post([token] { ++*token; });                                   // moved as the posted queue grows
    loop.set_immediate([b = big{token}] { ++*b.token; });
  }
  CHECK(token.use_count() == 1 + 100 * 4);
  loop.run();
  CHECK(ran == 100);
  CHECK(*token == 100 * 4);
  CHECK(token.use_count() == 1);
}

TEMPLATE_TEST_CASE("a timer callback may take its own handle: an interval clears itself, a timeout refreshes itself",
                   "[core][timers]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  std::vector<long long> fired;
  int ticks = 0;
  loop.set_interval([&](auto& self) {
    fired.push_back(loop.now().count());
    if (++ticks == 3) loop.clear_interval(self);
  }, milliseconds(10));
  bool refreshed = false;
  const auto timeout = loop.set_timeout([&](auto& self) {
    fired.push_back(1000 + loop.now().count());
    if (!refreshed) {
      refreshed = true;
      self.refresh();  // fires once more, 25 ms from now
    }
  }, milliseconds(25));
  loop.run();
  CHECK(fired == std::vector<long long>{10, 20, 1025, 30, 1050});
  CHECK(ticks == 3);
  CHECK_FALSE(timeout.active());
}
