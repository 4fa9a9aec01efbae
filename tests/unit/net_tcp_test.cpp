// net: TCP and Unix domain sockets on loopback, on every real backend (and
// the mock's virtual network where the test is about the stream logic):
// bytes intact, every write callback once, refused and reset connections,
// half-close, closing from inside callbacks, descriptor limits.

#include "support.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <functional>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#if !defined(_WIN32)
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

using namespace phaseloop;
using namespace phaseloop::test;

namespace {

std::string text(std::span<const std::byte> d) { return {reinterpret_cast<const char*>(d.data()), d.size()}; }

/// Fails the test and stops the loop if it is still running after `limit`.
template <class Loop>
void deadline(Loop& loop, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  loop.set_timeout([&loop, limit] {
    FAIL("the loop was still running after " << limit.count() << " ms");
    loop.stop();
  }, limit).unref();
}

/// An echo server: every byte back, end after the peer's end.
inline net::server echo_server(loop_core& loop) {
  auto server = net::create_server(loop, [](net::socket s) {
    s.on_data([s](std::span<const std::byte> d) mutable { s.write(d); });
  });
  REQUIRE_FALSE(server.listen(0, "127.0.0.1"));
  return server;
}

std::uint64_t fnv(std::uint64_t h, std::span<const std::byte> d) {
  for (std::byte b : d) h = (h ^ static_cast<std::uint64_t>(b)) * 1099511628211ull;
  return h;
}

}  // namespace

TEMPLATE_TEST_CASE("net: addresses parse and format; malformed text is invalid_argument", "[net]",
                   mock_heap_loop) {
  net::address a;
  REQUIRE_FALSE(net::address::parse_ip("127.0.0.1", 80, a));
  CHECK(a.to_string() == "127.0.0.1:80");
  CHECK(a.family() == net::address_family::ipv4);
  REQUIRE_FALSE(net::address::parse_ip("::1", 8080, a));
  CHECK(a.to_string() == "[::1]:8080");
  REQUIRE_FALSE(net::address::parse_ip("fe80::1%7", 1, a));
  CHECK(a.scope_id() == 7);
  CHECK(a.to_string() == "[fe80::1%7]:1");
  REQUIRE_FALSE(net::address::parse("[::ffff:1.2.3.4]:65535", a));
  CHECK(a.port() == 65535);
  REQUIRE_FALSE(net::address::parse("10.1.2.3:0", a));
  CHECK(a.ip_text() == "10.1.2.3");
  REQUIRE_FALSE(net::address::parse("/tmp/x.sock", a));
  CHECK(a.path() == "/tmp/x.sock");
#if defined(__linux__)
  REQUIRE_FALSE(net::address::parse("@name", a));
  CHECK(a.is_abstract());
  CHECK(a.to_string() == "@name");
#endif
  for (const char* bad : {"", "1.2.3", "256.0.0.1", "1.2.3.4.5", "::g", "[::1]", "[::1]:", "[::1]:65536",
                          "1.2.3.4:99999", "1.2.3.4:-1", "host:80", "1.2.3.4", ":80", "[::1:80", "fe80::1%",
                          "fe80::1%nonexistent-interface-name"}) {
    CAPTURE(bad);
    CHECK(net::address::parse(bad, a) == std::errc::invalid_argument);
    CHECK(a.empty());
  }
  CHECK(net::address::parse_ip(std::string_view("1.2.3.4\0x", 9), 1, a) == std::errc::invalid_argument);
  CHECK(net::address::parse_unix_path(std::string(200, 'x'), a) == std::errc::filename_too_long);
  CHECK_THROWS_AS(net::address::ip("nope", 1), std::system_error);
  CHECK(net::address::from_raw(nullptr, 0).empty());
}

TEMPLATE_TEST_CASE("net: 100 MB through one connection arrive intact", "[net]", PHASELOOP_TEST_IO_LOOPS) {
  TestType loop;
  deadline(loop, std::chrono::seconds(90));  // 100 MB under TSan on a loaded 2-core machine takes over 20 s
  const std::size_t total = 100u << 20;
  std::uint64_t sent_hash = 1469598103934665603ull;
  std::uint64_t got_hash = 1469598103934665603ull;
  std::size_t received = 0;
  bool ended = false;
  net::server server(loop);
  server.on_connection([&](net::socket s) {
    s.on_data([&](std::span<const std::byte> d) {
      got_hash = fnv(got_hash, d);
      received += d.size();
    });
    s.on_end([&] { ended = true; });
  });
  REQUIRE_FALSE(server.listen(0, "127.0.0.1"));
  auto c = net::connect(loop, server.local_address());
  std::vector<std::byte> chunk(256 * 1024);
  std::size_t written = 0;
  std::mt19937 rng(42);
  std::function<void()> pump = [&] {
    while (written < total) {
      for (auto& b : chunk) b = static_cast<std::byte>(rng());
      const std::size_t n = std::min(chunk.size(), total - written);
      sent_hash = fnv(sent_hash, std::span(chunk.data(), n));
      written += n;
      if (!c.write(std::span(chunk.data(), n))) return;  // wait for drain
    }
    c.end();
    server.close();
  };
  c.on_connect(pump).on_drain(pump);
  loop.run();
  CHECK(received == total);
  CHECK(got_hash == sent_hash);
  CHECK(ended);
}

TEMPLATE_TEST_CASE("net: 10,000 queued writes to a peer that does not read, then close: each callback once",
                   "[net]", PHASELOOP_TEST_IO_LOOPS) {
  TestType loop;
  deadline(loop);
  std::vector<net::socket> accepted;
  net::server server(loop);
  server.on_connection([&](net::socket s) {
    s.pause();  // never reads
    accepted.push_back(s);
  });
  REQUIRE_FALSE(server.listen(0, "127.0.0.1"));
  auto c = net::connect(loop, server.local_address());
  std::vector<int> calls(10000, 0);
  int ok = 0, cancelled = 0, other = 0;
  bool closed = false;
  c.on_connect([&] {
    const std::string payload(4096, 'x');
    for (int i = 0; i < 10000; ++i)
      c.write(payload, [&, i](std::error_code ec) {
        ++calls[static_cast<std::size_t>(i)];
        if (!ec) ++ok;
        else if (ec == std::errc::operation_canceled) ++cancelled;
        else ++other;
      });
    CHECK(c.buffered() > 0);
    loop.set_timeout([&] {  // the socket buffers are full by now
      c.destroy();
      for (auto& s : accepted) s.destroy();
      server.close();
    }, 50ms);
  });
  c.on_close([&](bool had_error) {
    CHECK_FALSE(had_error);
    closed = true;
  });
  loop.run();
  CHECK(closed);
  CHECK(std::all_of(calls.begin(), calls.end(), [](int n) { return n == 1; }));
  CHECK(ok + cancelled == 10000);
  CHECK(other == 0);
  CHECK(cancelled > 0);  // 40 MB cannot fit in the socket buffers
}

TEMPLATE_TEST_CASE("net: 1,000 concurrent connections to an echo server, 100 messages each, every byte verified",
                   "[net]", PHASELOOP_TEST_IO_LOOPS) {
#if !defined(_WIN32)
  // Two descriptors per connection: raise the soft limit as a server would.
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_cur < 4096 && lim.rlim_max > lim.rlim_cur) {
    lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, 4096);
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
#endif
  TestType loop;
  deadline(loop, std::chrono::seconds(60));
  auto server = echo_server(loop);
  constexpr int connections = 1000;
  constexpr int messages = 100;
  int finished = 0, mismatches = 0;
  std::uint64_t bytes = 0;
  struct client {
    net::socket s;
    std::mt19937 rng;
    std::string expect;  // bytes sent and not yet echoed
    int sent = 0;
  };
  std::vector<std::unique_ptr<client>> clients;
  for (int i = 0; i < connections; ++i) {
    auto cl = std::make_unique<client>();
    cl->rng.seed(static_cast<unsigned>(i));
    client* p = cl.get();
    auto send_one = [&loop, p] {
      (void)loop;
      std::uniform_int_distribution<int> size(1, 2000);
      std::string m(static_cast<std::size_t>(size(p->rng)), '\0');
      for (char& ch : m) ch = static_cast<char>('a' + p->rng() % 26);
      p->expect += m;
      ++p->sent;
      p->s.write(m);
    };
    cl->s = net::connect(loop, server.local_address());
    cl->s.on_connect(send_one);
    cl->s.on_data([&, p, send_one](std::span<const std::byte> d) {
      const std::string got = text(d);
      bytes += got.size();
      if (p->expect.compare(0, got.size(), got) != 0) ++mismatches;
      p->expect.erase(0, got.size());
      if (!p->expect.empty()) return;  // the rest of this message is on its way
      if (p->sent < messages) {
        send_one();
      } else {
        p->s.end();
      }
    });
    cl->s.on_close([&](bool had_error) {
      CHECK_FALSE(had_error);
      if (++finished == connections) server.close();
    });
    clients.push_back(std::move(cl));
  }
  loop.run();
  CHECK(finished == connections);
  CHECK(mismatches == 0);
  CHECK(bytes > 1000u * 100u);
}

TEMPLATE_TEST_CASE("net: a connection refused is an error, then close", "[net]", PHASELOOP_TEST_IO_LOOPS) {
  TestType loop;
  net::address nobody;
  {
    auto probe = net::create_server(loop);  // a port that was free a moment ago
    REQUIRE_FALSE(probe.listen(0, "127.0.0.1"));
    nobody = probe.local_address();
    probe.close();
    loop.run();
  }
  trace out;
  auto c = net::connect(loop, nobody);
  c.on_connect([&] { out.push_back("connect"); });
  c.on_error([&](std::error_code ec) { out.push_back(error_name(ec)); });
  c.on_close([&](bool had_error) { out.push_back(had_error ? "close(error)" : "close"); });
  loop.run();
  CHECK(out == trace{"ECONNREFUSED", "close(error)"});
  CHECK_FALSE(c);
  CHECK_FALSE(c.write("late"));
}

#if !defined(_WIN32)
TEMPLATE_TEST_CASE("net: a reset by the peer is ECONNRESET", "[net]", PHASELOOP_TEST_REAL_IO_LOOPS) {
  TestType loop;
  deadline(loop);
  auto server = net::create_server(loop, [](net::socket s) {
    // Abortive close: SO_LINGER 0 sends RST instead of FIN.
    linger l{1, 0};
    REQUIRE(::setsockopt(static_cast<int>(s.native()), SOL_SOCKET, SO_LINGER, &l, sizeof l) == 0);
    s.destroy();
  });
  REQUIRE_FALSE(server.listen(0, "127.0.0.1"));
  std::error_code got;
  bool closed = false;
  auto c = net::connect(loop, server.local_address());
  c.on_connect([&] {
    loop.set_timeout([&] { c.write("after the reset"); }, 20ms);
  });
  c.on_error([&](std::error_code ec) { got = ec; });
  c.on_close([&](bool had_error) {
    closed = had_error;
    server.close();
  });
  loop.run();
  CHECK(closed);
  CHECK((got == std::errc::connection_reset || got == std::errc::broken_pipe));
}
#endif

TEMPLATE_TEST_CASE("net: half-close in both directions", "[net]", PHASELOOP_TEST_IO_LOOPS) {
  for (bool client_first : {true, false}) {
    CAPTURE(client_first);
    TestType loop;
    deadline(loop);
    trace out;
    net::server server(loop);
  server.on_connection([&](net::socket s) {
      s.allow_half_open();
      s.on_data([&](std::span<const std::byte> d) { out.push_back("server got " + text(d)); });
      s.on_end([&, s]() mutable {
        out.push_back("server end");
        s.write("late reply");  // half-open: its own side still writes
        s.end();
      });
      s.on_close([&](bool) { out.push_back("server closed"); });
      if (!client_first) {
        s.write("hello");
        s.end();  // the server ends first; the client still sends afterwards
      }
    });
    REQUIRE_FALSE(server.listen(0, "127.0.0.1"));
    auto c = net::connect(loop, server.local_address());
    c.allow_half_open();
    c.on_connect([&] {
      if (client_first) {
        c.write("request");
        c.end();
      }
    });
    c.on_data([&](std::span<const std::byte> d) { out.push_back("client got " + text(d)); });
    c.on_end([&] {
      out.push_back("client end");
      if (!client_first) {
        c.write("after your end");
        c.end();
      }
    });
    c.on_close([&](bool) {
      out.push_back("client closed");
      server.close();
    });
    loop.run();
    if (client_first) {
      CHECK(std::find(out.begin(), out.end(), "server got request") < std::find(out.begin(), out.end(), "server end"));
      CHECK(std::find(out.begin(), out.end(), "client got late reply") != out.end());
    } else {
      CHECK(std::find(out.begin(), out.end(), "client got hello") < std::find(out.begin(), out.end(), "client end"));
      CHECK(std::find(out.begin(), out.end(), "server got after your end") != out.end());
    }
    CHECK(std::count(out.begin(), out.end(), "client closed") == 1);
    CHECK(std::count(out.begin(), out.end(), "server closed") == 1);
  }
}

TEMPLATE_TEST_CASE("net: a socket closed from inside its own data callback gets no more events", "[net]",
                   PHASELOOP_TEST_IO_LOOPS) {
  TestType loop;
  deadline(loop);
  int data_events = 0;
  bool closed = false;
  net::server server(loop);
  server.on_connection([&](net::socket s) {
    s.on_data([&, s](std::span<const std::byte>) mutable {
      ++data_events;
      s.destroy();
      s.destroy();  // twice: harmless
      CHECK_FALSE(s.write("after destroy"));
    });
    s.on_close([&](bool) {
      closed = true;
      server.close();
    });
  });
  REQUIRE_FALSE(server.listen(0, "127.0.0.1"));
  auto c = net::connect(loop, server.local_address());
  c.on_connect([&] {
    c.write("one");
    loop.set_timeout([&] { c.write("two"); }, 5ms);
    loop.set_timeout([&] { c.destroy(); }, 30ms);
  });
  c.on_error([](std::error_code) {});
  loop.run();
  CHECK(data_events == 1);
  CHECK(closed);
}

TEMPLATE_TEST_CASE("net: write after end or destroy fails its callback with write_after_end", "[net]",
                   PHASELOOP_TEST_IO_LOOPS) {
  TestType loop;
  deadline(loop);
  auto server = echo_server(loop);
  trace out;
  auto c = net::connect(loop, server.local_address());
  c.on_connect([&] {
    c.write("first", [&](std::error_code ec) { out.push_back("first: " + std::string(error_name(ec))); });
    c.end();
    CHECK_FALSE(c.write("second", [&](std::error_code ec) { out.push_back("second: " + std::string(error_name(ec))); }));
  });
  c.on_close([&](bool) { server.close(); });
  loop.run();
  CHECK(out == trace{"second: ERR_STREAM_WRITE_AFTER_END", "first: "});
}

#if !defined(_WIN32)
TEMPLATE_TEST_CASE("net: a descriptor closed and its number reused inside a callback gets no stale events", "[net]",
                   PHASELOOP_TEST_REAL_IO_LOOPS) {
  TestType loop;
  deadline(loop);
  auto server = echo_server(loop);
  auto a = net::connect(loop, server.local_address());
  trace out;
  a.on_connect([&] {
    const native_handle number = a.native();
    const int keep = ::dup(static_cast<int>(number));  // the old socket's file stays open
    a.destroy();                                        // closes `number`
    int fds[2];
    REQUIRE(::pipe(fds) == 0);  // takes the lowest free number: `number`
    CHECK(fds[0] == number);
    std::error_code ec;
    auto p = net::socket::open(loop, fds[0], ec);
    REQUIRE_FALSE(ec);
    p.on_data([&](std::span<const std::byte> d) { out.push_back("pipe: " + text(d)); });
    p.on_close([&](bool) { out.push_back("pipe closed"); });
    // The echo server answers the old socket (through `keep`): nothing of it
    // may reach the pipe that now has its number.
    REQUIRE(::write(keep, "stale", 5) == 5);
    loop.set_timeout([&, keep, w = fds[1]] {
      REQUIRE(::write(w, "fresh", 5) == 5);
      ::close(w);
      ::close(keep);
      server.close();
    }, 50ms);
  });
  loop.run();
  CHECK(out == trace{"pipe: fresh", "pipe closed"});
}

TEMPLATE_TEST_CASE("net: a server out of descriptors sheds connections without spinning, then serves again",
                   "[net]", PHASELOOP_TEST_REAL_IO_LOOPS) {
  // In a child process: it lowers its own descriptor limit.
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::alarm(30);  // a hang here fails the test (killed by SIGALRM) instead of blocking waitpid
    int status = 1;
    try {
      TestType loop;
      auto server = net::create_server(loop, [](net::socket s) {
        s.on_data([s](std::span<const std::byte> d) mutable { s.end(std::string(reinterpret_cast<const char*>(d.data()), d.size())); });
      });
      if (server.listen(0, "127.0.0.1")) ::_exit(2);
      const auto where = server.local_address();
      // Fill the table up to a lowered limit.
      rlimit lim{};
      ::getrlimit(RLIMIT_NOFILE, &lim);
      std::vector<int> hogs;
      int probe = ::dup(0);
      ::close(probe);
      lim.rlim_cur = static_cast<rlim_t>(probe + 40);
      ::setrlimit(RLIMIT_NOFILE, &lim);
      for (int fd; (fd = ::open("/dev/null", O_RDONLY)) >= 0;) hogs.push_back(fd);
      // Clients from a thread with its own descriptors budget: the process
      // is out of descriptors, so connect from another process instead.
      const pid_t clients = ::fork();
      if (clients == 0) {
        ::alarm(30);
        rlimit more{};
        ::getrlimit(RLIMIT_NOFILE, &more);
        more.rlim_cur = more.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &more);
        // 20 connections while the server has no descriptor to accept them.
        std::vector<int> socks;
        for (int i = 0; i < 20; ++i) {
          int s = ::socket(AF_INET, SOCK_STREAM, 0);
          if (::connect(s, where.data(), where.size()) == 0) socks.push_back(s);
        }
        ::usleep(200000);
        for (int s : socks) ::close(s);
        ::_exit(0);
      }
      int served = 0;
      loop.set_timeout([&] {  // descriptors free up: the server serves again
        for (int fd : hogs) ::close(fd);
        hogs.clear();
        auto c = net::connect(loop, where);
        c.on_connect([c]() mutable { c.write("ping"); });
        c.on_data([&](std::span<const std::byte> d) {
          if (std::string(reinterpret_cast<const char*>(d.data()), d.size()) == "ping") ++served;
        });
        c.on_close([&](bool) { server.close(); });
      }, 400ms);
      const auto before = loop.metrics().iterations;
      loop.run();
      const auto iterations = loop.metrics().iterations - before;
      int child = 0;
      ::waitpid(clients, &child, 0);
      // Shedding and waiting make a few dozen turns, never a busy loop.
      status = served == 1 && iterations < 2000 ? 0 : 3;
      if (status != 0) std::fprintf(stderr, "served %d, %llu iterations\n", served, static_cast<unsigned long long>(iterations));
    } catch (...) {
      status = 4;
    }
    ::_exit(status);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK_FALSE(WIFSIGNALED(status));
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
#endif

TEMPLATE_TEST_CASE("net: Unix domain sockets by path and in the abstract namespace", "[net]",
                   PHASELOOP_TEST_IO_LOOPS) {
  std::vector<std::string> names{"/tmp/phaseloop-test-" + std::to_string(::getpid()) + ".sock"};
#if defined(__linux__)
  names.push_back("@phaseloop-test-" + std::to_string(::getpid()));
#endif
  for (const std::string& name : names) {
    CAPTURE(name);
    TestType loop;
    deadline(loop);
    net::address where;
    REQUIRE_FALSE(net::address::parse(name, where));
    auto server = net::create_server(loop, [](net::socket s) {
      s.on_data([s](std::span<const std::byte> d) mutable { s.end(std::string("echo:") + std::string(reinterpret_cast<const char*>(d.data()), d.size())); });
    });
    REQUIRE_FALSE(server.listen(where));
    CHECK(server.local_address().to_string() == name);
    std::string got;
    auto c = net::connect_unix(loop, name);
    c.on_connect([c]() mutable { c.write("hi"); });
    c.on_data([&](std::span<const std::byte> d) { got += text(d); });
    c.on_close([&](bool) { server.close(); });
    loop.run();
    CHECK(got == "echo:hi");
    if constexpr (!std::is_same_v<TestType, mock_heap_loop>) {
      if (name.front() == '/') CHECK(::access(name.c_str(), F_OK) != 0);  // removed at close
    }
  }
}

TEMPLATE_TEST_CASE("net: pause stops data events; resume brings them back in order", "[net]", PHASELOOP_TEST_IO_LOOPS) {
  TestType loop;
  deadline(loop);
  std::string got;
  int paused_events = 0;
  net::server server(loop);
  server.on_connection([&](net::socket s) {
    s.pause();
    s.on_data([&, s](std::span<const std::byte> d) mutable {
      if (s.paused()) ++paused_events;
      got += text(d);
    });
    loop.set_timeout([s]() mutable { s.resume(); }, 30ms);
    s.on_close([&](bool) { server.close(); });
  });
  REQUIRE_FALSE(server.listen(0, "127.0.0.1"));
  auto c = net::connect(loop, server.local_address());
  c.on_connect([&] {
    c.write("abc");
    c.write("def");
    c.end();
  });
  loop.run();
  CHECK(got == "abcdef");
  CHECK(paused_events == 0);
}

TEMPLATE_TEST_CASE("net: an idle socket times out, and a connect timeout gives up", "[net]", PHASELOOP_TEST_IO_LOOPS) {
  TestType loop;
  deadline(loop);
  trace out;
  net::server server(loop);
  server.on_connection([&](net::socket s) {
    s.set_timeout(50ms);
    s.on_timeout([&, s]() mutable {
      out.push_back("timeout");
      s.destroy();
    });
    s.on_close([&](bool) {
      out.push_back("server side closed");
      server.close();
    });
  });
  REQUIRE_FALSE(server.listen(0, "127.0.0.1"));
  auto c = net::connect(loop, server.local_address());
  c.on_connect([&] { c.write("x"); });  // then silence
  c.on_close([&](bool) { out.push_back("client closed"); });
  loop.run();
  CHECK(out == trace{"timeout", "server side closed", "client closed"});
}

TEMPLATE_TEST_CASE("net: connect by host name tries each address", "[net][dns]", PHASELOOP_TEST_REAL_IO_LOOPS) {
  TestType loop;
  deadline(loop);
  auto server = echo_server(loop);
  std::string got;
  auto c = net::connect(loop, "localhost", server.local_address().port(), {.family = 4});
  c.on_connect([&] { c.end("by name"); });
  c.on_data([&](std::span<const std::byte> d) { got += text(d); });
  c.on_close([&](bool) { server.close(); });
  loop.run();
  CHECK(got == "by name");
}

TEMPLATE_TEST_CASE("net: try_write writes at once or says it would block", "[net]", PHASELOOP_TEST_IO_LOOPS) {
  TestType loop;
  deadline(loop);
  std::string got;
  net::server server(loop);
  server.on_connection([&](net::socket s) {
    s.on_data([&](std::span<const std::byte> d) { got += text(d); });
    s.on_end([&] { server.close(); });
  });
  REQUIRE_FALSE(server.listen(0, "127.0.0.1"));
  auto c = net::connect(loop, server.local_address());
  std::error_code ec;
  const std::string msg = "direct";
  CHECK(c.try_write(std::as_bytes(std::span(msg.data(), msg.size())), ec) == 0);  // not connected yet
  CHECK(ec == std::errc::resource_unavailable_try_again);
  c.on_connect([&] {
    std::error_code e;
    CHECK(c.try_write(std::as_bytes(std::span(msg.data(), msg.size())), e) == msg.size());
    CHECK_FALSE(e);
    c.end();
  });
  loop.run();
  CHECK(got == "direct");
}

#if defined(SO_REUSEPORT) && defined(__linux__)
TEMPLATE_TEST_CASE("net: SO_REUSEPORT lets one loop per thread serve one port", "[net][threads]",
                   PHASELOOP_TEST_REAL_IO_LOOPS) {
  constexpr int servers = 4;
  constexpr int connections = 200;
  std::array<std::atomic<int>, servers> served{};
  std::atomic<std::uint16_t> port{0};
  std::atomic<bool> stop{false};
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < servers; ++t) {
    threads.emplace_back([&, t] {
      TestType loop;
      net::server server(loop);
      server.on_connection([&, t](net::socket s) {
        ++served[static_cast<std::size_t>(t)];
        s.on_data([s](std::span<const std::byte> d) mutable { s.end(std::string(reinterpret_cast<const char*>(d.data()), d.size())); });
      });
      while (t != 0 && port.load() == 0) std::this_thread::yield();
      if (server.listen(port.load(), "127.0.0.1", {.reuse_port = true})) {
        ++ready;
        return;
      }
      if (t == 0) port = server.local_address().port();
      ++ready;
      typename TestType::timer_handle check;
      check = loop.set_interval([&] {
        if (!stop) return;
        server.close();
        loop.clear_interval(check);
      }, 2ms);
      loop.run();
    });
  }
  while (ready.load() < servers) std::this_thread::yield();
  int echoed = 0;
  {
    TestType loop;
    deadline(loop);
    for (int i = 0; i < connections; ++i) {
      auto c = net::connect(loop, net::address::loopback_ipv4(port.load()));
      c.on_connect([c]() mutable { c.write("x"); });
      c.on_data([&](std::span<const std::byte> d) { echoed += text(d) == "x"; });
    }
    loop.run();
  }
  stop = true;
  for (auto& th : threads) th.join();
  int total = 0, busy = 0;
  for (auto& n : served) {
    total += n.load();
    busy += n.load() > 0;
  }
  CHECK(echoed == connections);
  CHECK(total == connections);
  CHECK(busy >= 2);  // the kernel spread the connections over the loops
}
#endif

TEMPLATE_TEST_CASE("net: no_delay in connect options holds whatever on_connect is set later; an opened TCP descriptor is TCP",
                   "[net]", PHASELOOP_TEST_REAL_IO_LOOPS) {
  TestType loop;
  deadline(loop);
  auto server = echo_server(loop);
  auto nodelay = [](native_handle fd) {
    int on = -1;
    socklen_t length = sizeof on;
    ::getsockopt(static_cast<int>(fd), IPPROTO_TCP, TCP_NODELAY, &on, &length);
    return on;
  };
  int seen = -1;
  auto c = net::connect(loop, server.local_address(), {.no_delay = true});
  c.on_connect([&] {  // set after connect(), as users write it
    seen = nodelay(c.native());
    c.destroy();
  });
  c.on_close([&](bool) { server.close(); });
  loop.run();
  CHECK(seen != 0);
  CHECK(seen != -1);

  // A connected TCP descriptor handed to socket::open takes TCP's options.
  auto server2 = echo_server(loop);
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  const auto where = server2.local_address();
  REQUIRE(::connect(fd, where.data(), where.size()) == 0);
  std::error_code ec;
  auto opened = net::socket::open(loop, fd, ec, true);
  REQUIRE_FALSE(ec);
  CHECK_FALSE(opened.set_no_delay(true));
  CHECK(nodelay(opened.native()) != 0);
  opened.destroy();
  server2.close();
  loop.run();
}

TEMPLATE_TEST_CASE("net: server.close(cb) calls back only once every accepted connection has closed",
                   "[net]", PHASELOOP_TEST_IO_LOOPS) {
  TestType loop;
  deadline(loop);
  trace out;
  net::server server(loop);
  server.on_connection([&](net::socket s) {
    out.push_back("connection");
    server.close([&] { out.push_back("server closed"); });  // stops accepting; s is still open
    s.on_end([&] { out.push_back("peer ended"); });
    s.on_close([&](bool) { out.push_back("connection closed"); });
  });
  REQUIRE_FALSE(server.listen(0, "127.0.0.1"));
  auto c = net::connect(loop, server.local_address());
  c.on_connect([&] { loop.set_timeout([&] { c.end(); }, 30ms); });
  loop.run();
  CHECK(out == trace{"connection", "peer ended", "connection closed", "server closed"});
}

TEMPLATE_TEST_CASE("net: server.accept() resolves with the next connection, paused; a pending one rejects on close",
                   "[net][promise]", PHASELOOP_TEST_IO_LOOPS) {
  TestType loop;
  deadline(loop);
  trace out;
  net::server server(loop);  // no on_connection: connections wait for accept()
  REQUIRE_FALSE(server.listen(0, "127.0.0.1"));
  std::optional<net::socket> accepted;
  server.accept().then([&](net::socket& s) {
    out.push_back("accepted");
    accepted = s;
    s.on_data([&](std::span<const std::byte> d) { out.push_back("data " + text(d)); });
    s.on_end([&] {
      out.push_back("end");
      server.accept().then([&](net::socket&) { out.push_back("unexpected connection"); },
                           [&](std::exception_ptr e) {
                             try {
                               std::rethrow_exception(e);
                             } catch (const std::system_error& err) {
                               out.push_back(std::string("rejected ") + error_name(err.code()));
                             }
                           });
      server.close();
    });
    s.resume();
  });
  auto c = net::connect(loop, server.local_address());
  c.on_connect([&] { c.end("hi"); });
  loop.run();
  CHECK(out == trace{"accepted", "data hi", "end", "rejected ECANCELED"});
}

#if defined(__linux__)
TEMPLATE_TEST_CASE("net: set_keep_alive sets SO_KEEPALIVE and the idle time before the first probe", "[net]",
                   PHASELOOP_TEST_REAL_IO_LOOPS) {
  TestType loop;
  deadline(loop);
  auto server = echo_server(loop);
  auto get = [](native_handle fd, int level, int name) {
    int v = -1;
    socklen_t length = sizeof v;
    ::getsockopt(static_cast<int>(fd), level, name, &v, &length);
    return v;
  };
  int keepalive = -1, idle = -1, off = -1;
  auto c = net::connect(loop, server.local_address());
  c.on_connect([&] {
    CHECK_FALSE(c.set_keep_alive(true, std::chrono::seconds(42)));
    keepalive = get(c.native(), SOL_SOCKET, SO_KEEPALIVE);
    idle = get(c.native(), IPPROTO_TCP, TCP_KEEPIDLE);
    CHECK_FALSE(c.set_keep_alive(false));
    off = get(c.native(), SOL_SOCKET, SO_KEEPALIVE);
    c.destroy();
  });
  c.on_close([&](bool) { server.close(); });
  loop.run();
  CHECK(keepalive == 1);
  CHECK(idle == 42);
  CHECK(off == 0);
}
#endif
