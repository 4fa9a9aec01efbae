// dgram: UDP sockets on loopback, on every real backend (both receive paths:
// recvmmsg batches and one recvfrom operation at a time) and on the mock's
// virtual network: datagrams intact with their sender, connected sockets,
// every send callback once, closing and pausing from inside on_message,
// truncation, bad input as invalid_argument, multicast and broadcast options.
// phaseloop: portable (the mock parts; the real backends behind __linux__)

#include "reference_timers.hpp"  // det_random
#include "support.hpp"

#if !defined(PHASELOOP_TEST_SINGLE_HEADER)
#include <phaseloop/dgram.hpp>
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#if !defined(_WIN32)
#include <sys/socket.h>
#endif

using namespace phaseloop;
using namespace phaseloop::test;

namespace {

// "m0", "m1", ...: built with append, because GCC 12 at -O2 reports a false
// -Wrestrict for "literal" + std::string&& (GCC bug 105329).
std::string message_name(int i) {
  std::string name = "m";
  name.append(std::to_string(i));
  return name;
}

std::string text(std::span<const std::byte> d) { return {reinterpret_cast<const char*>(d.data()), d.size()}; }

/// Fails the test and stops the loop if it is still running after `limit`.
template <class Loop>
void deadline(Loop& loop, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  loop.set_timeout([&loop, limit] {
    FAIL("the loop was still running after " << limit.count() << " ms");
    loop.stop();
  }, limit).unref();
}

template <class Loop>
constexpr bool is_mock = std::is_same_v<Loop, mock_heap_loop>;

/// The receive paths a loop has: recvmmsg batches and recvfrom operations on
/// real backends (the same on Linux's real sockets only), the mock's one.
template <class Loop>
std::vector<bool> receive_paths() {
  if constexpr (is_mock<Loop>)
    return {false};
  else
    return {true, false};
}

std::uint64_t fnv(std::span<const std::byte> d) {
  std::uint64_t h = 1469598103934665603ull;
  for (std::byte b : d) h = (h ^ static_cast<std::uint64_t>(b)) * 1099511628211ull;
  return h;
}

/// A udp6 socket bound to ::1, or a WARN (and an empty socket) where IPv6 is unavailable.
template <class Loop>
dgram::socket ipv6_socket(Loop& loop, bool batched) {
  std::error_code ec;
  auto s = dgram::create_socket(loop, {.type = dgram::udp6, .recvmmsg = batched}, ec);
  if (!ec) ec = s.bind(0, "::1");
  if (ec) {
    WARN("no IPv6 loopback here (" << ec.message() << "): the ::1 part is skipped");
    return {};
  }
  return s;
}

}  // namespace

TEMPLATE_TEST_CASE("dgram: send and receive on 127.0.0.1 and ::1 with the sender's address", "[dgram]",
                   PHASELOOP_TEST_IO_LOOPS) {
  for (bool batched : receive_paths<TestType>()) {
    CAPTURE(batched);
    TestType loop;
    deadline(loop);
    // IPv4
    auto a = dgram::create_socket(loop, {.type = dgram::udp4, .recvmmsg = batched});
    auto b = dgram::create_socket(loop, {.type = dgram::udp4, .recvmmsg = batched});
    CHECK_FALSE(a.active());
    int listening = 0;
    a.on_listening([&] { ++listening; });
    REQUIRE_FALSE(a.bind(0, "127.0.0.1"));
    CHECK(a.active());
    CHECK(a.bound());
    REQUIRE_FALSE(b.bind(0, "127.0.0.1"));
    const net::address a_addr = a.local_address();
    const net::address b_addr = b.local_address();
    CHECK(a_addr.ip_text() == "127.0.0.1");
    CHECK(a_addr.port() != 0);
    std::vector<std::string> log;
    a.on_message([&](std::span<const std::byte> d, const net::address& from) {
      log.push_back("a got " + text(d) + " from " + (from == b_addr ? "b" : from.to_string()));
      a.send("pong", from, [&](std::error_code ec) {
        CHECK_FALSE(ec);
        log.push_back("a sent");
      });
    });
    b.on_message([&](std::span<const std::byte> d, const net::address& from) {
      log.push_back("b got " + text(d) + " from " + (from == a_addr ? "a" : from.to_string()));
      a.close();
      b.close();
    });
    int sent = 0;
    REQUIRE_FALSE(b.send("ping", a_addr, [&](std::error_code ec) {
      CHECK_FALSE(ec);
      ++sent;
    }));
    loop.run();
    CHECK(sent == 1);
    CHECK(listening == 1);
    CHECK(log == std::vector<std::string>{"a got ping from b", "a sent", "b got pong from a"});
    CHECK_FALSE(a);
    CHECK(a.bind(0) == std::errc::bad_file_descriptor);

    // IPv6
    auto c = ipv6_socket(loop, batched);
    auto d = ipv6_socket(loop, batched);
    if (!c || !d) continue;
    CHECK(c.local_address().ip_text() == "::1");
    std::string got;
    net::address from6;
    c.on_message([&](std::span<const std::byte> bytes, const net::address& from) {
      got = text(bytes);
      from6 = from;
      c.close();
      d.close();
    });
    REQUIRE_FALSE(d.send("over six", c.local_address()));
    loop.run();
    CHECK(got == "over six");
    CHECK(from6.family() == net::address_family::ipv6);
    CHECK(from6.to_string() == "[::1]:" + std::to_string(from6.port()));
    CHECK(from6.port() != 0);
  }
}

TEMPLATE_TEST_CASE("dgram: 1,000 datagrams of random sizes each arrive intact", "[dgram]", PHASELOOP_TEST_IO_LOOPS) {
  for (bool batched : receive_paths<TestType>()) {
    CAPTURE(batched);
    TestType loop;
    deadline(loop);
    constexpr std::uint32_t total = 1000;
    constexpr std::uint32_t window = 4;  // sent and not yet received: the receiver keeps up, nothing drops
    auto rx = dgram::create_socket(loop, {.recv_buffer_size = 4 << 20, .recvmmsg = batched});
    auto tx = dgram::create_socket(loop, {.recvmmsg = batched});
    REQUIRE_FALSE(rx.bind(0, "127.0.0.1"));
    const net::address to = rx.local_address();
    det_random rng(batched ? 7 : 8);
    std::vector<std::uint64_t> expected(total, 0);
    std::vector<std::size_t> sizes(total, 0);
    std::vector<int> seen(total, 0);
    std::vector<int> callbacks(total, 0);
    std::uint32_t next = 0;
    std::uint32_t received = 0;
    std::uint32_t bad = 0;
    std::uint32_t wrong_sender = 0;
    auto send_one = [&] {
      const std::uint32_t i = next++;
      // Mostly small, some up to 16 KiB, every 97th the largest IPv4 datagram (65,507 bytes).
      std::size_t n = i % 97 == 0 ? 65507 : rng.chance(80) ? rng.between(4, 1400) : rng.between(4, 16384);
      if (i % 101 == 0) n = 4;  // just the index
      std::vector<std::byte> d(n);
      std::memcpy(d.data(), &i, 4);
      for (std::size_t k = 4; k < n; ++k) d[k] = static_cast<std::byte>(rng.next());
      expected[i] = fnv(d);
      sizes[i] = n;
      REQUIRE_FALSE(tx.send(d, to, [&, i](std::error_code ec) {
        CHECK_FALSE(ec);
        ++callbacks[i];
      }));
    };
    rx.on_message([&](std::span<const std::byte> d, const net::address& from) {
      if (from.ip_text() != "127.0.0.1" || from.port() != tx.local_address().port()) ++wrong_sender;
      std::uint32_t i = 0;
      if (d.size() < 4 || (std::memcpy(&i, d.data(), 4), i >= total) || d.size() != sizes[i] || fnv(d) != expected[i]) {
        ++bad;
      } else {
        ++seen[i];
      }
      if (++received == total) {
        rx.close();
        tx.close();
        return;
      }
      if (next < total) send_one();
    });
    for (std::uint32_t k = 0; k < window; ++k) send_one();
    loop.run();
    CHECK(received == total);
    CHECK(bad == 0);
    CHECK(wrong_sender == 0);
    CHECK(std::count(seen.begin(), seen.end(), 1) == total);
    CHECK(std::count(callbacks.begin(), callbacks.end(), 1) == total);
  }
}

TEMPLATE_TEST_CASE("dgram: datagrams and send callbacks keep their order", "[dgram]", PHASELOOP_TEST_IO_LOOPS) {
  TestType loop;
  deadline(loop);
  auto rx = dgram::create_socket(loop);
  auto tx = dgram::create_socket(loop);
  REQUIRE_FALSE(rx.bind(0, "127.0.0.1"));
  std::vector<int> got;
  std::vector<int> done;
  rx.on_message([&](std::span<const std::byte> d, const net::address&) {
    got.push_back(std::stoi(text(d)));
    if (got.size() == 64) {
      rx.close();
      tx.close();
    }
  });
  for (int i = 0; i < 64; ++i)
    REQUIRE_FALSE(tx.send(std::to_string(i), rx.local_address(), [&, i](std::error_code ec) {
      CHECK_FALSE(ec);
      done.push_back(i);
    }));
  CHECK(tx.send_queue_count() == 64);
  CHECK(tx.bound());  // the first send bound it
  loop.run();
  std::vector<int> in_order(64);
  for (int i = 0; i < 64; ++i) in_order[static_cast<std::size_t>(i)] = i;
  CHECK(got == in_order);
  CHECK(done == in_order);
}

TEMPLATE_TEST_CASE("dgram: a zero-copy send and an empty datagram", "[dgram]", PHASELOOP_TEST_IO_LOOPS) {
  TestType loop;
  deadline(loop);
  auto rx = dgram::create_socket(loop);
  auto tx = dgram::create_socket(loop);
  REQUIRE_FALSE(rx.bind(0, "127.0.0.1"));
  std::vector<std::size_t> sizes;
  std::string first;
  rx.on_message([&](std::span<const std::byte> d, const net::address&) {
    if (sizes.empty()) first = text(d);
    sizes.push_back(d.size());
    if (sizes.size() == 2) rx.close();
  });
  const std::string borrowed = "borrowed bytes";
  bool done = false;
  REQUIRE_FALSE(tx.send_borrowed(std::as_bytes(std::span(borrowed.data(), borrowed.size())), rx.local_address(),
                                 [&](std::error_code ec) {
                                   CHECK_FALSE(ec);
                                   done = true;
                                 }));
  REQUIRE_FALSE(tx.send(std::span<const std::byte>(), rx.local_address()));
  tx.unref();
  loop.run();
  CHECK(done);
  CHECK(first == "borrowed bytes");
  CHECK(sizes == std::vector<std::size_t>{14, 0});
}

TEMPLATE_TEST_CASE("dgram: a connected socket sends without an address and hears only its peer", "[dgram]",
                   PHASELOOP_TEST_IO_LOOPS) {
  for (bool batched : receive_paths<TestType>()) {
    CAPTURE(batched);
    TestType loop;
    deadline(loop);
    auto a = dgram::create_socket(loop, {.recvmmsg = batched});
    auto b = dgram::create_socket(loop, {.recvmmsg = batched});
    auto c = dgram::create_socket(loop, {.recvmmsg = batched});
    REQUIRE_FALSE(b.bind(0, "127.0.0.1"));
    REQUIRE_FALSE(c.bind(0, "127.0.0.1"));
    std::vector<std::string> a_got, b_got, c_got;
    a.on_message([&](std::span<const std::byte> d, const net::address&) { a_got.push_back(text(d)); });
    b.on_message([&](std::span<const std::byte> d, const net::address& from) {
      b_got.push_back(text(d) + (from == a.local_address() ? " from a" : " from ?"));
    });
    c.on_message([&](std::span<const std::byte> d, const net::address&) { c_got.push_back(text(d)); });

    CHECK(a.send("x") == std::errc::destination_address_required);
    CHECK(a.disconnect() == std::errc::not_connected);
    CHECK(a.connect(0, "127.0.0.1") == std::errc::invalid_argument);
    int connected = 0;
    REQUIRE_FALSE(a.connect(b.local_address(), [&](std::error_code ec) {
      CHECK_FALSE(ec);
      ++connected;
      CHECK(a.connected());
      CHECK(a.remote_address() == b.local_address());
      // Connected: the address form is refused, as Node's ERR_SOCKET_DGRAM_IS_CONNECTED.
      CHECK(a.send("x", c.local_address()) == std::errc::already_connected);
      CHECK(a.connect(c.local_address()) == std::errc::already_connected);
      REQUIRE_FALSE(a.send("hello b"));
      // c speaks first, then b: a hears only b.
      REQUIRE_FALSE(c.send("from c", a.local_address(), [&](std::error_code ec) {
        CHECK_FALSE(ec);
        REQUIRE_FALSE(b.send("from b", a.local_address()));
      }));
    }));
    CHECK(a.bound());  // connect bound it
    CHECK_FALSE(a.connected());  // not until its callback
    CHECK(a.local_address().port() != 0);

    // Once a heard b (and c's datagram had its chance), disconnect and send by address.
    loop.set_interval([&, step = 0]() mutable {
      if (a_got.empty() || b_got.empty()) return;
      if (step++ == 0) {
        REQUIRE_FALSE(a.disconnect());
        CHECK_FALSE(a.connected());
        CHECK(a.remote_address().empty());
        CHECK(a.send("x") == std::errc::destination_address_required);
        REQUIRE_FALSE(a.send("after disconnect", c.local_address()));
        return;
      }
      if (c_got.empty()) return;
      a.close();
      b.close();
      c.close();
      loop.stop();
    }, 10ms);
    loop.run();
    CHECK(connected == 1);
    CHECK(b_got == std::vector<std::string>{"hello b from a"});
    CHECK(a_got == std::vector<std::string>{"from b"});
    CHECK(c_got == std::vector<std::string>{"after disconnect"});
  }
}

TEMPLATE_TEST_CASE("dgram: every send callback runs once, also when the socket closes with sends queued", "[dgram]",
                   PHASELOOP_TEST_IO_LOOPS) {
  TestType loop;
  deadline(loop);
  auto rx = dgram::create_socket(loop);
  auto tx = dgram::create_socket(loop);
  REQUIRE_FALSE(rx.bind(0, "127.0.0.1"));
  constexpr int n = 100;
  std::vector<int> calls(n, 0);
  int ok = 0, cancelled = 0, other = 0;
  std::vector<std::string> order;
  for (int i = 0; i < n; ++i) {
    REQUIRE_FALSE(tx.send(std::string(100, 'x'), rx.local_address(), [&, i](std::error_code ec) {
      ++calls[static_cast<std::size_t>(i)];
      if (!ec) ++ok;
      else if (ec == std::errc::operation_canceled) ++cancelled;
      else ++other;
      if (i == n - 1) order.push_back("last send callback");
    }));
  }
  tx.on_close([&] { order.push_back("on_close"); });
  tx.close([&] {
    order.push_back("close callback");
    rx.close();
  });
  // After close: refused at once, and no callback.
  bool late = false;
  CHECK(tx.send("late", rx.local_address(), [&](std::error_code) { late = true; }) ==
        std::errc::bad_file_descriptor);
  loop.run();
  CHECK(std::count(calls.begin(), calls.end(), 1) == n);
  CHECK(ok + cancelled == n);
  CHECK(other == 0);
  CHECK_FALSE(late);
  if constexpr (is_mock<TestType>) CHECK(cancelled == n);  // the mock sends at the next poll: all were queued
  CHECK(order == std::vector<std::string>{"last send callback", "on_close", "close callback"});
}

TEMPLATE_TEST_CASE("dgram: closing from inside on_message stops further messages", "[dgram]",
                   PHASELOOP_TEST_IO_LOOPS) {
  for (bool batched : receive_paths<TestType>()) {
    CAPTURE(batched);
    TestType loop;
    deadline(loop);
    auto rx = dgram::create_socket(loop, {.recvmmsg = batched});
    auto tx = dgram::create_socket(loop);
    REQUIRE_FALSE(rx.bind(0, "127.0.0.1"));
    int messages = 0;
    bool closed = false;
    rx.on_message([&](std::span<const std::byte>, const net::address&) {
      ++messages;
      rx.close();
      rx.close();  // twice: harmless
    });
    rx.on_close([&] { closed = true; });
    int sent = 0;
    for (int i = 0; i < 10; ++i)
      REQUIRE_FALSE(tx.send(message_name(i), rx.local_address(), [&](std::error_code ec) {
        CHECK_FALSE(ec);
        if (++sent == 10) loop.set_timeout([&] { tx.close(); }, 50ms);
      }));
    loop.run();
    CHECK(messages == 1);
    CHECK(closed);
    CHECK(sent == 10);
  }
}

TEMPLATE_TEST_CASE("dgram: pause holds messages, resume delivers them in order", "[dgram]", PHASELOOP_TEST_IO_LOOPS) {
  for (bool batched : receive_paths<TestType>()) {
    CAPTURE(batched);
    TestType loop;
    deadline(loop);
    auto rx = dgram::create_socket(loop, {.recvmmsg = batched});
    auto tx = dgram::create_socket(loop);
    REQUIRE_FALSE(rx.bind(0, "127.0.0.1"));
    std::vector<std::string> got;
    rx.on_message([&](std::span<const std::byte> d, const net::address&) {
      got.push_back(text(d));
      if (got.size() == 2) {  // in the middle of a batch: the rest waits
        rx.pause();
        CHECK(rx.paused());
        loop.set_timeout([&] {
          CHECK(got.size() == 2);
          rx.resume();
        }, 30ms);
      }
      if (got.size() == 6) {
        rx.pause();  // paused before anything arrives...
        loop.set_timeout([&] {
          CHECK(got.size() == 6);
          rx.resume();  // ... and resumed
        }, 30ms);
        for (int i = 6; i < 9; ++i) REQUIRE_FALSE(tx.send(message_name(i), rx.local_address()));
      }
      if (got.size() == 9) {
        rx.close();
        tx.close();
      }
    });
    for (int i = 0; i < 6; ++i) REQUIRE_FALSE(tx.send(message_name(i), rx.local_address()));
    loop.run();
    CHECK(got == std::vector<std::string>{"m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8"});
  }
}

TEMPLATE_TEST_CASE("dgram: a datagram longer than max_message_size is delivered truncated", "[dgram]",
                   PHASELOOP_TEST_IO_LOOPS) {
  for (bool batched : receive_paths<TestType>()) {
    CAPTURE(batched);
    TestType loop;
    deadline(loop);
    auto rx = dgram::create_socket(loop, {.max_message_size = 100, .recvmmsg = batched});
    auto tx = dgram::create_socket(loop);
    REQUIRE_FALSE(rx.bind(0, "127.0.0.1"));
    std::string long_one(300, 'a');
    for (std::size_t i = 0; i < long_one.size(); ++i) long_one[i] = static_cast<char>('a' + i % 26);
    std::vector<std::string> got;
    rx.on_message([&](std::span<const std::byte> d, const net::address&) {
      got.push_back(text(d));
      if (got.size() == 2) {
        rx.close();
        tx.close();
      }
    });
    REQUIRE_FALSE(tx.send(long_one, rx.local_address()));
    REQUIRE_FALSE(tx.send(std::string(100, 'z'), rx.local_address()));
    loop.run();
    REQUIRE(got.size() == 2);
    CHECK(got[0] == long_one.substr(0, 100));
    CHECK(got[1] == std::string(100, 'z'));
  }
  TestType loop;
  auto s = dgram::create_socket(loop, {.max_message_size = 100});
  CHECK(s.truncated_messages() == 0);
  std::error_code ec;
  CHECK_FALSE(dgram::create_socket(loop, {.max_message_size = 0}, ec));
  CHECK(ec == std::errc::invalid_argument);
  CHECK_FALSE(dgram::create_socket(loop, {.max_message_size = 65537}, ec));
  CHECK(ec == std::errc::invalid_argument);
  CHECK_THROWS_AS(dgram::create_socket(loop, {.recv_buffer_size = -1}), std::system_error);
}

TEMPLATE_TEST_CASE("dgram: truncation is counted", "[dgram]", PHASELOOP_TEST_IO_LOOPS) {
  TestType loop;
  deadline(loop);
  auto rx = dgram::create_socket(loop, {.max_message_size = 10});
  auto tx = dgram::create_socket(loop);
  REQUIRE_FALSE(rx.bind(0, "127.0.0.1"));
  std::uint64_t truncated_seen = 0;
  std::size_t size = 0;
  rx.on_message([&](std::span<const std::byte> d, const net::address&) {
    size = d.size();
    truncated_seen = rx.truncated_messages();
    rx.close();
    tx.close();
  });
  REQUIRE_FALSE(tx.send(std::string(64, 'q'), rx.local_address()));
  loop.run();
  CHECK(size == 10);
  CHECK(truncated_seen == 1);
}

TEMPLATE_TEST_CASE("dgram: binding a port in use is EADDRINUSE; other bind errors", "[dgram]",
                   PHASELOOP_TEST_IO_LOOPS) {
  TestType loop;
  auto a = dgram::create_socket(loop);
  auto b = dgram::create_socket(loop);
  REQUIRE_FALSE(a.bind(0, "127.0.0.1"));
  const std::uint16_t port = a.local_address().port();
  CHECK(b.bind(port, "127.0.0.1") == std::errc::address_in_use);
  CHECK_FALSE(b.bound());
  CHECK_FALSE(b.active());
  CHECK(a.bind(0, "127.0.0.1") == std::errc::invalid_argument);  // bound already
  CHECK(b.bind(0, "127.0.0.1.5") == std::errc::invalid_argument);
  CHECK(b.bind(0, "::1") == std::errc::invalid_argument);  // an IPv6 address on udp4
  CHECK(b.bind(net::address{}) == std::errc::invalid_argument);
  REQUIRE_FALSE(b.bind(0, "127.0.0.1"));  // still usable
  a.close();
  b.close();
  loop.run();
}

#if defined(__linux__)  // real backends to test on
TEMPLATE_TEST_CASE("dgram: reuse_addr lets two sockets bind one port", "[dgram]", PHASELOOP_TEST_REAL_IO_LOOPS) {
  TestType loop;
  auto a = dgram::create_socket(loop, {.reuse_addr = true});
  auto b = dgram::create_socket(loop, {.reuse_addr = true});
  REQUIRE_FALSE(a.bind(0, "127.0.0.1"));
  CHECK_FALSE(b.bind(a.local_address().port(), "127.0.0.1"));
  CHECK(b.local_address() == a.local_address());
}
#endif

TEMPLATE_TEST_CASE("dgram: bad multicast groups, interfaces and TTLs are invalid_argument", "[dgram]",
                   PHASELOOP_TEST_IO_LOOPS) {
  TestType loop;
  auto s = dgram::create_socket(loop);
  const auto invalid = std::errc::invalid_argument;
  for (int ttl : {0, -1, 256, 100000}) {
    CAPTURE(ttl);
    CHECK(s.set_ttl(ttl) == invalid);
  }
  CHECK_FALSE(s.set_ttl(1));
  CHECK_FALSE(s.set_ttl(255));
  for (int ttl : {-1, 256}) CHECK(s.set_multicast_ttl(ttl) == invalid);
  CHECK_FALSE(s.set_multicast_ttl(0));
  CHECK_FALSE(s.set_multicast_ttl(255));
  CHECK_FALSE(s.set_multicast_loopback(true));
  for (const char* group : {"", "not an address", "239.1.2", "10.0.0.1", "223.255.255.255", "ff02::1", "239.1.2.3.4"}) {
    CAPTURE(group);
    CHECK(s.add_membership(group) == invalid);
    CHECK(s.drop_membership(group) == invalid);
  }
  CHECK(s.add_membership("239.1.2.3", "bogus") == invalid);
  CHECK(s.add_membership("239.1.2.3", "::1") == invalid);
  CHECK(s.set_multicast_interface("bogus") == invalid);
  CHECK(s.set_multicast_interface("::1") == invalid);
  CHECK_FALSE(s.set_multicast_interface("127.0.0.1"));
  CHECK(s.set_recv_buffer_size(0) == invalid);
  CHECK(s.set_send_buffer_size(-5) == invalid);
  CHECK_FALSE(s.set_recv_buffer_size(64 * 1024));
  CHECK(s.send("x", net::address::loopback_ipv4(0)) == invalid);  // port 0
  CHECK(s.send("x", net::address::loopback_ipv6(9)) == invalid);  // another family
  CHECK(s.send("x", 9, "nope") == invalid);
  CHECK(s.connect(9, "::1") == invalid);
  CHECK_FALSE(s.bound());  // nothing above bound it

  std::error_code ec;
  auto six = dgram::create_socket(loop, {.type = dgram::udp6}, ec);
  if (ec) {
    WARN("no IPv6 sockets here: " << ec.message());
  } else {
    CHECK(six.add_membership("239.1.2.3") == invalid);
    CHECK(six.add_membership("fe80::1") == invalid);  // not multicast
    CHECK(six.add_membership("ff02::1", "127.0.0.1") == invalid);
    CHECK(six.set_ttl(0) == invalid);
    CHECK_FALSE(six.set_ttl(64));
    CHECK(six.set_multicast_ttl(256) == invalid);
    CHECK_FALSE(six.set_multicast_ttl(3));
    CHECK_FALSE(six.set_multicast_loopback(false));
    CHECK_FALSE(six.set_multicast_interface(""));
  }
  s.close();
  CHECK(s.set_ttl(64) == std::errc::bad_file_descriptor);
  CHECK(s.add_membership("239.1.2.3") == std::errc::bad_file_descriptor);
}

TEMPLATE_TEST_CASE("dgram: the broadcast flag is set and read back", "[dgram]", PHASELOOP_TEST_IO_LOOPS) {
  TestType loop;
  auto s = dgram::create_socket(loop);
  CHECK_FALSE(s.broadcast());
  REQUIRE_FALSE(s.set_broadcast(true));
  CHECK(s.broadcast());
  auto kernel = [&]() -> int {
#if !defined(_WIN32)
    int value = -1;
    socklen_t length = sizeof value;
    REQUIRE(::getsockopt(static_cast<int>(s.native()), SOL_SOCKET, SO_BROADCAST, &value, &length) == 0);
    return value != 0 ? 1 : 0;
#else
    return -1;
#endif
  };
  if constexpr (!is_mock<TestType>) CHECK(kernel() == 1);
  REQUIRE_FALSE(s.set_broadcast(false));
  CHECK_FALSE(s.broadcast());
  if constexpr (!is_mock<TestType>) {
    CHECK(kernel() == 0);
    std::error_code ec;
    REQUIRE_FALSE(s.set_recv_buffer_size(100000));
    CHECK(s.recv_buffer_size(ec) >= 100000);
    CHECK_FALSE(ec);
    CHECK(s.send_buffer_size(ec) > 0);
    CHECK_FALSE(ec);
  } else {
    std::error_code ec;
    (void)s.recv_buffer_size(ec);
    CHECK(ec == std::errc::operation_not_supported);
  }
}

#if defined(__linux__)  // real backends to test on
TEMPLATE_TEST_CASE("dgram: multicast loopback on 239.x (and ff15:: on udp6)", "[dgram]",
                   PHASELOOP_TEST_REAL_IO_LOOPS) {
  for (bool batched : receive_paths<TestType>()) {
    for (dgram::socket_type type : {dgram::udp4, dgram::udp6}) {
      const bool six = type == dgram::udp6;
      const char* group = six ? "ff15::4242" : "239.255.42.99";
      CAPTURE(batched, group);
      TestType loop;
      deadline(loop);
      std::error_code ec;
      auto rx = dgram::create_socket(loop, {.type = type, .reuse_addr = true, .recvmmsg = batched}, ec);
      auto tx = dgram::create_socket(loop, {.type = type}, ec);
      if (ec) {
        WARN("no " << (six ? "udp6" : "udp4") << " sockets here (" << ec.message() << "): skipped");
        continue;
      }
      REQUIRE_FALSE(rx.bind(0));  // the wildcard: multicast is delivered to the group's port
      if ((ec = rx.add_membership(group))) {
        WARN("add_membership(" << group << ") failed here (" << ec.message() << "): multicast is skipped");
        continue;
      }
      REQUIRE_FALSE(tx.set_multicast_loopback(true));
      REQUIRE_FALSE(tx.set_multicast_ttl(1));
      std::string got;
      bool skipped = false;
      rx.on_message([&](std::span<const std::byte> d, const net::address&) {
        got = text(d);
        CHECK_FALSE(rx.drop_membership(group));
        CHECK(rx.drop_membership(group));  // not a member any more
        rx.close();
        tx.close();
      });
      REQUIRE_FALSE(tx.send("to the group", rx.local_address().port(), group, [&](std::error_code send_error) {
        if (send_error) {
          WARN("a send to " << group << " failed here (" << send_error.message() << "): multicast is skipped");
          skipped = true;
          rx.close();
          tx.close();
        }
      }));
      loop.run();
      if (!skipped) CHECK(got == "to the group");
    }
  }
}
#endif

#if defined(__linux__)  // real backends to test on
TEMPLATE_TEST_CASE("dgram: a connected socket hears ECONNREFUSED when nobody listens", "[dgram]",
                   PHASELOOP_TEST_REAL_IO_LOOPS) {
  for (bool batched : receive_paths<TestType>()) {
    CAPTURE(batched);
    TestType loop;
    deadline(loop);
    net::address gone;
    {
      auto probe = dgram::create_socket(loop);
      REQUIRE_FALSE(probe.bind(0, "127.0.0.1"));
      gone = probe.local_address();
    }  // closed: nobody listens on its port
    loop.run();
    auto s = dgram::create_socket(loop, {.recvmmsg = batched});
    std::error_code error;
    s.on_error([&](std::error_code ec) {
      error = ec;
      s.close();
    });
    REQUIRE_FALSE(s.connect(gone, [&](std::error_code ec) {
      REQUIRE_FALSE(ec);
      REQUIRE_FALSE(s.send("anyone?", [&](std::error_code send_error) {
        if (send_error) {  // the refusal may come back on the send instead
          error = send_error;
          s.close();
        }
      }));
    }));
    loop.run();
    CHECK(error == std::errc::connection_refused);
  }
}
#endif

TEMPLATE_TEST_CASE("dgram: ref, unref and active; a socket outliving its loop", "[dgram]", PHASELOOP_TEST_IO_LOOPS) {
  dgram::socket outlives;
  {
    TestType loop;
    auto s = dgram::create_socket(loop);
    CHECK(s.has_ref());
    CHECK_FALSE(s.active());
    REQUIRE_FALSE(s.bind(0, "127.0.0.1"));
    CHECK(s.active());
    s.unref();
    CHECK_FALSE(s.has_ref());
    loop.run();  // an unref'd socket does not keep the loop alive
    CHECK(s);
    s.ref();
    CHECK(loop.alive());
    s.close();
    CHECK_FALSE(s.active());
    loop.run();
    CHECK_FALSE(loop.alive());

    outlives = dgram::create_socket(loop);
    REQUIRE_FALSE(outlives.send("queued", net::address::loopback_ipv4(9), [](std::error_code) {}));
  }  // the loop goes with a socket open and a send queued
  CHECK_FALSE(outlives);
  CHECK(outlives.send("x", net::address::loopback_ipv4(9)) == std::errc::bad_file_descriptor);
  outlives.close();
}
