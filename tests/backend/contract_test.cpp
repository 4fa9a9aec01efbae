// The backend contract (docs/design.md §1.1), checked on every backend: the
// mock in both cancellation styles, and each real backend of this platform
// over socketpairs. Every later backend joins the case lists below.

#include "support.hpp"

#include <atomic>
#include <cstring>
#include <string>
#include <thread>

#if !defined(_WIN32)
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#endif

using namespace phaseloop;
using namespace phaseloop::test;

namespace {

// ----------------------------------------------------------------- cases

/// A connected pair on the backend under test: `near` is what operations
/// run on, the test plays the peer.
struct mock_pair {
  mock_backend& backend;
  native_handle near = 40;
  void peer_write(const std::string& bytes) { backend.feed(near, bytes); }
  std::string peer_read() { return backend.take_written(near); }
  void peer_close() { backend.feed_eof(near); }
};

struct mock_sync_case {
  using backend_type = mock_backend;
  static constexpr bool real = false;
  static void setup(mock_backend&) {}
};
struct mock_async_case {
  using backend_type = mock_backend;
  static constexpr bool real = false;
  static void setup(mock_backend& b) { b.set_async_cancel(true); }
};

#if !defined(_WIN32)
struct socket_pair {
  int fds[2] = {-1, -1};
  native_handle near = -1;
  socket_pair() {
    REQUIRE_FALSE(detail::posix::open_socketpair(AF_UNIX, SOCK_STREAM, fds));
    near = fds[0];
  }
  ~socket_pair() {
    for (int fd : fds)
      if (fd >= 0) ::close(fd);
  }
  void peer_write(const std::string& bytes) {
    REQUIRE(::write(fds[1], bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
  }
  std::string peer_read() {
    std::string out;
    char buf[65536];
    for (ssize_t n; (n = ::read(fds[1], buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
    return out;
  }
  void peer_close() {
    ::close(fds[1]);
    fds[1] = -1;
  }
};

template <class B>
struct real_case {
  using backend_type = B;
  static constexpr bool real = true;
  static void setup(B&) {}
};
#endif

#if defined(__linux__)
struct epoll_case : real_case<epoll_backend> {};
#define PHASELOOP_EPOLL_CASE , epoll_case
#else
#define PHASELOOP_EPOLL_CASE
#endif
#if !defined(_WIN32)
struct poll_case : real_case<poll_backend> {};
#define PHASELOOP_POLL_CASE , poll_case
#else
#define PHASELOOP_POLL_CASE
#endif

#if defined(PHASELOOP_HAS_IO_URING)
// In eager mode, which tries a write to an idle socket and a read after a
// full one at submit as readiness backends do (the contract's "completes
// during submit" cases); the default, batched mode runs every net and dgram
// suite (tests/unit/io_uring_test.cpp checks its write path).
struct io_uring_case : real_case<io_uring_backend> {
  static void setup(io_uring_backend& b) { b.set_eager(true); }
};
#define PHASELOOP_IO_URING_CASE , io_uring_case
#else
#define PHASELOOP_IO_URING_CASE
#endif

// kqueue: natively on Apple and the BSDs, over libkqueue on Linux.
#if defined(PHASELOOP_TEST_WITH_KQUEUE) && defined(PHASELOOP_HAS_KQUEUE_BACKEND)
struct kqueue_case : real_case<kqueue_backend> {};
#define PHASELOOP_KQUEUE_CASE , kqueue_case
#else
#define PHASELOOP_KQUEUE_CASE
#endif

#define PHASELOOP_BACKEND_CASES                                                                      \
  mock_sync_case, mock_async_case PHASELOOP_EPOLL_CASE PHASELOOP_POLL_CASE PHASELOOP_IO_URING_CASE \
      PHASELOOP_KQUEUE_CASE
#if defined(__linux__)
#define PHASELOOP_REAL_BACKEND_CASES epoll_case, poll_case PHASELOOP_IO_URING_CASE PHASELOOP_KQUEUE_CASE
#else
#define PHASELOOP_REAL_BACKEND_CASES poll_case PHASELOOP_KQUEUE_CASE
#endif

// ---------------------------------------------------------------- harness

/// Drives a backend as the loop does: submit, cancel (with the loop's rule
/// that a backend letting go at once leaves the final completion to the
/// caller), poll, and records every completion.
template <class Case>
struct harness {
  using B = typename Case::backend_type;
  B backend;
  op_queue completed;
  std::vector<operation*> done;  // completions, in order

  harness() { Case::setup(backend); }
  ~harness() {
    while (completed.pop_front() != nullptr) {}
  }

  auto pair() {
    if constexpr (Case::real) {
#if !defined(_WIN32)
      return socket_pair{};
#endif
    } else {
      return mock_pair{backend};
    }
  }

  std::error_code submit(operation& op) {
    op.reset_results();
    std::error_code ec = backend.submit(op);
    if (!ec && op.state == op_state::completed) done.push_back(&op);  // finished at submit
    return ec;
  }
  void cancel(operation& op) {
    if (backend.cancel(op)) {
      op.error = std::make_error_code(std::errc::operation_canceled);
      op.flags = static_cast<std::uint8_t>(op.flags & ~op_flag::more);
      op.state = op_state::completed;
      if (!op.linked) done.push_back(&op);
    } else {
      op.state = op_state::cancelling;
    }
  }
  /// One poll; returns how many completions it gave.
  std::size_t poll(std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) {
    backend.poll(timeout, completed);
    std::size_t n = 0;
    while (operation* op = completed.pop_front()) {
      done.push_back(op);
      ++n;
    }
    return n;
  }
  /// Poll until `op` has completed `times` times in all (or a second passed).
  void poll_until(const operation& op, std::size_t times = 1) {
    for (int i = 0; i < 100 && count(op) < times; ++i) poll(std::chrono::milliseconds(10));
  }
  std::size_t count(const operation& op) const {
    return static_cast<std::size_t>(std::count(done.begin(), done.end(), &op));
  }
};

struct read_op : operation {
  char bytes[64] = {};
  io_buffer buffer{bytes, sizeof bytes};
  explicit read_op(native_handle descriptor, std::size_t size = sizeof(bytes)) {
    kind = op_kind::recv;
    fd = descriptor;
    buffer.size = size;
    buffers = &buffer;
    buffer_count = 1;
  }
  [[nodiscard]] std::string text() const { return std::string(bytes, transferred); }
};

struct write_op : operation {
  std::string data;
  io_buffer buffer{};
  write_op(native_handle descriptor, std::string text) : data(std::move(text)) {
    kind = op_kind::send;
    fd = descriptor;
    buffer = io_buffer{data.data(), data.size()};
    buffers = &buffer;
    buffer_count = 1;
  }
};

}  // namespace

// ------------------------------------------------------------------ tests

TEMPLATE_TEST_CASE("backend contract: a cancelled operation completes exactly once more", "[backend]",
                   PHASELOOP_BACKEND_CASES) {
  harness<TestType> h;
  auto p = h.pair();
  read_op op(p.near);
  REQUIRE_FALSE(h.submit(op));
  CHECK(op.state == op_state::submitted);
  h.poll();
  CHECK(h.count(op) == 0);  // nothing to read yet
  h.cancel(op);
  h.poll_until(op);
  h.poll();
  p.peer_write("late");  // arrives after the cancel: never delivered to the cancelled read
  h.poll();
  REQUIRE(h.count(op) == 1);
  CHECK(op.error == std::errc::operation_canceled);
  CHECK(op.state == op_state::completed);
  CHECK_FALSE(op.more());
}

TEMPLATE_TEST_CASE("backend contract: a read and a write pending on one descriptor complete independently",
                   "[backend]", PHASELOOP_BACKEND_CASES) {
  harness<TestType> h;
  auto p = h.pair();
  if constexpr (!TestType::real) h.backend.limit_writes(p.near, 0);  // the peer is not reading
  read_op reader(p.near);
  REQUIRE_FALSE(h.submit(reader));
  // Fill the socket so a write has to wait (the mock: no write budget).
  std::string big(TestType::real ? 4 << 20 : 1000, 'x');
  write_op writer(p.near, big);
  REQUIRE_FALSE(h.submit(writer));
  CHECK(writer.state == op_state::submitted);
  p.peer_write("ping");
  h.poll_until(reader);
  REQUIRE(h.count(reader) == 1);
  CHECK(reader.text() == "ping");
  CHECK(h.count(writer) == 0);  // still waiting for room
  // The peer drains: the write completes, all of it, while no read is pending.
  std::string got;
  if constexpr (!TestType::real) h.backend.limit_writes(p.near, mock_backend::no_limit);
  for (int i = 0; i < 400 && h.count(writer) == 0; ++i) {
    got += p.peer_read();
    h.poll(std::chrono::milliseconds(5));
  }
  got += p.peer_read();
  REQUIRE(h.count(writer) == 1);
  CHECK_FALSE(writer.error);
  CHECK(writer.transferred == big.size());
  CHECK(got == big);
}

TEMPLATE_TEST_CASE("backend contract: a write to an idle socket completes without waiting for readiness",
                   "[backend]", PHASELOOP_BACKEND_CASES) {
  harness<TestType> h;
  if constexpr (!TestType::real) h.backend.set_complete_at_submit(true);
  auto p = h.pair();
  write_op w(p.near, "hello");
  REQUIRE_FALSE(h.submit(w));
  CHECK(w.state == op_state::completed);  // done during submit: the loop delivers it
  CHECK(h.count(w) == 1);
  CHECK(w.transferred == 5);
  CHECK(p.peer_read() == "hello");
  if constexpr (TestType::real) CHECK(h.backend.watched() == 0);  // never registered for writability
}

TEMPLATE_TEST_CASE("backend contract: a short read waits for readiness; a full one reads on at once",
                   "[backend]", PHASELOOP_REAL_BACKEND_CASES) {
  harness<TestType> h;
  auto p = h.pair();
  read_op r(p.near, 4);
  REQUIRE_FALSE(h.submit(r));
  p.peer_write("abcdefgh");
  h.poll_until(r);
  CHECK(r.text() == "abcd");  // filled its buffer: the descriptor may hold more
  REQUIRE_FALSE(h.submit(r));
  CHECK(r.state == op_state::completed);  // read on during submit
  CHECK(r.text() == "efgh");
  REQUIRE_FALSE(h.submit(r));  // filled again: one more try at submit, which finds nothing
  CHECK(r.state == op_state::submitted);  // and waits for readiness
  CHECK(h.count(r) == 2);
  h.cancel(r);
}

TEMPLATE_TEST_CASE("backend contract: after a short read the next read waits for the next readiness",
                   "[backend]", PHASELOOP_REAL_BACKEND_CASES) {
  harness<TestType> h;
  auto p = h.pair();
  read_op r(p.near, 16);
  REQUIRE_FALSE(h.submit(r));
  p.peer_write("abc");
  h.poll_until(r);
  CHECK(r.text() == "abc");  // short: the descriptor is drained
  p.peer_write("def");
  REQUIRE_FALSE(h.submit(r));
  CHECK(r.state == op_state::submitted);  // no read at submit after a short one
  h.poll_until(r, 2);
  CHECK(r.text() == "def");
}

TEMPLATE_TEST_CASE("backend contract: end of stream and a peer that went away", "[backend]", PHASELOOP_BACKEND_CASES) {
  harness<TestType> h;
  auto p = h.pair();
  read_op r(p.near);
  REQUIRE_FALSE(h.submit(r));
  p.peer_close();
  h.poll_until(r);
  REQUIRE(h.count(r) == 1);
  CHECK_FALSE(r.error);
  CHECK(r.transferred == 0);
  if constexpr (TestType::real) {
    // Writing to a closed peer is an error, never SIGPIPE.
    write_op w(p.near, "x");
    REQUIRE_FALSE(h.submit(w));
    h.poll_until(w);
    REQUIRE(h.count(w) == 1);
    CHECK((w.error == std::errc::broken_pipe || w.error == std::errc::connection_reset));
  }
}

TEMPLATE_TEST_CASE("backend contract: poll operations report readiness until cancelled", "[backend]",
                   PHASELOOP_BACKEND_CASES) {
  harness<TestType> h;
  auto p = h.pair();
  operation op;
  op.kind = op_kind::poll;
  op.fd = p.near;
  op.events = io_events::readable;
  REQUIRE_FALSE(h.submit(op));
  if constexpr (TestType::real) {
    p.peer_write("x");
  } else {
    h.backend.inject(p.near, io_events::readable);
  }
  h.poll_until(op);
  REQUIRE(h.count(op) == 1);
  CHECK(op.more());  // not the last completion
  CHECK(op.revents == io_events::readable);
  CHECK(op.state == op_state::submitted);
  h.cancel(op);
  h.poll_until(op, 2);
  CHECK(h.count(op) == 2);
  CHECK_FALSE(op.more());
  CHECK(op.error == std::errc::operation_canceled);
}

TEMPLATE_TEST_CASE("backend contract: wakeup from another thread ends a blocking poll", "[backend][threads]",
                   PHASELOOP_BACKEND_CASES) {
  harness<TestType> h;
  std::atomic<bool> polling{false};
  std::thread waker([&] {
    while (!polling.load()) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    h.backend.wakeup();
  });
  polling.store(true);
  h.poll(infinite_timeout);  // returns once woken
  waker.join();
  CHECK(h.done.empty());
}

TEMPLATE_TEST_CASE("backend contract: a descriptor closed and its number reused starts clean", "[backend]",
                   PHASELOOP_BACKEND_CASES) {
  harness<TestType> h;
  if constexpr (TestType::real) {
#if !defined(_WIN32)
    socket_pair old_pair;
    const int keep = ::dup(old_pair.fds[0]);  // the old file outlives its number
    operation old_watch;
    old_watch.kind = op_kind::poll;
    old_watch.fd = old_pair.near;
    old_watch.events = io_events::readable;
    REQUIRE_FALSE(h.submit(old_watch));
    h.cancel(old_watch);
    const native_handle number = old_pair.near;
    REQUIRE_FALSE(h.backend.close(number));
    old_pair.fds[0] = -1;
    socket_pair fresh;  // takes the lowest free number: the one just closed
    REQUIRE(fresh.near == number);
    operation watch;
    watch.kind = op_kind::poll;
    watch.fd = fresh.near;
    watch.events = io_events::readable;
    REQUIRE_FALSE(h.submit(watch));
    old_pair.peer_write("for the old file");  // readable through `keep`, not through the new socket
    h.poll(std::chrono::milliseconds(30));
    CHECK(h.count(watch) == 0);
    fresh.peer_write("new");
    h.poll_until(watch);
    CHECK(h.count(watch) == 1);
    h.cancel(watch);
    ::close(keep);
#endif
  } else {
    mock_pair p{h.backend};
    p.peer_write("for the old descriptor");
    REQUIRE_FALSE(h.backend.close(p.near));
    read_op fresh(p.near);
    REQUIRE_FALSE(h.submit(fresh));
    h.poll();
    CHECK(h.count(fresh) == 0);  // nothing of the old descriptor's data
    h.cancel(fresh);
    h.poll_until(fresh);
  }
}

TEMPLATE_TEST_CASE("backend contract: unsupported kinds and bad descriptors are errors", "[backend]",
                   PHASELOOP_BACKEND_CASES) {
  harness<TestType> h;
  operation unknown;
  unknown.kind = static_cast<op_kind>(99);
  unknown.fd = 3;
  CHECK(h.submit(unknown) == std::errc::operation_not_supported);
  CHECK(unknown.state == op_state::idle);
  using B = typename TestType::backend_type;
  if constexpr (!B::supports(op_kind::file_read)) {
    operation file;
    file.kind = op_kind::file_read;
    file.fd = 3;
    CHECK(h.submit(file) == std::errc::operation_not_supported);
  }
  read_op negative(-1);
  CHECK(h.submit(negative) == std::errc::bad_file_descriptor);
  if constexpr (TestType::real) {
    read_op huge(50'000'000);  // no table grows for a bogus number
    CHECK(h.submit(huge) == std::errc::bad_file_descriptor);
    read_op max(0x7fffffff);
    CHECK(h.submit(max) == std::errc::bad_file_descriptor);
  }
}

TEMPLATE_TEST_CASE("backend contract: accept and connect", "[backend]", PHASELOOP_BACKEND_CASES) {
  harness<TestType> h;
  if constexpr (TestType::real) {
#if !defined(_WIN32)
    int listener = -1;
    REQUIRE_FALSE(detail::posix::open_socket(AF_INET, SOCK_STREAM, 0, listener));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listener, 16) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) == 0);

    sockaddr_storage peer{};
    operation acc;
    acc.kind = op_kind::accept;
    acc.fd = listener;
    acc.address = &peer;
    acc.address_length = sizeof peer;
    REQUIRE_FALSE(h.submit(acc));

    int client = -1;
    REQUIRE_FALSE(detail::posix::open_socket(AF_INET, SOCK_STREAM, 0, client));
    operation con;
    con.kind = op_kind::connect;
    con.fd = client;
    con.address = &addr;
    con.address_length = sizeof addr;
    REQUIRE_FALSE(h.submit(con));
    h.poll_until(con);
    h.poll_until(acc);
    REQUIRE(h.count(con) == 1);
    REQUIRE(h.count(acc) == 1);
    CHECK_FALSE(con.error);
    CHECK_FALSE(acc.error);
    CHECK(acc.accepted >= 0);
    CHECK(acc.address_length == sizeof(sockaddr_in));
    ::close(static_cast<int>(acc.accepted));
    (void)h.backend.close(client);

    // A refused connection is an error of the connect.
    int refused = -1;
    REQUIRE_FALSE(detail::posix::open_socket(AF_INET, SOCK_STREAM, 0, refused));
    (void)h.backend.close(listener);  // nobody listens on that port any more
    con.fd = refused;
    REQUIRE_FALSE(h.submit(con));
    h.poll_until(con, 2);
    CHECK(con.error == std::errc::connection_refused);
    (void)h.backend.close(refused);
#endif
  } else {
    operation acc;
    acc.kind = op_kind::accept;
    acc.fd = 7;
    REQUIRE_FALSE(h.submit(acc));
    h.poll();
    CHECK(h.count(acc) == 0);
    h.backend.feed_connection(7, 8);
    h.poll();
    REQUIRE(h.count(acc) == 1);
    CHECK(acc.accepted == 8);
    operation con;
    con.kind = op_kind::connect;
    con.fd = 9;
    h.backend.fail(9, op_kind::connect, std::make_error_code(std::errc::connection_refused));
    REQUIRE_FALSE(h.submit(con));
    h.poll();
    REQUIRE(h.count(con) == 1);
    CHECK(con.error == std::errc::connection_refused);
  }
}
