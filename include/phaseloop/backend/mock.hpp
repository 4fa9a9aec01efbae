#pragma once
// mock_backend: virtual time and scripted I/O for tests, including users'
// own. When the loop would block, the virtual clock jumps to the next timer
// instead of sleeping, so an hour of timers runs in microseconds.
//
// I/O is scripted per descriptor number; no descriptor is opened:
//   - poll operations see readiness that tests inject();
//   - reads and receives take the bytes tests feed(), one chunk per read at
//     most (a short read), then the end of stream after feed_eof();
//   - writes and sends complete into a buffer tests read with
//     take_written(); limit_writes() makes them partial (backpressure);
//   - accepts take connections from feed_connection(), receives from
//     feed_datagram(); connects and shutdowns succeed;
//   - fail() makes the next operation of a kind on a descriptor complete
//     with an error, stall() makes the next progress on it a spurious
//     wakeup (EAGAIN: nothing happens).
//
// Sockets the net modules open on the mock are virtual: no descriptor is
// opened; binding, listening and connecting form a network inside the
// backend (one loop's), where a connect to a listening address is accepted
// and what one end sends the other receives, with a 256 KiB buffer per
// direction (backpressure), shutdown as the peer's end of stream, and a
// connect to an address nobody listens on refused (ECONNREFUSED). A datagram
// goes to the datagram socket bound to its address (a connected one takes
// only its peer's; one to nobody is dropped), sent from the loopback address
// when the sender is bound to the wildcard.
//
// Completions arrive at the next poll (or, with set_complete_at_submit,
// during submit where they can, as a readiness backend's writes do); cancel
// lets go at once, or with set_async_cancel completes later with
// operation_canceled, as io_uring and IOCP do.

#include <phaseloop/concepts.hpp>
#include <phaseloop/detail/list_map.hpp>
#include <phaseloop/detail/socket_api.hpp>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#if defined(_WIN32)
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <netinet/in.h>
#include <sys/socket.h>
#endif

namespace phaseloop {

class mock_backend {
  // std::min without <algorithm>.
  template <class T>
  static constexpr T smaller(T a, T b) noexcept {
    return b < a ? b : a;
  }

 public:
  static constexpr bool completion_based = false;
  /// Every socket and stream kind; file operations go to the executor.
  static constexpr bool supports(op_kind kind) noexcept {
    return static_cast<unsigned>(kind) <= static_cast<unsigned>(op_kind::shutdown);
  }

  /// A datagram fed to, or sent from, a scripted socket.
  struct datagram {
    std::string bytes;
    std::string address;  ///< the raw sockaddr bytes (empty: the connected peer)
  };

  /// The virtual network's socket calls (the net modules use them on the mock).
  static const detail::socket_api socket_table;

  mock_backend() = default;
  mock_backend(const mock_backend&) = delete;
  mock_backend& operator=(const mock_backend&) = delete;

  // --- the backend contract ---------------------------------------------

  [[nodiscard]] std::chrono::milliseconds now() const noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    return now_;
  }
  /// Virtual nanoseconds; wraps past 2^63 ns (about 2^43 ms of virtual
  /// uptime), which is harmless because only differences are used.
  [[nodiscard]] std::chrono::nanoseconds hrtime() const noexcept {
    const auto ms = static_cast<std::uint64_t>(now().count());
    return std::chrono::nanoseconds(static_cast<std::int64_t>(ms * 1000000u));
  }

  std::error_code submit(operation& op) {
    if (!supports(op.kind)) return std::make_error_code(std::errc::operation_not_supported);
    if (op.fd < 0) return std::make_error_code(std::errc::bad_file_descriptor);
    std::lock_guard<std::mutex> lock(mutex_);
    descriptor& d = fds_[op.fd];
    op.flags = static_cast<std::uint8_t>(op.flags & ~op_flag::more);
    if (op.kind == op_kind::poll) {
      if (d.poll_op != nullptr && d.poll_op != &op) return std::make_error_code(std::errc::device_or_resource_busy);
      d.poll_op = &op;
      op.state = op_state::submitted;
      return {};
    }
    op.state = op_state::submitted;
    queue_of(d, op.kind).push_back(&op);
    ++submitted_[static_cast<std::size_t>(op.kind)];
    if (complete_at_submit_) {
      op_queue done;
      progress(op.fd, d, done);
      if (done.front() == &op) {  // it finished at once: the loop delivers it
        done.pop_front();
        op.state = op_state::completed;
      }
      ready_ops_.splice_back(done);
    }
    return {};
  }

  bool cancel(operation& op) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = fds_.find(op.fd);
    bool held = false;
    if (it != fds_.end()) {
      descriptor& d = it->second;
      if (op.kind == op_kind::poll) {
        held = d.poll_op == &op;
        if (held) d.poll_op = nullptr;
      } else {
        auto& q = queue_of(d, op.kind);
        auto pos = q.begin();
        while (pos != q.end() && *pos != &op) ++pos;
        held = pos != q.end();
        if (held) q.erase(pos);
      }
    }
    if (!async_cancel_ || !held) return true;
    op.state = op_state::cancelling;
    cancelled_.push_back(&op);  // completes with operation_canceled at the next poll
    return false;
  }

  void poll(std::chrono::milliseconds timeout, op_queue& completed) {
    std::unique_lock<std::mutex> lock(mutex_);
    ++polls_;
    op_queue done;
    done.splice_back(ready_ops_);
    collect(done);
    if (done.empty() && !woken_ && cancelled_.empty()) {
      if (timeout > std::chrono::milliseconds::zero()) {
        if (auto_advance_) now_ = later(now_, timeout);
      } else if (timeout < std::chrono::milliseconds::zero()) {
        // Nothing can happen but a wakeup or injection from another thread.
        wakeup_cv_.wait(lock, [&] { return woken_ || !ready_.empty() || !cancelled_.empty(); });
        collect(done);
      }
    }
    woken_ = false;
    for (operation* op : std::exchange(cancelled_, {})) {
      // Exactly one more completion: if one is still queued, it becomes it.
      op->revents = io_events::none;
      op->error = std::make_error_code(std::errc::operation_canceled);
      op->state = op_state::completed;
      op->flags = static_cast<std::uint8_t>(op->flags & ~op_flag::more);
      if (!op->linked) done.push_back(*op);
    }
    completed.splice_back(done);
  }

  void wakeup() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      woken_ = true;
    }
    wakeup_cv_.notify_one();
  }

  std::error_code close(native_handle fd) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (fd < 0) return std::make_error_code(std::errc::bad_file_descriptor);
    auto it = fds_.find(fd);
    if (it != fds_.end()) {
      descriptor& d = it->second;
      // Operations left on a descriptor closed under them fail, never hang.
      for (auto* q : {&d.readers, &d.writers})
        for (operation* op : *q) finish(*op, std::make_error_code(std::errc::bad_file_descriptor), ready_ops_);
      if (d.poll_op != nullptr && !d.poll_op->linked)
        finish(*d.poll_op, std::make_error_code(std::errc::bad_file_descriptor), ready_ops_);
      fds_.erase(it);
    }
    if (auto vs = sockets_.find(fd); vs != sockets_.end()) {
      if (vs->second.peer != invalid_handle) {  // the peer reads to the end, then sees it
        fds_[vs->second.peer].eof = true;
        if (auto p = sockets_.find(vs->second.peer); p != sockets_.end()) p->second.peer = invalid_handle;
      }
      sockets_.erase(vs);
    }
    closed_.push_back(fd);
    return {};
  }

  // --- what tests drive: time ---------------------------------------------

  /// Move the virtual clock forward; it stops at milliseconds::max() (about
  /// 2^63 ms), never wrapping to a negative time.
  void advance(std::chrono::milliseconds by) {
    std::lock_guard<std::mutex> lock(mutex_);
    now_ = later(now_, by);
  }

  /// Set the virtual clock; it never moves backwards (nor below 0).
  void set_time(std::chrono::milliseconds to) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (to > now_) now_ = to;
  }

  /// Whether a blocking poll jumps the clock to its timeout (default) or
  /// returns at once, leaving time to the test.
  void set_auto_advance(bool on) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto_advance_ = on;
  }
  /// Whether a blocking poll jumps the clock (set_auto_advance).
  [[nodiscard]] bool auto_advance() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return auto_advance_;
  }

  // --- what tests drive: the backend's style --------------------------------

  /// Whether cancel() lets go of an operation at once (the default, as epoll
  /// and poll do) or, as io_uring and IOCP do, keeps it until the next poll
  /// completes it with operation_canceled.
  void set_async_cancel(bool on) {
    std::lock_guard<std::mutex> lock(mutex_);
    async_cancel_ = on;
  }

  /// Whether an operation that can finish at once does so during submit, as
  /// a readiness backend's write to an idle socket does (default: no, every
  /// completion arrives at the next poll).
  void set_complete_at_submit(bool on) {
    std::lock_guard<std::mutex> lock(mutex_);
    complete_at_submit_ = on;
  }

  // --- what tests drive: readiness and data ----------------------------------

  /// Make `fd` report `events` to its poll operation at the next poll (thread-safe).
  void inject(native_handle fd, io_events events) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ready_.emplace_back(fd, events);
    }
    wakeup_cv_.notify_one();
  }

  /// Bytes the next read or receive on `fd` returns (each chunk at most one
  /// read's worth: a read never joins two chunks).
  void feed(native_handle fd, std::string_view bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (bytes.empty()) return;
    fds_[fd].inbound.emplace_back(bytes);
    fds_[fd].inbound_bytes += bytes.size();
  }

  /// End of stream on `fd` once the fed bytes are read.
  void feed_eof(native_handle fd) {
    std::lock_guard<std::mutex> lock(mutex_);
    fds_[fd].eof = true;
  }

  /// A connection for the next accept on `listener`: the descriptor it
  /// returns, and the peer's raw sockaddr bytes.
  void feed_connection(native_handle listener, native_handle accepted, std::string address = {}) {
    std::lock_guard<std::mutex> lock(mutex_);
    fds_[listener].connections.emplace_back(accepted, std::move(address));
  }

  /// A datagram for the next recvfrom on `fd`.
  void feed_datagram(native_handle fd, std::string_view bytes, std::string address = {}) {
    std::lock_guard<std::mutex> lock(mutex_);
    fds_[fd].datagrams.push_back(datagram{std::string(bytes), std::move(address)});
  }

  /// The next operation of `kind` on `fd` completes with `error`.
  void fail(native_handle fd, op_kind kind, std::error_code error) {
    std::lock_guard<std::mutex> lock(mutex_);
    fds_[fd].failures.emplace_back(kind, error);
  }

  /// The next `count` progress checks on `fd` find nothing (spurious wakeups: EAGAIN).
  void stall(native_handle fd, std::size_t count = 1) {
    std::lock_guard<std::mutex> lock(mutex_);
    fds_[fd].stalls += count;
  }

  /// Writes on `fd` accept at most `bytes` more (partial writes; a write
  /// completes only once all its bytes went). no_limit lifts it.
  static constexpr std::size_t no_limit = static_cast<std::size_t>(-1);
  void limit_writes(native_handle fd, std::size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    fds_[fd].write_budget = bytes;
  }

  /// Everything written or sent on `fd` so far (then cleared).
  std::string take_written(native_handle fd) {
    std::lock_guard<std::mutex> lock(mutex_);
    return std::exchange(written_[fd], {});
  }

  /// Datagrams sent from `fd` so far (then cleared).
  std::vector<datagram> take_sent(native_handle fd) {
    std::lock_guard<std::mutex> lock(mutex_);
    return std::exchange(sent_[fd], {});
  }

  // --- what tests observe -------------------------------------------------

  /// Whether an operation is submitted on `fd`.
  [[nodiscard]] bool watching(native_handle fd) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = fds_.find(fd);
    if (it == fds_.end()) return false;
    const descriptor& d = it->second;
    return d.poll_op != nullptr || !d.readers.empty() || !d.writers.empty();
  }

  /// Operations of `kind` submitted so far.
  [[nodiscard]] std::uint64_t submitted(op_kind kind) const {
    std::lock_guard<std::mutex> lock(mutex_);
    return submitted_[static_cast<std::size_t>(kind)];
  }

  /// Descriptors closed through the backend, in order.
  [[nodiscard]] std::vector<native_handle> closed() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return closed_;
  }

  /// Descriptors shut down for writing (the peer sees the end of stream).
  [[nodiscard]] bool shut_down(native_handle fd) const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (native_handle down : shut_down_)
      if (down == fd) return true;
    return false;
  }

  /// How many times the loop polled.
  [[nodiscard]] std::uint64_t polls() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return polls_;
  }

 private:
  struct descriptor {
    operation* poll_op = nullptr;
    std::deque<operation*> readers;  // accept, read, recv, recvfrom
    std::deque<operation*> writers;  // connect, write, send, sendto, shutdown
    std::deque<std::string> inbound;
    std::deque<std::pair<native_handle, std::string>> connections;
    std::deque<datagram> datagrams;
    std::deque<std::pair<op_kind, std::error_code>> failures;
    std::size_t write_budget = no_limit;
    std::size_t inbound_bytes = 0;
    std::size_t stalls = 0;
    bool eof = false;
  };

  static bool reads(op_kind kind) noexcept {
    return kind == op_kind::accept || kind == op_kind::read || kind == op_kind::recv || kind == op_kind::recvfrom;
  }
  static std::deque<operation*>& queue_of(descriptor& d, op_kind kind) noexcept {
    return reads(kind) ? d.readers : d.writers;
  }

  static void finish(operation& op, std::error_code ec, op_queue& done) noexcept {
    op.error = ec;
    op.state = op_state::completed;
    op.flags = static_cast<std::uint8_t>(op.flags & ~op_flag::more);
    done.push_back(op);
  }

  static std::size_t scatter(operation& op, std::string_view bytes) noexcept {
    std::size_t n = 0;
    for (std::uint32_t i = 0; i < op.buffer_count && n < bytes.size(); ++i) {
      const std::size_t take = smaller(op.buffers[i].size, bytes.size() - n);
      if (take != 0) std::memcpy(op.buffers[i].data, bytes.data() + n, take);
      n += take;
    }
    return n;
  }

  // Gather the bytes of op's buffers in [from, from + count).
  static void gather(const operation& op, std::size_t from, std::size_t count, std::string& out) {
    for (std::uint32_t i = 0; i < op.buffer_count && count > 0; ++i) {
      const io_buffer& b = op.buffers[i];
      if (from >= b.size) {
        from -= b.size;
        continue;
      }
      const std::size_t take = smaller(b.size - from, count);
      out.append(static_cast<const char*>(b.data) + from, take);
      count -= take;
      from = 0;
    }
  }

  static void set_address(operation& op, const std::string& address) noexcept {
    const std::size_t n = smaller<std::size_t>(address.size(), op.address_length);
    if (op.address != nullptr && n != 0) std::memcpy(op.address, address.data(), n);
    op.address_length = static_cast<std::uint32_t>(op.address != nullptr ? n : 0);
  }

  // Try the front operation of a queue; true when it completed.
  bool try_front(native_handle fd, descriptor& d, std::deque<operation*>& q, op_queue& done) {
    if (q.empty()) return false;
    operation& op = *q.front();
    for (auto it = d.failures.begin(); it != d.failures.end(); ++it) {
      if (it->first != op.kind) continue;
      const std::error_code ec = it->second;
      d.failures.erase(it);
      q.pop_front();
      finish(op, ec, done);
      return true;
    }
    switch (op.kind) {
      case op_kind::read:
      case op_kind::recv:
        if (!d.inbound.empty()) {
          std::string& chunk = d.inbound.front();
          const std::size_t n = scatter(op, chunk);
          op.transferred = n;
          op.received = op.buffer_count != 0 ? op.buffers[0].data : nullptr;
          d.inbound_bytes -= smaller(d.inbound_bytes, n);
          chunk.erase(0, n);
          if (chunk.empty()) d.inbound.pop_front();
        } else if (d.eof) {
          op.transferred = 0;
        } else {
          return false;
        }
        break;
      case op_kind::recvfrom: {
        if (d.datagrams.empty()) return false;
        datagram g = std::move(d.datagrams.front());
        d.datagrams.pop_front();
        op.transferred = scatter(op, g.bytes);
        op.received = op.buffer_count != 0 ? op.buffers[0].data : nullptr;
        op.msg_flags = op.transferred < g.bytes.size() ? MSG_TRUNC_value : 0;
        set_address(op, g.address);
        break;
      }
      case op_kind::accept: {
        if (d.connections.empty()) return false;
        auto [accepted, address] = std::move(d.connections.front());
        d.connections.pop_front();
        op.accepted = accepted;
        set_address(op, address);
        break;
      }
      case op_kind::write:
      case op_kind::send: {
        const std::size_t total = op.buffer_bytes();
        descriptor* peer = peer_of(fd);
        std::size_t room = d.write_budget;
        if (peer != nullptr) room = smaller(room, peer->inbound_bytes < socket_buffer ? socket_buffer - peer->inbound_bytes : 0);
        else if (auto vs = sockets_.find(fd); vs != sockets_.end() && total != 0) {  // a virtual socket with no peer
          q.pop_front();
          finish(op, std::make_error_code(vs->second.connected ? std::errc::broken_pipe : std::errc::not_connected), done);
          return true;
        }
        const std::size_t n = smaller(total - op.transferred, room);
        if (n == 0 && total != 0) return false;
        if (peer != nullptr) {
          std::string chunk;
          gather(op, op.transferred, n, chunk);
          peer->inbound_bytes += chunk.size();
          peer->inbound.push_back(std::move(chunk));
        } else {
          gather(op, op.transferred, n, written_[fd]);
        }
        op.transferred += n;
        if (d.write_budget != no_limit) d.write_budget -= n;
        if (op.transferred < total) return false;
        break;
      }
      case op_kind::sendto: {
        datagram g;
        gather(op, 0, op.buffer_bytes(), g.bytes);
        if (op.address != nullptr) g.address.assign(static_cast<const char*>(op.address), op.address_length);
        op.transferred = g.bytes.size();
        if (auto vs = sockets_.find(fd); vs != sockets_.end()) {  // deliver on the virtual network
          std::string to = g.address.empty() ? vs->second.peer_address : g.address;
          ensure_bound(fd, vs->second);
          const std::string from = source_of(vs->second.local);
          if (native_handle dest = bound_to(to, false); dest != invalid_handle && accepts_from(dest, from))
            fds_[dest].datagrams.push_back(datagram{g.bytes, from});
        }
        sent_[fd].push_back(std::move(g));
        break;
      }
      case op_kind::shutdown:
        shut_down_.push_back(fd);
        if (descriptor* peer = peer_of(fd)) peer->eof = true;
        break;
      case op_kind::connect:
        if (auto vs = sockets_.find(fd); vs != sockets_.end()) {
          std::string to(static_cast<const char*>(op.address), op.address_length);
          if (vs->second.type == SOCK_DGRAM) {  // a connected datagram socket: just the default peer
            if (family_of(to) == AF_UNSPEC) {  // AF_UNSPEC dissolves the association
              vs->second.peer_address.clear();
              break;
            }
            vs->second.peer_address = to;
            ensure_bound(fd, vs->second);
            vs->second.local = source_of(vs->second.local);  // as the kernel, connect picks the local address
            break;
          }
          const native_handle listener = bound_to(to, true);
          if (listener == invalid_handle) {
            q.pop_front();
            finish(op, std::make_error_code(std::errc::connection_refused), done);
            return true;
          }
          ensure_bound(fd, vs->second);
          const native_handle accepted = next_fd_++;
          virtual_socket& a = sockets_[accepted];
          virtual_socket& c = sockets_[fd];
          a.family = c.family;
          a.type = c.type;
          a.local = sockets_[listener].local;
          a.peer = fd;
          a.peer_address = c.local;
          a.connected = true;
          c.peer = accepted;
          c.peer_address = a.local;
          c.connected = true;
          fds_[listener].connections.emplace_back(accepted, c.local);
        }
        break;
      case op_kind::poll:  // a watch sits in descriptor::poll_op, never in a queue
      case op_kind::file_open:  // the file kinds are not supported (submit refuses them)
      case op_kind::file_close:
      case op_kind::file_read:
      case op_kind::file_write:
      case op_kind::file_fsync:
      case op_kind::file_stat:
        break;
    }
    q.pop_front();
    finish(op, {}, done);
    ++progress_count_;
    return true;
  }

  // ---- the virtual network

  struct virtual_socket {
    int family = 0;
    int type = 0;
    std::string local;         // bound (or assigned) address, raw sockaddr bytes
    std::string peer_address;  // the connected peer's
    native_handle peer = invalid_handle;
    bool listening = false;
    bool connected = false;
  };
  static constexpr std::size_t socket_buffer = 256 * 1024;

  descriptor* peer_of(native_handle fd) {
    auto vs = sockets_.find(fd);
    if (vs == sockets_.end() || vs->second.peer == invalid_handle) return nullptr;
    return &fds_[vs->second.peer];
  }

  static std::uint16_t port_of(const std::string& a) noexcept {  // IPv4 and IPv6 keep it at bytes 2-3
    return a.size() >= 4 ? static_cast<std::uint16_t>((static_cast<unsigned char>(a[2]) << 8) |
                                                      static_cast<unsigned char>(a[3]))
                         : 0;
  }
  static void set_port(std::string& a, std::uint16_t port) noexcept {
    a[2] = static_cast<char>(port >> 8);
    a[3] = static_cast<char>(port & 0xff);
  }
  static int family_of(const std::string& a) noexcept {
    if (a.size() < sizeof(sockaddr)) return a.empty() ? 0 : AF_UNIX;
    sockaddr sa{};
    std::memcpy(&sa, a.data(), sizeof sa);
    return sa.sa_family;
  }
  static bool is_any(const std::string& a) noexcept {
    const int f = family_of(a);
    if (f == AF_INET) {
      sockaddr_in sin{};
      std::memcpy(&sin, a.data(), smaller(a.size(), sizeof sin));
      return sin.sin_addr.s_addr == htonl(INADDR_ANY);
    }
    if (f == AF_INET6) {
      sockaddr_in6 sin6{};
      std::memcpy(&sin6, a.data(), smaller(a.size(), sizeof sin6));
      static const in6_addr any = IN6ADDR_ANY_INIT;
      return std::memcmp(&sin6.sin6_addr, &any, sizeof any) == 0;
    }
    return false;
  }
  static bool same_ip_address(const std::string& a, const std::string& b) noexcept {
    const int f = family_of(a);
    if (f != family_of(b)) return false;
    if (f == AF_INET) {
      sockaddr_in x{}, y{};
      std::memcpy(&x, a.data(), smaller(a.size(), sizeof x));
      std::memcpy(&y, b.data(), smaller(b.size(), sizeof y));
      return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
    }
    if (f == AF_INET6) {
      sockaddr_in6 x{}, y{};
      std::memcpy(&x, a.data(), smaller(a.size(), sizeof x));
      std::memcpy(&y, b.data(), smaller(b.size(), sizeof y));
      return x.sin6_port == y.sin6_port && std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof x.sin6_addr) == 0;
    }
    return a == b;  // local sockets: the path bytes
  }
  // The socket bound to `to` (a listener when `listening`), or invalid_handle.
  native_handle bound_to(const std::string& to, bool listening) const {
    for (const auto& [fd, vs] : sockets_) {
      if (listening != vs.listening || vs.local.empty() || (listening && vs.connected)) continue;
      if (!listening && vs.type != SOCK_DGRAM) continue;
      if (same_ip_address(vs.local, to)) return fd;
      const int f = family_of(to);
      if ((f == AF_INET || f == AF_INET6) && family_of(vs.local) == f && is_any(vs.local) &&
          port_of(vs.local) == port_of(to))
        return fd;
    }
    return invalid_handle;
  }
  // Datagrams: the address a socket bound to the wildcard sends from (its
  // family's loopback address, its port), and whether a connected datagram
  // socket takes a datagram (only from its peer).
  static std::string source_of(std::string local) {
    if (!is_any(local)) return local;
    if (family_of(local) == AF_INET && local.size() >= sizeof(sockaddr_in)) {
      sockaddr_in sin{};
      std::memcpy(&sin, local.data(), sizeof sin);
      sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      std::memcpy(local.data(), &sin, sizeof sin);
    } else if (family_of(local) == AF_INET6 && local.size() >= sizeof(sockaddr_in6)) {
      sockaddr_in6 sin6{};
      std::memcpy(&sin6, local.data(), sizeof sin6);
      sin6.sin6_addr = in6addr_loopback;
      std::memcpy(local.data(), &sin6, sizeof sin6);
    }
    return local;
  }
  bool accepts_from(native_handle dest, const std::string& from) const {
    auto it = sockets_.find(dest);
    return it == sockets_.end() || it->second.peer_address.empty() || same_ip_address(it->second.peer_address, from);
  }

  // An unbound socket gets the loopback address of its family and a fresh port.
  void ensure_bound(native_handle, virtual_socket& vs) {
    if (!vs.local.empty()) return;
    if (vs.family == AF_INET) {
      sockaddr_in sin{};
      sin.sin_family = AF_INET;
      sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      sin.sin_port = htons(next_port_++);
      vs.local.assign(reinterpret_cast<const char*>(&sin), sizeof sin);
    } else if (vs.family == AF_INET6) {
      sockaddr_in6 sin6{};
      sin6.sin6_family = AF_INET6;
      sin6.sin6_addr = in6addr_loopback;
      sin6.sin6_port = htons(next_port_++);
      vs.local.assign(reinterpret_cast<const char*>(&sin6), sizeof sin6);
    }
  }

  std::error_code virtual_open(int family, int type, native_handle& out) {
    std::lock_guard<std::mutex> lock(mutex_);
    out = next_fd_++;
    virtual_socket& vs = sockets_[out];
    vs.family = family;
    vs.type = type & 0xff;  // without SOCK_NONBLOCK-style flags
    return {};
  }
  std::error_code virtual_bind(native_handle fd, const void* address, std::uint32_t length) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = sockets_.find(fd);
    if (it == sockets_.end()) return std::make_error_code(std::errc::not_a_socket);
    std::string a(static_cast<const char*>(address), length);
    const int f = family_of(a);
    if ((f == AF_INET || f == AF_INET6) && port_of(a) == 0) set_port(a, next_port_++);
    for (const auto& [other, vs] : sockets_)
      if (other != fd && !vs.connected && same_ip_address(vs.local, a) && vs.type == it->second.type)
        return std::make_error_code(std::errc::address_in_use);
    it->second.local = std::move(a);
    return {};
  }
  std::error_code virtual_listen(native_handle fd) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = sockets_.find(fd);
    if (it == sockets_.end()) return std::make_error_code(std::errc::not_a_socket);
    ensure_bound(fd, it->second);
    it->second.listening = true;
    return {};
  }
  std::error_code virtual_name(native_handle fd, bool peer, void* address, std::uint32_t& length) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = sockets_.find(fd);
    if (it == sockets_.end()) return std::make_error_code(std::errc::not_a_socket);
    const std::string& a = peer ? it->second.peer_address : it->second.local;
    if (peer && a.empty()) return std::make_error_code(std::errc::not_connected);
    const std::size_t n = smaller<std::size_t>(a.size(), length);
    std::memcpy(address, a.data(), n);
    length = static_cast<std::uint32_t>(n);
    return {};
  }
  std::error_code virtual_try_write(native_handle fd, const io_buffer* buffers, std::uint32_t count,
                                    std::size_t& written) {
    std::lock_guard<std::mutex> lock(mutex_);
    written = 0;
    descriptor* peer = peer_of(fd);
    if (peer == nullptr) return std::make_error_code(std::errc::broken_pipe);
    std::string chunk;
    for (std::uint32_t i = 0; i < count; ++i) {
      const std::size_t room = socket_buffer > peer->inbound_bytes + chunk.size()
                                   ? socket_buffer - peer->inbound_bytes - chunk.size()
                                   : 0;
      const std::size_t n = smaller(room, buffers[i].size);
      chunk.append(static_cast<const char*>(buffers[i].data), n);
      if (n < buffers[i].size) break;
    }
    if (chunk.empty()) return std::make_error_code(std::errc::resource_unavailable_try_again);
    written = chunk.size();
    peer->inbound_bytes += chunk.size();
    peer->inbound.push_back(std::move(chunk));
    return {};
  }

  // Complete whatever the script lets operations on fd do now.
  void progress(native_handle fd, descriptor& d, op_queue& done) {
    if (d.readers.empty() && d.writers.empty()) return;
    if (d.stalls > 0) {
      --d.stalls;
      return;
    }
    while (try_front(fd, d, d.readers, done)) {}
    while (try_front(fd, d, d.writers, done)) {}
  }

  void collect(op_queue& done) {
    // Until nothing moves: a write makes its peer's read possible.
    for (bool moved = true; moved;) {
      const std::uint64_t before = progress_count_;
      for (auto& [fd, d] : fds_) progress(fd, d, done);
      moved = progress_count_ != before;
    }
    for (auto [fd, events] : std::exchange(ready_, {})) {
      auto it = fds_.find(fd);
      if (it == fds_.end() || it->second.poll_op == nullptr) continue;
      operation& op = *it->second.poll_op;
      const io_events got = events & (op.events | io_events::hangup | io_events::error);
      if (!any(got)) continue;
      if (op.linked) {
        op.revents |= got;
      } else {
        op.revents = got;
        op.error = {};
        op.flags = static_cast<std::uint8_t>(op.flags | op_flag::more);
        done.push_back(op);
      }
    }
  }

#if defined(MSG_TRUNC)
  static constexpr int MSG_TRUNC_value = MSG_TRUNC;
#else
  static constexpr int MSG_TRUNC_value = 0x20;  // MSG_TRUNC on Linux and the BSDs
#endif

  mutable std::mutex mutex_;
  std::condition_variable wakeup_cv_;
  /// `t` moved forward by `by` (a negative `by` does nothing), saturated at
  /// milliseconds::max().
  static std::chrono::milliseconds later(std::chrono::milliseconds t, std::chrono::milliseconds by) noexcept {
    if (by <= std::chrono::milliseconds::zero()) return t;
    if (t > std::chrono::milliseconds::max() - by) return std::chrono::milliseconds::max();
    return t + by;
  }

  std::chrono::milliseconds now_{0};
  detail::list_map<native_handle, descriptor> fds_;  // ordered: progress is deterministic
  detail::list_map<native_handle, std::string> written_;
  detail::list_map<native_handle, std::vector<datagram>> sent_;
  std::vector<std::pair<native_handle, io_events>> ready_;
  std::vector<operation*> cancelled_;
  std::vector<native_handle> closed_;
  std::vector<native_handle> shut_down_;
  op_queue ready_ops_;  // completed outside a poll
  detail::list_map<native_handle, virtual_socket> sockets_;
  native_handle next_fd_ = 1000;    // virtual descriptors
  std::uint16_t next_port_ = 49152;  // ephemeral ports
  std::uint64_t progress_count_ = 0;
  std::uint64_t submitted_[op_kind_count] = {};
  std::uint64_t polls_ = 0;
  bool woken_ = false;
  bool auto_advance_ = true;
  bool async_cancel_ = false;
  bool complete_at_submit_ = false;
};

inline constexpr detail::socket_api mock_backend::socket_table{
    [](void* b, int family, int type, int, native_handle& out) {
      return static_cast<mock_backend*>(b)->virtual_open(family, type, out);
    },
    [](void* b, native_handle fd, const void* address, std::uint32_t length) {
      return static_cast<mock_backend*>(b)->virtual_bind(fd, address, length);
    },
    [](void* b, native_handle fd, int) { return static_cast<mock_backend*>(b)->virtual_listen(fd); },
    [](void* b, native_handle fd, bool peer, void* address, std::uint32_t& length) {
      return static_cast<mock_backend*>(b)->virtual_name(fd, peer, address, length);
    },
    [](void*, native_handle, int, int, const void*, std::uint32_t) { return std::error_code{}; },
    [](void* b, native_handle fd, const io_buffer* buffers, std::uint32_t count, bool, std::size_t& written) {
      return static_cast<mock_backend*>(b)->virtual_try_write(fd, buffers, count, written);
    },
    [](void*, native_handle, native_handle&) {},
    [](void*) { return invalid_handle; },
    [](void*, native_handle) { return std::error_code{}; },
};

static_assert(backend<mock_backend>);

}  // namespace phaseloop
