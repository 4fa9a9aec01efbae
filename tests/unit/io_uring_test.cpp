// io_uring_backend beyond the shared contract suite: no system call for a
// non-blocking poll with nothing to do, thousands of operations in flight
// past the completion queue's size (overflow), mass cancellation with one
// final completion each, teardown with operations in flight (no descriptor
// left, no buffer written afterwards), and the runtime fallback to epoll
// (PHASELOOP_NO_IO_URING=1, and io_uring_setup refused by a seccomp filter
// in a forked child) running an echo over TCP.

#include "support.hpp"
#include "posix.hpp"

#if defined(PHASELOOP_HAS_IO_URING)

#include <dirent.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

using namespace phaseloop;
using namespace phaseloop::test;

namespace {

struct one_byte_recv : operation {
  unsigned char byte = 0;
  io_buffer buffer{&byte, 1};
  int completions = 0;
  explicit one_byte_recv(int descriptor) {
    kind = op_kind::recv;
    fd = descriptor;
    buffers = &buffer;
    buffer_count = 1;
  }
};

std::size_t open_descriptors() {
  std::size_t n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d) != nullptr) ++n;
    ::closedir(d);
  }
  return n;
}

/// A small TCP echo on `loop`: returns what the client got back for "ping".
template <class Loop>
std::string echo_once(Loop& loop) {
  std::string got;
  auto server = net::create_server(loop, [](net::socket s) {
    s.on_data([s](std::span<const std::byte> d) mutable { s.write(d); });
    s.on_end([s]() mutable { s.end(); });
  });
  if (server.listen(0, "127.0.0.1")) return "listen failed";
  auto c = net::connect(loop, server.local_address());
  c.on_connect([&] { c.write(std::string("ping")); });
  c.on_data([&](std::span<const std::byte> d) {
    got.append(reinterpret_cast<const char*>(d.data()), d.size());
    if (got.size() >= 4) {
      c.end();
      server.close();
    }
  });
  loop.set_timeout([&] { loop.stop(); }, std::chrono::seconds(10)).unref();
  loop.run();
  return got;
}

using fallback_loop = basic_loop<uring_or_epoll_backend, heap_timers, inline_executor>;

/// Installs a seccomp filter that makes io_uring_setup fail with ENOSYS
/// (what a container's default profile does).
bool refuse_io_uring_setup() {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, static_cast<std::uint32_t>(offsetof(seccomp_data, nr))),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{};
  prog.len = static_cast<unsigned short>(sizeof filter / sizeof filter[0]);
  prog.filter = filter;
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return false;
  return ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

/// Runs `child` in a forked process; returns its exit status (or -1).
template <class F>
int in_child(F&& child) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    int code = 99;
    try {
      code = child();
    } catch (...) {
      code = 98;
    }
    std::_Exit(code);
  }
  if (pid < 0) return -1;
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST_CASE("io_uring: a non-blocking poll with nothing to do makes no system call", "[io_uring]") {
  io_uring_backend b;
  op_queue done;
  b.poll(std::chrono::milliseconds(0), done);  // arms the wakeup read: one enter
  const std::uint64_t before = b.enters();
  for (int i = 0; i < 1000; ++i) b.poll(std::chrono::milliseconds(0), done);
  CHECK(b.enters() == before);
  CHECK(done.empty());
  // A wakeup is seen by a non-blocking poll too (the eventfd read completes).
  b.wakeup();
  b.poll(std::chrono::milliseconds(100), done);
  CHECK(done.empty());
}

TEST_CASE("io_uring: a chain of immediates on a loop enters the kernel only a few times", "[io_uring]") {
  uring_heap_loop loop;
  int left = 10000;
  std::function<void()> next = [&] {
    if (--left > 0) loop.set_immediate(next);
  };
  loop.set_immediate(next);
  const std::uint64_t before = loop.backend().enters();
  loop.run();
  CHECK(left == 0);
  CHECK(loop.backend().enters() - before <= 2);
}

TEST_CASE("io_uring: 5,000 operations in flight overflow a small completion queue; each completes once",
          "[io_uring]") {
  const std::size_t count = 5000;
  io_uring_options options;
  options.sq_entries = 64;
  options.cq_entries = 128;
  io_uring_backend b(options);
  REQUIRE(b.cq_entries() < count);
  unix_socket_pair p;
  std::vector<std::unique_ptr<one_byte_recv>> ops;
  for (std::size_t i = 0; i < count; ++i) {
    ops.push_back(std::make_unique<one_byte_recv>(p.fds[0]));
    ops.back()->complete = [](operation&) {};
    REQUIRE_FALSE(b.submit(*ops.back()));
    REQUIRE(ops.back()->state == op_state::submitted);
  }
  op_queue done;
  b.poll(std::chrono::milliseconds(0), done);  // all entered
  CHECK(done.empty());
  CHECK(b.watched() == count);
  // The peer sends one byte per operation, each value a known number of times.
  std::vector<unsigned char> bytes(count);
  std::vector<int> expected(256, 0);
  for (std::size_t i = 0; i < count; ++i) {
    bytes[i] = static_cast<unsigned char>(i % 251);
    ++expected[bytes[i]];
  }
  REQUIRE(::write(p.fds[1], bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
  std::size_t completed = 0;
  std::vector<int> seen(256, 0);
  for (int round = 0; round < 200 && completed < count; ++round) {
    b.poll(std::chrono::milliseconds(20), done);
    while (operation* op = done.pop_front()) {
      auto& r = static_cast<one_byte_recv&>(*op);
      ++r.completions;
      ++completed;
      CHECK_FALSE(r.error);
      CHECK(r.transferred == 1);
      ++seen[r.byte];
    }
  }
  CHECK(completed == count);
  CHECK(seen == expected);
  CHECK(b.overflow_flushes() > 0);  // the queue really overflowed
  CHECK(b.watched() == 0);
  for (auto& op : ops) CHECK(op->completions == 1);
}

TEST_CASE("io_uring: 5,000 cancelled operations each complete exactly once, with operation_canceled",
          "[io_uring]") {
  const std::size_t count = 5000;
  io_uring_backend b;  // the default 4,096-entry completion queue: overflows too
  unix_socket_pair p;
  std::vector<std::unique_ptr<one_byte_recv>> ops;
  for (std::size_t i = 0; i < count; ++i) {
    ops.push_back(std::make_unique<one_byte_recv>(p.fds[0]));
    REQUIRE_FALSE(b.submit(*ops.back()));
  }
  op_queue done;
  b.poll(std::chrono::milliseconds(0), done);
  for (auto& op : ops) {
    REQUIRE_FALSE(b.cancel(*op));  // in the kernel: its completion comes later
    op->state = op_state::cancelling;
  }
  std::size_t completed = 0;
  for (int round = 0; round < 200 && completed < count; ++round) {
    b.poll(std::chrono::milliseconds(20), done);
    while (operation* op = done.pop_front()) {
      ++static_cast<one_byte_recv&>(*op).completions;
      ++completed;
      CHECK(op->error == std::errc::operation_canceled);
      CHECK(op->state == op_state::completed);
    }
  }
  CHECK(completed == count);
  // Late bytes reach none of them.
  REQUIRE(::write(p.fds[1], "late", 4) == 4);
  b.poll(std::chrono::milliseconds(30), done);
  CHECK(done.empty());
  for (auto& op : ops) CHECK(op->completions == 1);
}

TEST_CASE("io_uring: destroyed with operations in flight, it leaves no descriptor and writes no buffer after",
          "[io_uring]") {
  unix_socket_pair p;
  const std::size_t before = open_descriptors();
  auto buffer = std::make_unique<one_byte_recv>(p.fds[0]);
  buffer->byte = 0x55;
  {
    io_uring_backend b;
    REQUIRE_FALSE(b.submit(*buffer));
    op_queue done;
    b.poll(std::chrono::milliseconds(0), done);
    CHECK(b.watched() == 1);
    CHECK(open_descriptors() > before);  // the ring and its eventfd
  }
  CHECK(open_descriptors() == before);
  REQUIRE(::write(p.fds[1], "x", 1) == 1);  // a read still in the kernel would take it
  ::usleep(20000);
  CHECK(buffer->byte == 0x55);
  char c = 0;
  CHECK(::read(p.fds[0], &c, 1) == 1);  // the byte is still in the socket
  CHECK(c == 'x');
}

TEST_CASE("io_uring: a loop destroyed with reads, writes and an accept in flight", "[io_uring]") {
  const std::size_t before = open_descriptors();
  {
    uring_heap_loop loop;
    auto server = net::create_server(loop, [](net::socket s) { s.pause(); });
    REQUIRE_FALSE(server.listen(0, "127.0.0.1"));
    auto c = net::connect(loop, server.local_address());
    bool connected = false;
    c.on_connect([&] {
      connected = true;
      c.write(std::string(8 << 20, 'x'));  // more than the socket buffers take: stays in flight
      loop.stop();
    });
    loop.set_timeout([&] { loop.stop(); }, std::chrono::seconds(5)).unref();
    loop.run();
    CHECK(connected);
    CHECK(loop.backend().watched() >= 2);  // the accept and the write at least
  }
  CHECK(open_descriptors() == before);
}

TEST_CASE("io_uring: by default a write waits for the iteration's one enter; eager mode writes at submit",
          "[io_uring]") {
  for (const bool eager : {false, true}) {
    CAPTURE(eager);
    io_uring_options options;
    options.eager = eager;
    io_uring_backend b(options);
    unix_socket_pair p;
    std::string text = "hello";
    io_buffer buffer{text.data(), text.size()};
    operation w;
    w.kind = op_kind::send;
    w.fd = p.fds[0];
    w.buffers = &buffer;
    w.buffer_count = 1;
    op_queue done;
    b.poll(std::chrono::milliseconds(0), done);  // the wakeup read is armed
    const std::uint64_t before = b.enters();
    REQUIRE_FALSE(b.submit(w));
    CHECK(w.state == (eager ? op_state::completed : op_state::submitted));
    CHECK(b.enters() == before);  // nothing entered at submit
    if (!eager) {
      b.poll(std::chrono::milliseconds(0), done);
      CHECK(b.enters() == before + 1);  // one enter: submitted, performed and reaped
      REQUIRE(done.pop_front() == &w);
      CHECK_FALSE(w.error);
      CHECK(w.transferred == 5);
    }
    char got[8] = {};
    CHECK(::read(p.fds[1], got, sizeof got) == 5);
    CHECK(std::string(got, 5) == "hello");
  }
}

TEST_CASE("io_uring: a ping-pong round trip between two sockets of one loop costs two enters", "[io_uring]") {
  uring_heap_loop loop;
  unix_socket_pair p;
  std::error_code ec;
  net::socket a = net::socket::open(loop, p.fds[0], ec, true);
  REQUIRE_FALSE(ec);
  p.fds[0] = -1;
  net::socket b = net::socket::open(loop, p.fds[1], ec, true);
  REQUIRE_FALSE(ec);
  p.fds[1] = -1;
  const int rounds = 2000;
  int done = 0;
  std::uint64_t start = 0;
  b.on_data([b](std::span<const std::byte> d) mutable { b.write(d); });
  a.on_data([&](std::span<const std::byte> d) {
    done += static_cast<int>(d.size());
    if (done == 100) start = loop.backend().enters();  // warmed up
    if (done < rounds) a.write(std::string("x"));
    else loop.stop();
  });
  a.write(std::string("x"));
  loop.set_timeout([&] { loop.stop(); }, std::chrono::seconds(10)).unref();
  loop.run();
  REQUIRE(done == rounds);
  const double per_round = static_cast<double>(loop.backend().enters() - start) / (rounds - 100);
  CAPTURE(per_round);
  CHECK(per_round <= 2.05);
  a.destroy();
  b.destroy();
  loop.run();
}

TEST_CASE("io_uring: a TCP echo runs on io_uring", "[io_uring]") {
  uring_heap_loop loop;
  CHECK(echo_once(loop) == "ping");
}

TEST_CASE("io_uring: uring_or_epoll_backend prefers io_uring and says so", "[io_uring]") {
  ::unsetenv("PHASELOOP_NO_IO_URING");
  fallback_loop loop;
  CHECK(loop.backend().chosen() == chosen_backend::io_uring);
  CHECK(std::string(loop.backend().name()) == "io_uring");
  CHECK_FALSE(loop.backend().refusal());
  CHECK(loop.backend().uring() != nullptr);
  CHECK(echo_once(loop) == "ping");
}

TEST_CASE("io_uring: PHASELOOP_NO_IO_URING=1 runs the loop on epoll", "[io_uring]") {
  const int status = in_child([] {
    ::setenv("PHASELOOP_NO_IO_URING", "1", 1);
    fallback_loop loop;
    if (loop.backend().chosen() != chosen_backend::epoll) return 1;
    if (std::string(loop.backend().name()) != "epoll" || loop.backend().epoll() == nullptr) return 2;
    if (loop.backend().refusal()) return 3;
    if (echo_once(loop) != "ping") return 4;
    return 0;
  });
  CHECK(status == 0);
}

TEST_CASE("io_uring: io_uring_setup refused by a seccomp filter: the loop falls back to epoll", "[io_uring]") {
  const int status = in_child([] {
    ::unsetenv("PHASELOOP_NO_IO_URING");
    if (!refuse_io_uring_setup()) return 10;
    // The filter works: the raw call is refused.
    io_uring_params params{};
    if (::syscall(__NR_io_uring_setup, 4, &params) != -1 || errno != ENOSYS) return 11;
    bool threw = false;
    try {
      io_uring_backend b;
    } catch (const std::system_error& e) {
      threw = e.code() == std::errc::function_not_supported;
    }
    if (!threw) return 12;
    fallback_loop loop;
    if (loop.backend().chosen() != chosen_backend::epoll) return 13;
    if (loop.backend().refusal() != std::errc::function_not_supported) return 14;
    if (echo_once(loop) != "ping") return 15;
    return 0;
  });
  CHECK(status == 0);
}

#endif  // PHASELOOP_HAS_IO_URING
