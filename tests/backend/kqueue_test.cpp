// kqueue_poller on its own (the contract suite runs kqueue_backend with the
// other backends): per-direction filters, changes applied with the next
// wait, deletions before a close, and the EVFILT_USER wakeup. Natively on
// Apple and the BSDs, over libkqueue on Linux (PHASELOOP_TEST_WITH_KQUEUE).

#include "support.hpp"
#include "posix.hpp"

#if defined(PHASELOOP_TEST_WITH_KQUEUE) && defined(PHASELOOP_HAS_KQUEUE_BACKEND)

#include <chrono>
#include <string>
#include <thread>

#include <sys/socket.h>
#include <unistd.h>

using namespace phaseloop;

namespace {

using phaseloop::test::unix_socket_pair;

/// What one wait reported for fd (every report merged), and how many reports.
struct seen {
  io_events events = io_events::none;
  int reports = 0;
};

seen wait_for(kqueue_poller& p, int fd, std::chrono::milliseconds timeout) {
  poll_event out[16];
  seen s;
  const std::size_t n = p.wait(timeout, out, 16);
  for (std::size_t i = 0; i < n; ++i) {
    if (out[i].fd != fd) continue;
    s.events |= out[i].events;
    ++s.reports;
  }
  return s;
}

using clock = std::chrono::steady_clock;

}  // namespace

TEST_CASE("kqueue poller: each direction is its own filter, reported while wanted", "[backend][kqueue]") {
  kqueue_poller p;
  unix_socket_pair s;
  REQUIRE_FALSE(p.add(s.fds[0], io_events::readable | io_events::writable));
  s.write_peer("x");
  seen both = wait_for(p, s.fds[0], std::chrono::milliseconds(100));
  CHECK(both.events == (io_events::readable | io_events::writable));
  CHECK(both.reports == 2);  // one event per filter

  // Readiness is level-triggered: still reported, nothing was read.
  CHECK(wait_for(p, s.fds[0], std::chrono::milliseconds(100)).events == (io_events::readable | io_events::writable));

  // The write filter goes with the next wait, the read filter stays.
  REQUIRE_FALSE(p.modify(s.fds[0], io_events::readable));
  CHECK(wait_for(p, s.fds[0], std::chrono::milliseconds(100)).events == io_events::readable);
  REQUIRE_FALSE(p.modify(s.fds[0], io_events::writable));
  CHECK(wait_for(p, s.fds[0], std::chrono::milliseconds(100)).events == io_events::writable);
  p.remove(s.fds[0]);
  CHECK(wait_for(p, s.fds[0], std::chrono::milliseconds(20)).reports == 0);
}

TEST_CASE("kqueue poller: a change recorded by modify takes effect in the next wait, not before",
          "[backend][kqueue]") {
  kqueue_poller p;
  unix_socket_pair s;
  REQUIRE_FALSE(p.add(s.fds[0], io_events::writable));
  REQUIRE_FALSE(p.modify(s.fds[0], io_events::readable));
  // Another descriptor's add applies the batch with it: the batched change
  // must not be lost or applied twice.
  unix_socket_pair other;
  REQUIRE_FALSE(p.add(other.fds[0], io_events::readable));
  s.write_peer("y");
  const seen got = wait_for(p, s.fds[0], std::chrono::milliseconds(100));
  CHECK(got.events == io_events::readable);
  CHECK(got.reports == 1);
}

TEST_CASE("kqueue poller: end of stream is readable and a hangup", "[backend][kqueue]") {
  kqueue_poller p;
  unix_socket_pair s;
  REQUIRE_FALSE(p.add(s.fds[0], io_events::readable));
  ::close(s.fds[1]);
  s.fds[1] = -1;
  const seen got = wait_for(p, s.fds[0], std::chrono::milliseconds(100));
  CHECK(any(got.events & io_events::readable));
  CHECK(any(got.events & io_events::hangup));
}

TEST_CASE("kqueue poller: a closed descriptor is refused at add; its own descriptor too", "[backend][kqueue]") {
  kqueue_poller p;
  int fds[2];
  REQUIRE_FALSE(detail::posix::open_socketpair(AF_UNIX, SOCK_STREAM, fds));
  ::close(fds[0]);
  ::close(fds[1]);
  CHECK(p.add(fds[0], io_events::readable) == std::errc::bad_file_descriptor);
  CHECK(p.add(p.native_handle(), io_events::readable) == std::errc::bad_file_descriptor);
  CHECK(p.add(-1, io_events::readable) == std::errc::bad_file_descriptor);
  // The refused descriptor left nothing behind: a socket taking its number is clean.
  unix_socket_pair s;
  REQUIRE_FALSE(p.add(s.fds[0], io_events::readable));
  CHECK(wait_for(p, s.fds[0], std::chrono::milliseconds(20)).reports == 0);
}

TEST_CASE("kqueue poller: EVFILT_USER wakeup clears itself (EV_CLEAR) and is never reported", "[backend][kqueue]") {
  kqueue_poller p;
  p.wake();
  poll_event out[4];
  auto start = clock::now();
  CHECK(p.wait(std::chrono::milliseconds(1000), out, 4) == 0);  // woken at once, nothing reported
  CHECK(clock::now() - start < std::chrono::milliseconds(500));
  // Consumed: the next wait runs to its timeout.
  start = clock::now();
  CHECK(p.wait(std::chrono::milliseconds(60), out, 4) == 0);
  CHECK(clock::now() - start >= std::chrono::milliseconds(50));
}

TEST_CASE("kqueue poller: an add or remove applied at once does not swallow a pending wakeup",
          "[backend][kqueue][threads]") {
  kqueue_poller p;
  unix_socket_pair s;
  std::thread waker([&] { p.wake(); });
  waker.join();
  // Both apply changes immediately (with receipts): the wakeup must survive them.
  REQUIRE_FALSE(p.add(s.fds[0], io_events::readable));
  p.remove(s.fds[0]);
  poll_event out[4];
  const auto start = clock::now();
  CHECK(p.wait(std::chrono::milliseconds(2000), out, 4) == 0);
  CHECK(clock::now() - start < std::chrono::milliseconds(1000));
}

TEST_CASE("kqueue poller: remove deletes the filters before the close, so a reused number starts clean",
          "[backend][kqueue]") {
  kqueue_poller p;
  unix_socket_pair old_pair;
  const int number = old_pair.fds[0];
  const int keep = ::dup(number);  // the old socket outlives its number
  REQUIRE_FALSE(p.add(number, io_events::readable));
  p.remove(number);
  ::close(number);
  old_pair.fds[0] = -1;
  unix_socket_pair fresh;
  REQUIRE(fresh.fds[0] == number);
  REQUIRE_FALSE(p.add(fresh.fds[0], io_events::readable));
  old_pair.write_peer("old");  // readable through `keep` only
  CHECK(wait_for(p, number, std::chrono::milliseconds(30)).reports == 0);
  fresh.write_peer("new");
  CHECK(wait_for(p, number, std::chrono::milliseconds(100)).events == io_events::readable);
  ::close(keep);
}

#endif
