// C++ translations of the conformance scenarios that need only timers,
// immediates, ticks and microtasks. Each prints (into a trace) what the Node
// program prints; the trace must equal the .expected lines Node v20 printed,
// on the mock backend and on every real backend.
//
// `Promise.resolve().then(f)` is one microtask job, so scenarios that use it
// only that way are written here with queue_microtask; the promise scenarios
// (01, 02, 19) live in promise_conformance_test.cpp.
// phaseloop: portable (mock backend and inline executor only; built for Windows too)

#include "conformance.hpp"

#include <functional>
#include <map>
#include <string>
#include <system_error>
#include <vector>

namespace {

using namespace phaseloop::test;
using std::chrono::milliseconds;

// 03: since Node 11 the microtask queue drains after each timer callback.
template <class Loop>
trace scenario_03(Loop& loop) {
  trace out;
  loop.set_timeout([&] {
    out.push_back("timer1");
    loop.queue_microtask([&] { out.push_back("promise1"); });
  }, 0ms);
  loop.set_timeout([&] {
    out.push_back("timer2");
    loop.queue_microtask([&] { out.push_back("promise2"); });
  }, 0ms);
  loop.run();
  return out;
}

// 05: an event emitted from a constructor through nextTick reaches a listener
// attached after the constructor returns.
template <class Loop>
trace scenario_05(Loop& loop) {
  trace out;
  struct emitter {
    std::map<std::string, std::vector<std::function<void()>>> listeners;
    explicit emitter(Loop& l) {
      l.next_tick([this] { emit("event"); });
    }
    void on(const std::string& name, std::function<void()> f) { listeners[name].push_back(std::move(f)); }
    void emit(const std::string& name) {
      for (auto& f : listeners[name]) f();
    }
  };
  emitter e(loop);
  e.on("event", [&] { out.push_back("an event occurred!"); });
  out.push_back("constructed");
  loop.run();
  return out;
}

// 06: an API that always calls back asynchronously, errors included.
template <class Loop>
trace scenario_06(Loop& loop) {
  trace out;
  auto api_call = [&](const std::string* arg, std::function<void(std::string, std::size_t)> cb) {
    if (arg == nullptr) {
      loop.next_tick([cb] { cb("argument should be string", 0); });
      return;
    }
    const std::size_t n = arg->size();
    loop.next_tick([cb, n] { cb("", n); });
  };
  loop.set_timeout([&] { out.push_back("timer"); }, 0ms);
  api_call(nullptr, [&](std::string err, std::size_t) { out.push_back("callback " + err); });
  const std::string abc = "abc";
  api_call(&abc, [&](std::string, std::size_t n) { out.push_back("callback ok " + std::to_string(n)); });
  out.push_back("after apiCall");
  loop.run();
  return out;
}

// 07: nextTick callbacks run before promise reactions, even when queued later.
template <class Loop>
trace scenario_07(Loop& loop) {
  trace out;
  loop.queue_microtask([&] { out.push_back("promise"); });
  loop.next_tick([&] { out.push_back("tick"); });
  loop.queue_microtask([&] { out.push_back("microtask"); });
  out.push_back("sync");
  loop.run();
  return out;
}

// 08: a nextTick queued from a reaction waits until the microtask queue is
// empty; a reaction queued from a nextTick runs after all pending ticks.
template <class Loop>
trace scenario_08(Loop& loop) {
  trace out;
  loop.queue_microtask([&] {
    out.push_back("p1");
    loop.next_tick([&] { out.push_back("tick from p1"); });
    loop.queue_microtask([&] { out.push_back("p from p1"); });
  });
  loop.queue_microtask([&] { out.push_back("p2"); });
  loop.next_tick([&] {
    out.push_back("t1");
    loop.queue_microtask([&] { out.push_back("p from t1"); });
    loop.next_tick([&] { out.push_back("t from t1"); });
  });
  loop.next_tick([&] { out.push_back("t2"); });
  loop.run();
  return out;
}

// 09: setImmediate from the check phase runs on the next iteration.
template <class Loop>
trace scenario_09(Loop& loop) {
  trace out;
  loop.set_immediate([&] {
    out.push_back("immediate A");
    loop.set_immediate([&] { out.push_back("immediate C (next iteration)"); });
    loop.next_tick([&] { out.push_back("tick from A"); });
  });
  loop.set_immediate([&] { out.push_back("immediate B"); });
  loop.run();
  return out;
}

// 10: microtasks and ticks drain after every immediate.
template <class Loop>
trace scenario_10(Loop& loop) {
  trace out;
  loop.set_immediate([&] {
    out.push_back("i1");
    loop.queue_microtask([&] { out.push_back("p1"); });
    loop.next_tick([&] { out.push_back("t1"); });
  });
  loop.set_immediate([&] { out.push_back("i2"); });
  loop.run();
  return out;
}

// 11: timers fire by due time; equal due times in the order they were set.
template <class Loop>
trace scenario_11(Loop& loop) {
  trace out;
  loop.set_timeout([&] { out.push_back("b 20ms"); }, 20ms);
  loop.set_timeout([&] { out.push_back("a 10ms"); }, 10ms);
  loop.set_timeout([&] { out.push_back("c 10ms"); }, 10ms);
  loop.set_timeout([&] { out.push_back("d 0ms"); }, 0ms);
  loop.set_timeout([&] { out.push_back("e 1ms"); }, 1ms);
  loop.run();
  return out;
}

// 12: setInterval repeats until cleared from its own callback.
template <class Loop>
trace scenario_12(Loop& loop) {
  trace out;
  int n = 0;
  typename Loop::timer_handle h;
  h = loop.set_interval([&] {
    n += 1;
    out.push_back("tick " + std::to_string(n));
    if (n == 3) {
      loop.clear_interval(h);
      out.push_back("cleared");
    }
  }, 5ms);
  loop.set_timeout([&] { out.push_back("after 40ms"); }, 40ms);
  loop.run();
  return out;
}

// 13: a timer cleared by an earlier callback of the same batch does not run.
template <class Loop>
trace scenario_13(Loop& loop) {
  trace out;
  typename Loop::timer_handle t2;
  loop.set_timeout([&] {
    out.push_back("t1 clears t2");
    loop.clear_timeout(t2);
  }, 5ms);
  t2 = loop.set_timeout([&] { out.push_back("t2 must not run"); }, 5ms);
  loop.set_timeout([&] { out.push_back("t3"); }, 5ms);
  loop.run();
  return out;
}

// 14: an unref'd interval does not keep the loop alive but fires while
// something else does; "exit" is printed when run() returns.
template <class Loop>
trace scenario_14(Loop& loop) {
  trace out;
  auto iv = loop.set_interval([&] { out.push_back("unref interval"); }, 20ms);
  iv.unref();
  loop.set_timeout([&] { out.push_back("ref timeout 70ms, loop ends after this"); }, 70ms);
  loop.run();
  out.push_back("exit");
  return out;
}

// 18: setTimeout(0) and negative delays are setTimeout(1).
template <class Loop>
trace scenario_18(Loop& loop) {
  trace out;
  loop.set_timeout([&] { out.push_back("1ms first"); }, 1ms);
  loop.set_timeout([&] { out.push_back("0ms second"); }, 0ms);
  loop.set_timeout([&] { out.push_back("-5ms third"); }, milliseconds(-5));
  loop.run();
  return out;
}

// 20: recursive nextTick runs to completion before the timers phase.
template <class Loop>
trace scenario_20(Loop& loop) {
  trace out;
  int n = 0;
  std::function<void()> again = [&] {
    n += 1;
    if (n < 1000)
      loop.next_tick([&] { again(); });
    else
      out.push_back("ticks done " + std::to_string(n));
  };
  loop.set_timeout([&] { out.push_back("timeout"); }, 0ms);
  loop.next_tick([&] { again(); });
  out.push_back("sync");
  loop.run();
  return out;
}

}  // namespace

TEMPLATE_TEST_CASE("conformance: timers, immediates, ticks and microtasks print what Node prints",
                   "[conformance]", PHASELOOP_TEST_ALL_LOOPS) {
  check_scenario<TestType>("03_seed_microtasks_between_timers", scenario_03<TestType>);
  check_scenario<TestType>("05_seed_nexttick_after_constructor", scenario_05<TestType>);
  check_scenario<TestType>("06_seed_async_api_error", scenario_06<TestType>);
  check_scenario<TestType>("07_nexttick_before_promise", scenario_07<TestType>);
  check_scenario<TestType>("08_tick_inside_promise", scenario_08<TestType>);
  check_scenario<TestType>("09_immediates_queued_in_check_run_next_iteration", scenario_09<TestType>);
  check_scenario<TestType>("10_microtasks_between_immediates", scenario_10<TestType>);
  check_scenario<TestType>("11_timer_order_by_expiry", scenario_11<TestType>);
  check_scenario<TestType>("12_interval_cleared_inside", scenario_12<TestType>);
  check_scenario<TestType>("13_clear_due_timer_from_sibling", scenario_13<TestType>);
  check_scenario<TestType>("14_unref_does_not_hold_loop", scenario_14<TestType>);
  check_scenario<TestType>("18_timeout_zero_is_one", scenario_18<TestType>);
  check_scenario<TestType>("20_nested_ticks_all_run_before_timers", scenario_20<TestType>);
}
