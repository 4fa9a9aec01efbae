// Networking benchmarks (PERFORMANCE.md), phaseloop beside libuv and
// Boost.Asio in one run. Both ends of every connection live in the same loop
// on one thread, so each figure is a library's cost per message (its system
// calls and its own work), not a scheduler's hand-off between threads:
//   net_pingpong_unix   1-byte ping-pong over socketpair(AF_UNIX, SOCK_STREAM):
//                       one end writes a byte, the other reads it and writes
//                       it back (an echo that copies, as any echo must);
//                       items are round trips.
//   net_pingpong_tcp    the same over a connected TCP loopback pair (TCP_NODELAY).
//   net_throughput_tcp  one TCP loopback connection, 64 KiB writes of the same
//                       memory with at most 4 in flight (each write's callback
//                       starts the next one), the other end reading into
//                       64 KiB buffers; bytes per second, items are 64 KiB writes.
//   net_echo_1000       1,000 TCP loopback clients (10 under
//                       PHASELOOP_BENCH_SCALE=100) against an echo server in
//                       the same loop, each client doing ping-pong of a 64-byte
//                       message; items are messages echoed.
// The ping-pong and throughput pairs are made with plain system calls and
// handed to each library (net::socket::open, uv_pipe_open / uv_tcp_open,
// Asio's assign), so the three run the same data path; the echo benchmark uses
// each library's own listen, accept and connect. PHASELOOP_BENCH_ROUNDTRIPS
// fixes the round trips of one ping-pong iteration (with --benchmark_min_time=0
// one iteration runs: bench/syscalls_per_roundtrip.sh counts system calls per
// round trip with it).
//
// Each library is used in its own idiom, at its best on one thread: phaseloop's
// write() copies and write_borrowed() does not; libuv writes from pooled
// uv_write_t requests (a copy for the echo, the caller's memory otherwise) and
// reads into one shared buffer from its alloc callback; Asio runs an
// io_context with concurrency hint 1, keeps a read outstanding on every socket
// and queues an echo's bytes behind the async_write in flight. Asio has no
// write queue of its own: the throughput writer's 4 async_writes in flight on
// one socket may interleave their parts, which leaves the byte count, all this
// benchmark checks, the same.

#include "compare.hpp"

#include <phaseloop/phaseloop.hpp>
#include <phaseloop/backend/io_uring.hpp>  // not in the umbrella yet

#if defined(PHASELOOP_BENCH_HAVE_LIBUV)
#include <uv.h>
#endif

#if defined(PHASELOOP_BENCH_HAVE_ASIO)
#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>
#endif

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <memory>
#include <span>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__linux__)

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

using phaseloop::bench::item_timer;
using phaseloop::bench::scaled;
namespace net = phaseloop::net;

using epoll_loop = phaseloop::basic_loop<phaseloop::epoll_backend, phaseloop::heap_timers, phaseloop::inline_executor>;
#if defined(PHASELOOP_HAS_IO_URING)
/// The io_uring rows ("phaseloop_io_uring"): the same code on the completion backend.
using uring_loop =
    phaseloop::basic_loop<phaseloop::io_uring_backend, phaseloop::heap_timers, phaseloop::inline_executor>;
#endif

/// The implementation name of a phaseloop row: "phaseloop" on epoll, "phaseloop_io_uring".
template <class Loop>
const char* phaseloop_name() {
  return std::is_same_v<Loop, epoll_loop> ? "phaseloop" : "phaseloop_io_uring";
}

constexpr std::size_t chunk_size = 64 * 1024;  // one throughput write
constexpr std::int64_t write_depth = 4;        // throughput writes in flight
constexpr std::size_t message_size = 64;       // one echo message
constexpr std::size_t read_size = 64 * 1024;   // libuv's and Asio's read buffers (phaseloop's size)

/// Round trips in one ping-pong iteration: PHASELOOP_BENCH_ROUNDTRIPS, or 20,000 (scaled).
std::int64_t round_trips() {
  static const std::int64_t n = [] {
    const char* env = std::getenv("PHASELOOP_BENCH_ROUNDTRIPS");
    const long long v = env != nullptr ? std::atoll(env) : 0;
    return v > 0 ? static_cast<std::int64_t>(v) : scaled(20'000);
  }();
  return n;
}
/// 64 KiB writes in one throughput iteration: 64 MiB.
std::int64_t throughput_writes() { return scaled(1024) > write_depth ? scaled(1024) : write_depth; }
std::int64_t echo_connections() { return scaled(1000); }
/// Round trips of each echo client in one iteration.
std::int64_t echo_rounds() { return scaled(10); }

const std::byte* chunk_bytes() {
  static const std::vector<std::byte> bytes(chunk_size, std::byte{0x5a});
  return bytes.data();
}
const std::byte* message_bytes() {
  static const std::vector<std::byte> bytes(message_size, std::byte{'m'});
  return bytes.data();
}
constexpr std::byte ping_byte[1] = {std::byte{'p'}};

[[maybe_unused]] const char* as_chars(const std::byte* p) { return reinterpret_cast<const char*>(p); }

/// A read buffer of read_size bytes for libuv and Asio, uninitialised as
/// phaseloop's pooled ones are (only what reads write becomes resident).
struct raw_buffer {
  std::unique_ptr<char[]> bytes{new char[read_size]};
  [[nodiscard]] char* data() const noexcept { return bytes.get(); }
  [[nodiscard]] static constexpr std::size_t size() noexcept { return read_size; }
};

enum class transport { unix_stream, tcp };

constexpr const char* pingpong_workload(transport t) {
  return t == transport::tcp ? "net_pingpong_tcp" : "net_pingpong_unix";
}
constexpr const char* throughput_workload = "net_throughput_tcp (per 64 KiB write)";
constexpr const char* echo_workload = "net_echo_1000 (per message)";

void set_no_delay(int fd) {
  const int one = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/// A connected TCP loopback pair, TCP_NODELAY on both ends, made with blocking calls.
bool tcp_pair(int (&fds)[2]) {
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) return false;
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof at;
  auto* where = reinterpret_cast<sockaddr*>(&at);
  int client = -1;
  if (::bind(listener, where, sizeof at) == 0 && ::listen(listener, 1) == 0 &&
      ::getsockname(listener, where, &length) == 0)
    client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (client >= 0 && ::connect(client, where, sizeof at) != 0) {
    ::close(client);
    client = -1;
  }
  const int server = client >= 0 ? ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC) : -1;
  ::close(listener);
  if (server < 0) {
    if (client >= 0) ::close(client);
    return false;
  }
  set_no_delay(client);
  set_no_delay(server);
  fds[0] = client;
  fds[1] = server;
  return true;
}

bool connected_pair(transport t, int (&fds)[2]) {
  if (t == transport::tcp) return tcp_pair(fds);
  return ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0;
}

void close_pair(const int (&fds)[2]) {
  ::close(fds[0]);
  ::close(fds[1]);
}

/// 1,000 connections in one process are 2,000 descriptors: lift the soft limit to the hard one.
void raise_descriptor_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

// ============================================================== phaseloop

/// Both ends of a pair as net::socket; false (and both descriptors closed) if either fails.
bool open_pair(phaseloop::loop_core& loop, const int (&fds)[2], net::socket& a, net::socket& b) {
  std::error_code ec;
  a = net::socket::open(loop, fds[0], ec, true);
  if (ec) {
    close_pair(fds);
    return false;
  }
  b = net::socket::open(loop, fds[1], ec, true);
  if (ec) {
    a.destroy();  // closes fds[0]
    ::close(fds[1]);
    return false;
  }
  return true;
}

template <transport T, class Loop = epoll_loop>
void pingpong_phaseloop(benchmark::State& state) {
  int fds[2];
  if (!connected_pair(T, fds)) {
    state.SkipWithError("no connected pair");
    return;
  }
  const std::int64_t n = round_trips();
  item_timer timer(state, pingpong_workload(T), phaseloop_name<Loop>());
  Loop loop;
  net::socket a;
  net::socket b;
  if (!open_pair(loop, fds, a, b)) {
    state.SkipWithError("net::socket::open failed");
    return;
  }
  struct context {
    Loop& loop;
    net::socket a;
    std::int64_t n;
    std::int64_t done = 0;
  } ctx{loop, a, n};
  b.on_data([b](std::span<const std::byte> d) mutable { b.write(d); });  // the echo end
  a.on_data([&ctx](std::span<const std::byte> d) {
    ctx.done += static_cast<std::int64_t>(d.size());
    if (ctx.done < ctx.n) {
      ctx.a.write_borrowed(ping_byte);
    } else {
      ctx.loop.stop();
    }
  });
  for (auto _ : state) {
    ctx.done = 0;
    timer.start();
    a.write_borrowed(ping_byte);
    loop.run();
    timer.stop(static_cast<double>(n));
    if (ctx.done != n) {
      state.SkipWithError("the ping-pong stopped early");
      break;
    }
  }
  a.destroy();
  b.destroy();
  loop.run();
}

template <class Loop = epoll_loop>
void throughput_phaseloop(benchmark::State& state) {
  int fds[2];
  if (!tcp_pair(fds)) {
    state.SkipWithError("no connected pair");
    return;
  }
  const std::int64_t writes = throughput_writes();
  item_timer timer(state, throughput_workload, phaseloop_name<Loop>());
  Loop loop;
  net::socket w;
  net::socket r;
  if (!open_pair(loop, fds, w, r)) {
    state.SkipWithError("net::socket::open failed");
    return;
  }
  struct context {
    Loop& loop;
    net::socket w;
    std::int64_t writes;
    std::int64_t started = 0;
    std::int64_t in_flight = 0;
    std::uint64_t received = 0;
    bool failed = false;

    [[nodiscard]] std::uint64_t total() const { return static_cast<std::uint64_t>(writes) * chunk_size; }
    void pump() {
      while (in_flight < write_depth && started < writes) {
        ++in_flight;
        ++started;
        w.write_borrowed(std::span<const std::byte>(chunk_bytes(), chunk_size), [this](std::error_code ec) {
          --in_flight;
          if (ec)
            failed = true;
          else
            pump();
          check();
        });
      }
    }
    void check() {
      if (failed || (in_flight == 0 && received == total())) loop.stop();
    }
  } ctx{loop, w, writes};
  r.on_data([&ctx](std::span<const std::byte> d) {
    ctx.received += d.size();
    ctx.check();
  });
  for (auto _ : state) {
    ctx.started = 0;
    ctx.received = 0;
    timer.start();
    ctx.pump();
    loop.run();
    timer.stop(static_cast<double>(writes));
    if (ctx.failed || ctx.received != ctx.total()) {
      state.SkipWithError("the transfer broke");
      break;
    }
  }
  state.SetBytesProcessed(state.iterations() * writes * static_cast<std::int64_t>(chunk_size));
  w.destroy();
  r.destroy();
  loop.run();
}

void echo_phaseloop(benchmark::State& state) {
  raise_descriptor_limit();
  const std::int64_t conns = echo_connections();
  const std::int64_t rounds = echo_rounds();
  item_timer timer(state, echo_workload, "phaseloop");
  epoll_loop loop;
  struct client {
    net::socket s;
    std::size_t got = 0;
    std::int64_t rounds = 0;
  };
  struct context {
    epoll_loop& loop;
    std::int64_t conns;
    std::int64_t rounds;
    std::int64_t connected = 0;
    std::int64_t accepted = 0;
    std::int64_t finished = 0;
    bool failed = false;
    std::vector<client> clients{};

    void ready() {
      if (failed || (connected == conns && accepted == conns)) loop.stop();
    }
  } ctx{loop, conns, rounds};

  auto server = net::create_server(loop, [&ctx](net::socket s) {
    (void)s.set_no_delay();
    s.on_data([s](std::span<const std::byte> d) mutable { s.write(d); });
    ++ctx.accepted;
    ctx.ready();
  });
  net::listen_options options;
  options.backlog = 2048;  // every client connects at once
  if (server.listen(net::address::loopback_ipv4(0), options)) {
    state.SkipWithError("listen failed");
    return;
  }
  const net::address to = server.local_address();
  ctx.clients.resize(static_cast<std::size_t>(conns));
  for (client& c : ctx.clients) {
    c.s = net::connect(loop, to);
    c.s.on_connect([&ctx, &c] {
      (void)c.s.set_no_delay();
      ++ctx.connected;
      ctx.ready();
    });
    c.s.on_error([&ctx](std::error_code) {
      ctx.failed = true;
      ctx.loop.stop();
    });
    c.s.on_data([&ctx, &c](std::span<const std::byte> d) {
      c.got += d.size();
      while (c.got >= message_size) {
        c.got -= message_size;
        if (++c.rounds < ctx.rounds) {
          c.s.write_borrowed(std::span<const std::byte>(message_bytes(), message_size));
        } else if (++ctx.finished == ctx.conns) {
          ctx.loop.stop();
        }
      }
    });
  }
  loop.run();  // until every client is connected and accepted
  if (ctx.failed || ctx.connected != conns || ctx.accepted != conns) state.SkipWithError("connecting failed");
  if (!ctx.failed) {
    for (auto _ : state) {
      ctx.finished = 0;
      for (client& c : ctx.clients) c.rounds = 0;
      timer.start();
      for (client& c : ctx.clients) c.s.write_borrowed(std::span<const std::byte>(message_bytes(), message_size));
      loop.run();
      timer.stop(static_cast<double>(conns * rounds));
      if (ctx.failed || ctx.finished != conns) {
        state.SkipWithError("an echo client failed");
        break;
      }
    }
  }
  for (client& c : ctx.clients) c.s.destroy();
  server.close();
  loop.run();
}

BENCHMARK(pingpong_phaseloop<transport::unix_stream>)
    ->Name("net_pingpong_unix/phaseloop")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(pingpong_phaseloop<transport::tcp>)
    ->Name("net_pingpong_tcp/phaseloop")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(throughput_phaseloop<>)->Name("net_throughput_tcp/phaseloop")->Unit(benchmark::kMillisecond)->UseRealTime();
#if defined(PHASELOOP_HAS_IO_URING)
BENCHMARK(pingpong_phaseloop<transport::unix_stream, uring_loop>)
    ->Name("net_pingpong_unix/phaseloop_io_uring")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(pingpong_phaseloop<transport::tcp, uring_loop>)
    ->Name("net_pingpong_tcp/phaseloop_io_uring")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(throughput_phaseloop<uring_loop>)
    ->Name("net_throughput_tcp/phaseloop_io_uring")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
#endif
BENCHMARK(echo_phaseloop)->Name("net_echo_1000/phaseloop")->Unit(benchmark::kMillisecond)->UseRealTime();

// ================================================================== libuv

#if defined(PHASELOOP_BENCH_HAVE_LIBUV)

struct uv_write_pool;

/// A uv_write_t with its own copy of the bytes (or none: the caller's memory).
struct uv_write_ctx {
  uv_write_t req{};
  std::vector<char> bytes;
  uv_write_pool* pool = nullptr;
  void (*done)(void* user, int status) = nullptr;
  void* user = nullptr;
};

/// Write requests, reused (as phaseloop's per-loop pool of them).
struct uv_write_pool {
  std::vector<std::unique_ptr<uv_write_ctx>> all;
  std::vector<uv_write_ctx*> free;

  uv_write_ctx* take() {
    if (free.empty()) {
      all.push_back(std::make_unique<uv_write_ctx>());
      all.back()->pool = this;
      return all.back().get();
    }
    uv_write_ctx* w = free.back();
    free.pop_back();
    return w;
  }
};

/// uv_write of `n` bytes (a copy when `copy`); the request goes back to its
/// pool once written, then done(user, status) runs.
int uv_send(uv_stream_t* s, uv_write_pool& pool, const char* data, std::size_t n, bool copy,
            void (*done)(void*, int) = nullptr, void* user = nullptr) {
  uv_write_ctx* w = pool.take();
  uv_buf_t buf;
  if (copy) {
    w->bytes.assign(data, data + n);
    buf = uv_buf_init(w->bytes.data(), static_cast<unsigned>(n));
  } else {
    buf = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(n));
  }
  w->done = done;
  w->user = user;
  w->req.data = w;
  const int r = uv_write(&w->req, s, &buf, 1, [](uv_write_t* req, int status) {
    auto* w = static_cast<uv_write_ctx*>(req->data);
    void (*then)(void*, int) = w->done;
    void* user = w->user;
    w->pool->free.push_back(w);
    if (then != nullptr) then(user, status);
  });
  if (r != 0) pool.free.push_back(w);
  return r;
}

template <class H>
uv_stream_t* as_stream(H* h) {
  return reinterpret_cast<uv_stream_t*>(h);
}
template <class H>
uv_handle_t* as_handle(H* h) {
  return reinterpret_cast<uv_handle_t*>(h);
}

/// A libuv stream on a connected descriptor: uv_tcp_t for TCP, uv_pipe_t for a Unix socket.
uv_stream_t* uv_open_stream(uv_loop_t* loop, transport t, int fd) {
  if (t == transport::tcp) {
    auto* h = new uv_tcp_t;
    uv_tcp_init(loop, h);
    if (uv_tcp_open(h, fd) != 0) ::close(fd);
    return as_stream(h);
  }
  auto* h = new uv_pipe_t;
  uv_pipe_init(loop, h, 0);
  if (uv_pipe_open(h, fd) != 0) ::close(fd);
  return as_stream(h);
}

void uv_close_delete(uv_stream_t* s) {
  uv_close(as_handle(s), [](uv_handle_t* h) {
    if (h->type == UV_TCP)
      delete reinterpret_cast<uv_tcp_t*>(h);
    else
      delete reinterpret_cast<uv_pipe_t*>(h);
  });
}

struct uv_pingpong {
  uv_loop_t loop{};
  uv_stream_t* a = nullptr;
  uv_stream_t* b = nullptr;
  uv_write_pool writes;
  raw_buffer read_buffer;
  std::int64_t n = 0;
  std::int64_t done = 0;
};

template <transport T>
void pingpong_libuv(benchmark::State& state) {
  int fds[2];
  if (!connected_pair(T, fds)) {
    state.SkipWithError("no connected pair");
    return;
  }
  const std::int64_t n = round_trips();
  item_timer timer(state, pingpong_workload(T), "libuv");
  auto pp = std::make_unique<uv_pingpong>();
  uv_loop_init(&pp->loop);
  pp->n = n;
  pp->a = uv_open_stream(&pp->loop, T, fds[0]);
  pp->b = uv_open_stream(&pp->loop, T, fds[1]);
  pp->a->data = pp.get();
  pp->b->data = pp.get();
  auto alloc = [](uv_handle_t* h, std::size_t, uv_buf_t* buf) {
    auto* p = static_cast<uv_pingpong*>(h->data);
    *buf = uv_buf_init(p->read_buffer.data(), static_cast<unsigned>(p->read_buffer.size()));
  };
  uv_read_start(pp->b, alloc, [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {  // the echo end
    auto* p = static_cast<uv_pingpong*>(s->data);
    if (nread > 0) (void)uv_send(s, p->writes, buf->base, static_cast<std::size_t>(nread), true);
  });
  uv_read_start(pp->a, alloc, [](uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
    auto* p = static_cast<uv_pingpong*>(s->data);
    if (nread <= 0) return;
    p->done += nread;
    if (p->done < p->n) {
      (void)uv_send(s, p->writes, as_chars(ping_byte), 1, false);
    } else {
      uv_stop(&p->loop);
    }
  });
  for (auto _ : state) {
    pp->done = 0;
    timer.start();
    if (uv_send(pp->a, pp->writes, as_chars(ping_byte), 1, false) != 0) {
      state.SkipWithError("uv_write failed");
      break;
    }
    uv_run(&pp->loop, UV_RUN_DEFAULT);
    timer.stop(static_cast<double>(n));
    if (pp->done != n) {
      state.SkipWithError("the ping-pong stopped early");
      break;
    }
  }
  uv_close_delete(pp->a);
  uv_close_delete(pp->b);
  uv_run(&pp->loop, UV_RUN_DEFAULT);
  uv_loop_close(&pp->loop);
}

struct uv_throughput {
  uv_loop_t loop{};
  uv_stream_t* w = nullptr;
  uv_stream_t* r = nullptr;
  uv_write_pool writes;
  raw_buffer read_buffer;
  std::int64_t count = 0;
  std::int64_t started = 0;
  std::int64_t in_flight = 0;
  std::uint64_t received = 0;
  bool failed = false;

  [[nodiscard]] std::uint64_t total() const { return static_cast<std::uint64_t>(count) * chunk_size; }
  void pump() {
    while (in_flight < write_depth && started < count) {
      ++in_flight;
      ++started;
      if (uv_send(w, writes, as_chars(chunk_bytes()), chunk_size, false, &written, this) != 0) {
        --in_flight;
        failed = true;
        check();
        return;
      }
    }
  }
  static void written(void* self, int status) {
    auto* t = static_cast<uv_throughput*>(self);
    --t->in_flight;
    if (status != 0)
      t->failed = true;
    else
      t->pump();
    t->check();
  }
  void check() {
    if (failed || (in_flight == 0 && received == total())) uv_stop(&loop);
  }
};

void throughput_libuv(benchmark::State& state) {
  int fds[2];
  if (!tcp_pair(fds)) {
    state.SkipWithError("no connected pair");
    return;
  }
  const std::int64_t writes = throughput_writes();
  item_timer timer(state, throughput_workload, "libuv");
  auto t = std::make_unique<uv_throughput>();
  uv_loop_init(&t->loop);
  t->count = writes;
  t->w = uv_open_stream(&t->loop, transport::tcp, fds[0]);
  t->r = uv_open_stream(&t->loop, transport::tcp, fds[1]);
  t->w->data = t.get();
  t->r->data = t.get();
  uv_read_start(
      t->r,
      [](uv_handle_t* h, std::size_t, uv_buf_t* buf) {
        auto* p = static_cast<uv_throughput*>(h->data);
        *buf = uv_buf_init(p->read_buffer.data(), static_cast<unsigned>(p->read_buffer.size()));
      },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
        auto* p = static_cast<uv_throughput*>(s->data);
        if (nread < 0)
          p->failed = true;
        else
          p->received += static_cast<std::uint64_t>(nread);
        p->check();
      });
  for (auto _ : state) {
    t->started = 0;
    t->received = 0;
    timer.start();
    t->pump();
    uv_run(&t->loop, UV_RUN_DEFAULT);
    timer.stop(static_cast<double>(writes));
    if (t->failed || t->received != t->total()) {
      state.SkipWithError("the transfer broke");
      break;
    }
  }
  state.SetBytesProcessed(state.iterations() * writes * static_cast<std::int64_t>(chunk_size));
  uv_close_delete(t->w);
  uv_close_delete(t->r);
  uv_run(&t->loop, UV_RUN_DEFAULT);
  uv_loop_close(&t->loop);
}

struct uv_echo;

/// What a connection's handle->data points at: its benchmark and its write requests.
struct uv_peer {
  uv_echo* echo = nullptr;
  uv_write_pool writes;
};
struct uv_echo_conn : uv_peer {
  uv_tcp_t tcp{};
};
struct uv_echo_client : uv_peer {
  uv_tcp_t tcp{};
  uv_connect_t connect{};
  std::size_t got = 0;
  std::int64_t rounds = 0;
};

struct uv_echo {
  uv_loop_t loop{};
  uv_tcp_t server{};
  raw_buffer read_buffer;
  std::vector<std::unique_ptr<uv_echo_conn>> conns;
  std::vector<std::unique_ptr<uv_echo_client>> clients;
  std::int64_t count = 0;
  std::int64_t rounds = 0;
  std::int64_t connected = 0;
  std::int64_t accepted = 0;
  std::int64_t finished = 0;
  bool failed = false;

  void ready() {
    if (failed || (connected == count && accepted == count)) uv_stop(&loop);
  }
  static void alloc(uv_handle_t* h, std::size_t, uv_buf_t* buf) {
    uv_echo* e = static_cast<uv_peer*>(h->data)->echo;
    *buf = uv_buf_init(e->read_buffer.data(), static_cast<unsigned>(e->read_buffer.size()));
  }
};

void echo_libuv(benchmark::State& state) {
  raise_descriptor_limit();
  item_timer timer(state, echo_workload, "libuv");
  auto e = std::make_unique<uv_echo>();
  e->count = echo_connections();
  e->rounds = echo_rounds();
  uv_loop_init(&e->loop);
  uv_tcp_init(&e->loop, &e->server);
  e->server.data = e.get();
  sockaddr_in at{};
  uv_ip4_addr("127.0.0.1", 0, &at);
  int length = sizeof at;
  bool ok = uv_tcp_bind(&e->server, reinterpret_cast<const sockaddr*>(&at), 0) == 0 &&
            uv_tcp_getsockname(&e->server, reinterpret_cast<sockaddr*>(&at), &length) == 0;
  ok = ok &&
       uv_listen(as_stream(&e->server), 2048, [](uv_stream_t* server, int status) {
         auto* e = static_cast<uv_echo*>(server->data);
         if (status < 0) {
           e->failed = true;
           e->ready();
           return;
         }
         e->conns.push_back(std::make_unique<uv_echo_conn>());
         uv_echo_conn* c = e->conns.back().get();
         c->echo = e;
         uv_tcp_init(&e->loop, &c->tcp);
         c->tcp.data = static_cast<uv_peer*>(c);
         if (uv_accept(server, as_stream(&c->tcp)) != 0) {
           e->failed = true;
           e->ready();
           return;
         }
         uv_tcp_nodelay(&c->tcp, 1);
         uv_read_start(as_stream(&c->tcp), &uv_echo::alloc, [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
           auto* c = static_cast<uv_echo_conn*>(static_cast<uv_peer*>(s->data));
           if (nread > 0)
             (void)uv_send(s, c->writes, buf->base, static_cast<std::size_t>(nread), true);
           else if (nread < 0)
             uv_read_stop(s);  // the client's end
         });
         ++e->accepted;
         e->ready();
       }) == 0;
  if (!ok) {
    state.SkipWithError("listen failed");
  } else {
    for (std::int64_t i = 0; i < e->count; ++i) {
      e->clients.push_back(std::make_unique<uv_echo_client>());
      uv_echo_client* c = e->clients.back().get();
      c->echo = e.get();
      uv_tcp_init(&e->loop, &c->tcp);
      c->tcp.data = static_cast<uv_peer*>(c);
      c->connect.data = c;
      const int r = uv_tcp_connect(
          &c->connect, &c->tcp, reinterpret_cast<const sockaddr*>(&at), [](uv_connect_t* req, int status) {
            auto* c = static_cast<uv_echo_client*>(req->data);
            uv_echo* e = c->echo;
            if (status < 0) {
              e->failed = true;
              e->ready();
              return;
            }
            uv_tcp_nodelay(&c->tcp, 1);
            uv_read_start(as_stream(&c->tcp), &uv_echo::alloc, [](uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
              auto* c = static_cast<uv_echo_client*>(static_cast<uv_peer*>(s->data));
              uv_echo* e = c->echo;
              if (nread < 0) {
                e->failed = true;
                uv_stop(&e->loop);
                return;
              }
              c->got += static_cast<std::size_t>(nread);
              while (c->got >= message_size) {
                c->got -= message_size;
                if (++c->rounds < e->rounds) {
                  (void)uv_send(s, c->writes, as_chars(message_bytes()), message_size, false);
                } else if (++e->finished == e->count) {
                  uv_stop(&e->loop);
                }
              }
            });
            ++e->connected;
            e->ready();
          });
      if (r != 0) e->failed = true;
    }
    if (!e->failed) uv_run(&e->loop, UV_RUN_DEFAULT);  // until every client is connected and accepted
    if (e->failed || e->connected != e->count || e->accepted != e->count) {
      state.SkipWithError("connecting failed");
    } else {
      for (auto _ : state) {
        e->finished = 0;
        for (auto& c : e->clients) c->rounds = 0;
        timer.start();
        for (auto& c : e->clients)
          (void)uv_send(as_stream(&c->tcp), c->writes, as_chars(message_bytes()), message_size, false);
        uv_run(&e->loop, UV_RUN_DEFAULT);
        timer.stop(static_cast<double>(e->count * e->rounds));
        if (e->failed || e->finished != e->count) {
          state.SkipWithError("an echo client failed");
          break;
        }
      }
    }
  }
  for (auto& c : e->clients) uv_close(as_handle(&c->tcp), nullptr);
  for (auto& c : e->conns) uv_close(as_handle(&c->tcp), nullptr);
  uv_close(as_handle(&e->server), nullptr);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  uv_loop_close(&e->loop);
}

BENCHMARK(pingpong_libuv<transport::unix_stream>)
    ->Name("net_pingpong_unix/libuv")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(pingpong_libuv<transport::tcp>)->Name("net_pingpong_tcp/libuv")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(throughput_libuv)->Name("net_throughput_tcp/libuv")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(echo_libuv)->Name("net_echo_1000/libuv")->Unit(benchmark::kMillisecond)->UseRealTime();

#endif  // PHASELOOP_BENCH_HAVE_LIBUV

// ============================================================= Boost.Asio

#if defined(PHASELOOP_BENCH_HAVE_ASIO)

namespace asio = boost::asio;
using boost::system::error_code;

template <transport T>
struct asio_stream;
template <>
struct asio_stream<transport::tcp> {
  using socket = asio::ip::tcp::socket;
  static asio::ip::tcp protocol() { return asio::ip::tcp::v4(); }
};
template <>
struct asio_stream<transport::unix_stream> {
  using socket = asio::local::stream_protocol::socket;
  static asio::local::stream_protocol protocol() { return {}; }
};

/// An echo's write queue: one async_write at a time, the bytes read
/// meanwhile gathered for the next (what phaseloop's and libuv's streams do).
template <class Socket>
struct asio_writer {
  Socket& socket;
  std::vector<char> out{};
  std::vector<char> next{};
  bool busy = false;

  void send(const char* data, std::size_t n) {
    next.insert(next.end(), data, data + n);
    if (!busy) flush();
  }
  void flush() {
    out.swap(next);
    next.clear();
    busy = true;
    asio::async_write(socket, asio::buffer(out), [this](const error_code& ec, std::size_t) {
      busy = false;
      if (!ec && !next.empty()) flush();
    });
  }
};

template <class Socket>
struct asio_pingpong {
  asio::io_context& io;
  Socket a;
  Socket b;
  asio_writer<Socket> echo{b};
  raw_buffer buf_a;
  raw_buffer buf_b;
  std::int64_t n = 0;
  std::int64_t done = 0;

  explicit asio_pingpong(asio::io_context& context) : io(context), a(context), b(context) {}

  void ping() {
    asio::async_write(a, asio::buffer(ping_byte, 1), [](const error_code&, std::size_t) {});
  }
  void read_a() {
    a.async_read_some(asio::buffer(buf_a.data(), buf_a.size()), [this](const error_code& ec, std::size_t got) {
      if (ec) return;
      done += static_cast<std::int64_t>(got);
      if (done < n)
        ping();
      else
        io.stop();
      read_a();
    });
  }
  void read_b() {  // the echo end
    b.async_read_some(asio::buffer(buf_b.data(), buf_b.size()), [this](const error_code& ec, std::size_t got) {
      if (ec) return;
      echo.send(buf_b.data(), got);
      read_b();
    });
  }
};

template <transport T>
void pingpong_asio(benchmark::State& state) {
  int fds[2];
  if (!connected_pair(T, fds)) {
    state.SkipWithError("no connected pair");
    return;
  }
  const std::int64_t n = round_trips();
  item_timer timer(state, pingpong_workload(T), "asio");
  asio::io_context io(1);
  auto pp = std::make_unique<asio_pingpong<typename asio_stream<T>::socket>>(io);
  error_code ec;
  pp->a.assign(asio_stream<T>::protocol(), fds[0], ec);
  if (!ec) pp->b.assign(asio_stream<T>::protocol(), fds[1], ec);
  if (ec) {
    if (!pp->a.is_open()) ::close(fds[0]);
    ::close(fds[1]);
    state.SkipWithError("assign failed");
    return;
  }
  pp->n = n;
  pp->read_a();
  pp->read_b();
  for (auto _ : state) {
    pp->done = 0;
    timer.start();
    io.restart();
    pp->ping();
    io.run();
    timer.stop(static_cast<double>(n));
    if (pp->done != n) {
      state.SkipWithError("the ping-pong stopped early");
      break;
    }
  }
  pp->a.close(ec);
  pp->b.close(ec);
  io.restart();
  io.run();
}

struct asio_throughput {
  asio::io_context& io;
  asio::ip::tcp::socket w;
  asio::ip::tcp::socket r;
  raw_buffer read_buffer;
  std::int64_t count = 0;
  std::int64_t started = 0;
  std::int64_t in_flight = 0;
  std::uint64_t received = 0;
  bool failed = false;

  explicit asio_throughput(asio::io_context& context) : io(context), w(context), r(context) {}

  [[nodiscard]] std::uint64_t total() const { return static_cast<std::uint64_t>(count) * chunk_size; }
  void pump() {
    while (in_flight < write_depth && started < count) {
      ++in_flight;
      ++started;
      asio::async_write(w, asio::buffer(chunk_bytes(), chunk_size), [this](const error_code& ec, std::size_t) {
        --in_flight;
        if (ec)
          failed = true;
        else
          pump();
        check();
      });
    }
  }
  void read() {
    r.async_read_some(asio::buffer(read_buffer.data(), read_buffer.size()),
                      [this](const error_code& ec, std::size_t got) {
                        if (ec) return;
                        received += got;
                        check();
                        read();
                      });
  }
  void check() {
    if (failed || (in_flight == 0 && received == total())) io.stop();
  }
};

void throughput_asio(benchmark::State& state) {
  int fds[2];
  if (!tcp_pair(fds)) {
    state.SkipWithError("no connected pair");
    return;
  }
  const std::int64_t writes = throughput_writes();
  item_timer timer(state, throughput_workload, "asio");
  asio::io_context io(1);
  auto t = std::make_unique<asio_throughput>(io);
  error_code ec;
  t->w.assign(asio::ip::tcp::v4(), fds[0], ec);
  if (!ec) t->r.assign(asio::ip::tcp::v4(), fds[1], ec);
  if (ec) {
    if (!t->w.is_open()) ::close(fds[0]);
    ::close(fds[1]);
    state.SkipWithError("assign failed");
    return;
  }
  t->count = writes;
  t->read();
  for (auto _ : state) {
    t->started = 0;
    t->received = 0;
    timer.start();
    io.restart();
    t->pump();
    io.run();
    timer.stop(static_cast<double>(writes));
    if (t->failed || t->received != t->total()) {
      state.SkipWithError("the transfer broke");
      break;
    }
  }
  state.SetBytesProcessed(state.iterations() * writes * static_cast<std::int64_t>(chunk_size));
  t->w.close(ec);
  t->r.close(ec);
  io.restart();
  io.run();
}

struct asio_echo;

struct asio_echo_session {
  asio::ip::tcp::socket socket;
  raw_buffer buffer;
  asio_writer<asio::ip::tcp::socket> writer{socket};

  explicit asio_echo_session(asio::ip::tcp::socket s) : socket(std::move(s)) {}
  void read() {
    socket.async_read_some(asio::buffer(buffer.data(), buffer.size()), [this](const error_code& ec, std::size_t got) {
      if (ec) return;
      writer.send(buffer.data(), got);
      read();
    });
  }
};

struct asio_echo_client {
  asio_echo& echo;
  asio::ip::tcp::socket socket;
  raw_buffer buffer;
  std::size_t got = 0;
  std::int64_t rounds = 0;

  asio_echo_client(asio_echo& e, asio::io_context& io) : echo(e), socket(io) {}
  void send() {
    asio::async_write(socket, asio::buffer(message_bytes(), message_size), [](const error_code&, std::size_t) {});
  }
  void start(const asio::ip::tcp::endpoint& to);
  void read();
};

struct asio_echo {
  asio::io_context& io;
  asio::ip::tcp::acceptor acceptor;
  std::vector<std::unique_ptr<asio_echo_session>> sessions;
  std::vector<std::unique_ptr<asio_echo_client>> clients;
  std::int64_t count = 0;
  std::int64_t rounds = 0;
  std::int64_t connected = 0;
  std::int64_t accepted = 0;
  std::int64_t finished = 0;
  bool failed = false;

  explicit asio_echo(asio::io_context& context) : io(context), acceptor(context) {}
  void ready() {
    if (failed || (connected == count && accepted == count)) io.stop();
  }
  void accept() {
    acceptor.async_accept([this](const error_code& ec, asio::ip::tcp::socket s) {
      if (ec) {
        if (ec != asio::error::operation_aborted) {
          failed = true;
          ready();
        }
        return;
      }
      error_code ignored;
      s.set_option(asio::ip::tcp::no_delay(true), ignored);
      sessions.push_back(std::make_unique<asio_echo_session>(std::move(s)));
      sessions.back()->read();
      ++accepted;
      ready();
      accept();
    });
  }
};

void asio_echo_client::start(const asio::ip::tcp::endpoint& to) {
  socket.async_connect(to, [this](const error_code& ec) {
    if (ec) {
      echo.failed = true;
      echo.ready();
      return;
    }
    error_code ignored;
    socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    read();
    ++echo.connected;
    echo.ready();
  });
}

void asio_echo_client::read() {
  socket.async_read_some(asio::buffer(buffer.data(), buffer.size()), [this](const error_code& ec, std::size_t n) {
    if (ec) {
      if (ec != asio::error::operation_aborted) {
        echo.failed = true;
        echo.io.stop();
      }
      return;
    }
    got += n;
    while (got >= message_size) {
      got -= message_size;
      if (++rounds < echo.rounds)
        send();
      else if (++echo.finished == echo.count)
        echo.io.stop();
    }
    read();
  });
}

void echo_asio(benchmark::State& state) {
  raise_descriptor_limit();
  item_timer timer(state, echo_workload, "asio");
  asio::io_context io(1);
  auto e = std::make_unique<asio_echo>(io);
  e->count = echo_connections();
  e->rounds = echo_rounds();
  error_code ec;
  e->acceptor.open(asio::ip::tcp::v4(), ec);
  if (!ec) e->acceptor.bind(asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), 0), ec);
  if (!ec) e->acceptor.listen(2048, ec);
  const asio::ip::tcp::endpoint to = ec ? asio::ip::tcp::endpoint() : e->acceptor.local_endpoint(ec);
  if (ec) {
    state.SkipWithError("listen failed");
    return;
  }
  e->accept();
  for (std::int64_t i = 0; i < e->count; ++i) {
    e->clients.push_back(std::make_unique<asio_echo_client>(*e, io));
    e->clients.back()->start(to);
  }
  io.run();  // until every client is connected and accepted
  if (e->failed || e->connected != e->count || e->accepted != e->count) {
    state.SkipWithError("connecting failed");
  } else {
    for (auto _ : state) {
      e->finished = 0;
      for (auto& c : e->clients) c->rounds = 0;
      timer.start();
      io.restart();
      for (auto& c : e->clients) c->send();
      io.run();
      timer.stop(static_cast<double>(e->count * e->rounds));
      if (e->failed || e->finished != e->count) {
        state.SkipWithError("an echo client failed");
        break;
      }
    }
  }
  for (auto& c : e->clients) c->socket.close(ec);
  for (auto& s : e->sessions) s->socket.close(ec);
  e->acceptor.close(ec);
  io.restart();
  io.run();
}

BENCHMARK(pingpong_asio<transport::unix_stream>)
    ->Name("net_pingpong_unix/asio")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(pingpong_asio<transport::tcp>)->Name("net_pingpong_tcp/asio")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(throughput_asio)->Name("net_throughput_tcp/asio")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(echo_asio)->Name("net_echo_1000/asio")->Unit(benchmark::kMillisecond)->UseRealTime();

#endif  // PHASELOOP_BENCH_HAVE_ASIO

}  // namespace

#endif  // __linux__
