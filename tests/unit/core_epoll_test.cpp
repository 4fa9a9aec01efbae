// The core on the real epoll backend: the real clock, poll handles on pipes,
// cross-thread wakeups through the eventfd.

#include "support.hpp"

#if defined(__linux__)

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <functional>
#include <memory>

using namespace phaseloop;
using namespace phaseloop::test;

namespace {

struct pipe_pair {
  int read_end = -1;
  int write_end = -1;
  pipe_pair() {
    int fds[2];
    REQUIRE(::pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0);
    read_end = fds[0];
    write_end = fds[1];
  }
  ~pipe_pair() {
    if (read_end >= 0) ::close(read_end);
    if (write_end >= 0) ::close(write_end);
  }
};

}  // namespace

TEST_CASE("epoll: a poll handle sees a pipe become io_events::readable and io_events::writable", "[core]") {
  epoll_heap_loop loop;
  pipe_pair p;
  auto reader = loop.make_poll(p.read_end);
  auto writer = loop.make_poll(p.write_end);
  trace out;
  REQUIRE_FALSE(reader.start(io_events::readable, [&](std::error_code ec, io_events events) {
    REQUIRE_FALSE(ec);
    CHECK(any(events & io_events::readable));
    char buf[16];
    const auto n = ::read(p.read_end, buf, sizeof buf);
    out.emplace_back(buf, static_cast<std::size_t>(n));
    reader.close([&] { out.push_back("reader closed"); });
  }));
  REQUIRE_FALSE(writer.start(io_events::writable, [&](std::error_code ec, io_events events) {
    REQUIRE_FALSE(ec);
    CHECK(events == io_events::writable);
    out.push_back("writable");
    writer.stop();
    // Readability comes from a timer later, through a blocking epoll_wait.
    loop.set_timeout([&] { CHECK(::write(p.write_end, "ping", 4) == 4); }, 20ms);
  }));
  CHECK(loop.backend().watched() == 2);
  loop.run();
  CHECK(out == trace{"writable", "ping", "reader closed"});
  CHECK(loop.backend().watched() == 0);
  CHECK(loop.metrics().poll_blocked >= 10ms);
  CHECK_FALSE(loop.alive());
}

TEST_CASE("epoll: poll handles are level-triggered until stopped", "[core]") {
  epoll_heap_loop loop;
  pipe_pair p;
  REQUIRE(::write(p.write_end, "x", 1) == 1);
  auto reader = loop.make_poll(p.read_end);
  int calls = 0;
  REQUIRE_FALSE(reader.start(io_events::readable, [&](std::error_code, io_events) {
    if (++calls == 3) reader.stop();  // never read: still io_events::readable each iteration
  }));
  loop.run();
  CHECK(calls == 3);
  CHECK_FALSE(reader.active());
}

TEST_CASE("epoll: a io_events::hangup is reported with the io_events::readable event", "[core]") {
  epoll_heap_loop loop;
  pipe_pair p;
  ::close(p.write_end);
  p.write_end = -1;
  auto reader = loop.make_poll(p.read_end);
  io_events seen = io_events::none;
  REQUIRE_FALSE(reader.start(io_events::readable, [&](std::error_code, io_events events) {
    seen = events;
    reader.close();
  }));
  loop.run();
  CHECK(any(seen & io_events::hangup));
}

TEST_CASE("epoll: bad descriptors give error codes, never a crash", "[core]") {
  epoll_heap_loop loop;
  operation unknown;
  unknown.kind = static_cast<op_kind>(99);
  unknown.fd = 0;
  CHECK(loop.backend().submit(unknown) == std::errc::operation_not_supported);
  auto negative = loop.make_poll(-1);
  CHECK(negative.start(io_events::readable, [](std::error_code, io_events) {}) == std::errc::bad_file_descriptor);
  int closed_fd;
  {
    pipe_pair p;
    closed_fd = p.read_end;
  }
  auto closed = loop.make_poll(closed_fd);
  CHECK(closed.start(io_events::readable, [](std::error_code, io_events) {}) == std::errc::bad_file_descriptor);
  const int file = ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  REQUIRE(file >= 0);
  auto regular = loop.make_poll(file);
  CHECK(regular.start(io_events::readable, [](std::error_code, io_events) {}) == std::errc::operation_not_permitted);
  ::close(file);
  pipe_pair p;
  auto first = loop.make_poll(p.read_end);
  auto second = loop.make_poll(p.read_end);
  CHECK_FALSE(first.start(io_events::readable, [](std::error_code, io_events) {}));
  CHECK(second.start(io_events::readable, [](std::error_code, io_events) {}) == std::errc::device_or_resource_busy);
  first.close();
  loop.run();
  CHECK_FALSE(loop.alive());
}

TEST_CASE("epoll: closing a descriptor's handle after the user closed the descriptor is safe", "[core]") {
  epoll_heap_loop loop;
  auto p = std::make_unique<pipe_pair>();
  auto reader = loop.make_poll(p->read_end);
  REQUIRE_FALSE(reader.start(io_events::readable, [](std::error_code, io_events) {}));
  p.reset();  // both ends closed under the handle
  reader.close();
  loop.run();
  CHECK(loop.backend().watched() == 0);
}

TEST_CASE("epoll: timers follow the real clock", "[core]") {
  epoll_heap_loop loop;
  const auto start = loop.backend().hrtime();
  std::chrono::milliseconds loop_time{};
  loop.set_timeout([&] { loop_time = loop.now(); }, 30ms);
  const auto set_at = loop.now();
  loop.run();
  CHECK(loop.backend().hrtime() - start >= 29ms);
  CHECK(loop_time - set_at >= 30ms);
}

TEST_CASE("epoll: an immediate chain makes no poll system call", "[core]") {
  epoll_heap_loop loop;
  int n = 0;
  std::function<void()> next = [&] {
    if (++n < 1000) loop.set_immediate(next);
  };
  loop.set_immediate(next);
  loop.run();
  CHECK(n == 1000);
  CHECK(loop.backend().watched() == 0);
  CHECK(loop.metrics().poll_blocked == std::chrono::nanoseconds::zero());
}

#endif  // __linux__

TEST_CASE("epoll: the loop clock reads what CLOCK_MONOTONIC reads, also between its real reads", "[core][clock]") {
  // On x86-64 with the TSC as clocksource, most reads compare the TSC with
  // the next millisecond boundary instead of calling clock_gettime; each
  // must still land between the real clock's value before and after it.
  phaseloop::detail::monotonic_ms_clock clock;
  auto real_ms = [] {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000 + static_cast<std::uint64_t>(ts.tv_nsec) / 1000000;
  };
  const std::uint64_t slack = clock.uses_coarse() ? 1 : 0;  // the coarse clock trails by up to 1 ms
  std::size_t samples = 0, outside = 0;
  const std::uint64_t end = real_ms() + 80;  // long enough to measure the TSC rate and cross 80 boundaries
  for (std::uint64_t before = real_ms(); before < end; before = real_ms()) {
    const std::uint64_t read = clock.now_ms();
    const std::uint64_t after = real_ms();
    if (read + slack < before || read > after) ++outside;
    ++samples;
  }
  INFO(samples << " reads, TSC " << clock.uses_tsc());
  CHECK(outside == 0);
  if (clock.uses_tsc()) CHECK(clock.calibrated());
}
