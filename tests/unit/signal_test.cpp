// Signal handles on the real POSIX loops: poll-phase delivery after the
// raising callback's ticks and microtasks, several handles and several
// loops on several threads, one-shot, unref, closing while a signal is in
// flight, and the disposition restored when the last handle goes.
// (Not SIGALRM: tests/main.cpp's watchdog uses it.)

#include "support.hpp"
#include "posix.hpp"

// POSIX modules, tested on Linux's real loops for now.
#if defined(__linux__)

#include <atomic>
#include <string>
#include <system_error>
#include <thread>

#include <signal.h>
#include <unistd.h>

namespace {

using namespace phaseloop;
using namespace phaseloop::test;

bool disposition_is(int signo, void (*want)(int)) {
  struct sigaction sa {};
  ::sigaction(signo, nullptr, &sa);
  return sa.sa_handler == want;
}

}  // namespace

TEMPLATE_TEST_CASE("signal: delivered in the poll phase after the raising callback's ticks and microtasks",
                   "[signal]", PHASELOOP_TEST_REAL_IO_LOOPS) {
  TestType loop;
  trace out;
  signal_handle h(loop);
  REQUIRE_FALSE(h.start(SIGUSR1, [&](int signo) {
    out.push_back("signal " + std::to_string(signo));
    loop.set_immediate([&] { out.push_back("immediate"); });
    loop.set_timeout([&] { out.push_back("timeout"); }, 0ms);
    h.close();
  }));
  CHECK(h.signum() == SIGUSR1);
  CHECK(h.active());
  loop.set_timeout([&] {
    raise_self(SIGUSR1);
    loop.next_tick([&] { out.push_back("tick"); });
    loop.queue_microtask([&] { out.push_back("microtask"); });
    out.push_back("after kill");
  }, 1ms);
  loop.run();
  // The immediate (check phase) precedes the timer: the signal ran in the poll phase.
  CHECK(out == trace{"after kill", "tick", "microtask", "signal " + std::to_string(SIGUSR1), "immediate", "timeout"});
}

TEMPLATE_TEST_CASE("signal: every handle watching a signal gets it; one-shot once; bad signals are errors",
                   "[signal]", PHASELOOP_TEST_REAL_IO_LOOPS) {
  TestType loop;
  int a = 0, b = 0, once = 0;
  signal_handle ha(loop), hb(loop), ho(loop);
  REQUIRE_FALSE(ha.start(SIGUSR2, [&](int) { ++a; }));
  REQUIRE_FALSE(hb.start(SIGUSR2, [&](int) { ++b; }));
  REQUIRE_FALSE(ho.start_oneshot(SIGUSR2, [&](int) { ++once; }));
  CHECK(ha.start(0, [](int) {}) == std::errc::invalid_argument);
  CHECK(ha.start(SIGKILL, [](int) {}) == std::errc::invalid_argument);
  CHECK(ha.start(SIGSTOP, [](int) {}) == std::errc::invalid_argument);
  CHECK(ha.start(100000, [](int) {}) == std::errc::invalid_argument);
  CHECK(ha.signum() == SIGUSR2);  // a failed start leaves the watch as it was
  std::error_code ec;
  auto bad = on_signal(loop, -1, [](int) {}, ec);
  CHECK(ec == std::errc::invalid_argument);
  CHECK_FALSE(bad);
  loop.set_timeout([&] { raise_self(SIGUSR2); }, 1ms);
  loop.set_timeout([&] { raise_self(SIGUSR2); }, 30ms);
  loop.set_timeout([&] {
    ha.close();
    hb.close();
    ho.close();
  }, 60ms);
  loop.run();
  CHECK(a == 2);
  CHECK(b == 2);
  CHECK(once == 1);
}

TEMPLATE_TEST_CASE("signal: an unref'd handle does not hold the loop; stop() stops delivery", "[signal]",
                   PHASELOOP_TEST_REAL_IO_LOOPS) {
  TestType loop;
  int got = 0;
  auto h = on_signal(loop, SIGUSR1, [&](int) { ++got; });
  h.unref();
  CHECK_FALSE(loop.alive());
  loop.run();  // returns at once
  h.ref();
  CHECK(loop.alive());
  h.stop();
  CHECK(h.signum() == 0);
  CHECK_FALSE(loop.alive());
  // Restarted, and an unref'd handle still gets signals while a timer holds the loop.
  REQUIRE_FALSE(h.start(SIGUSR1, [&](int) { ++got; }));
  h.unref();
  loop.set_timeout([] { raise_self(SIGUSR1); }, 1ms);
  loop.set_timeout([] {}, 50ms);
  loop.run();
  CHECK(got == 1);
}

TEMPLATE_TEST_CASE("signal: a signal arriving while its handle closes is dropped for it, delivered to the others",
                   "[signal]", PHASELOOP_TEST_REAL_IO_LOOPS) {
  const bool before_default = disposition_is(SIGUSR2, SIG_DFL);
  {
    TestType loop;
    int closing_calls = 0, other_calls = 0;
    bool closed = false;
    signal_handle closing(loop), other(loop);
    REQUIRE_FALSE(closing.start(SIGUSR2, [&](int) { ++closing_calls; }));
    REQUIRE_FALSE(other.start(SIGUSR2, [&](int) {
      ++other_calls;
      other.close();
    }));
    CHECK_FALSE(disposition_is(SIGUSR2, SIG_DFL));
    loop.set_timeout([&] {
      closing.close([&] { closed = true; });
      raise_self(SIGUSR2);  // caught after close() began, before the close phase
      raise_self(SIGUSR2);
    }, 1ms);
    loop.run();
    CHECK(closed);
    CHECK(closing_calls == 0);
    CHECK(other_calls == 1);  // closed in its first callback: the second delivery is dropped too
    CHECK(detail::posix::signal_registry::instance().watchers(SIGUSR2) == 0);
  }
  // The last handle gone: the disposition before the first one is back.
  CHECK(disposition_is(SIGUSR2, SIG_DFL) == before_default);
}

TEST_CASE("signal: the previous disposition comes back when the last handle goes", "[signal]") {
  struct sigaction ignore {}, old {};
  ignore.sa_handler = SIG_IGN;
  REQUIRE(::sigaction(SIGUSR1, &ignore, &old) == 0);
  {
    epoll_heap_loop loop;
    auto h = on_signal(loop, SIGUSR1, [](int) {});
    CHECK_FALSE(disposition_is(SIGUSR1, SIG_IGN));
    h.close();
    loop.run();
  }
  CHECK(disposition_is(SIGUSR1, SIG_IGN));
  {
    epoll_heap_loop loop;
    auto h = on_signal(loop, SIGUSR1, [](int) {});
    CHECK_FALSE(disposition_is(SIGUSR1, SIG_IGN));
  }  // the loop's teardown with the handle still open
  CHECK(disposition_is(SIGUSR1, SIG_IGN));
  ::sigaction(SIGUSR1, &old, nullptr);
}

TEST_CASE("signal: two loops on two threads both get SIGUSR1", "[signal]") {
  std::atomic<int> ready{0};
  std::atomic<int> got[2] = {0, 0};
  std::atomic<int> start_errors{0};  // Catch's assertions are not thread-safe: checked below
  auto worker = [&](int i) {
    epoll_heap_loop loop;
    signal_handle h(loop);
    if (h.start(SIGUSR1, [&, i](int) {
          got[i].fetch_add(1);
          h.close();
        })) {
      start_errors.fetch_add(1);
      ready.fetch_add(1);
      return;
    }
    // If the signal never came, give up after a while (the check below fails).
    loop.set_timeout([&] { h.close(); }, 5000ms).unref();
    ready.fetch_add(1);
    loop.run();
  };
  std::thread t0(worker, 0), t1(worker, 1);
  while (ready.load() != 2) std::this_thread::yield();
  raise_self(SIGUSR1);
  t0.join();
  t1.join();
  CHECK(start_errors.load() == 0);
  CHECK(got[0].load() == 1);
  CHECK(got[1].load() == 1);
}

#endif  // __linux__
