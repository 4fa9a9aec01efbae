// Executors: queue_work on the inline and the thread-pool executor, the pool's
// size, lazy start, slow-work cap, cancellation and shutdown.
#include "support.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace phaseloop;
using namespace std::chrono_literals;

using phaseloop::test::pool_loop;
#if defined(__linux__)
// The pool also on the mock backend: its wakeup is a condition variable, not an eventfd.
using pool_mock_loop = basic_loop<mock_backend, heap_timers, thread_pool_executor>;
#define EXEC_LOOPS PHASELOOP_TEST_EXECUTOR_LOOPS, pool_mock_loop
#else
#define EXEC_LOOPS PHASELOOP_TEST_EXECUTOR_LOOPS
#endif

/// A gate worker threads wait on until the test opens it.
class gate {
 public:
  void open() {
    {
      std::lock_guard lock(m_);
      open_ = true;
    }
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock lock(m_);
    cv_.wait(lock, [&] { return open_; });
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool open_ = false;
};

/// Counts how many threads are inside a section, and the most at once.
struct occupancy {
  std::atomic<int> now{0};
  std::atomic<int> peak{0};
  std::atomic<int> entered{0};
  void enter() {
    const int n = now.fetch_add(1) + 1;
    int p = peak.load();
    while (n > p && !peak.compare_exchange_weak(p, n)) {
    }
    entered.fetch_add(1);
  }
  void leave() { now.fetch_sub(1); }
};

/// Spin until `pred` holds (bounded: a hung test fails instead of hanging).
template <class Pred>
bool eventually(Pred pred) {
  for (int i = 0; i < 10000; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return pred();
}

}  // namespace

TEMPLATE_TEST_CASE("queue_work runs the work, then `after` on the loop thread in the poll phase",
                   "[executor]", EXEC_LOOPS) {
  TestType loop;
  const auto loop_thread = std::this_thread::get_id();
  std::atomic<int> worked{0};
  int after_count = 0;
  std::vector<std::string> trace;
  for (int i = 0; i < 200; ++i) {
    loop.queue_work([&] { worked.fetch_add(1); },
                    [&](std::error_code ec) {
                      CHECK(!ec);
                      CHECK(std::this_thread::get_id() == loop_thread);
                      ++after_count;
                    });
  }
  CHECK(after_count == 0);  // never synchronous
  CHECK(loop.alive());      // pending work keeps the loop alive
  loop.queue_work([] {}, [&](std::error_code) {
    // Inside a poll-phase callback: the immediate runs before the timer.
    loop.set_timeout([&] { trace.emplace_back("timeout"); }, 0ms);
    loop.set_immediate([&] { trace.emplace_back("immediate"); });
    loop.next_tick([&] { trace.emplace_back("tick"); });
    trace.emplace_back("after");
  });
  loop.run();
  CHECK(worked == 200);
  CHECK(after_count == 200);
  CHECK(trace == std::vector<std::string>{"after", "tick", "immediate", "timeout"});
  CHECK_FALSE(loop.alive());
}

TEMPLATE_TEST_CASE("an exception thrown by work reaches on_uncaught_exception on the loop thread",
                   "[executor]", EXEC_LOOPS) {
  TestType loop;
  std::string caught;
  bool after_ran = false;
  loop.on_uncaught_exception([&](std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (const std::runtime_error& err) {
      caught = err.what();
    }
  });
  loop.queue_work([] { throw std::runtime_error("boom"); }, [&](std::error_code) { after_ran = true; });
  loop.run();
  CHECK(caught == "boom");
  CHECK_FALSE(after_ran);
}

TEST_CASE("thread pool size: options, PHASELOOP_THREADPOOL_SIZE, default 4", "[executor]") {
  const char* saved = std::getenv("PHASELOOP_THREADPOOL_SIZE");
  const std::string saved_value = saved != nullptr ? saved : "";
  ::unsetenv("PHASELOOP_THREADPOOL_SIZE");
  CHECK(thread_pool_executor::configured_threads({}) == 4);
  CHECK(thread_pool_executor::configured_threads({.threads = 3}) == 3);
  CHECK(thread_pool_executor::configured_threads({.threads = 5000}) == 1024);
  ::setenv("PHASELOOP_THREADPOOL_SIZE", "7", 1);
  CHECK(thread_pool_executor::configured_threads({}) == 7);
  CHECK(thread_pool_executor::configured_threads({.threads = 2}) == 2);  // code wins
  for (const char* bad : {"0", "-3", "seven", "", "4x"}) {
    ::setenv("PHASELOOP_THREADPOOL_SIZE", bad, 1);
    CHECK(thread_pool_executor::configured_threads({}) == 4);
  }
  ::setenv("PHASELOOP_THREADPOOL_SIZE", "99999999999999999999999", 1);
  CHECK(thread_pool_executor::configured_threads({}) == 1024);
  if (saved != nullptr)
    ::setenv("PHASELOOP_THREADPOOL_SIZE", saved_value.c_str(), 1);
  else
    ::unsetenv("PHASELOOP_THREADPOOL_SIZE");

  pool_loop loop(loop_options{.executor = {.threads = 3}});
  CHECK(loop.executor().size() == 3);
  CHECK(loop.executor().slow_limit() == 2);
}

TEST_CASE("thread pool threads start on the first queue_work, not before", "[executor]") {
  {
    pool_loop idle;
    idle.set_timeout([] {}, 1ms);
    idle.run();
    CHECK(idle.executor().threads_started() == 0);
  }
  pool_loop loop(loop_options{.executor = {.threads = 2}});
  CHECK(loop.executor().threads_started() == 0);
  bool done = false;
  loop.queue_work([] {}, [&](std::error_code) { done = true; });
  CHECK(loop.executor().threads_started() == 2);
  loop.run();
  CHECK(done);
}

TEST_CASE("thread pool: work runs on worker threads, in parallel", "[executor]") {
  pool_loop loop(loop_options{.executor = {.threads = 4}});
  const auto loop_thread = std::this_thread::get_id();
  occupancy busy;
  gate release;
  std::atomic<bool> off_loop{true};
  int finished = 0;
  for (int i = 0; i < 4; ++i)
    loop.queue_work(
        [&] {
          if (std::this_thread::get_id() == loop_thread) off_loop = false;
          busy.enter();
          release.wait();
          busy.leave();
        },
        [&](std::error_code) { ++finished; });
  REQUIRE(eventually([&] { return busy.entered.load() == 4; }));
  CHECK(busy.peak == 4);
  release.open();
  loop.run();
  CHECK(finished == 4);
  CHECK(off_loop);
}

TEST_CASE("a queued request is cancelled with operation_canceled; a running one is busy",
          "[executor]") {
  pool_loop loop(loop_options{.executor = {.threads = 1}});
  gate release;
  std::atomic<bool> started{false};
  std::atomic<bool> second_ran{false};
  std::error_code first_result = std::make_error_code(std::errc::io_error);
  std::error_code second_result;
  std::vector<int> order;
  auto first = loop.queue_work(
      [&] {
        started = true;
        release.wait();
      },
      [&](std::error_code ec) {
        first_result = ec;
        order.push_back(1);
      });
  auto second = loop.queue_work([&] { second_ran = true; },
                                [&](std::error_code ec) {
                                  second_result = ec;
                                  order.push_back(2);
                                });
  REQUIRE(eventually([&] { return started.load(); }));
  CHECK(loop.cancel(first) == std::errc::device_or_resource_busy);
  CHECK_FALSE(loop.cancel(second));
  CHECK(loop.cancel(second) == std::errc::device_or_resource_busy);  // already cancelled
  release.open();
  loop.run();
  CHECK_FALSE(second_ran);
  CHECK(second_result == std::errc::operation_canceled);
  CHECK_FALSE(first_result);
  CHECK(order.size() == 2);
  CHECK(loop.cancel(first) == std::errc::invalid_argument);  // finished: a stale handle
  CHECK(loop.cancel(second) == std::errc::invalid_argument);
  CHECK_FALSE(loop.alive());
}

TEST_CASE("cancel finds a queued request wherever it waits: newest, middle, oldest, taken over",
          "[executor]") {
  // Two workers, both blocked: Z and W were taken over by the second worker
  // (they wait in the pool's queue); the rest stay where submit() put them.
  pool_loop loop(loop_options{.executor = {.threads = 2}});
  gate release;
  std::atomic<int> started{0};
  std::vector<std::string> ran;
  std::mutex ran_mutex;
  std::vector<std::string> results;
  auto job = [&](std::string name, bool block) {
    return loop.queue_work(
        [&, name, block] {
          if (block) {
            started.fetch_add(1);
            release.wait();
          }
          std::lock_guard lock(ran_mutex);
          ran.push_back(name);
        },
        [&, name](std::error_code ec) { results.push_back(name + (ec ? ":cancelled" : ":ok")); });
  };
  job("X", true);
  REQUIRE(eventually([&] { return started.load() == 1; }));
  auto y = job("Y", true);
  auto z = job("Z", false);
  auto w = job("W", false);
  REQUIRE(eventually([&] { return started.load() == 2; }));  // the second worker took Y (and Z, W)
  auto a = job("A", false);
  auto b = job("B", false);
  auto c = job("C", false);
  CHECK(loop.cancel(y) == std::errc::device_or_resource_busy);
  CHECK_FALSE(loop.cancel(w));  // in the pool's queue, last
  CHECK_FALSE(loop.cancel(c));  // submitted last (top of the submitted stack)
  CHECK_FALSE(loop.cancel(a));  // submitted first of the three
  CHECK(loop.cancel(a) == std::errc::device_or_resource_busy);
  release.open();
  loop.run();
  std::sort(ran.begin(), ran.end());
  CHECK(ran == std::vector<std::string>{"B", "X", "Y", "Z"});
  std::sort(results.begin(), results.end());
  CHECK(results == std::vector<std::string>{"A:cancelled", "B:ok", "C:cancelled", "W:cancelled", "X:ok",
                                            "Y:ok", "Z:ok"});
  (void)z;
  (void)b;
}

TEST_CASE("the inline executor cannot cancel: its work has always run", "[executor]") {
  test_loop loop;
  bool ran = false;
  std::error_code result = std::make_error_code(std::errc::io_error);
  auto w = loop.queue_work([&] { ran = true; }, [&](std::error_code ec) { result = ec; });
  CHECK(ran);
  CHECK(loop.cancel(w) == std::errc::device_or_resource_busy);
  loop.run();
  CHECK_FALSE(result);
}

TEST_CASE("cancel races workers: every request either runs or is cancelled, exactly once",
          "[executor]") {
  pool_loop loop(loop_options{.executor = {.threads = 4}});
  constexpr int n = 4000;
  std::vector<std::atomic<int>> runs(n);
  std::vector<int> afters(n, 0);
  std::vector<std::error_code> results(n);
  std::vector<std::error_code> cancels(n);
  for (int i = 0; i < n; ++i) {
    auto h = loop.queue_work([&runs, i] { runs[static_cast<std::size_t>(i)].fetch_add(1); },
                             [&, i](std::error_code ec) {
                               ++afters[static_cast<std::size_t>(i)];
                               results[static_cast<std::size_t>(i)] = ec;
                             });
    if (i % 2 == 0) cancels[static_cast<std::size_t>(i)] = loop.cancel(h);
  }
  loop.run();
  int cancelled = 0;
  for (std::size_t i = 0; i < n; ++i) {
    INFO("request " << i);
    REQUIRE(afters[i] == 1);
    if (results[i] == std::errc::operation_canceled) {
      ++cancelled;
      REQUIRE(runs[i] == 0);
      REQUIRE(i % 2 == 0);
      REQUIRE_FALSE(cancels[i]);
    } else {
      REQUIRE_FALSE(results[i]);
      REQUIRE(runs[i] == 1);
      if (i % 2 == 0) REQUIRE(cancels[i] == std::errc::device_or_resource_busy);
    }
  }
  CHECK(cancelled > 0);
}

TEST_CASE("slow work occupies at most half of the pool; fast work still runs", "[executor]") {
  pool_loop loop(loop_options{.executor = {.threads = 4}});
  occupancy slow;
  gate release;
  int slow_done = 0;
  for (int i = 0; i < 4; ++i)
    loop.queue_work(
        [&] {
          slow.enter();
          release.wait();
          slow.leave();
        },
        [&](std::error_code ec) {
          CHECK(!ec);
          ++slow_done;
        },
        work_kind::slow);
  REQUIRE(eventually([&] { return slow.entered.load() == 2; }));
  int fast_done = 0;
  for (int i = 0; i < 50; ++i)
    loop.queue_work([] {}, [&](std::error_code) {
      if (++fast_done == 50) release.open();  // only now may the slow ones go on
    });
  loop.run();
  CHECK(fast_done == 50);
  CHECK(slow_done == 4);
  CHECK(slow.peak == 2);
}

TEST_CASE("slow work runs on a one-thread pool", "[executor]") {
  pool_loop loop(loop_options{.executor = {.threads = 1}});
  CHECK(loop.executor().slow_limit() == 1);
  int done = 0;
  for (int i = 0; i < 3; ++i) loop.queue_work([] {}, [&](std::error_code) { ++done; }, work_kind::slow);
  loop.queue_work([] {}, [&](std::error_code) { ++done; });
  loop.run();
  CHECK(done == 4);
}

TEST_CASE("destroying a loop with work queued and running joins cleanly", "[executor]") {
  std::atomic<int> ran{0};
  std::atomic<bool> started{false};
  bool after_ran = false;
  {
    pool_loop loop(loop_options{.executor = {.threads = 2}});
    for (int i = 0; i < 2; ++i)
      loop.queue_work(
          [&] {
            started = true;
            std::this_thread::sleep_for(20ms);
            ran.fetch_add(1);
          },
          [&](std::error_code) { after_ran = true; });
    for (int i = 0; i < 100; ++i)
      loop.queue_work([&] { ran.fetch_add(1); }, [&](std::error_code) { after_ran = true; });
    REQUIRE(eventually([&] { return started.load(); }));
  }  // the running jobs finish; the queued ones are dropped without running
  CHECK(ran.load() >= 1);
  CHECK(ran.load() < 102);
  CHECK_FALSE(after_ran);
}

TEST_CASE("many requests deliver with coalesced wakeups", "[executor]") {
  pool_loop loop(loop_options{.executor = {.threads = 4}});
  constexpr int n = 20000;
  int done = 0;
  std::atomic<std::uint64_t> sum{0};
  for (int i = 0; i < n; ++i)
    loop.queue_work([&sum, i] { sum.fetch_add(static_cast<std::uint64_t>(i)); },
                    [&](std::error_code) { ++done; });
  loop.run();
  CHECK(done == n);
  CHECK(sum == static_cast<std::uint64_t>(n) * (n - 1) / 2);
  // Far fewer loop iterations than requests: completions arrive in batches.
  CHECK(loop.metrics().iterations < static_cast<std::uint64_t>(n));
}

TEST_CASE("work queued from `after` callbacks keeps the loop going", "[executor]") {
  pool_loop loop(loop_options{.executor = {.threads = 2}});
  int remaining = 100;
  std::function<void(std::error_code)> again = [&](std::error_code) {
    if (--remaining > 0) loop.queue_work([] {}, [&](std::error_code ec) { again(ec); });
  };
  loop.queue_work([] {}, [&](std::error_code ec) { again(ec); });
  loop.run();
  CHECK(remaining == 0);
}
