// Cancellation signals (Node's AbortController / AbortSignal) and the promise
// forms that take one: the loser of a race stops keeping the loop alive.
// phaseloop: portable (mock backend and inline executor only; built for Windows too)
#include "support.hpp"

#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using phaseloop::abort_controller;
using phaseloop::abort_signal;
using phaseloop::test::rejection_name;

}  // namespace

TEMPLATE_TEST_CASE("abort: the loser of a race is aborted and run() ends with the winner", "[abort]",
                   PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  abort_controller give_up;
  std::string winner;
  auto work = loop.delay(10ms, std::string("result"));
  auto timeout = phaseloop::delay(loop, 2s, give_up.signal()).then([] { return std::string("timeout"); });
  phaseloop::race(loop, {work, timeout}).then([&](std::string v) {
    winner = v;
    give_up.abort();
  });
  std::string loser;
  timeout.catch_([&](std::exception_ptr e) {
    loser = rejection_name(e);
    return std::string();
  });
  loop.run();
  CHECK(winner == "result");
  CHECK(loser == "ABORT_ERR");
  CHECK(loop.now() == 10ms);  // not 2 s: the cleared timer no longer keeps the loop alive
}

TEMPLATE_TEST_CASE("abort: an already aborted signal rejects at once; reasons", "[abort]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  abort_controller c;
  CHECK_FALSE(c.signal().aborted());
  CHECK_FALSE(c.signal().reason());
  c.abort();
  CHECK(c.signal().aborted());
  CHECK(c.signal().reason() == phaseloop::errc::aborted);
  CHECK(c.signal().reason() == std::errc::operation_canceled);  // compares equal to ECANCELED
  CHECK_THROWS_AS(c.signal().throw_if_aborted(), std::system_error);
  c.abort(std::make_error_code(std::errc::timed_out));  // a second abort changes nothing
  CHECK(c.signal().reason() == phaseloop::errc::aborted);

  std::vector<std::string> seen;
  bool ran = false;
  phaseloop::delay(loop, 1s, c.signal()).then([&] { ran = true; }, [&](std::exception_ptr e) {
    seen.push_back("delay " + rejection_name(e));
  });
  phaseloop::immediate(loop, c.signal()).then([&] { ran = true; }, [&](std::exception_ptr e) {
    seen.push_back("immediate " + rejection_name(e));
  });
  abort_controller custom;
  custom.abort(std::make_error_code(std::errc::connection_reset));
  phaseloop::delay(loop, 1s, 5, custom.signal()).then([&](int) { ran = true; }, [&](std::exception_ptr e) {
    seen.push_back("value " + rejection_name(e));
  });
  loop.run();
  CHECK_FALSE(ran);
  CHECK(seen == std::vector<std::string>{"delay ABORT_ERR", "immediate ABORT_ERR", "value ECONNRESET"});
  CHECK(loop.now() == 0ms);
}

TEMPLATE_TEST_CASE("abort: a signal that never aborts changes nothing", "[abort]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  abort_signal never;
  CHECK_FALSE(never.can_abort());
  std::vector<std::string> order;
  phaseloop::delay(loop, 20ms, never).then([&] { order.push_back("delay@" + std::to_string(loop.now().count())); });
  phaseloop::delay(loop, 10ms, 3, never).then([&](int v) { order.push_back("value" + std::to_string(v)); });
  phaseloop::immediate(loop, never).then([&] { order.push_back("immediate"); });
  loop.run();
  CHECK(order == std::vector<std::string>{"immediate", "value3", "delay@20"});
}

TEMPLATE_TEST_CASE("abort: an immediate aborted before the check phase never runs", "[abort]",
                   PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  abort_controller c;
  std::string result;
  phaseloop::immediate(loop, c.signal()).then([&] { result = "ran"; },
                                              [&](std::exception_ptr e) { result = rejection_name(e); });
  loop.next_tick([&] { c.abort(); });
  loop.run();
  CHECK(result == "ABORT_ERR");
}

TEMPLATE_TEST_CASE("abort: timeout() aborts with timed_out and its timer keeps nothing alive", "[abort]",
                   PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  {
    auto lonely = abort_signal::timeout(loop, 1h);
    loop.run();  // only the unref'd timeout timer: ends at once
    CHECK(loop.now() == 0ms);
    CHECK_FALSE(lonely.aborted());
  }
  auto signal = abort_signal::timeout(loop, 50ms);
  std::string result;
  std::chrono::milliseconds at{};
  phaseloop::delay(loop, 1s, signal).then([&] { result = "fired"; }, [&](std::exception_ptr e) {
    result = rejection_name(e);
    at = loop.now();
  });
  loop.run();
  CHECK(result == "ETIMEDOUT");
  CHECK(at == 50ms);
  CHECK(signal.aborted());
  CHECK(signal.reason() == std::errc::timed_out);
}

TEMPLATE_TEST_CASE("abort: any() follows the first input to abort", "[abort]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  abort_controller user;
  auto either = abort_signal::any({user.signal(), abort_signal::timeout(loop, 30ms)});
  std::string result;
  phaseloop::delay(loop, 1s, either).then([&] { result = "fired"; },
                                          [&](std::exception_ptr e) { result = rejection_name(e); });
  loop.set_timeout([&] { user.abort(); }, 10ms);
  loop.run();
  CHECK(result == "ABORT_ERR");
  CHECK(loop.now() == 10ms);

  abort_controller a, b;
  b.abort(std::make_error_code(std::errc::broken_pipe));
  CHECK(abort_signal::any({a.signal(), b.signal()}).reason() == std::errc::broken_pipe);
  // An any() signal dropped before its inputs abort leaves nothing behind.
  { auto dropped = abort_signal::any({a.signal()}); }
  a.abort();
}

TEST_CASE("abort: listeners run once, in order; removing and dropping from inside is safe", "[abort]") {
  std::vector<std::string> order;
  auto c = std::make_unique<abort_controller>();
  abort_signal s = c->signal();
  abort_signal::subscription second;
  auto first = s.on_abort([&] {
    order.push_back("first");
    second.reset();  // removed before it runs
  });
  second = s.on_abort([&] { order.push_back("second"); });
  abort_signal::subscription third;
  third = s.on_abort([&] {
    order.push_back("third");
    third.reset();  // removing itself while running
  });
  auto fourth = s.on_abort([&] {
    order.push_back("fourth");
    s = abort_signal();  // drops a reference to the state being dispatched
    c.reset();           // and the controller's
  });
  auto fifth = s.on_abort([&] { order.push_back("fifth"); });
  auto removed = s.on_abort([&] { order.push_back("removed"); });
  removed.reset();
  CHECK(first.active());
  CHECK_FALSE(removed.active());
  c->abort();
  CHECK(order == std::vector<std::string>{"first", "third", "fourth", "fifth"});
  CHECK_FALSE(first.active());
  CHECK_FALSE(fifth.active());

  abort_controller late;
  late.abort();
  bool ran = false;
  auto after = late.signal().on_abort([&] { ran = true; });
  CHECK_FALSE(ran);  // on an aborted signal a listener never runs (check aborted() first)
  CHECK_FALSE(after.active());
}

TEMPLATE_TEST_CASE("abort: abortable() races any promise; a later settlement is ignored", "[abort]",
                   PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  abort_controller c;
  auto [p, r] = loop.template make_promise<int>();
  bool stopped = false;
  std::string result;
  phaseloop::abortable(p, c.signal(), [&] { stopped = true; })
      .then([&](int v) { result = std::to_string(v); }, [&](std::exception_ptr e) { result = rejection_name(e); });
  loop.set_timeout([&] { c.abort(); }, 5ms);
  loop.set_timeout([r = r] { r.resolve(7); }, 10ms);
  loop.run();
  CHECK(stopped);
  CHECK(result == "ABORT_ERR");

  abort_controller unused;
  auto [q, qr] = loop.template make_promise<int>();
  phaseloop::abortable(q, unused.signal()).then([&](int v) { result = std::to_string(v); });
  qr.resolve(9);
  loop.run();
  CHECK(result == "9");
  unused.abort();  // after settlement: nothing happens
  loop.run();
  CHECK(result == "9");
}

TEMPLATE_TEST_CASE("abort: work() resolves with the result; an abort rejects and cancels queued work", "[abort]",
                   PHASELOOP_TEST_EXECUTOR_LOOPS) {
  TestType loop;
  int result = 0;
  phaseloop::work(loop, [] { return 6 * 7; }).then([&](int v) { result = v; });
  std::string thrown;
  phaseloop::work(loop, []() -> int { throw std::runtime_error("boom"); })
      .then([](int) {}, [&](std::exception_ptr e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::runtime_error& err) {
          thrown = err.what();
        }
      });
  loop.run();
  CHECK(result == 42);
  CHECK(thrown == "boom");

  abort_controller c;
  c.abort();
  std::string aborted;
  bool ran = false;
  phaseloop::work(loop, [&] { ran = true; }, c.signal()).then([] {}, [&](std::exception_ptr e) {
    aborted = rejection_name(e);
  });
  loop.run();
  CHECK(aborted == "ABORT_ERR");
  CHECK_FALSE(ran);  // never queued

  abort_controller later;
  std::string outcome;
  phaseloop::work(loop, [] { return 1; }, later.signal())
      .then([&](int) { outcome = "done"; }, [&](std::exception_ptr e) { outcome = rejection_name(e); });
  later.abort();  // before the loop runs: the queued work is cancelled or finishes unobserved
  loop.run();
  CHECK(outcome == "ABORT_ERR");
  CHECK_FALSE(loop.alive());
}

TEST_CASE("abort: through an any_loop that is gone before the abort", "[abort]") {
  phaseloop::test_loop typed;
  abort_controller c;
  std::string result;
  auto start = [&](phaseloop::any_loop loop) { return loop.delay(1s, c.signal()); };  // `loop` dies on return
  start(typed).then([&] { result = "fired"; }, [&](std::exception_ptr e) { result = rejection_name(e); });
  auto immediate = [&](phaseloop::any_loop loop) { return loop.immediate(c.signal()); };
  std::string second;
  immediate(typed).then([&] { second = "ran"; }, [&](std::exception_ptr e) { second = rejection_name(e); });
  c.abort();
  typed.run();
  CHECK(result == "ABORT_ERR");
  CHECK(second == "ABORT_ERR");
  CHECK(typed.now() == 0ms);
}

TEMPLATE_TEST_CASE("abort: the loop's own delay and immediate take a signal", "[abort]", PHASELOOP_TEST_MOCK_LOOPS) {
  TestType loop;
  abort_controller c;
  abort_signal signal = c.signal();  // a non-const lvalue: must not be taken as delay's value
  std::vector<std::string> seen;
  loop.delay(1s, signal).then([&] { seen.push_back("delay fired"); },
                              [&](std::exception_ptr e) { seen.push_back("delay " + rejection_name(e)); });
  loop.immediate(signal).then([&] { seen.push_back("immediate ran"); },
                              [&](std::exception_ptr e) { seen.push_back("immediate " + rejection_name(e)); });
  loop.delay(1ms, 4).then([&](int v) { seen.push_back("value " + std::to_string(v)); });
  loop.next_tick([&] { c.abort(); });
  loop.run();
  CHECK(seen == std::vector<std::string>{"delay ABORT_ERR", "immediate ABORT_ERR", "value 4"});
  CHECK(loop.now() == 1ms);
}
