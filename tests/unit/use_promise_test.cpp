// The use_promise completion token on fs and dns calls, with and without a
// cancellation signal.
#include "support.hpp"

#if !defined(_WIN32)

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace {

using namespace std::chrono_literals;
using phaseloop::test::rejection_name;

}  // namespace

TEMPLATE_TEST_CASE("use_promise: fs and dns calls give promises", "[use_promise]", PHASELOOP_TEST_EXECUTOR_LOOPS) {
  TestType loop;
  const std::string path = "phaseloop_use_promise_test.txt";
  std::string read_back;
  std::uint64_t size = 0;
  std::string missing;
  std::string numeric;
  auto steps = [&]() -> phaseloop::promise<void> {
    co_await phaseloop::fs::write_file(loop, path, std::string("token"), phaseloop::use_promise);
    phaseloop::fs::stats st = co_await phaseloop::fs::stat(loop, path, phaseloop::use_promise);
    size = st.size;
    read_back = co_await phaseloop::fs::promises::read_file(loop, path);
    co_await phaseloop::fs::promises::unlink(loop, path);
    try {
      co_await phaseloop::fs::stat(loop, path, phaseloop::use_promise);
    } catch (const std::system_error& e) {
      missing = phaseloop::error_name(e.code());
    }
    auto found = co_await phaseloop::dns::lookup(loop, "127.0.0.1", phaseloop::use_promise);
    if (!found.empty()) numeric = found.front().address;
  };
  bool done = false;
  steps().then([&] { done = true; });
  loop.run();
  CHECK(done);
  CHECK(read_back == "token");
  CHECK(size == 5);
  CHECK(missing == "ENOENT");
  CHECK(numeric == "127.0.0.1");
}

TEMPLATE_TEST_CASE("use_promise: an aborted signal rejects at once and queues nothing", "[use_promise]",
                   PHASELOOP_TEST_EXECUTOR_LOOPS) {
  TestType loop;
  phaseloop::abort_controller c;
  c.abort();
  std::string result;
  phaseloop::fs::stat(loop, ".", phaseloop::use_promise(c.signal()))
      .then([&](const phaseloop::fs::stats&) { result = "stat ran"; },
            [&](std::exception_ptr e) { result = rejection_name(e); });
  CHECK_FALSE(loop.alive());  // nothing was queued
  loop.run();
  CHECK(result == "ABORT_ERR");
}

TEST_CASE("use_promise: an abort cancels a request the thread pool has not started", "[use_promise]") {
  phaseloop::loop_options options;
  options.executor.threads = 2;
  phaseloop::test::pool_loop loop(options);
  // Occupy both workers, so the stat below stays queued.
  std::mutex m;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> started{0};
  const int workers = 2;
  for (int i = 0; i < workers; ++i) {
    loop.queue_work(
        [&] {
          ++started;
          std::unique_lock lock(m);
          cv.wait(lock, [&] { return release; });
        },
        [](std::error_code) {});
  }
  while (started.load() < workers) std::this_thread::yield();
  phaseloop::abort_controller c;
  std::string result;
  phaseloop::fs::stat(loop, ".", phaseloop::use_promise(c.signal()))
      .then([&](const phaseloop::fs::stats&) { result = "stat ran"; },
            [&](std::exception_ptr e) { result = rejection_name(e); });
  loop.set_timeout([&] { c.abort(); }, 5ms);
  loop.set_timeout([&] {
    CHECK(result == "ABORT_ERR");  // rejected at the abort, not when a worker frees up
    std::lock_guard lock(m);
    release = true;
    cv.notify_all();
  }, 20ms);
  loop.run();
  CHECK(result == "ABORT_ERR");
}

#endif  // !defined(_WIN32)
